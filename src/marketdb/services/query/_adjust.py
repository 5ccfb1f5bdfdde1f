"""Point-in-time price adjustment: CRSP-style backward cumulative factors.

Pure functions over numpy/pandas input; no database. The query service reads
the corporate actions known at ``as_of`` and the reference closes, then calls
:func:`adjust_bars`.

The method (documented in ``docs/query.md``):

* A **split** with ``ratio`` r (new shares per old share; 4.0 for 4:1, 0.1
  for 1:10 reverse) ex on date E multiplies every price before E by ``1/r``
  and every volume before E by ``r``.
* A **cash dividend** D per share ex on date E multiplies every price before
  E by ``1 - D / P`` (convention ``"crsp"``, the default) or by ``P / (P + D)``
  (convention ``"vendor"``: Tiingo's and Quandl's adjusted columns), where P is
  the raw close of the last session before E expressed in the share basis of E
  (divided by the ratio of any split that also goes ex after that session and on
  or before E). The two differ by about ``(D / P)**2`` per dividend. Volumes are
  unchanged.
* The factor of a bar is the product of the factors of every action whose
  ex-date is after the bar's session date. Bars on or after the newest
  ex-date are unchanged, so the most recent prices always equal the raw ones.
* **Point in time**: only actions with ``known_at <= as_of`` and
  ``ex_date <= as_of`` count. A split announced for next week does not change
  today's prices, and a backtest at ``as_of`` never sees its future.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from marketdb.errors import InvalidInput
from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

__all__ = [
    "ADJUSTED_PRICE_COLUMNS",
    "ADJUSTED_VOLUME_COLUMNS",
    "DIVIDEND_CONVENTIONS",
    "AdjustmentFactors",
    "CorporateAction",
    "DividendConvention",
    "actions_known_at",
    "adjust_bars",
    "adjustment_factors",
    "check_convention",
]

#: How a cash dividend D with reference close P becomes a price factor:
#: ``"crsp"`` is ``1 - D / P`` (CRSP, Yahoo); ``"vendor"`` is ``P / (P + D)`` (Tiingo, Quandl).
DividendConvention = Literal["crsp", "vendor"]
DIVIDEND_CONVENTIONS: tuple[str, ...] = ("crsp", "vendor")


def check_convention(value: object) -> DividendConvention:
    """Validate a dividend convention name (``"crsp"`` or ``"vendor"``)."""
    if value == "crsp":
        return "crsp"
    if value == "vendor":
        return "vendor"
    raise InvalidInput(
        f"unknown dividend convention {value!r}",
        hint="use 'crsp' (1 - D/P_prev, CRSP and Yahoo) or 'vendor' (P_prev/(P_prev + D), "
        "Tiingo and Quandl)",
    )


#: Bar columns multiplied by the price factor.
ADJUSTED_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "vwap")
#: Bar columns multiplied by the volume (split) factor.
ADJUSTED_VOLUME_COLUMNS: tuple[str, ...] = ("volume", "buy_volume", "sell_volume")


@dataclass(frozen=True, slots=True)
class CorporateAction:
    """One split or cash dividend, as the adjustment needs it.

    ``ref_close`` is the raw close of the last session before ``ex_date``
    (needed for dividends only) and ``ref_date`` that session. When
    ``ref_close`` is None, :func:`adjustment_factors` takes it from the bars it
    is given, which works when they reach back to that session. When only
    ``ref_date`` is missing, the session is taken to be the one right before
    the ex-date (only a split on the ex-date itself changes the share basis).
    """

    action_type: Literal["split", "cash_dividend"]
    ex_date: dt.date
    ratio: float | None = None
    amount: float | None = None
    known_at: dt.datetime | None = None
    ref_close: float | None = None
    ref_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class AdjustmentFactors:
    """Per-bar multipliers: ``price`` for OHLC/VWAP, ``volume`` for volumes."""

    price: np.ndarray
    volume: np.ndarray


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64 | pd.Timestamp | str):
        day: dt.date = pd.Timestamp(value).date()
        return day
    raise InvalidInput(f"cannot read {value!r} as a date", hint="pass a datetime.date")


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise InvalidInput(
            f"as_of/known_at {value!r} has no time zone",
            hint="pass a timezone-aware datetime, e.g. datetime(..., tzinfo=timezone.utc)",
        )
    return value.astimezone(dt.UTC)


def actions_known_at(
    actions: Sequence[CorporateAction], as_of: dt.datetime
) -> list[CorporateAction]:
    """Keep the actions a reader at ``as_of`` would know and that have gone ex.

    An action counts when ``known_at <= as_of`` (a missing ``known_at`` counts
    as known) and its ``ex_date`` is on or before the UTC date of ``as_of``.
    """
    as_of = _as_utc(as_of)
    today = as_of.date()
    out = []
    for a in actions:
        if a.known_at is not None and _as_utc(a.known_at) > as_of:
            continue
        if _as_date(a.ex_date) > today:
            continue
        out.append(a)
    return out


def _session_days(sessions: object) -> np.ndarray:
    """Session dates as ``datetime64[D]`` (accepts dates, datetimes, Index, array)."""
    arr = np.asarray(sessions)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[D]")
    if arr.dtype == object:
        idx = pd.DatetimeIndex(pd.to_datetime(list(arr)))
        if idx.tz is not None:
            idx = idx.tz_localize(None)
        return np.asarray(idx.values, dtype="datetime64[D]")
    raise InvalidInput(
        "session dates must be dates or datetimes",
        hint="pass datetime.date objects or a datetime64 array",
    )


def adjustment_factors(
    sessions: object,
    closes: object,
    actions: Sequence[CorporateAction],
    *,
    dividends: DividendConvention = "crsp",
) -> AdjustmentFactors:
    """Backward cumulative price and volume factors for bars on ``sessions``.

    ``sessions`` are the bars' session dates (any order), ``closes`` their raw
    closes (used for a dividend's reference close when the action carries
    none). ``actions`` must already be filtered to what is known (see
    :func:`actions_known_at`). ``dividends`` picks the dividend convention (module
    docstring). Returns one price and one volume factor per bar.
    """
    dividends = check_convention(dividends)
    days = _session_days(sessions)
    close_arr = np.asarray(closes, dtype=np.float64)
    if close_arr.shape != days.shape:
        raise InvalidInput("sessions and closes must have the same length")
    n = days.shape[0]
    if not actions:
        return AdjustmentFactors(np.ones(n), np.ones(n))

    ex_days = np.array([np.datetime64(_as_date(a.ex_date), "D") for a in actions])
    # Sorted bars, for "last session before E" lookups.
    order = np.argsort(days, kind="stable")
    sorted_days = days[order]

    splits = [
        (np.datetime64(_as_date(a.ex_date), "D"), float(a.ratio or 0.0))
        for a in actions
        if a.action_type == "split"
    ]
    price_f = np.empty(len(actions))
    volume_f = np.empty(len(actions))
    for i, a in enumerate(actions):
        if a.action_type == "split":
            r = a.ratio
            if r is None or not np.isfinite(r) or r <= 0:
                raise InvalidInput(
                    f"split ex {a.ex_date} has ratio {r!r}",
                    hint="a split ratio is new shares per old share and must be > 0 "
                    "(4.0 for 4:1, 0.1 for 1:10); fix the corporate_actions row",
                )
            price_f[i] = 1.0 / r
            volume_f[i] = r
        elif a.action_type == "cash_dividend":
            d = a.amount
            if d is None or not np.isfinite(d) or d < 0:
                raise InvalidInput(
                    f"cash dividend ex {a.ex_date} has amount {d!r}",
                    hint="a cash dividend amount is cash per share and must be >= 0",
                )
            ex = ex_days[i]
            ref_close = a.ref_close
            ref_day = np.datetime64(_as_date(a.ref_date), "D") if a.ref_date else None
            if ref_close is None:
                pos = int(np.searchsorted(sorted_days, ex, side="left")) - 1
                if pos < 0:
                    # No bar before the ex-date: the dividend changes none of them.
                    price_f[i] = 1.0
                    volume_f[i] = 1.0
                    continue
                ref_close = float(close_arr[order[pos]])
                ref_day = sorted_days[pos]
            # Express the reference close in the share basis of the ex-date.
            basis = 1.0
            for s_day, s_ratio in splits:
                after_ref = s_day > ref_day if ref_day is not None else s_day == ex
                if s_day <= ex and after_ref:
                    basis *= s_ratio
            if not np.isfinite(ref_close) or ref_close <= 0:
                raise InvalidInput(
                    f"no usable close before the dividend ex {a.ex_date} (got {ref_close!r})",
                    hint="load the bars of the session before the ex-date",
                )
            f = 1.0 - d * basis / ref_close if dividends == "crsp" else ref_close / (ref_close + d * basis)
            if f <= 0:
                raise InvalidInput(
                    f"dividend {d} ex {a.ex_date} is not smaller than the previous close "
                    f"{ref_close / basis}",
                    hint="check the dividend amount and the split ratios in corporate_actions",
                )
            price_f[i] = f
            volume_f[i] = 1.0
        else:
            raise InvalidInput(
                f"unknown corporate action type {a.action_type!r}",
                hint="use 'split' or 'cash_dividend'",
            )

    # Suffix products over actions sorted by ex-date: a bar on day d gets the
    # product of every action with ex_date > d.
    a_order = np.argsort(ex_days, kind="stable")
    ex_sorted = ex_days[a_order]
    pf = price_f[a_order]
    vf = volume_f[a_order]
    suffix_p = np.ones(len(actions) + 1)
    suffix_v = np.ones(len(actions) + 1)
    for j in range(len(actions) - 1, -1, -1):
        suffix_p[j] = suffix_p[j + 1] * pf[j]
        suffix_v[j] = suffix_v[j + 1] * vf[j]
    first_after = np.searchsorted(ex_sorted, days, side="right")
    return AdjustmentFactors(suffix_p[first_after], suffix_v[first_after])


def adjust_bars(
    bars: pd.DataFrame,
    sessions: object,
    actions: Sequence[CorporateAction],
    *,
    keep_factors: bool = False,
    dividends: DividendConvention = "crsp",
) -> pd.DataFrame:
    """Return a copy of ``bars`` with prices and volumes adjusted.

    Columns in :data:`ADJUSTED_PRICE_COLUMNS` are multiplied by the price
    factor, those in :data:`ADJUSTED_VOLUME_COLUMNS` by the volume factor;
    other columns are unchanged. ``sessions`` holds each row's session date.
    With ``keep_factors`` the factors are added as ``price_factor`` and
    ``volume_factor`` columns.
    """
    if "close" not in bars.columns:
        raise InvalidInput("bars need a 'close' column to be adjusted")
    factors = adjustment_factors(
        sessions, bars["close"].to_numpy(dtype=np.float64), actions, dividends=dividends
    )
    out = bars.copy()
    for col in ADJUSTED_PRICE_COLUMNS:
        if col in out.columns:
            out[col] = out[col].to_numpy(dtype=np.float64) * factors.price
    for col in ADJUSTED_VOLUME_COLUMNS:
        if col in out.columns:
            out[col] = out[col].to_numpy(dtype=np.float64) * factors.volume
    if keep_factors:
        out["price_factor"] = factors.price
        out["volume_factor"] = factors.volume
    return out
