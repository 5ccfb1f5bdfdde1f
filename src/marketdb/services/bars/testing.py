"""Helpers to test bars: a from-scratch pandas aggregation and a tolerant comparison.

The reference aggregation is written independently of the production code (pandas, row
order, direct calendar lookups), so a test that compares the two checks the arithmetic, the
bucketing and the calendar handling at once. It is slow: use it on test-sized data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import polars as pl

from marketdb.services.bars._intervals import parse_interval

__all__ = ["EXACT_FIELDS", "SUM_FIELDS", "bar_differences", "reference_bars"]

#: Fields that must match exactly: they are picked, not computed.
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
#: Float sums whose rounding depends on the order of addition.
SUM_FIELDS: tuple[str, ...] = ("volume", "notional", "vwap", "buy_volume", "sell_volume")


def _session_label(ts: pd.Timestamp, calendar: str | None, session: str) -> pd.Timestamp | None:
    if calendar is None or calendar.upper() in ("24/7", "UTC"):
        return ts.floor("D")
    import exchange_calendars as xcals

    from marketdb.services.bars._calendars import _quiet_pandas

    with _quiet_pandas():
        cal = xcals.get_calendar(calendar)
    sched = cal.schedule
    if session == "regular":
        hit = sched[(sched["open"] <= ts) & (ts < sched["close"])]
        if len(hit) == 0:
            return None
        return pd.Timestamp(hit.index[0]).tz_localize("UTC")
    local_day = ts.tz_convert(cal.tz).tz_localize(None).normalize()
    if local_day in sched.index:
        return local_day.tz_localize("UTC")
    return None


def _is(side: pd.Series, value: int) -> np.ndarray:
    mask: np.ndarray = (side == value).fillna(False).to_numpy(dtype=bool)
    return mask


def reference_bars(
    trades: pd.DataFrame,
    interval: str,
    *,
    calendar_of: Mapping[int, str | None] | None = None,
    session: str = "regular",
) -> pd.DataFrame:
    """Bars of ``interval`` computed from scratch with pandas.

    ``trades`` has columns instrument_id, ts (tz-aware UTC, ns), seq, price, size, side
    (1, -1 or missing). Returns one row per (instrument_id, ts) with open, high, low, close,
    volume, notional, vwap, trade_count, buy_volume, sell_volume, first_ns, first_seq,
    last_ns, last_seq; ts is the bucket label as epoch ns. ``session="extended"`` follows the
    local-date rule and is exact for calendars whose sessions start and end on one local date.
    """
    iv = parse_interval(interval)
    cmap = dict(calendar_of or {})
    df = trades.copy()
    df["ts_ns"] = df["ts"].dt.as_unit("ns").astype("int64")
    df = df.sort_values(["instrument_id", "ts_ns", "seq"], kind="mergesort")
    if iv.kind == "fixed":
        w = iv.width_ns
        df["bucket"] = (df["ts_ns"] // w) * w
    else:
        labels = []
        for inst, ts in zip(df["instrument_id"], df["ts"], strict=True):
            lab = _session_label(ts, cmap.get(int(inst)), session)
            labels.append(np.nan if lab is None else lab.value)
        df["day"] = labels
        df = df[df["day"].notna()].copy()
        day = pd.to_datetime(df["day"].astype("int64"), utc=True)
        if iv.kind == "session":
            bucket = day
        elif iv.kind == "week":
            bucket = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
        else:
            months = int(iv.n)
            idx = (day.dt.year - 1970) * 12 + (day.dt.month - 1)
            idx = idx - idx % months
            bucket = pd.to_datetime({"year": 1970 + idx // 12, "month": idx % 12 + 1, "day": 1}, utc=True)
        df["bucket"] = bucket.dt.as_unit("ns").astype("int64").to_numpy()
    rows = []
    for (inst, bucket), g in df.groupby(["instrument_id", "bucket"], sort=True):
        size = g["size"].to_numpy(dtype=float)
        price = g["price"].to_numpy(dtype=float)
        side = g["side"]
        known = side.notna().any()
        volume = math.fsum(size)
        notional = math.fsum(price * size)
        rows.append(
            {
                "instrument_id": int(inst),
                "ts": int(bucket),
                "open": price[0],
                "high": price.max(),
                "low": price.min(),
                "close": price[-1],
                "volume": volume,
                "notional": notional,
                "vwap": notional / volume if volume != 0 else None,
                "trade_count": len(g),
                "buy_volume": math.fsum(size[_is(side, 1)]) if known else None,
                "sell_volume": math.fsum(size[_is(side, -1)]) if known else None,
                "first_ns": int(g["ts_ns"].iloc[0]),
                "first_seq": int(g["seq"].iloc[0]),
                "last_ns": int(g["ts_ns"].iloc[-1]),
                "last_seq": int(g["seq"].iloc[-1]),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "instrument_id",
            "ts",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "notional",
            "vwap",
            "trade_count",
            "buy_volume",
            "sell_volume",
            "first_ns",
            "first_seq",
            "last_ns",
            "last_seq",
        ],
    )


def _records(bars: pd.DataFrame | pl.DataFrame) -> dict[tuple[int, int], dict[str, object]]:
    pdf = bars.to_pandas() if isinstance(bars, pl.DataFrame) else bars
    out: dict[tuple[int, int], dict[str, object]] = {}
    for rec in pdf.to_dict("records"):
        ts = rec["ts"]
        key_ts = ts.value if isinstance(ts, pd.Timestamp) else int(ts)
        out[(int(rec["instrument_id"]), key_ts)] = rec
    return out


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def bar_differences(
    actual: pd.DataFrame | pl.DataFrame,
    expected: pd.DataFrame | pl.DataFrame,
    *,
    rel: float = 1e-9,
    fields: tuple[str, ...] | None = None,
) -> list[str]:
    """Human-readable differences between two bar sets keyed by (instrument_id, ts).

    Picked fields (:data:`EXACT_FIELDS`) must be equal; float sums (:data:`SUM_FIELDS`) may
    differ by ``rel`` relative (order of addition). ``ts`` may be epoch ns or Timestamps.
    An empty list means equal.
    """
    a, e = _records(actual), _records(expected)
    diffs = [f"missing bar {k}" for k in sorted(e.keys() - a.keys())]
    diffs += [f"unexpected bar {k}" for k in sorted(a.keys() - e.keys())]
    check = fields or (*EXACT_FIELDS, *SUM_FIELDS)
    for k in sorted(a.keys() & e.keys()):
        for f in check:
            if f not in a[k] or f not in e[k]:
                continue
            x, y = a[k][f], e[k][f]
            if _missing(x) or _missing(y):
                if _missing(x) != _missing(y):
                    diffs.append(f"{k} {f}: {x!r} != {y!r}")
            elif f in SUM_FIELDS:
                if not math.isclose(float(x), float(y), rel_tol=rel, abs_tol=1e-12):  # type: ignore[arg-type]
                    diffs.append(f"{k} {f}: {x!r} != {y!r}")
            elif x != y:
                diffs.append(f"{k} {f}: {x!r} != {y!r}")
    return diffs
