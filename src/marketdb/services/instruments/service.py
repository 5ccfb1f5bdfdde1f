"""The :class:`Instruments` service (``db.instruments``): the hub every other service resolves through."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from marketdb.errors import Conflict, InvalidInput

from . import catalog as _catalog
from . import history as _history
from . import lookup as _resolve
from .catalog import InstrumentInfo
from .history import SymbolChange
from .lookup import InstrumentRef, Resolved
from .symbols import normalize_symbol

if TYPE_CHECKING:
    from marketdb.services.ingest.results import WriteResult
    from marketdb.store.database import Database

__all__ = ["Instruments"]


class Instruments:
    """The security master of one database (``db.instruments``).

    * :meth:`resolve` -- ids or symbols (current or former, optionally at a
      time) to instruments: what ingest, query, bars and trading use.
    * :meth:`list` / :meth:`get` -- filter by symbol prefix, asset class,
      exchange, active; with rows, first/last timestamp, intervals and
      sources stored per instrument.
    * :meth:`add`, :meth:`write`, :meth:`rename`, :meth:`delist`,
      :meth:`history` -- change the security master and read its symbol history.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    # ----------------------------------------------------------- resolve
    def resolve(
        self, symbols: InstrumentRef | Sequence[InstrumentRef], at: dt.datetime | dt.date | None = None
    ) -> dict[InstrumentRef, Resolved]:
        """Each id or symbol (one, or a list) -> its instrument, keyed as given.

        Former symbols resolve through the symbol history (at ``at`` when
        given, else the most recent holder). Unknown ones raise
        :class:`~marketdb.errors.NotFound` naming all of them.
        """
        when = None if at is None else _history.aware(at)
        with self._db.transaction() as conn:
            refs = [symbols] if isinstance(symbols, int | str) else list(symbols)
            return _resolve.resolve(conn, refs, at=when)

    # ------------------------------------------------------------- read
    def list(
        self,
        *,
        prefix: str | None = None,
        asset_class: str | None = None,
        exchange: str | None = None,
        active: bool | None = None,
        search: str | None = None,
        limit: int | None = None,
        counts: bool = True,
    ) -> builtins.list[InstrumentInfo]:
        """Instruments sorted by symbol, filtered; ``counts`` adds the data stored for each."""
        with self._db.transaction() as conn:
            return _catalog.list_instruments(
                conn, prefix=prefix, asset_class=asset_class, exchange=exchange, active=active,
                search=search, limit=limit, counts=counts,
            )

    def get(self, symbol: InstrumentRef, *, at: dt.datetime | dt.date | None = None) -> InstrumentInfo:
        """One instrument (by id, or current or former symbol) with its data counts."""
        with self._db.transaction() as conn:
            found = _resolve.resolve_one(conn, symbol, at=None if at is None else _history.aware(at))
            return _catalog.list_instruments(conn, ids=[found.id])[0]

    def history(self, symbol: InstrumentRef) -> builtins.list[SymbolChange]:
        """The symbol spans of one instrument (by id, or current or former symbol), oldest first."""
        with self._db.transaction() as conn:
            found = _resolve.resolve_one(conn, symbol)
            return _history.history(conn, [found.id])

    # ------------------------------------------------------------ write
    def add(
        self,
        symbol: str,
        *,
        name: str | None = None,
        asset_class: str = "stock",
        exchange: str | None = None,
        currency: str | None = None,
        calendar: str | None = None,
        listed_at: dt.date | None = None,
        **fields: Any,
    ) -> InstrumentInfo:
        """Create one instrument (:class:`~marketdb.errors.Conflict` if the symbol is taken).

        ``fields`` are further instrument columns (``tick_size``, ``lot_size``,
        ``metadata`` ...), validated like an ``ingest instruments`` file.
        """
        sym = normalize_symbol(symbol)
        with self._db.transaction() as conn:
            taken = _catalog.list_instruments(conn, prefix=sym, counts=False)
        if any(i.symbol == sym for i in taken):
            raise Conflict(
                f"an instrument with the symbol {sym!r} exists",
                hint=f"see it with `marketdb instruments show {sym}`; update it with "
                "`marketdb ingest instruments FILE`",
            )
        record: dict[str, Any] = {"symbol": sym, "asset_class": asset_class, **fields}
        for key, value in (("name", name), ("exchange", exchange), ("currency", currency),
                           ("calendar", calendar), ("listed_at", listed_at)):
            if value is not None:
                record[key] = value
        result = self.write([record])
        if result.rejections:
            raise InvalidInput(
                f"instrument {sym!r} rejected: {result.rejections[0]}",
                hint="fix the field named and retry",
            )
        return self.get(sym)

    def write(
        self,
        data: Any,
        *,
        replace_metadata: bool = False,
        columns: Mapping[str, str] | None = None,
        format: str | None = None,
        on_invalid: str = "raise",
    ) -> WriteResult:
        """Upsert instruments by symbol from a file, frame or records (the ingest reader's merge rules)."""
        from marketdb.services.ingest import Ingest

        return Ingest(self._db).write_instruments(
            data, replace_metadata=replace_metadata, columns=columns, format=format, on_invalid=on_invalid
        )

    def rename(self, old: str, new: str, *, effective: dt.datetime | dt.date) -> int:
        """Record a ticker change from ``effective`` on; the old symbol keeps resolving. Returns the id."""
        with self._db.transaction() as conn:
            return _history.rename(conn, old, new, effective=effective)

    def delist(self, symbol: str, *, at: dt.datetime | dt.date) -> int:
        """Mark an instrument delisted from ``at`` (kept, with its history). Returns the id."""
        with self._db.transaction() as conn:
            return _history.delist(conn, symbol, at=at)
