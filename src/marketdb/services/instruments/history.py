"""Symbol history: renames, delistings, registrations, and the dated spans they leave.

``symbol_history`` holds dated spans ``[valid_from, valid_to)`` of each symbol
an instrument carried. A new instrument gets a ``listing`` span; a rename
closes the old span and opens a ``rename`` span; a delisting closes the span
and opens a ``delisting`` span. Reads, writes and trading resolve symbols
through these spans (:mod:`marketdb.services.instruments.lookup`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.store.schema import tables as t

from .lookup import UNKNOWN_HINT
from .symbols import normalize_symbol

__all__ = [
    "EPOCH_FLOOR",
    "SymbolChange",
    "aware",
    "day_start",
    "delist",
    "history",
    "record_delisting",
    "register_symbols",
    "rename",
]

#: valid_from of spans whose start is unknown.
EPOCH_FLOOR: Final = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class SymbolChange:
    """One span of ``symbol_history``: the instrument carried ``symbol`` during ``[valid_from, valid_to)``."""

    instrument_id: int
    symbol: str
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The span as a plain dict (for tables and JSON)."""
        return {
            "instrument_id": self.instrument_id,
            "symbol": self.symbol,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "reason": self.reason,
        }


def day_start(d: dt.date | dt.datetime | None) -> dt.datetime | None:
    """00:00 UTC of a date; an aware datetime as is (a naive one is taken as UTC)."""
    if d is None:
        return None
    if isinstance(d, dt.datetime):
        return d if d.tzinfo else d.replace(tzinfo=dt.UTC)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def aware(v: dt.datetime | dt.date) -> dt.datetime:
    """An aware datetime in UTC from an aware datetime or a date (naive datetimes are refused)."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            raise InvalidInput("give an aware datetime (with tzinfo) or a date")
        return v.astimezone(dt.UTC)
    return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)


def _instrument_by_symbol(conn: sa.Connection, symbol: str) -> Any:
    inst = t.instruments
    row = conn.execute(
        sa.select(inst.c.id, inst.c.symbol, inst.c.listed_at, inst.c.is_active).where(inst.c.symbol == symbol)
    ).first()
    if row is None:
        raise NotFound(f"no instrument has the symbol {symbol!r}", hint=UNKNOWN_HINT)
    return row


def _open_span(
    conn: sa.Connection, instrument_id: int, symbol: str, listed: dt.datetime | None, until: dt.datetime
) -> None:
    """Make sure the instrument has a span for ``symbol`` and close it at ``until``."""
    h = t.symbol_history
    closed = conn.execute(
        sa.update(h)
        .where(h.c.instrument_id == instrument_id, h.c.symbol == symbol, h.c.valid_to.is_(None),
               h.c.valid_from < until)
        .values(valid_to=until)
    ).rowcount
    if not closed:
        start = listed if listed is not None and listed < until else EPOCH_FLOOR
        conn.execute(pg_insert(h).values(instrument_id=instrument_id, symbol=symbol,
                                         valid_from=start, valid_to=until, reason="listing")
                     .on_conflict_do_nothing())


def rename(conn: sa.Connection, old: str, new: str, *, effective: dt.datetime | dt.date) -> int:
    """Record that the instrument called ``old`` is called ``new`` from ``effective`` on.

    Data stored or ingested later under ``old`` for times before ``effective``
    still resolves to the instrument. Returns the instrument id.
    """
    old_s, new_s = normalize_symbol(old), normalize_symbol(new)
    at = aware(effective)
    inst = t.instruments
    row = _instrument_by_symbol(conn, old_s)
    holder = conn.execute(sa.select(inst.c.id).where(inst.c.symbol == new_s)).scalar()
    if holder is not None and holder != row.id:
        raise Conflict(
            f"the symbol {new_s!r} already belongs to another instrument (id {holder})",
            hint="rename or delist that instrument first",
        )
    _open_span(conn, row.id, old_s, day_start(row.listed_at), at)
    conn.execute(pg_insert(t.symbol_history).values(
        instrument_id=row.id, symbol=new_s, valid_from=at, reason="rename"
    ).on_conflict_do_nothing())
    conn.execute(sa.update(inst).where(inst.c.id == row.id).values(symbol=new_s, updated_at=sa.func.now()))
    return int(row.id)


def delist(conn: sa.Connection, symbol: str, *, at: dt.datetime | dt.date) -> int:
    """Mark the instrument inactive from ``at`` and record it in the symbol history."""
    return record_delisting(conn, normalize_symbol(symbol), aware(at))


def record_delisting(conn: sa.Connection, symbol: str, at: dt.datetime | None) -> int:
    """Close the span of the (normalised) ``symbol`` at ``at``, open a ``delisting`` span, mark inactive."""
    if at is None:
        raise InvalidInput("a delisting needs its date")
    row = _instrument_by_symbol(conn, symbol)
    h = t.symbol_history
    already = conn.execute(sa.select(h.c.id).where(
        h.c.instrument_id == row.id, h.c.reason == "delisting", h.c.valid_from == at)).first()
    if already is None:
        _open_span(conn, row.id, symbol, day_start(row.listed_at), at)
        conn.execute(pg_insert(h).values(instrument_id=row.id, symbol=symbol, valid_from=at,
                                         reason="delisting").on_conflict_do_nothing())
    conn.execute(sa.update(t.instruments).where(t.instruments.c.id == row.id)
                 .values(is_active=False, delisted_at=at.date(), updated_at=sa.func.now()))
    return int(row.id)


def register_symbols(conn: sa.Connection, symbols: Sequence[str], *, source: str | None) -> list[str]:
    """Create bare instruments for ``symbols`` that no instrument carries (asset class 'other').

    Returns the symbols actually created. Concurrent writers registering the
    same symbol are safe (``ON CONFLICT DO NOTHING``).
    """
    if not symbols:
        return []
    inst = t.instruments
    meta: dict[str, Any] = {"auto_registered": True}
    if source:
        meta["source"] = source
    out = conn.execute(
        pg_insert(inst)
        .values([{"symbol": s, "asset_class": "other", "metadata": meta} for s in symbols])
        .on_conflict_do_nothing()
        .returning(inst.c.id, inst.c.symbol)
    ).all()
    if out:
        conn.execute(
            pg_insert(t.symbol_history).values([
                {"instrument_id": r.id, "symbol": r.symbol, "reason": "listing", "valid_from": EPOCH_FLOOR}
                for r in out
            ]).on_conflict_do_nothing()
        )
    return [r.symbol for r in out]


def history(conn: sa.Connection, instrument_ids: Sequence[int]) -> list[SymbolChange]:
    """Every span of the instruments, oldest first per instrument."""
    h = t.symbol_history
    rows = conn.execute(
        sa.select(h.c.instrument_id, h.c.symbol, h.c.valid_from, h.c.valid_to, h.c.reason)
        .where(h.c.instrument_id.in_(sorted(set(instrument_ids))))
        .order_by(h.c.instrument_id, h.c.valid_from, h.c.id)
    )
    return [SymbolChange(int(r.instrument_id), r.symbol, r.valid_from, r.valid_to, r.reason) for r in rows]
