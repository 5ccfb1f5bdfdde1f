"""Read side of the instruments hub: list, search, get, symbol history, data version.

Writes (upsert, rename, delist) live in ``services/ingest/instruments``; the
HTTP API reads through these functions so it holds no SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    from marketdb.client import MarketDB

__all__ = ["data_versions", "get_instrument", "list_instruments", "symbol_history"]

i = t.instruments
h = t.symbol_history
_MAX_LIMIT = 10_000


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def list_instruments(
    db: MarketDB,
    *,
    search: str | None = None,
    asset_class: str | None = None,
    active: bool | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Instruments ordered by id, after ``after_id`` (keyset pagination).

    ``search`` matches the symbol prefix or a substring of the name, case-insensitively.
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise InvalidInput(f"limit={limit}", hint=f"use 1..{_MAX_LIMIT}")
    stmt = sa.select(i).order_by(i.c.id).limit(limit)
    if search:
        pat = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(
            sa.or_(i.c.symbol.ilike(pat + "%", escape="\\"), i.c.name.ilike("%" + pat + "%", escape="\\"))
        )
    if asset_class:
        stmt = stmt.where(i.c.asset_class == asset_class)
    if active is not None:
        stmt = stmt.where(i.c.is_active.is_(active))
    if after_id is not None:
        stmt = stmt.where(i.c.id > after_id)
    with db.transaction() as conn:
        return [_row(r) for r in conn.execute(stmt)]


def _where_ref(ref: str | int) -> sa.ColumnElement[bool]:
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return i.c.id == int(ref)
    return i.c.symbol == str(ref).strip().upper()


def get_instrument(db: MarketDB, ref: str | int) -> dict[str, Any]:
    """One instrument by id or current symbol; :class:`NotFound` otherwise."""
    with db.transaction() as conn:
        row = conn.execute(sa.select(i).where(_where_ref(ref))).first()
    if row is None:
        raise NotFound(f"no instrument {ref!r}", hint="search with GET /v1/instruments?search=...")
    return _row(row)


def symbol_history(db: MarketDB, ref: str | int) -> list[dict[str, Any]]:
    """Every symbol the instrument has had, oldest first."""
    inst = get_instrument(db, ref)
    with db.transaction() as conn:
        rows = conn.execute(
            sa.select(h.c.symbol, h.c.valid_from, h.c.valid_to, h.c.reason)
            .where(h.c.instrument_id == inst["id"])
            .order_by(h.c.valid_from, h.c.id)
        )
        return [_row(r) for r in rows]


def data_versions(db: MarketDB, symbols: list[str]) -> dict[str, int] | None:
    """Current ``data_version`` per symbol (None when any symbol is unknown): the cache key part."""
    wanted = [s.strip().upper() for s in symbols]
    with db.transaction() as conn:
        rows = conn.execute(sa.select(i.c.symbol, i.c.data_version).where(i.c.symbol.in_(wanted))).all()
    found = {r.symbol: int(r.data_version) for r in rows}
    if len(found) != len(set(wanted)):
        return None
    return found
