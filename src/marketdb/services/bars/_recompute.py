"""Verify, repair and rebuild stored bars against a recomputation from trades.

Both walk one instrument's time range in pieces that no bucket straddles (see
``_buckets.closed_range``), so memory stays bounded by the trades of one piece (a day by
default): each piece's trades are read once (binary COPY), aggregated in memory at every
stored interval, and compared with (or written over) the stored bars of the same buckets.
Weekly and monthly bars are merged at the end from the session bars of all pieces.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql

from marketdb.lazy import lazy_module
from marketdb.services.bars._aggregate import (
    BAR_FIELDS,
    aggregate_many,
    finalize,
    partial_schema,
    relabel,
)
from marketdb.services.bars._buckets import bucket_spans, closed_range, label_range
from marketdb.services.bars._calendars import NS_PER_DAY, Calendars, month_labels, week_labels
from marketdb.services.bars._intervals import Interval, parse_interval
from marketdb.services.bars._store import (
    DERIVED_SOURCE,
    TradeReader,
    delete_bar_keys,
    delete_bar_range,
    fetch_bars,
    fetch_trades,
    next_trade,
    stage_bars,
    upsert_staged,
)
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import polars as pl
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")
    pl = lazy_module("polars")

__all__ = [
    "EXACT_FIELDS",
    "SUM_FIELDS",
    "BarDifference",
    "RebuildReport",
    "VerifyReport",
    "instrument_extent",
    "rebuild_instrument",
    "verify_instrument",
]

#: Bar fields that must match exactly: they are picked, not computed.
EXACT_FIELDS: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "trade_count",
    "first_ns",
    "first_seq",
    "last_ns",
    "last_seq",
)
#: Float sums, compared with a relative tolerance (their rounding depends on the order of
#: addition, which differs between folding batches and one recomputation).
SUM_FIELDS: tuple[str, ...] = ("volume", "notional", "vwap", "buy_volume", "sell_volume")
#: Relative tolerance of :data:`SUM_FIELDS`.
SUM_RTOL = 1e-9
_SESSION = parse_interval("1d")


@dataclass(frozen=True, slots=True)
class BarDifference:
    """One stored bar that differs from the recomputation.

    ``kind``: ``missing`` (trades exist, the bar does not), ``extra`` (a bar without trades)
    or ``different``; ``fields`` maps each differing field to ``(stored, expected)``.
    """

    instrument_id: int
    interval: str
    ts: dt.datetime
    kind: Literal["missing", "extra", "different"]
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class VerifyReport:
    """Result of a verify (and repair) run."""

    bars_checked: int = 0
    trades_read: int = 0
    differences: list[BarDifference] = field(default_factory=list)
    repaired: int = 0

    @property
    def ok(self) -> bool:
        """True when every stored bar equals its recomputation."""
        return not self.differences

    def extend(self, other: VerifyReport) -> None:
        """Add the counts and differences of ``other`` to this report."""
        self.bars_checked += other.bars_checked
        self.trades_read += other.trades_read
        self.differences.extend(other.differences)
        self.repaired += other.repaired

    def to_pandas(self) -> pd.DataFrame:
        """One row per differing field (``field`` is empty for missing and extra bars)."""
        rows = []
        for d in self.differences:
            base = {"instrument_id": d.instrument_id, "interval": d.interval, "ts": d.ts, "kind": d.kind}
            if not d.fields:
                rows.append({**base, "field": None, "stored": None, "expected": None})
            for name, (stored, expected) in d.fields.items():
                rows.append({**base, "field": name, "stored": stored, "expected": expected})
        return pd.DataFrame(
            rows, columns=["instrument_id", "interval", "ts", "kind", "field", "stored", "expected"]
        )


@dataclass(slots=True)
class RebuildReport:
    """Result of a rebuild: bars deleted and written, trades read."""

    bars_deleted: int = 0
    bars_written: int = 0
    trades_read: int = 0

    def extend(self, other: RebuildReport) -> None:
        """Add the counts of ``other`` to this report."""
        self.bars_deleted += other.bars_deleted
        self.bars_written += other.bars_written
        self.trades_read += other.trades_read


def _ns_to_dt(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)


def _dt_to_ns(t: dt.datetime) -> int:
    delta = t.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def instrument_extent(
    conn: psycopg.Connection[Any], instrument_id: int, lo_ns: int | None, hi_ns: int | None
) -> tuple[int, int] | None:
    """``[lo, hi)`` epoch ns covering the instrument's trades and derived bars in the range."""
    where_t = [sql.SQL("instrument_id = {}").format(sql.Literal(int(instrument_id)))]
    where_b = [*where_t, sql.SQL("source = {}").format(sql.Literal(DERIVED_SOURCE))]
    if lo_ns is not None:
        lit = sql.Literal(_ns_to_dt(lo_ns))
        where_t.append(sql.SQL("ts >= {}").format(lit))
        # Daily labels (00:00 UTC) can precede their session: look a day further back.
        where_b.append(sql.SQL("ts >= {}").format(sql.Literal(_ns_to_dt(lo_ns - NS_PER_DAY))))
    if hi_ns is not None:
        lit = sql.Literal(_ns_to_dt(hi_ns))
        where_t.append(sql.SQL("ts < {}").format(lit))
        where_b.append(sql.SQL("ts < {}").format(lit))
    q = sql.SQL(
        "SELECT min(lo), max(hi) FROM ("
        " SELECT min(ts) AS lo, max(ts) AS hi FROM {trades} WHERE {wt}"
        " UNION ALL SELECT min(ts), max(ts) FROM {candles} WHERE {wb}) x"
    ).format(
        trades=sql.Identifier(t.trades.name),
        candles=sql.Identifier(t.candles.name),
        wt=sql.SQL(" AND ").join(where_t),
        wb=sql.SQL(" AND ").join(where_b),
    )
    lo, hi = conn.execute(q).fetchone() or (None, None)
    if lo is None or hi is None:
        return None
    a, b = _dt_to_ns(lo), _dt_to_ns(hi) + 1000
    if lo_ns is not None:
        a = max(a, lo_ns)
    if hi_ns is not None:
        b = min(b, hi_ns)
    return (a, b) if a < b else None


def trades_horizon(conn: psycopg.Connection[Any]) -> int | None:
    """UTC midnight (epoch ns) of the oldest day that still holds trades of any instrument.

    Tick retention drops whole days of trades and keeps their bars; a bucket that starts
    before this day cannot be recomputed, so verify and rebuild leave its bar alone.
    """
    row = conn.execute(sql.SQL("SELECT min(ts) FROM {}").format(sql.Identifier(t.trades.name))).fetchone()
    if row is None or row[0] is None:
        return None
    first = _dt_to_ns(row[0])
    return first - first % NS_PER_DAY


def _first_label_from(
    iv: Interval, horizon: int, full: tuple[int, int], calendar: str | None, cals: Calendars
) -> int | None:
    """The smallest label of ``iv`` in the closed range ``full`` whose bucket starts at or
    after ``horizon`` (labels grow with bucket starts)."""
    if iv.kind == "fixed":
        return horizon + (-horizon) % iv.width_ns
    labels, _starts, _ends = cals.sessions_in(calendar, *full)
    if iv.kind == "week":
        labels = week_labels(labels)
    elif iv.kind == "month":
        labels = month_labels(labels, int(iv.n))
    labels = np.unique(labels)
    if labels.size == 0:
        return None
    lo, _hi = bucket_spans(iv, labels, calendar, cals)
    ok = labels[lo >= horizon]
    return int(ok[0]) if ok.size else None


def _after(
    iv: Interval, bars: pl.DataFrame, horizon: int, calendar: str | None, cals: Calendars
) -> pl.DataFrame:
    """The bars of buckets that start at or after ``horizon``."""
    if bars.height == 0:
        return bars
    lo, _hi = bucket_spans(iv, bars.get_column("ts").to_numpy(), calendar, cals)
    keep = lo >= horizon
    return bars if keep.all() else bars.filter(pl.Series(keep))


@dataclass
class _Pass:
    """One walk over an instrument's range, shared by verify and rebuild."""

    conn: psycopg.Connection[Any]
    instrument_id: int
    calendar: str | None
    intervals: Sequence[Interval]
    calendars: Calendars
    piece_ns: int
    reader: TradeReader = fetch_trades

    def full_range(self, lo: int, hi: int) -> tuple[int, int]:
        """The range around ``[lo, hi)`` closed under the buckets of every stored interval."""
        everything = [*self.intervals]
        if any(iv.kind in ("week", "month") for iv in everything) and _SESSION not in everything:
            everything.append(_SESSION)
        return closed_range(lo, hi, everything, self.calendar, self.calendars)

    def pieces(self, full: tuple[int, int]) -> Iterator[tuple[int, int]]:
        """Consecutive pieces of ``full`` (about ``piece_ns`` long) that no fixed or session
        bucket straddles; stretches without trades are skipped."""
        inner = [iv for iv in self.piece_intervals() if iv.kind in ("fixed", "session")]
        cursor = full[0]
        while cursor < full[1]:
            nxt = next_trade(self.conn, self.instrument_id, cursor)
            if nxt is None or nxt >= full[1]:
                return
            start = max(cursor, closed_range(nxt, nxt + 1, inner, self.calendar, self.calendars)[0])
            piece = closed_range(
                start, min(start + self.piece_ns, full[1]), inner, self.calendar, self.calendars
            )
            yield piece
            cursor = piece[1]

    def piece_intervals(self) -> list[Interval]:
        """Intervals aggregated per piece (fixed, sessions; sessions also for weeks/months)."""
        ivs = [iv for iv in self.intervals if iv.kind in ("fixed", "session")]
        if any(iv.kind in ("week", "month") for iv in self.intervals) and _SESSION not in ivs:
            ivs.append(_SESSION)
        return ivs

    def expected(self, lo: int, hi: int) -> tuple[dict[Interval, pl.DataFrame], int]:
        """Bars of the piece ``[lo, hi)`` recomputed from its trades, and the trades read."""
        trades = self.reader(self.conn, self.instrument_id, [(lo, hi)])
        ivs = self.piece_intervals()
        got = aggregate_many(
            trades, ivs, calendars=self.calendars, calendar_of={self.instrument_id: self.calendar}
        )
        return {iv: got[iv.name] for iv in ivs}, trades.height

    def stored(self, iv: Interval, lo: int, hi: int) -> tuple[pl.DataFrame, tuple[int, int] | None]:
        """Stored derived bars of ``iv`` for the buckets inside ``[lo, hi)``."""
        rng = label_range(iv, lo, hi, self.calendar, self.calendars)
        if rng is None:
            return fetch_bars(self.conn, self.instrument_id, iv, 0, 0), None
        return fetch_bars(self.conn, self.instrument_id, iv, rng[0], rng[1] + 1), rng


def _recompute_all(p: _Pass, lo: int, hi: int) -> tuple[tuple[int, int], dict[Interval, pl.DataFrame], int]:
    """Every stored interval's bars over the closed range around ``[lo, hi)``, recomputed
    from trades piece by piece; returns (closed range, bars per interval, trades read)."""
    full = p.full_range(lo, hi)
    parts: dict[Interval, list[pl.DataFrame]] = {}
    trades_read = 0
    for a, b in p.pieces(full):
        exp, n = p.expected(a, b)
        trades_read += n
        for iv, bars in exp.items():
            parts.setdefault(iv, []).append(bars)
    out: dict[Interval, pl.DataFrame] = {}
    for iv in p.piece_intervals():
        frames = [f for f in parts.get(iv, []) if f.height]
        out[iv] = pl.concat(frames) if frames else pl.DataFrame(schema=partial_schema())
    late = [iv for iv in p.intervals if iv.kind in ("week", "month")]
    if late:
        # Pieces never cut a session, so each session's bar is complete in one piece.
        day = out[_SESSION]
        for iv in late:
            out[iv] = relabel(day, iv) if day.height else day
    return full, {iv: out[iv] for iv in p.intervals}, trades_read


def verify_instrument(
    conn: psycopg.Connection[Any],
    instrument_id: int,
    calendar: str | None,
    *,
    lo_ns: int | None,
    hi_ns: int | None,
    intervals: Sequence[Interval],
    calendars: Calendars,
    repair: bool = False,
    piece_ns: int = NS_PER_DAY,
    reader: TradeReader = fetch_trades,
) -> VerifyReport:
    """Compare one instrument's stored bars in ``[lo_ns, hi_ns)`` with a recomputation.

    Every bucket that overlaps the range is checked whole (and so is every finer bucket
    inside it). With ``repair`` the differing bars are rewritten (missing and different
    ones) or deleted (extra ones). The caller holds the instrument's exclusive bar lock and
    owns the transaction. ``reader`` reads trades (default: binary COPY on ``conn``).
    """
    report = VerifyReport()
    horizon = trades_horizon(conn)
    if horizon is None:
        return report
    extent = instrument_extent(conn, instrument_id, max(lo_ns or horizon, horizon), hi_ns)
    if extent is None:
        return report
    p = _Pass(conn, instrument_id, calendar, intervals, calendars, piece_ns, reader)
    full, expected, report.trades_read = _recompute_all(p, *extent)
    fixes: dict[Interval, pl.DataFrame] = {}
    extras: dict[Interval, list[int]] = {}
    for iv, bars in expected.items():
        stored = _after(iv, p.stored(iv, *full)[0], horizon, calendar, calendars)
        bars = _after(iv, bars, horizon, calendar, calendars)
        exp = finalize(bars) if bars.height else bars.with_columns(pl.lit(None, pl.Float64).alias("vwap"))
        diffs, fix, extra = _compare(instrument_id, iv, exp, stored)
        report.bars_checked += max(exp.height, stored.height)
        report.differences.extend(diffs)
        if fix.height:
            fixes[iv] = fix
        if extra:
            extras[iv] = extra
    if repair:
        if fixes:
            names, _ = stage_bars(conn, fixes)
            report.repaired += upsert_staged(conn, names, merge=False)
        for iv, extra in extras.items():
            report.repaired += delete_bar_keys(conn, instrument_id, iv, extra)
    return report


_WRITE_CHUNK = 500_000


def rebuild_instrument(
    conn: psycopg.Connection[Any],
    instrument_id: int,
    calendar: str | None,
    *,
    lo_ns: int | None,
    hi_ns: int | None,
    intervals: Sequence[Interval],
    calendars: Calendars,
    piece_ns: int = NS_PER_DAY,
    reader: TradeReader = fetch_trades,
) -> RebuildReport:
    """Recompute one instrument's stored bars in ``[lo_ns, hi_ns)`` from scratch.

    Deletes the derived bars of every bucket overlapping the range and writes them anew.
    The caller holds the instrument's exclusive bar lock and owns the transaction.
    """
    report = RebuildReport()
    horizon = trades_horizon(conn)
    if horizon is None:
        return report
    extent = instrument_extent(conn, instrument_id, max(lo_ns or horizon, horizon), hi_ns)
    if extent is None:
        return report
    p = _Pass(conn, instrument_id, calendar, intervals, calendars, piece_ns, reader)
    full, expected, report.trades_read = _recompute_all(p, *extent)
    for iv in list(expected):
        expected[iv] = _after(iv, expected[iv], horizon, calendar, calendars)
        rng = label_range(iv, *full, calendar, calendars)
        if rng is None:
            continue
        # Buckets that start before the horizon keep their bars (their early trades are gone).
        first = _first_label_from(iv, horizon, full, calendar, calendars)
        if first is not None and max(first, rng[0]) <= rng[1]:
            first = max(first, rng[0])
            report.bars_deleted += delete_bar_range(conn, instrument_id, iv, first, rng[1] + 1)
    chunk: dict[Interval, pl.DataFrame] = {}
    rows = 0
    for iv, bars in expected.items():
        for start in range(0, bars.height, _WRITE_CHUNK):
            part = bars.slice(start, _WRITE_CHUNK)
            chunk[iv] = pl.concat([chunk[iv], part]) if iv in chunk else part
            rows += part.height
            if rows >= _WRITE_CHUNK:
                names, _ = stage_bars(conn, chunk)
                report.bars_written += upsert_staged(conn, names, merge=False)
                chunk, rows = {}, 0
    if rows:
        names, _ = stage_bars(conn, chunk)
        report.bars_written += upsert_staged(conn, names, merge=False)
    return report


def _close(a: Any, b: Any, exact: bool) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    if exact:
        return bool(a == b)
    return math.isclose(float(a), float(b), rel_tol=SUM_RTOL, abs_tol=1e-12)


def _compare(
    instrument_id: int, iv: Interval, expected: pl.DataFrame, stored: pl.DataFrame
) -> tuple[list[BarDifference], pl.DataFrame, list[int]]:
    """Differences, the expected rows to write, and the ``ts`` of extra stored bars.

    The join and the equality tests are vectorised; only differing bars reach Python.
    """
    fields = [*EXACT_FIELDS, *SUM_FIELDS]
    exp = expected.select(["ts", *fields]).with_columns(pl.lit(True).alias("_e"))
    sto = stored.select(["ts", *fields]).with_columns(pl.lit(True).alias("_s"))
    joined = exp.join(sto, on="ts", how="full", coalesce=True, suffix="_stored")
    bad = pl.lit(False)
    for f in fields:
        a, b = pl.col(f"{f}_stored"), pl.col(f)
        if f in EXACT_FIELDS:
            same = (a == b) | (a.is_null() & b.is_null())
        else:
            tol = pl.max_horizontal(a.abs(), b.abs()) * SUM_RTOL + 1e-12
            same = ((a - b).abs() <= tol) | (a.is_null() & b.is_null())
        bad = bad | ~same.fill_null(False)
    suspects = joined.filter(pl.col("_e").is_null() | pl.col("_s").is_null() | bad).sort("ts")
    diffs: list[BarDifference] = []
    fix: list[int] = []
    extra: list[int] = []
    for r in suspects.iter_rows(named=True):
        ts = int(r["ts"])
        when = _ns_to_dt(ts)
        if r["_s"] is None:
            diffs.append(BarDifference(instrument_id, iv.name, when, "missing"))
            fix.append(ts)
        elif r["_e"] is None:
            diffs.append(BarDifference(instrument_id, iv.name, when, "extra"))
            extra.append(ts)
        else:
            changed = {
                f: (r[f"{f}_stored"], r[f])
                for f in fields
                if not _close(r[f"{f}_stored"], r[f], f in EXACT_FIELDS)
            }
            if changed:
                diffs.append(BarDifference(instrument_id, iv.name, when, "different", changed))
                fix.append(ts)
    if fix:
        wanted = pl.Series(fix, dtype=pl.Int64).implode()
        to_write = expected.filter(pl.col("ts").is_in(wanted)).select(BAR_FIELDS)
    else:
        to_write = pl.DataFrame(schema=partial_schema())
    return diffs, to_write, extra
