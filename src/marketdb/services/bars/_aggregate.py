"""Mergeable bar aggregates, computed in memory with polars.

A *partial bar* keeps enough to be merged with another partial bar of the same bucket without
going back to the trades: the epoch-ns timestamp and sequence of its first and last trade
(with their prices, the open and close), high, low, volume, notional (sum of price * size),
trade count and buy/sell volume. Merging two partial bars built from disjoint trade sets
gives exactly the partial bar of their union, except for the rounding of the float sums
(volume, notional, buy/sell volume), which depends on the order of addition.

First and last are by ``(ts, seq)``; ``(instrument_id, ts, seq)`` is unique in ``trades``.
Buy and sell volume sum the sizes of trades whose aggressor side is 1 and -1; they are null
when no trade of the bucket has a known side, and 0 when sides are known but none is on
that side. VWAP is ``notional / volume`` (null when the volume is 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from marketdb.errors import InvalidInput
from marketdb.lazy import lazy_module
from marketdb.services.bars._calendars import NO_SESSION, Calendars, month_labels, week_labels
from marketdb.services.bars._intervals import Interval, parse_interval, rollup_source

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import pyarrow as pa
else:
    np = lazy_module("numpy")
    pl = lazy_module("polars")
    pa = lazy_module("pyarrow")

__all__ = [
    "BAR_FIELDS",
    "aggregate",
    "aggregate_many",
    "finalize",
    "merge_partials",
    "partial_schema",
    "relabel",
    "trades_frame",
]

#: Columns of a partial bar and their polars types, in the order they are staged for the database.
_PARTIAL_TYPES: tuple[tuple[str, str], ...] = (
    ("instrument_id", "Int32"),
    ("ts", "Int64"),
    ("open", "Float64"),
    ("high", "Float64"),
    ("low", "Float64"),
    ("close", "Float64"),
    ("volume", "Float64"),
    ("notional", "Float64"),
    ("trade_count", "Int64"),
    ("buy_volume", "Float64"),
    ("sell_volume", "Float64"),
    ("first_ns", "Int64"),
    ("first_seq", "Int64"),
    ("last_ns", "Int64"),
    ("last_seq", "Int64"),
)
BAR_FIELDS: tuple[str, ...] = tuple(name for name, _ in _PARTIAL_TYPES)

_TRADE_TYPES: tuple[tuple[str, str], ...] = (
    ("instrument_id", "Int32"),
    ("ts", "Int64"),
    ("seq", "Int64"),
    ("price", "Float64"),
    ("size", "Float64"),
    ("side", "Int8"),
)


def _schema(types: tuple[tuple[str, str], ...]) -> dict[str, pl.DataType]:
    return {name: getattr(pl, kind)() for name, kind in types}


def partial_schema() -> dict[str, pl.DataType]:
    """Columns of a partial bar with their polars types (a function: polars loads on first use)."""
    return _schema(_PARTIAL_TYPES)


def _trade_schema() -> dict[str, pl.DataType]:
    return _schema(_TRADE_TYPES)


def trades_frame(batch: pa.Table | pa.RecordBatch | pl.DataFrame) -> pl.DataFrame:
    """The canonical trade batch as a polars frame with ``ts`` as epoch-ns ``Int64``.

    Accepts the canonical Arrow schema (``instrument_id`` int32, ``ts`` timestamp[ns, UTC],
    ``seq`` int64, ``price``/``size`` float64, ``side`` int8 nullable); ``side`` may be absent
    (all unknown). Other columns are ignored.
    """
    df = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
    assert isinstance(df, pl.DataFrame)
    missing = [c for c in ("instrument_id", "ts", "seq", "price", "size") if c not in df.columns]
    if missing:
        raise InvalidInput(
            f"trade batch lacks column(s) {', '.join(missing)}",
            hint="pass the canonical trade batch: instrument_id, ts, seq, price, size, side",
        )
    ts = df.get_column("ts")
    if ts.dtype == pl.Int64:
        ts_ns = ts
    elif isinstance(ts.dtype, pl.Datetime):
        ts_ns = ts.dt.cast_time_unit("ns").cast(pl.Int64)
    else:
        raise InvalidInput(f"trade batch column ts has type {ts.dtype}; expected timestamp[ns, UTC]")
    if "side" in df.columns:
        side = df.get_column("side").cast(pl.Int8)
    else:
        side = pl.repeat(None, df.height, dtype=pl.Int8, eager=True)
    return pl.DataFrame(
        {
            "instrument_id": df.get_column("instrument_id").cast(pl.Int32),
            "ts": ts_ns.cast(pl.Int64),
            "seq": df.get_column("seq").cast(pl.Int64),
            "price": df.get_column("price").cast(pl.Float64),
            "size": df.get_column("size").cast(pl.Float64),
            "side": side.alias("side"),
        },
        schema=_trade_schema(),
    )


def _time_ordered(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` ordered so that, within every instrument, rows follow ``(ts, seq)``.

    The aggregation takes first and last in row order. Feeds are usually in time order
    already (globally, or per instrument one after the other); checking costs one pass,
    sorting many.
    """
    if df.height < 2:
        return df
    dt, ds, di = pl.col("ts").diff(), pl.col("seq").diff(), pl.col("instrument_id").diff()
    step = (dt > 0) | ((dt == 0) & (ds > 0))
    check = (
        df.lazy()
        .select(
            by_time=step.all(ignore_nulls=True),
            by_instrument=((di > 0) | ((di == 0) & step)).all(ignore_nulls=True),
        )
        .collect()
    )
    if check.item(0, "by_time") or check.item(0, "by_instrument"):
        return df
    return df.sort(["instrument_id", "ts", "seq"])


def _labels(
    df: pl.DataFrame,
    interval: Interval,
    calendars: Calendars,
    calendar_of: Mapping[int, str | None],
) -> np.ndarray | pl.Expr:
    if interval.kind == "fixed":
        return pl.col("ts") - pl.col("ts") % interval.width_ns
    if interval.kind not in ("session", "week", "month"):
        raise InvalidInput(f"{interval.name} bars are not time buckets", hint="use activity_bars()")
    day = _session_labels(df, calendars, calendar_of)
    if interval.kind == "session":
        return day
    if interval.kind == "week":
        return week_labels(day)
    return month_labels(day, int(interval.n))


def _session_labels(
    df: pl.DataFrame, calendars: Calendars, calendar_of: Mapping[int, str | None]
) -> np.ndarray:
    inst = df.get_column("instrument_id").to_numpy()
    ts = df.get_column("ts").to_numpy()
    ids = np.unique(inst)
    cals = {int(i): _calendar_name(calendar_of, int(i)) for i in ids}
    groups: dict[str | None, list[int]] = {}
    for i, c in cals.items():
        groups.setdefault(None if Calendars.is_utc(c) else c, []).append(i)
    if len(groups) == 1:
        (cal,) = groups
        return calendars.session_labels(cal, ts)
    out = np.empty(len(ts), dtype=np.int64)
    for cal, members in groups.items():
        mask = np.isin(inst, np.asarray(members, dtype=inst.dtype))
        out[mask] = calendars.session_labels(cal, ts[mask])
    return out


def _calendar_name(calendar_of: Mapping[int, str | None], instrument_id: int) -> str | None:
    try:
        return calendar_of[instrument_id]
    except KeyError:
        raise InvalidInput(
            f"no calendar known for instrument {instrument_id}",
            hint="daily bars need the instrument row (instruments.calendar, NULL for UTC days)",
        ) from None


def _agg_exprs() -> list[pl.Expr]:
    side, size = pl.col("side"), pl.col("size")
    return [
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        size.sum().alias("volume"),
        (pl.col("price") * size).sum().alias("notional"),
        pl.len().cast(pl.Int64).alias("trade_count"),
        pl.when(side == 1).then(size).otherwise(0.0).sum().alias("buy_volume"),
        pl.when(side == -1).then(size).otherwise(0.0).sum().alias("sell_volume"),
        (side.count() > 0).alias("_known"),
        pl.col("ts").first().alias("first_ns"),
        pl.col("seq").first().alias("first_seq"),
        pl.col("ts").last().alias("last_ns"),
        pl.col("seq").last().alias("last_seq"),
    ]


def _group(ordered: pl.DataFrame, labels: np.ndarray | pl.Expr) -> pl.DataFrame:
    """One partial bar per (instrument, label) from time-ordered trades."""
    lf = ordered.lazy()
    if isinstance(labels, pl.Expr):
        lf = lf.with_columns(labels.alias("_bucket"))
    else:
        lf = lf.with_columns(pl.Series("_bucket", labels, dtype=pl.Int64))
        if (labels == NO_SESSION).any():
            lf = lf.filter(pl.col("_bucket") != NO_SESSION)
    out = lf.group_by(["instrument_id", "_bucket"]).agg(_agg_exprs()).rename({"_bucket": "ts"})
    return _null_unknown_sides(out).select(BAR_FIELDS).collect()


def _null_unknown_sides(df: pl.LazyFrame) -> pl.LazyFrame:
    known = pl.col("_known")
    return df.with_columns(
        pl.when(known).then(pl.col("buy_volume")).otherwise(None).alias("buy_volume"),
        pl.when(known).then(pl.col("sell_volume")).otherwise(None).alias("sell_volume"),
    )


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=partial_schema())


def aggregate(
    trades: pl.DataFrame,
    interval: Interval | str,
    *,
    calendars: Calendars | None = None,
    calendar_of: Mapping[int, str | None] | None = None,
) -> pl.DataFrame:
    """Partial bars of ``interval`` from a trade frame (see :func:`trades_frame`).

    ``calendar_of`` maps instrument id to its calendar code (None for UTC days); it is needed
    for ``1d``, ``1w`` and ``1mo`` bars. Rows come back unsorted, one per (instrument, bucket).
    """
    iv = parse_interval(interval)
    if trades.height == 0:
        return _empty()
    ordered = _time_ordered(trades)
    return _group(ordered, _labels(ordered, iv, calendars or Calendars(), calendar_of or {}))


def aggregate_many(
    trades: pl.DataFrame,
    intervals: Sequence[Interval | str],
    *,
    calendars: Calendars | None = None,
    calendar_of: Mapping[int, str | None] | None = None,
) -> dict[str, pl.DataFrame]:
    """Partial bars for several intervals from one trade frame, keyed by interval name.

    The finest fixed interval and the daily sessions are aggregated from the trades; every
    other interval is merged from the partial bars of a finer one that tiles it, which is
    exact because partial bars are mergeable.
    """
    ivs = sorted({parse_interval(i) for i in intervals}, key=_fineness)
    if trades.height == 0:
        return {iv.name: _empty() for iv in ivs}
    cals = calendars or Calendars()
    cmap = calendar_of or {}
    ordered: pl.DataFrame | None = None
    done: dict[Interval, pl.DataFrame] = {}
    for iv in ivs:
        base = rollup_source(iv, list(done))
        if base is not None:
            done[iv] = relabel(done[base], iv)
            continue
        if iv.kind == "session" and done:
            # Labelling a few bars is much cheaper than labelling every trade.
            finest = min(done, key=_fineness)
            merged = _sessions_from_fixed(done[finest], finest, cals, cmap)
            if merged is not None:
                done[iv] = merged
                continue
        if ordered is None:
            ordered = _time_ordered(trades)
        done[iv] = _group(ordered, _labels(ordered, iv, cals, cmap))
    return {iv.name: df for iv, df in done.items()}


def _sessions_from_fixed(
    bars: pl.DataFrame,
    finest: Interval,
    calendars: Calendars,
    calendar_of: Mapping[int, str | None],
) -> pl.DataFrame | None:
    """Daily partial bars merged from fixed ones, or None if sessions cut fixed buckets."""
    if finest.kind != "fixed" or bars.height == 0:
        return None
    ts = bars.get_column("ts").to_numpy()
    lo, hi = int(ts.min()), int(ts.max()) + finest.width_ns
    inst = bars.get_column("instrument_id").to_numpy()
    for i in np.unique(inst):
        if not calendars.aligned(_calendar_name(calendar_of, int(i)), lo, hi, finest.width_ns):
            return None
    labels = _session_labels(bars, calendars, calendar_of)
    keep = labels != NO_SESSION
    out = bars.with_columns(pl.Series("ts", labels, dtype=pl.Int64))
    if not keep.all():
        out = out.filter(pl.Series(keep))
    return merge_partials(out)


def _fineness(iv: Interval) -> tuple[int, float]:
    order = {"fixed": 0, "session": 1, "week": 2, "month": 3}
    return (order.get(iv.kind, 9), iv.n)


def relabel(bars: pl.DataFrame, interval: Interval | str) -> pl.DataFrame:
    """Merge partial bars into the coarser ``interval`` buckets that contain them.

    ``bars`` must come from an interval that tiles ``interval``: a fixed width dividing a
    fixed target, or daily (or monthly) bars for weeks and months.
    """
    iv = parse_interval(interval)
    ts = bars.get_column("ts").to_numpy()
    if iv.kind == "fixed":
        labels = ts - ts % iv.width_ns
    elif iv.kind == "week":
        labels = week_labels(ts)
    elif iv.kind == "month":
        labels = month_labels(ts, int(iv.n))
    elif iv.kind == "session":
        labels = ts
    else:
        raise InvalidInput(f"cannot roll bars up into {iv.name} bars")
    return merge_partials(bars.with_columns(pl.Series("ts", labels, dtype=pl.Int64)))


def merge_partials(bars: pl.DataFrame, keys: Sequence[str] = ("instrument_id", "ts")) -> pl.DataFrame:
    """Merge partial bars that share ``keys`` into one bar each (the merge algebra).

    open comes from the row with the earliest ``(first_ns, first_seq)``, close from the row
    with the latest ``(last_ns, last_seq)``; high/low are max/min; counts and volumes add;
    buy/sell volume add with null meaning "no known side" (null + x = x).
    """
    if bars.height == 0:
        return bars.select(BAR_FIELDS) if set(BAR_FIELDS) <= set(bars.columns) else _empty()
    k = list(keys)
    by_last = ["last_ns", "last_seq"]
    out = (
        bars.lazy()
        .sort([*k, "first_ns", "first_seq"])
        .group_by(k, maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").sort_by(by_last).last(),
            pl.col("volume").sum(),
            pl.col("notional").sum(),
            pl.col("trade_count").sum().cast(pl.Int64),
            pl.col("buy_volume").sum(),
            pl.col("sell_volume").sum(),
            pl.col("buy_volume").is_not_null().any().alias("_known"),
            pl.col("first_ns").first(),
            pl.col("first_seq").first(),
            pl.col("last_ns").sort_by(by_last).last(),
            pl.col("last_seq").sort_by(by_last).last(),
        )
    )
    extra = [c for c in k if c not in BAR_FIELDS]
    return _null_unknown_sides(out).select([*extra, *BAR_FIELDS]).collect()


def finalize(bars: pl.DataFrame) -> pl.DataFrame:
    """Add ``vwap`` (notional / volume, null when the volume is 0) and sort by key and time."""
    vol = pl.col("volume")
    cols = [c for c in ("instrument_id", "interval", "ts") if c in bars.columns]
    return bars.with_columns(
        pl.when(vol != 0).then(pl.col("notional") / vol).otherwise(None).alias("vwap")
    ).sort(cols)
