"""Bars for any writer: a refresher that folds rows written by plain SQL, COPY or another language.

marketdb's own ingest keeps bars exact in the writing transaction. Rows other writers put in
``trades`` or ``candles`` reach the stored bars through the refresher: given the touched
``(instrument, first, last)`` time ranges it **recomputes** every bar bucket overlapping them
(trade bars from the trades of the bucket; provider roll-ups from the written candles), so it
never double counts rows the library already folded: recomputing a right bucket rewrites the
same bar.

Where the touched ranges come from: the change-capture triggers (migration ``0011`` of the
streams work, statement-level with transition tables) send one ``pg_notify`` per statement on
channel ``marketdb_changes`` after commit, with ``{"t": "trades", "r": [[instrument_id,
first_us, last_us, rows], ...]}`` and ``{"t": "candles", "r": [[instrument_id, interval,
source, first_us, last_us, rows], ...]}``. :meth:`BarRefresher.listen` consumes them,
batches what arrives within ``debounce`` seconds and refreshes. :meth:`BarRefresher.refresh`
takes the ranges directly (tests, a catch-up after downtime, or the scheduler).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg import sql

from marketdb.errors import InvalidInput
from marketdb.services.bars._intervals import parse_interval
from marketdb.services.bars._store import DERIVED_SOURCE
from marketdb.services.bars._vendor import vendor_rollup
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    from marketdb.services.bars._facade import Bars

__all__ = ["CHANNEL", "BarRefresher", "RefreshReport", "Touched", "parse_payload"]

_log = logging.getLogger(__name__)
#: The change-capture channel (see the module docstring).
CHANNEL = "marketdb_changes"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Touched:
    """Rows written to ``table`` for one instrument between ``first`` and ``last`` (inclusive);
    for candles also the ``interval`` and ``source``."""

    table: str
    instrument_id: int
    first: dt.datetime
    last: dt.datetime
    interval: str | None = None
    source: str | None = None


@dataclass(slots=True)
class RefreshReport:
    """What one refresh did."""

    ranges: int = 0
    bars_checked: int = 0
    bars_fixed: int = 0
    rollups: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def _us(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(value))


def parse_payload(payload: str) -> list[Touched]:
    """The touched ranges of one change-capture notification (others give ``[]``)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return []
    table = body.get("t")
    out = []
    for r in body.get("r", []):
        if table == "trades" and len(r) >= 3:
            out.append(Touched("trades", int(r[0]), _us(r[1]), _us(r[2])))
        elif table == "candles" and len(r) >= 5:
            out.append(Touched("candles", int(r[0]), _us(r[3]), _us(r[4]), str(r[1]), str(r[2])))
    return out


def _merge(touched: Iterable[Touched]) -> list[Touched]:
    """One range per (table, instrument, interval, source): the union's bounds."""
    spans: dict[tuple[str, int, str | None, str | None], Touched] = {}
    for x in touched:
        key = (x.table, x.instrument_id, x.interval, x.source)
        old = spans.get(key)
        spans[key] = (
            x
            if old is None
            else Touched(
                x.table, x.instrument_id, min(old.first, x.first), max(old.last, x.last), x.interval, x.source
            )
        )
    return list(spans.values())


class BarRefresher:
    """Refreshes stored bars for rows any writer committed (``db.bars.refresher()``)."""

    def __init__(self, bars: Bars, *, debounce: float = 0.5) -> None:
        self.bars = bars
        self.debounce = debounce
        self._stop = threading.Event()

    def refresh(self, touched: Iterable[Touched]) -> RefreshReport:
        """Recompute every stored bar bucket overlapping the touched ranges."""
        started = time.perf_counter()
        report = RefreshReport()
        for x in _merge(touched):
            report.ranges += 1
            try:
                if x.table == "trades":
                    one = self.bars.verify(
                        [x.instrument_id],
                        since=x.first,
                        until=x.last + dt.timedelta(microseconds=1),
                        repair=True,
                    )
                    report.bars_checked += one.bars_checked
                    report.bars_fixed += one.repaired
                elif x.table == "candles" and x.source not in (None, DERIVED_SOURCE):
                    report.rollups += self._rollup(x)
            except Exception as exc:  # reported; the other ranges still refresh
                report.errors.append(f"{x.table} {x.instrument_id} {x.first}..{x.last}: {exc}")
        report.seconds = time.perf_counter() - started
        return report

    def _rollup(self, x: Touched) -> int:
        assert x.interval is not None
        assert x.source is not None
        try:
            written = parse_interval(x.interval)
        except InvalidInput:
            return 0
        c = sql.Identifier(t.candles.name)
        db = self.bars._db
        with db.raw() as conn:
            # Only candles as written start roll-ups (roll-ups' own inserts notify too).
            row = conn.execute(
                sql.SQL(
                    "SELECT min(ts), max(ts) FROM {} WHERE instrument_id = %s AND interval = %s "
                    "AND source = %s AND ts >= %s AND ts <= %s AND rolled_from IS NULL"
                ).format(c),
                (x.instrument_id, written.name, x.source, x.first, x.last),
            ).fetchone()
            if row is None or row[0] is None:
                return 0
            cal = conn.execute(
                sql.SQL("SELECT calendar FROM {} WHERE id = %s").format(sql.Identifier(t.instruments.name)),
                (x.instrument_id,),
            ).fetchone()
            lo = int((row[0] - _EPOCH) / dt.timedelta(microseconds=1)) * 1000
            hi = int((row[1] - _EPOCH) / dt.timedelta(microseconds=1)) * 1000
            return vendor_rollup(
                conn,
                x.instrument_id,
                x.source,
                written,
                lo,
                hi,
                stored=self.bars.intervals,
                calendars=self.bars.calendars,
                calendar=cal[0] if cal else None,
            )

    # ----------------------------------------------------------- listening
    def listen(self, *, timeout: float | None = None) -> RefreshReport:
        """LISTEN on :data:`CHANNEL` and refresh what committed writers touched, until
        :meth:`stop` (or ``timeout`` seconds). Returns the totals."""
        import psycopg

        total = RefreshReport()
        deadline = None if timeout is None else time.monotonic() + timeout
        db = self.bars._db
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            pending: list[Touched] = []
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                for note in conn.notifies(timeout=self.debounce, stop_after=1000):
                    pending += parse_payload(note.payload)
                if pending:
                    one = self.refresh(pending)
                    pending = []
                    total.ranges += one.ranges
                    total.bars_checked += one.bars_checked
                    total.bars_fixed += one.bars_fixed
                    total.rollups += one.rollups
                    total.errors += one.errors
        return total

    def stop(self) -> None:
        """Ask :meth:`listen` to return."""
        self._stop.set()
