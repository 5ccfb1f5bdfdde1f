"""Listing and searching instruments, with counts of the data stored for each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from marketdb.errors import InvalidInput
from marketdb.store.schema import tables as t
from marketdb.store.schema.market import ASSET_CLASSES

__all__ = ["DATA_TABLES", "DataCount", "InstrumentInfo", "data_counts", "list_instruments"]

#: Market-data tables counted per instrument: (table, instrument column).
DATA_TABLES: Final = (
    (t.trades, "instrument_id"),
    (t.quotes, "instrument_id"),
    (t.candles, "instrument_id"),
    (t.order_book_snapshots, "instrument_id"),
    (t.options_chains, "underlying_id"),
)


@dataclass(frozen=True, slots=True)
class DataCount:
    """What one table holds for one instrument: rows, time span, sources (and intervals of candles)."""

    table: str
    rows: int
    first_ts: dt.datetime | None
    last_ts: dt.datetime | None
    sources: tuple[str, ...] = ()
    intervals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """One instrument of the security master and, when counted, the data stored for it."""

    id: int
    symbol: str
    name: str | None
    asset_class: str
    exchange: str | None
    currency: str | None
    calendar: str | None
    is_active: bool
    listed_at: dt.date | None
    delisted_at: dt.date | None
    data: tuple[DataCount, ...] = field(default=())

    @property
    def rows(self) -> int:
        """Rows stored for the instrument over every market-data table."""
        return sum(d.rows for d in self.data)

    @property
    def first_ts(self) -> dt.datetime | None:
        """The earliest timestamp stored for it (any table)."""
        return min((d.first_ts for d in self.data if d.first_ts is not None), default=None)

    @property
    def last_ts(self) -> dt.datetime | None:
        """The latest timestamp stored for it (any table)."""
        return max((d.last_ts for d in self.data if d.last_ts is not None), default=None)

    @property
    def intervals(self) -> tuple[str, ...]:
        """Bar intervals stored for it."""
        return tuple(sorted({i for d in self.data for i in d.intervals}))

    @property
    def sources(self) -> tuple[str, ...]:
        """Data sources (providers) stored for it."""
        return tuple(sorted({s for d in self.data for s in d.sources}))

    def as_dict(self, *, counts: bool = True) -> dict[str, Any]:
        """A flat dict for tables and JSON (``counts`` adds rows, first/last ts, intervals, sources)."""
        out: dict[str, Any] = {
            "id": self.id,
            "symbol": self.symbol,
            "name": self.name,
            "asset_class": self.asset_class,
            "exchange": self.exchange,
            "active": self.is_active,
        }
        if counts:
            out.update(
                rows=self.rows,
                first_ts=self.first_ts,
                last_ts=self.last_ts,
                intervals=",".join(self.intervals),
                sources=",".join(self.sources),
            )
        return out


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def list_instruments(
    conn: sa.Connection,
    *,
    prefix: str | None = None,
    asset_class: str | None = None,
    exchange: str | None = None,
    active: bool | None = None,
    search: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
    counts: bool = True,
) -> list[InstrumentInfo]:
    """Instruments by symbol, filtered; with ``counts`` the data stored for each.

    ``prefix`` matches the start of the symbol (case-insensitive), ``search``
    any part of the symbol or name; ``asset_class``, ``exchange`` and
    ``active`` must match exactly (exchange case-insensitive).
    """
    inst = t.instruments
    if asset_class is not None and asset_class not in ASSET_CLASSES:
        raise InvalidInput(
            f"unknown asset class {asset_class!r}", hint=f"use one of: {', '.join(ASSET_CLASSES)}"
        )
    if limit is not None and limit < 1:
        raise InvalidInput(f"limit must be positive, got {limit}")
    q = sa.select(
        inst.c.id, inst.c.symbol, inst.c.name, inst.c.asset_class, inst.c.exchange, inst.c.currency,
        inst.c.calendar, inst.c.is_active, inst.c.listed_at, inst.c.delisted_at,
    ).order_by(inst.c.symbol)
    if prefix:
        q = q.where(inst.c.symbol.like(_like_prefix(prefix.strip().upper()), escape="\\"))
    if search:
        pattern = "%" + _like_prefix(search.strip())
        q = q.where(
            sa.or_(inst.c.symbol.ilike(pattern, escape="\\"), inst.c.name.ilike(pattern, escape="\\"))
        )
    if asset_class is not None:
        q = q.where(inst.c.asset_class == asset_class)
    if exchange:
        q = q.where(sa.func.upper(inst.c.exchange) == exchange.strip().upper())
    if active is not None:
        q = q.where(inst.c.is_active.is_(active))
    if ids is not None:
        q = q.where(inst.c.id.in_(list(ids)))
    if limit is not None:
        q = q.limit(limit)
    rows = conn.execute(q).all()
    by_id = data_counts(conn, [int(r.id) for r in rows]) if counts and rows else {}
    return [
        InstrumentInfo(
            id=int(r.id), symbol=r.symbol, name=r.name, asset_class=r.asset_class, exchange=r.exchange,
            currency=r.currency, calendar=r.calendar, is_active=bool(r.is_active), listed_at=r.listed_at,
            delisted_at=r.delisted_at, data=tuple(by_id.get(int(r.id), ())),
        )
        for r in rows
    ]


def data_counts(conn: sa.Connection, instrument_ids: Sequence[int]) -> dict[int, list[DataCount]]:
    """Per instrument, one :class:`DataCount` for every table that holds rows of it."""
    out: dict[int, list[DataCount]] = {}
    if not instrument_ids:
        return out
    ids = sorted(set(instrument_ids))
    for table, id_col in DATA_TABLES:
        key = table.c[id_col]
        cols: list[Any] = [
            key.label("iid"),
            sa.func.count().label("n"),
            sa.func.min(table.c.ts).label("first"),
            sa.func.max(table.c.ts).label("last"),
            sa.func.array_remove(sa.func.array_agg(sa.distinct(table.c.source)), None).label("sources"),
        ]
        if "interval" in table.c:
            cols.append(sa.func.array_agg(sa.distinct(table.c.interval)).label("intervals"))
        q = sa.select(*cols).where(key.in_(ids)).group_by(key)
        for r in conn.execute(q):
            m = r._mapping
            out.setdefault(int(m["iid"]), []).append(
                DataCount(
                    table=table.name,
                    rows=int(m["n"]),
                    first_ts=m["first"],
                    last_ts=m["last"],
                    sources=tuple(sorted(m["sources"] or ())),
                    intervals=tuple(sorted(m.get("intervals") or ())),
                )
            )
    return out
