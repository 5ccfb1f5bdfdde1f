"""Bars of any interval on demand: SQL roll-ups of stored bars, or trades when nothing tiles.

* A stored interval is read as stored.
* A time interval that is not stored is rolled up in the database from the coarsest stored
  interval that tiles it (3m from 1m, 2h from 1h, 1w and 1mo from 1d): one ``GROUP BY`` over
  the stored rows of that source, open and close picked by time, so it works for provider
  candles too.
* Nothing tiles it (30s, 90s, 1d when no daily bars are stored) and the source is
  ``trades``: the trades of the range are aggregated in memory, like at ingest.
* Activity bars (``tick:N``, ``volume:V``, ``dollar:D``) always come from trades.

Range semantics: a bar is returned when its label (``ts``) is in ``[start, end)``; buckets
are never cut, so the last bar may extend past ``end``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from marketdb.errors import InvalidInput
from marketdb.lazy import LazyMapping, lazy_module
from marketdb.services.bars._aggregate import aggregate, finalize
from marketdb.services.bars._buckets import bucket_spans, merge_spans, next_label
from marketdb.services.bars._calendars import NS_PER_DAY, Calendars, month_labels, week_labels
from marketdb.services.bars._intervals import Interval, parse_interval, rollup_source
from marketdb.services.bars._store import DERIVED_SOURCE, fetch_trades, instrument_calendars
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import pyarrow as pa
else:
    np = lazy_module("numpy")
    pl = lazy_module("polars")
    pa = lazy_module("pyarrow")

__all__ = ["BAR_OUTPUT", "activity_bars", "compute_bars", "rollup_sql"]


def _ts() -> pa.DataType:
    return pa.timestamp("us", tz="UTC")


#: Columns (and Arrow types) of the tables :func:`compute_bars` returns, in order.
BAR_OUTPUT: Mapping[str, pa.DataType] = LazyMapping(
    lambda: {
        "instrument_id": pa.int32(),
        "ts": _ts(),
        "source": pa.string(),
        "open": pa.float64(),
        "high": pa.float64(),
        "low": pa.float64(),
        "close": pa.float64(),
        "volume": pa.float64(),
        "vwap": pa.float64(),
        "trade_count": pa.int64(),
        "notional": pa.float64(),
        "buy_volume": pa.float64(),
        "sell_volume": pa.float64(),
        "first_ns": pa.int64(),
        "first_seq": pa.int64(),
        "last_ns": pa.int64(),
        "last_seq": pa.int64(),
        "adj_open": pa.float64(),
        "adj_high": pa.float64(),
        "adj_low": pa.float64(),
        "adj_close": pa.float64(),
        "adj_volume": pa.float64(),
        "div_cash": pa.float64(),
        "split_factor": pa.float64(),
    }
)
#: Extra column of activity bars: time of the last trade.
ACTIVITY_EXTRA: Mapping[str, pa.DataType] = LazyMapping(lambda: {"end_ts": _ts()})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _to_ns(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput("bar range bounds must be timezone-aware", hint="use UTC datetimes")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _ns_to_dt(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def _ceil_label(iv: Interval, ns: int) -> int:
    """The first bucket label of ``iv`` at or after time ``ns``."""
    if iv.kind == "fixed":
        return ns + (-ns) % iv.width_ns
    day = ns + (-ns) % NS_PER_DAY
    if iv.kind == "session":
        return day
    days = np.array([day])
    floor = int((week_labels(days) if iv.kind == "week" else month_labels(days, int(iv.n)))[0])
    return floor if floor == day else int(next_label(iv, np.array([floor]))[0])


#: The :data:`BAR_OUTPUT` columns after ``instrument_id, ts, source`` of a roll-up of the
#: candles ``c`` of one group: open/close picked by time, high/low extremes, sums, the
#: volume-weighted vwap, split factors multiplied.
ROLLUP_AGGREGATES = sql.SQL(
    """
            (array_agg(c.open ORDER BY c.ts))[1], max(c.high), min(c.low),
            (array_agg(c.close ORDER BY c.ts DESC))[1],
            sum(c.volume),
            sum(COALESCE(c.notional, c.vwap * c.volume)) / NULLIF(sum(c.volume), 0),
            sum(c.trade_count)::int8, sum(c.notional), sum(c.buy_volume), sum(c.sell_volume),
            min(c.first_ns), (array_agg(c.first_seq ORDER BY c.ts))[1],
            max(c.last_ns), (array_agg(c.last_seq ORDER BY c.ts DESC))[1],
            (array_agg(c.adj_open ORDER BY c.ts))[1], max(c.adj_high), min(c.adj_low),
            (array_agg(c.adj_close ORDER BY c.ts DESC))[1], sum(c.adj_volume), sum(c.div_cash),
            exp(sum(ln(c.split_factor)))"""
)


def rollup_sql(
    instrument_id: int,
    target: Interval | str,
    source_interval: Interval | str,
    lo_label: dt.datetime | None,
    hi_label: dt.datetime | None,
    *,
    source: str = DERIVED_SOURCE,
) -> sql.Composed:
    """SQL rolling stored ``source_interval`` candles up into ``target`` bars.

    Selects the :data:`BAR_OUTPUT` columns (in order) for source rows whose ``ts`` is in
    ``[lo_label, hi_label)`` (None: unbounded). ``source_interval`` must tile ``target``
    (see :func:`~marketdb.services.bars.rollup_source`).
    """
    tgt, src = parse_interval(target), parse_interval(source_interval)
    bucket: sql.Composable
    if tgt.kind == "fixed":
        bucket = sql.SQL("date_bin({}::interval, c.ts, TIMESTAMPTZ '1970-01-01 00:00:00+00')").format(
            sql.Literal(dt.timedelta(microseconds=tgt.width_ns // 1000))
        )
    elif tgt.kind == "week":
        bucket = sql.SQL("date_trunc('week', c.ts, 'UTC')")
    elif tgt.kind == "month":
        months = sql.SQL(
            "((date_part('year', c.ts AT TIME ZONE 'UTC')::int - 1970) * 12"
            " + date_part('month', c.ts AT TIME ZONE 'UTC')::int - 1) / {n} * {n}"
        ).format(n=sql.Literal(int(tgt.n)))
        bucket = sql.SQL("make_timestamptz(1970 + ({m}) / 12, ({m}) % 12 + 1, 1, 0, 0, 0, 'UTC')").format(
            m=months
        )
    else:
        raise InvalidInput(f"{tgt.name} bars cannot be rolled up in SQL", hint="compute them from trades")
    where = [
        sql.SQL("c.instrument_id = {}").format(sql.Literal(int(instrument_id))),
        sql.SQL("c.interval = {}").format(sql.Literal(src.name)),
        sql.SQL("c.source = {}").format(sql.Literal(source)),
    ]
    if lo_label is not None:
        where.append(sql.SQL("c.ts >= {}").format(sql.Literal(lo_label)))
    if hi_label is not None:
        where.append(sql.SQL("c.ts < {}").format(sql.Literal(hi_label)))
    return sql.SQL(
        """
        SELECT c.instrument_id, {bucket} AS ts, {source} AS source, {aggs}
        FROM {candles} c
        WHERE {where}
        GROUP BY c.instrument_id, 2
        ORDER BY 2
        """
    ).format(
        bucket=bucket,
        source=sql.Literal(source),
        aggs=ROLLUP_AGGREGATES,
        candles=sql.Identifier(t.candles.name),
        where=sql.SQL(" AND ").join(where),
    )


def _stored_sql(
    instrument_id: int, iv: Interval, lo: dt.datetime | None, hi: dt.datetime | None, source: str
) -> sql.Composed:
    where = [
        sql.SQL("instrument_id = {}").format(sql.Literal(int(instrument_id))),
        sql.SQL("interval = {}").format(sql.Literal(iv.name)),
        sql.SQL("source = {}").format(sql.Literal(source)),
    ]
    if lo is not None:
        where.append(sql.SQL("ts >= {}").format(sql.Literal(lo)))
    if hi is not None:
        where.append(sql.SQL("ts < {}").format(sql.Literal(hi)))
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY ts").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in BAR_OUTPUT),
        sql.Identifier(t.candles.name),
        sql.SQL(" AND ").join(where),
    )


def _rows_to_arrow(rows: Sequence[tuple[Any, ...]], schema: Mapping[str, pa.DataType]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.table(
        {name: pa.array(list(col), type=typ) for (name, typ), col in zip(schema.items(), cols, strict=True)}
    )


def _frame_to_arrow(bars: pl.DataFrame, source: str, schema: Mapping[str, pa.DataType]) -> pa.Table:
    n = bars.height
    out = {}
    for name, typ in schema.items():
        if name == "source":
            out[name] = pa.array([source] * n, pa.string())
        elif name in ("ts", "end_ts") and name in bars.columns:
            us = bars.get_column(name).to_numpy() // 1000
            out[name] = pa.array(us, pa.int64()).cast(typ)
        elif name in bars.columns:
            out[name] = bars.get_column(name).to_arrow().cast(typ)
        else:
            out[name] = pa.nulls(n, typ)
    return pa.table(out)


def compute_bars(
    conn: psycopg.Connection[Any],
    instrument_id: int,
    interval: Interval | str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    source: str = DERIVED_SOURCE,
    stored: Sequence[Interval] = (),
    calendars: Calendars | None = None,
) -> pa.Table:
    """Bars of one instrument at any interval, with labels in ``[start, end)``.

    ``stored`` are the intervals kept in ``candles`` (``Settings.bar_intervals``) for the
    derived source; a provider ``source`` rolls up from the intervals it has candles of. See
    the module docstring for where each interval comes from. Returns an Arrow table with the
    :data:`BAR_OUTPUT` columns (activity bars add ``end_ts``), ``ts`` ascending; empty when
    the data is not there (e.g. a provider source and an interval nothing tiles).
    """
    iv = parse_interval(interval)
    cals = calendars or Calendars()
    lo_ns, hi_ns = _to_ns(start), _to_ns(end)
    if not iv.is_time:
        if source != DERIVED_SOURCE:
            return _rows_to_arrow([], {**BAR_OUTPUT, **ACTIVITY_EXTRA})
        trades = _trades_between(conn, instrument_id, lo_ns, hi_ns)
        return _frame_to_arrow(activity_bars(trades, iv), source, {**BAR_OUTPUT, **ACTIVITY_EXTRA})
    lo_label = None if lo_ns is None else _ceil_label(iv, lo_ns)
    hi_label = None if hi_ns is None else _ceil_label(iv, hi_ns)
    lo_dt = None if lo_label is None else _ns_to_dt(lo_label)
    hi_dt = None if hi_label is None else _ns_to_dt(hi_label)
    have = tuple(stored) if source == DERIVED_SOURCE else _provider_intervals(conn, instrument_id, source)
    src = rollup_source(iv, have)
    if src == iv:
        rows = conn.execute(_stored_sql(instrument_id, iv, lo_dt, hi_dt, source)).fetchall()
        return _rows_to_arrow(rows, BAR_OUTPUT)
    if src is not None:
        rows = conn.execute(rollup_sql(instrument_id, iv, src, lo_dt, hi_dt, source=source)).fetchall()
        return _rows_to_arrow(rows, BAR_OUTPUT)
    if source != DERIVED_SOURCE:
        return _rows_to_arrow([], BAR_OUTPUT)
    calendar = instrument_calendars(conn, [instrument_id]).get(instrument_id)
    bars = _bars_from_trades(conn, instrument_id, calendar, iv, lo_label, hi_label, cals)
    return _frame_to_arrow(bars, source, BAR_OUTPUT)


def _provider_intervals(
    conn: psycopg.Connection[Any], instrument_id: int, source: str
) -> tuple[Interval, ...]:
    """The intervals a provider ``source`` has candles of for the instrument."""
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT interval FROM {} WHERE instrument_id = {} AND source = {}").format(
            sql.Identifier(t.candles.name), sql.Literal(int(instrument_id)), sql.Literal(source)
        )
    ).fetchall()
    out = []
    for (name,) in rows:
        try:
            out.append(parse_interval(name))
        except InvalidInput:  # a spelling marketdb does not roll up from
            continue
    return tuple(out)


def _trade_extent(conn: psycopg.Connection[Any], instrument_id: int) -> tuple[int, int] | None:
    row = conn.execute(
        sql.SQL("SELECT min(ts), max(ts) FROM {} WHERE instrument_id = {}").format(
            sql.Identifier(t.trades.name), sql.Literal(int(instrument_id))
        )
    ).fetchone()
    if row is None or row[0] is None:
        return None
    lo, hi = _to_ns(row[0]), _to_ns(row[1])
    assert lo is not None
    assert hi is not None
    return lo, hi + 1000


def _trades_between(
    conn: psycopg.Connection[Any], instrument_id: int, lo_ns: int | None, hi_ns: int | None
) -> pl.DataFrame:
    if lo_ns is None or hi_ns is None:
        ext = _trade_extent(conn, instrument_id)
        if ext is None:
            return fetch_trades(conn, instrument_id, [])
        lo_ns = ext[0] if lo_ns is None else lo_ns
        hi_ns = ext[1] if hi_ns is None else hi_ns
    if lo_ns >= hi_ns:
        return fetch_trades(conn, instrument_id, [])
    us_lo, us_hi = lo_ns - lo_ns % 1000, hi_ns + (-hi_ns) % 1000
    trades = fetch_trades(conn, instrument_id, [(us_lo, us_hi)])
    return trades.filter((pl.col("ts") >= lo_ns) & (pl.col("ts") < hi_ns))


def _bars_from_trades(
    conn: psycopg.Connection[Any],
    instrument_id: int,
    calendar: str | None,
    iv: Interval,
    lo_label: int | None,
    hi_label: int | None,
    calendars: Calendars,
) -> pl.DataFrame:
    if lo_label is None or hi_label is None:
        ext = _trade_extent(conn, instrument_id)
        if ext is None:
            return finalize(aggregate(fetch_trades(conn, instrument_id, []), iv))
        lo_label = _floor_label(iv, ext[0]) if lo_label is None else lo_label
        hi_label = _ceil_label(iv, ext[1]) + 1 if hi_label is None else hi_label
    if iv.kind == "fixed":
        spans = [(lo_label, hi_label)] if lo_label < hi_label else []
    else:
        labels, _s, _e = calendars.sessions_in(
            calendar, lo_label - 2 * NS_PER_DAY, hi_label + 40 * NS_PER_DAY
        )
        if iv.kind != "session":
            labels = week_labels(labels) if iv.kind == "week" else month_labels(labels, int(iv.n))
        labels = np.unique(labels[(labels >= lo_label) & (labels < hi_label)])
        spans = merge_spans(*bucket_spans(iv, labels, calendar, calendars))
    trades = fetch_trades(conn, instrument_id, spans)
    bars = aggregate(trades, iv, calendars=calendars, calendar_of={instrument_id: calendar})
    bars = bars.filter((pl.col("ts") >= lo_label) & (pl.col("ts") < hi_label))
    return finalize(bars)


def _floor_label(iv: Interval, ns: int) -> int:
    """The label of the bucket of ``iv`` that starts at or before ``ns``, reading sessions as
    the UTC day before (an overnight session may be labelled a day after it opens)."""
    if iv.kind == "fixed":
        return ns - ns % iv.width_ns
    day = ns - ns % NS_PER_DAY - NS_PER_DAY
    if iv.kind == "session":
        return day
    if iv.kind == "week":
        return int(week_labels(np.array([day]))[0])
    return int(month_labels(np.array([day]), int(iv.n))[0])


def _threshold_bars(cum: np.ndarray, threshold: float) -> np.ndarray:
    """Bar number of each trade: a bar ends at the first trade where its sum reaches
    ``threshold`` (one binary search per bar)."""
    bar = np.empty(len(cum), dtype=np.int64)
    start, k, base = 0, 0, 0.0
    while start < len(cum):
        end = int(np.searchsorted(cum, base + threshold, side="left"))  # first cum >= target
        end = max(min(end, len(cum) - 1), start)
        bar[start : end + 1] = k
        base = float(cum[end])
        start, k = end + 1, k + 1
    return bar


def activity_bars(trades: pl.DataFrame, interval: Interval | str) -> pl.DataFrame:
    """Tick, volume or dollar bars of one instrument's trades (in time order).

    ``tick:N``: every N trades. ``volume:V`` / ``dollar:D``: a bar closes with the trade
    that brings its own volume (or price * size) to V or more, and the next bar starts from
    zero; trades are never split, so a bar may overshoot V. Bars start at the first trade of
    the range; the last one may be incomplete. ``ts`` / ``end_ts`` are the first
    and last trade times (epoch ns).
    """
    iv = parse_interval(interval)
    if iv.is_time:
        raise InvalidInput(f"{iv.name} is a time interval, not an activity bar")
    df = trades.sort(["ts", "seq"])
    if df.height == 0:
        return finalize(aggregate(df, "1m")).with_columns(pl.lit(None, pl.Int64).alias("end_ts"))
    bar: np.ndarray
    if iv.kind == "tick":
        bar = np.arange(df.height, dtype=np.int64) // int(iv.n)
    else:
        size = df.get_column("size").to_numpy()
        amount = size if iv.kind == "volume" else size * df.get_column("price").to_numpy()
        bar = _threshold_bars(np.cumsum(amount), float(iv.n))
    side, size_ = pl.col("side"), pl.col("size")
    out = (
        df.with_columns(pl.Series("_bar", bar, dtype=pl.Int64))
        .group_by("_bar", maintain_order=True)
        .agg(
            pl.col("instrument_id").first(),
            pl.col("ts").first().alias("ts"),
            pl.col("ts").last().alias("end_ts"),
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            size_.sum().alias("volume"),
            (pl.col("price") * size_).sum().alias("notional"),
            pl.len().cast(pl.Int64).alias("trade_count"),
            pl.when(side == 1).then(size_).otherwise(0.0).sum().alias("buy_volume"),
            pl.when(side == -1).then(size_).otherwise(0.0).sum().alias("sell_volume"),
            (side.count() > 0).alias("_known"),
            pl.col("ts").first().alias("first_ns"),
            pl.col("seq").first().alias("first_seq"),
            pl.col("ts").last().alias("last_ns"),
            pl.col("seq").last().alias("last_seq"),
        )
        .with_columns(
            pl.when(pl.col("_known")).then(pl.col("buy_volume")).alias("buy_volume"),
            pl.when(pl.col("_known")).then(pl.col("sell_volume")).alias("sell_volume"),
        )
        .drop(["_bar", "_known"])
    )
    vol = pl.col("volume")
    return out.with_columns(pl.when(vol != 0).then(pl.col("notional") / vol).alias("vwap"))
