"""The ingest hook: bring every bar the batch touched up to date, in the writer's transaction.

The ingest writer calls :func:`update_bars` right after ``INSERT .. ON CONFLICT DO NOTHING``
into ``trades``, on the same connection and inside the same transaction, so the trades and
their bars commit (or roll back) together.

* ``inserted == len(batch)`` (the common case: every row of the batch is a new trade): the
  batch's partial bars are computed in memory and folded into the stored bars with one binary
  COPY and one ``INSERT .. ON CONFLICT DO UPDATE`` whose SET is the merge algebra. No trade is
  read back. (marketdb's ingest writer passes exactly the rows it inserted, so re-delivered
  duplicates take this path too.)
* ``inserted < len(batch)`` (a batch holding rows that were already stored, and which ones is
  unknown) or ``replaced`` (``on_conflict="update"`` changed stored trades): the batch cannot
  be folded. The buckets it touched are recomputed instead: the finest intervals from their
  trades, coarser intervals from the finer bars just rewritten.
* ``inserted == 0`` and not ``replaced``: nothing changed, nothing to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from marketdb.errors import InvalidInput
from marketdb.lazy import lazy_module
from marketdb.services.bars._aggregate import (
    aggregate,
    aggregate_many,
    merge_partials,
    relabel,
    trades_frame,
)
from marketdb.services.bars._buckets import bucket_labels, bucket_spans, merge_spans
from marketdb.services.bars._calendars import NO_SESSION, Calendars
from marketdb.services.bars._intervals import Interval, rollup_source, stored_intervals
from marketdb.services.bars._store import (
    fetch_bars,
    fetch_trades,
    instrument_calendars,
    lock_instruments,
    stage_bars,
    upsert_staged,
)
from marketdb.settings import DEFAULT_BAR_INTERVALS

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
else:
    np = lazy_module("numpy")
    pl = lazy_module("polars")

__all__ = ["BarUpdate", "update_bars"]


@dataclass(frozen=True, slots=True)
class BarUpdate:
    """What :func:`update_bars` did: ``mode`` and how many bar rows it wrote."""

    mode: Literal["skip", "fold", "recompute"]
    bars_written: int
    intervals: tuple[str, ...]


def update_bars(
    conn: psycopg.Connection[Any],
    batch: Any,
    *,
    inserted: int,
    received: int | None = None,
    replaced: bool = False,
    intervals: Sequence[str | Interval] = DEFAULT_BAR_INTERVALS,
    calendars: Calendars | None = None,
) -> BarUpdate:
    """Bring the stored bars of every interval up to date with a batch just written to trades.

    ``batch`` is a canonical trade batch (Arrow table or polars frame: instrument_id int32,
    ts timestamp[ns, UTC], seq int64, price, size float64, side int8 nullable): either
    exactly the rows the INSERT stored, or all the rows it was offered. ``inserted`` is the
    INSERT's count of new rows; ``received`` (informational) how many rows the writer got;
    ``replaced`` says stored trades were overwritten (``ON CONFLICT DO UPDATE``).
    ``intervals`` are the stored intervals (``Settings.bar_intervals``); ``calendars`` the
    session lookup for daily bars (share one :class:`Calendars` per process: building
    calendars is slow). The signature matches the ingest writer's ``TradesHook``.

    Runs on ``conn`` inside the caller's transaction and never commits.
    """
    ivs = stored_intervals(intervals)
    names = tuple(iv.name for iv in ivs)
    if not ivs or (inserted <= 0 and not replaced):
        return BarUpdate("skip", 0, names)
    trades = trades_frame(batch)
    if inserted > trades.height or (received is not None and inserted > received):
        raise InvalidInput(
            f"inserted={inserted} but the batch has {trades.height} rows (received={received})",
            hint="pass the rows offered to (or stored by) INSERT INTO trades and its row count",
        )
    cals = calendars or Calendars()
    ids = np.unique(trades.get_column("instrument_id").to_numpy()).tolist()
    cal_of = _calendars_of(conn, ids) if any(iv.is_calendar for iv in ivs) else {}
    if inserted == trades.height and not replaced:
        lock_instruments(conn, ids, exclusive=False)
        partials = aggregate_many(trades, ivs, calendars=cals, calendar_of=cal_of)
        stage_names, _ = stage_bars(conn, {iv: partials[iv.name] for iv in ivs})
        return BarUpdate("fold", upsert_staged(conn, stage_names, merge=True), names)
    lock_instruments(conn, ids, exclusive=True)
    written = recompute_touched(conn, trades, ivs, cals, cal_of)
    return BarUpdate("recompute", written, names)


def _calendars_of(conn: psycopg.Connection[Any], ids: Sequence[int]) -> dict[int, str | None]:
    cal_of = instrument_calendars(conn, ids)
    missing = [i for i in ids if i not in cal_of]
    if missing:
        raise InvalidInput(
            f"unknown instrument id(s) {missing[:5]} in the trade batch",
            hint="create the instruments first (the ingest writer resolves symbols)",
        )
    return cal_of


def recompute_touched(
    conn: psycopg.Connection[Any],
    trades: pl.DataFrame,
    intervals: Sequence[Interval],
    calendars: Calendars,
    calendar_of: Mapping[int, str | None],
) -> int:
    """Recompute (replace) the stored bars of every bucket the ``trades`` fall into.

    Intervals are processed finest first; an interval tiled by one already rewritten is
    merged from those stored bars, the others are aggregated from their trades. The caller
    holds the instruments' exclusive bar lock.
    """
    by_inst = trades.partition_by("instrument_id", as_dict=True)
    done: list[Interval] = []
    written = 0
    for iv in intervals:
        parts: list[pl.DataFrame] = []
        for key, frame in sorted(by_inst.items()):
            inst = int(key[0])
            cal = calendar_of.get(inst)
            labels = np.unique(bucket_labels(iv, frame.get_column("ts").to_numpy(), cal, calendars))
            labels = labels[labels != NO_SESSION]
            if labels.size:
                parts.append(_recompute_buckets(conn, inst, cal, iv, labels, done, calendars))
        if parts:
            names, _ = stage_bars(conn, {iv: pl.concat(parts)})
            written += upsert_staged(conn, names, merge=False)
        done.append(iv)
    return written


def _recompute_buckets(
    conn: psycopg.Connection[Any],
    inst: int,
    calendar: str | None,
    iv: Interval,
    labels: np.ndarray,
    done: Sequence[Interval],
    calendars: Calendars,
) -> pl.DataFrame:
    """Fresh bars of ``iv`` for ``labels`` of one instrument (trades or finer stored bars)."""
    lo, hi = bucket_spans(iv, labels, calendar, calendars)
    src = rollup_source(iv, tuple(done))
    if src is None and iv.kind == "session":
        # Sessions merge from the finest fixed bars when no session cuts one of them.
        fixed = [d for d in done if d.kind == "fixed"]
        if fixed:
            finest = min(fixed, key=lambda d: d.width_ns)
            spans = merge_spans(lo, hi)
            if all(calendars.aligned(calendar, a, b - 1, finest.width_ns) for a, b in spans):
                src = finest
    keep = pl.Series("ts", labels, dtype=pl.Int64)
    if src is None:
        tr = fetch_trades(conn, inst, merge_spans(lo, hi))
        bars = aggregate(tr, iv, calendars=calendars, calendar_of={inst: calendar})
        return bars.filter(pl.col("ts").is_in(keep.implode()))
    # Source bars are addressed by their labels: fixed labels are times; session labels are
    # dates, so weeks and months read the session labels inside [label, next label).
    if iv.kind in ("week", "month"):
        src_lo, src_hi = int(labels.min()), int(bucket_spans(iv, labels, None, calendars)[1].max())
    else:
        src_lo, src_hi = int(lo.min()), int(hi.max())
    bars = fetch_bars(conn, inst, src, src_lo, src_hi)
    if iv.kind == "session":
        day = calendars.session_labels(calendar, bars.get_column("ts").to_numpy())
        merged = merge_partials(
            bars.with_columns(pl.Series("ts", day, dtype=pl.Int64)).filter(pl.col("ts") != NO_SESSION)
        )
    else:
        merged = relabel(bars, iv)
    return merged.filter(pl.col("ts").is_in(keep.implode()))
