"""The :class:`Bars` service object (``db.bars``): one place to reach everything bars do."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import sql

from marketdb.errors import InvalidInput, NotFound
from marketdb.lazy import lazy_module
from marketdb.services.bars._calendars import Calendars, SessionMode
from marketdb.services.bars._intervals import Interval, parse_interval, stored_intervals
from marketdb.services.bars._ondemand import compute_bars
from marketdb.services.bars._recompute import (
    RebuildReport,
    VerifyReport,
    rebuild_instrument,
    verify_instrument,
)
from marketdb.services.bars._refresh import BarRefresher
from marketdb.services.bars._store import DERIVED_SOURCE, lock_instruments, trade_reader
from marketdb.services.bars._update import BarUpdate, update_bars
from marketdb.services.bars._vendor import VendorUpdate, actions_from_candles, rollup_written_candles
from marketdb.services.instruments import resolve
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

if TYPE_CHECKING:
    from marketdb.store.database import Database

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
else:
    pd = lazy_module("pandas")
    pa = lazy_module("pyarrow")

__all__ = ["Bars", "maintenance_hook"]

Symbols = str | int | Sequence[str | int] | None
T = TypeVar("T")
Progress = Callable[[int, int], None]
"""``progress(done, total)``: called with ``(0, total)`` first, then after each instrument."""


def _to_ns(value: object, name: str) -> int | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type,unused-ignore]
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"cannot read {name}={value!r} as a time", hint="use ISO 8601, e.g. 2024-03-08"
        ) from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _to_dt(ns: int | None) -> dt.datetime | None:
    """Epoch ns to a datetime, rounded up to the microsecond (bar labels are whole ms)."""
    if ns is None:
        return None
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=-(-ns // 1000))


class Bars:
    """Continuous bars of a marketdb database (``db.bars``).

    * :meth:`update` -- the ingest hook (see :func:`update_bars`), with this database's
      stored intervals and calendars.
    * :meth:`rollup` / :meth:`compute` -- any interval on demand (SQL roll-up of stored
      bars, or trades), tick/volume/dollar bars.
    * :meth:`verify` / :meth:`rebuild` -- compare stored bars with a recomputation from
      trades (and repair them), or recompute them from scratch.

    Daily bars use regular session hours unless ``Settings.bar_session`` is ``"extended"``
    (see ``docs/bars.md``).
    """

    #: Instruments verified or rebuilt at the same time (each on its own connections).
    workers: int = min(2, os.cpu_count() or 1)

    def __init__(self, db: Database, *, session: SessionMode | None = None) -> None:
        self._db = db
        mode: SessionMode = session or getattr(db.settings, "bar_session", None) or "regular"
        self.calendars = Calendars(session=mode)

    @property
    def intervals(self) -> tuple[Interval, ...]:
        """The stored intervals (``Settings.bar_intervals``), finest first."""
        return stored_intervals(self._db.settings.bar_intervals)

    # ---------------------------------------------------------------- ingest
    def update(
        self,
        conn: psycopg.Connection[Any],
        batch: Any,
        *,
        inserted: int,
        received: int | None = None,
        replaced: bool = False,
    ) -> BarUpdate:
        """Fold (or recompute) the bars a trade batch touched, inside the caller's transaction.

        Call it on the connection and in the transaction of ``INSERT INTO trades``, with that
        statement's count of new rows as ``inserted`` (see :func:`update_bars`). It has the
        signature of the ingest writer's ``TradesHook``:
        ``Ingest(db, on_trades_inserted=[db.bars.update])``.
        """
        return update_bars(
            conn,
            batch,
            inserted=inserted,
            received=received,
            replaced=replaced,
            intervals=self.intervals,
            calendars=self.calendars,
        )

    def update_candles(self, conn: psycopg.Connection[Any], candles: pa.Table) -> VendorUpdate:
        """What writing provider candles implies, in ``conn``'s transaction: roll them up into
        every coarser stored interval of their source (``1m`` -> ``5m``, ``15m``, ``1h``, ``1d``
        by the exchange calendar, ``1d`` -> ``1w``, ``1mo``; see
        :func:`~._vendor.rollup_written_candles`) and record the corporate actions their split
        factor / cash dividend columns carry (:func:`~._vendor.actions_from_candles`; conflicts
        with another source's actions are returned in ``conflicts``, not merged)."""
        out = VendorUpdate()
        out.rollups = rollup_written_candles(conn, candles, stored=self.intervals, calendars=self.calendars)
        out.actions, out.conflicts = actions_from_candles(conn, candles)
        return out

    def refresher(self, *, debounce: float = 0.5) -> BarRefresher:
        """A :class:`~._refresh.BarRefresher`: brings rows other writers committed (plain SQL,
        COPY, other languages) into the stored bars, from touched ranges or by listening to
        the change-capture channel."""
        return BarRefresher(self, debounce=debounce)

    # ------------------------------------------------------------- on demand
    def rollup(
        self,
        instrument_id: int,
        interval: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        source: str = DERIVED_SOURCE,
    ) -> pa.Table:
        """Bars of one instrument at any ``interval`` with labels in ``[start, end)`` (Arrow).

        Stored intervals are read; others are rolled up from the coarsest stored interval
        that tiles them, or computed from trades; ``tick:N``, ``volume:V`` and ``dollar:D``
        bars come from trades. Columns: ``instrument_id, ts, source`` and the candle columns.
        """
        with self._db.raw() as conn:
            return compute_bars(
                conn,
                instrument_id,
                interval,
                start,
                end,
                source=source,
                stored=self.intervals,
                calendars=self.calendars,
            )

    def compute(
        self,
        symbols: Symbols,
        interval: str,
        start: object = None,
        end: object = None,
        *,
        source: str = DERIVED_SOURCE,
    ) -> pa.Table:
        """:meth:`rollup` for several symbols (or ids), long format with a ``symbol`` column."""
        iv = parse_interval(interval)
        lo, hi = _to_ns(start, "start"), _to_ns(end, "end")
        parts = []
        for inst_id, symbol, _cal in self._instruments(symbols):
            table = self.rollup(inst_id, iv.name, _to_dt(lo), _to_dt(hi), source=source)
            parts.append(table.append_column("symbol", pa.array([symbol] * table.num_rows, pa.string())))
        if not parts:
            raise NotFound("no instruments to compute bars for", hint="pass symbols that exist")
        return pa.concat_tables(parts)

    # ------------------------------------------------------ verify / rebuild
    def verify(
        self,
        symbols: Symbols = None,
        *,
        since: object = None,
        until: object = None,
        repair: bool = False,
        piece: dt.timedelta = dt.timedelta(days=1),
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Recompute the stored bars of ``symbols`` (default: all) in ``[since, until)`` from
        trades and report every difference; with ``repair`` also fix them.

        Each instrument is checked in its own transaction under its exclusive bar lock
        (ingest of that instrument waits meanwhile). Buckets that overlap the range are
        checked whole. ``progress(done, total)`` counts instruments: ``(0, total)`` first,
        then once per instrument checked.
        """
        lo, hi = _to_ns(since, "since"), _to_ns(until, "until")
        report = VerifyReport()
        for one in self._each_instrument(
            symbols,
            verify_instrument,
            progress=progress,
            lo_ns=lo,
            hi_ns=hi,
            repair=repair,
            piece_ns=_piece_ns(piece),
        ):
            report.extend(one)
        return report

    def repair(
        self,
        symbols: Symbols = None,
        *,
        since: object = None,
        until: object = None,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """:meth:`verify` with ``repair=True``: fix every stored bar that differs."""
        return self.verify(symbols, since=since, until=until, repair=True, progress=progress)

    def rebuild(
        self,
        symbols: Symbols = None,
        *,
        since: object = None,
        until: object = None,
        piece: dt.timedelta = dt.timedelta(days=1),
        progress: Progress | None = None,
    ) -> RebuildReport:
        """Recompute the stored bars of ``symbols`` (default: all) in ``[since, until)`` from
        scratch: the "nightly roll-up", which continuous bars make unnecessary but which
        ``maintain`` can still run (e.g. after changing ``bar_intervals`` or the session mode).
        ``progress`` as in :meth:`verify`.
        """
        lo, hi = _to_ns(since, "since"), _to_ns(until, "until")
        report = RebuildReport()
        for one in self._each_instrument(
            symbols, rebuild_instrument, progress=progress, lo_ns=lo, hi_ns=hi, piece_ns=_piece_ns(piece)
        ):
            report.extend(one)
        return report

    def _each_instrument(
        self, symbols: Symbols, fn: Callable[..., T], *, progress: Progress | None = None, **kwargs: Any
    ) -> Iterator[T]:
        """Run ``fn`` for each instrument in its own transaction, under its exclusive bar lock
        (that instrument's ingest waits meanwhile), trades read through ADBC when available.

        Two instruments are worked on at a time: while one waits for PostgreSQL to send its
        trades, the other aggregates (polars, numpy and the drivers release the GIL).
        """
        if not self.intervals:  # bar_intervals=(): no derived bars to check or write
            return
        instruments = self._instruments(symbols)
        self._create_partitions([i for i, _s, _c in instruments])
        if progress is not None:
            progress(0, len(instruments))
        local = threading.local()
        readers: list[Callable[[], None]] = []
        lock = threading.Lock()

        def one(inst_id: int, cal: str | None) -> T:
            if not hasattr(local, "reader"):
                local.reader, close = trade_reader(self._db)
                with lock:
                    readers.append(close)
            with self._db.raw() as conn:
                lock_instruments(conn, [inst_id], exclusive=True)
                return fn(
                    conn,
                    inst_id,
                    cal,
                    intervals=self.intervals,
                    calendars=self.calendars,
                    reader=local.reader,
                    **kwargs,
                )

        workers = max(1, min(self.workers, len(instruments)))
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="marketdb-bars") as pool:
                futures = [pool.submit(one, i, cal) for i, _sym, cal in instruments]
                for done, f in enumerate(futures, 1):
                    result = f.result()
                    if progress is not None:
                        progress(done, len(instruments))
                    yield result
        finally:
            for close in readers:
                close()

    # --------------------------------------------------------------- helpers
    def _create_partitions(self, ids: Sequence[int]) -> None:
        """Create the candles partitions a rebuild or repair may write, in a transaction of
        its own: creating a partition locks the whole table, which would deadlock with a
        concurrent worker that already holds a lock on it."""
        if not ids:
            return
        with self._db.raw() as conn:
            row = conn.execute(
                sql.SQL("SELECT min(ts), max(ts) FROM {} WHERE instrument_id = ANY({})").format(
                    sql.Identifier(t.trades.name), sql.Literal(list(ids))
                )
            ).fetchone()
            if row is None or row[0] is None:
                return
            # Weekly and monthly labels precede their trades; daily ones may follow them by a day.
            lo = row[0].replace(day=1) - dt.timedelta(days=7)
            ensure_partitions(conn, t.candles.name, lo, row[1] + dt.timedelta(days=2))

    def _instruments(self, symbols: Symbols) -> list[tuple[int, str, str | None]]:
        """(id, symbol, calendar) of the requested instruments, or of all that have data.

        Symbols resolve through the instruments service (a former symbol finds its
        instrument); unknown ones raise NotFound naming all of them.
        """
        if symbols is not None:
            wanted = [symbols] if isinstance(symbols, str | int) else list(symbols)
            with self._db.transaction() as conn:
                found = resolve(conn, wanted)
            unique = {r.id: (r.id, r.symbol, r.calendar) for r in found.values()}
            return [unique[i] for i in sorted(unique)]
        inst = sql.Identifier(t.instruments.name)
        where = sql.SQL(
            "EXISTS (SELECT 1 FROM {trades} x WHERE x.instrument_id = i.id) OR "
            "EXISTS (SELECT 1 FROM {candles} c WHERE c.instrument_id = i.id AND c.source = {src})"
        ).format(
            trades=sql.Identifier(t.trades.name),
            candles=sql.Identifier(t.candles.name),
            src=sql.Literal(DERIVED_SOURCE),
        )
        with self._db.raw() as conn:
            rows = conn.execute(
                sql.SQL("SELECT i.id, i.symbol, i.calendar FROM {} i WHERE {} ORDER BY i.id").format(
                    inst, where
                )
            ).fetchall()
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def _piece_ns(piece: dt.timedelta) -> int:
    ns = int(piece / dt.timedelta(microseconds=1)) * 1000
    if ns <= 0:
        raise InvalidInput("piece must be a positive duration")
    return ns


def maintenance_hook(
    *, lookback: dt.timedelta = dt.timedelta(days=3), repair: bool = True
) -> Callable[[Any], str | None]:
    """A ``maintain`` step: verify the bars of the last ``lookback`` and repair them.

    The returned callable takes the maintain context (``ctx.db``, ``ctx.now``,
    ``ctx.dry_run``); a dry run only verifies. It returns a one-line summary.
    """

    def bars_step(ctx: Any) -> str | None:
        report = Bars(ctx.db).verify(since=ctx.now - lookback, repair=repair and not ctx.dry_run)
        return (
            f"bars since {(ctx.now - lookback):%Y-%m-%d %H:%M}: {report.bars_checked} checked, "
            f"{len(report.differences)} differing, {report.repaired} repaired"
        )

    return bars_step
