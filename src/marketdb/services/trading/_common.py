"""Plumbing shared by the trading services: who acts, audit rows, instrument lookup, rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts.audit import Actor, record_audit
from marketdb.services.trading import _validate as v
from marketdb.store.schema import tables as t

__all__ = ["Actor", "InstrumentRef"]

#: An instrument given by id (``int``) or by symbol (``str``).
InstrumentRef = int | str

UTC = dt.UTC


def jsonable(value: Any) -> Any:
    """``value`` with Decimals, UUIDs, datetimes and enums turned into JSON-safe values.

    Decimals become strings so that no digit is lost in the audit log.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(x) for k, x in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(x) for x in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def audit(
    conn: sa.Connection,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object,
    *,
    old: Any = None,
    new: Any = None,
) -> None:
    """Write one audit row in the caller's transaction (via the accounts service)."""
    record_audit(
        conn,
        actor_id=actor.user_id,
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        old=jsonable(old),
        new=jsonable(new),
        ip=actor.ip,
        user_agent=actor.user_agent,
        actor_name=actor.name,
    )


def row_dict(row: sa.Row[Any] | sa.RowMapping | None) -> dict[str, Any] | None:
    """A result row as a plain dict (``None`` stays ``None``)."""
    if row is None:
        return None
    mapping = row if isinstance(row, sa.RowMapping) else row._mapping
    return dict(mapping)


def resolve_instruments(conn: sa.Connection, refs: Iterable[InstrumentRef]) -> dict[InstrumentRef, int]:
    """Map each instrument id or symbol to ``instruments.id``.

    Symbols are matched trimmed and upper-cased. Raises :class:`NotFound` listing
    every unknown symbol or id at once.
    """
    refs = list(refs)
    ids = {r for r in refs if isinstance(r, int) and not isinstance(r, bool)}
    symbols: dict[str, list[InstrumentRef]] = {}
    for ref in refs:
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidInput(f"an instrument is an id (int) or a symbol (str), got {ref!r}")
        if isinstance(ref, str):
            symbols.setdefault(v.symbol(ref), []).append(ref)
    found: dict[InstrumentRef, int] = {}
    if symbols:
        rows = conn.execute(
            sa.select(t.instruments.c.symbol, t.instruments.c.id).where(
                t.instruments.c.symbol.in_(list(symbols))
            )
        ).all()
        by_symbol = {r.symbol: r.id for r in rows}
        for sym, originals in symbols.items():
            if sym in by_symbol:
                for original in originals:
                    found[original] = by_symbol[sym]
    if ids:
        rows = conn.execute(sa.select(t.instruments.c.id).where(t.instruments.c.id.in_(list(ids)))).all()
        for r in rows:
            found[r.id] = r.id
    missing = [r for r in refs if r not in found]
    if missing:
        names = ", ".join(sorted({str(v.symbol(m)) if isinstance(m, str) else str(m) for m in missing}))
        raise NotFound(
            f"unknown instrument(s): {names}",
            hint="add them to the instruments table first (e.g. `marketdb seed examples` "
            "for NIFTY and BANKNIFTY, or the ingest service for your own)",
            details={"missing": sorted({str(m) for m in missing})},
        )
    return found


def resolve_instrument(conn: sa.Connection, ref: InstrumentRef) -> int:
    """``instruments.id`` of one instrument id or symbol (raises :class:`NotFound`)."""
    return resolve_instruments(conn, [ref])[ref]


def symbols_of(conn: sa.Connection, ids: Sequence[int]) -> dict[int, str]:
    """``instruments.symbol`` by id, for output."""
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(t.instruments.c.id, t.instruments.c.symbol).where(t.instruments.c.id.in_(list(set(ids))))
    ).all()
    return {r.id: r.symbol for r in rows}


def strategy_exists(conn: sa.Connection, strategy_id: str) -> None:
    """Raise :class:`NotFound` unless the strategy exists."""
    found = conn.execute(sa.select(t.strategies.c.id).where(t.strategies.c.id == strategy_id)).first()
    if found is None:
        raise NotFound(
            f"unknown strategy {strategy_id!r}",
            hint="create it with `marketdb strategies create` or Trading.create_strategy()",
        )


def as_uuid(value: uuid.UUID | str, name: str) -> uuid.UUID:
    """``value`` as a UUID or :class:`InvalidInput`."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{name} must be a UUID, got {value!r}") from None


def utc(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """A timezone-aware datetime converted to UTC; naive datetimes are refused."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be timezone-aware, got naive {value.isoformat()}",
            hint="pass e.g. datetime.now(datetime.UTC) or a value with an explicit offset",
        )
    return value.astimezone(UTC)


def now_utc() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(UTC)
