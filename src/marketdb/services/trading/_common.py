"""Plumbing shared by the trading services: who acts, audit rows, instrument lookup, rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.instruments import InstrumentRef, resolve
from marketdb.services.instruments.lookup import symbols_of
from marketdb.store.schema import tables as t

__all__ = ["Actor", "InstrumentRef", "symbols_of"]

UTC = dt.UTC


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
    """Write one audit row in the caller's transaction: the one audit writer, ``accounts.audit``.

    Values are made JSON-safe (Decimals as text, no digit lost) and redacted there.
    """
    audit_as(conn, actor, action, resource_type, resource_id, old, new)


def row_dict(row: sa.Row[Any] | sa.RowMapping | None) -> dict[str, Any] | None:
    """A result row as a plain dict (``None`` stays ``None``)."""
    if row is None:
        return None
    mapping = row if isinstance(row, sa.RowMapping) else row._mapping
    return dict(mapping)


def resolve_instruments(conn: sa.Connection, refs: Iterable[InstrumentRef]) -> dict[InstrumentRef, int]:
    """Map each instrument id or symbol to ``instruments.id`` (through the instruments service).

    Symbols are matched normalised; a former symbol (renamed ticker) resolves to
    its instrument. Raises :class:`NotFound` listing every unknown symbol or id at once.
    """
    return {ref: r.id for ref, r in resolve(conn, refs).items()}


def resolve_instrument(conn: sa.Connection, ref: InstrumentRef) -> int:
    """``instruments.id`` of one instrument id or symbol (raises :class:`NotFound`)."""
    return resolve_instruments(conn, [ref])[ref]


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
