"""Synthetic market data for demos, tests and your own test suites.

Everything here is deterministic for a given ``seed``: the same call returns
the same frame, so tests can assert exact values and re-runs are idempotent.

>>> from marketdb.testing import synthetic_trades
>>> df = synthetic_trades(["AAPL"], start="2024-01-02", days=1, trades_per_day=1000)
>>> list(df.columns)
['symbol', 'ts', 'price', 'size', 'side']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SyntheticSplit", "synthetic_trades"]


@dataclass(frozen=True)
class SyntheticSplit:
    """A split applied to a synthetic series: prices divide by ``ratio`` from ``ex_date`` on."""

    ex_date: dt.date
    ratio: float


@lru_cache(maxsize=8)
def _calendar(name: str) -> Any:
    import exchange_calendars as xcals

    return xcals.get_calendar(name)


def _sessions(
    calendar: str | None, start: pd.Timestamp, days: int
) -> list[tuple[pd.Timestamp, pd.Timestamp, dt.date]]:
    """(open, close, session date) for ``days`` sessions from ``start``."""
    if calendar in (None, "24/7"):
        out = []
        for i in range(days):
            d = (start + pd.Timedelta(days=i)).normalize()
            out.append((d, d + pd.Timedelta(days=1), d.date()))
        return out
    cal = _calendar(calendar)
    first = start.tz_localize(None).normalize()
    sessions = cal.sessions_in_range(first, first + pd.Timedelta(days=days * 2 + 10))[:days]
    return [(cal.session_open(s), cal.session_close(s), s.date()) for s in sessions]


def synthetic_trades(
    symbols: Sequence[str],
    *,
    start: str | dt.date = "2024-01-02",
    days: int = 5,
    trades_per_day: int = 100_000,
    calendars: Mapping[str, str | None] | None = None,
    start_prices: Mapping[str, float] | None = None,
    splits: Mapping[str, SyntheticSplit] | None = None,
    seed: int = 42,
    same_timestamp_fraction: float = 0.02,
) -> pd.DataFrame:
    """Realistic-looking trades: a geometric random walk with U-shaped intraday activity.

    * Trades fall inside each symbol's sessions (``calendars``: exchange code such
      as ``"XNYS"``, or ``None``/``"24/7"`` for round-the-clock markets).
    * Timestamps have nanosecond precision; a fraction of trades share a
      timestamp with the previous one (as real prints do).
    * ``splits`` divides prices by the ratio from the ex-date on, so the raw
      series shows the jump a real split shows.

    Returns columns ``symbol, ts (datetime64[ns, UTC]), price, size, side``,
    sorted by symbol and time.
    """
    rng = np.random.default_rng(seed)
    start_ts = pd.Timestamp(start, tz="UTC")
    frames = []
    for k, sym in enumerate(symbols):
        cal = (calendars or {}).get(sym, "XNYS")
        price = float((start_prices or {}).get(sym, 100.0 + 50.0 * k))
        split = (splits or {}).get(sym)
        for open_, close, session in _sessions(cal, start_ts, days):
            n = trades_per_day
            span_ns = int((close - open_).value)
            # U-shaped intensity: more trades near the open and the close.
            u = rng.beta(0.6, 0.6, size=n)
            offsets = np.sort((u * (span_ns - 1)).astype(np.int64))
            dup = rng.random(n) < same_timestamp_fraction
            dup[0] = False
            offsets = np.where(dup, np.roll(offsets, 1), offsets)
            offsets = np.maximum.accumulate(offsets)
            ts = open_.value + offsets
            vol = 0.02 / np.sqrt(n)
            steps = rng.normal(0.0, vol, size=n)
            path = price * np.exp(np.cumsum(steps))
            price = float(path[-1])
            factor = 1.0
            if split is not None and session >= split.ex_date:
                factor = 1.0 / split.ratio
            px = np.round(path * factor, 2)
            size = rng.integers(1, 20, size=n).astype(np.float64) * 100 * (1 / factor if factor != 1 else 1)
            side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
            frames.append(
                pd.DataFrame(
                    {
                        "symbol": sym,
                        "ts": pd.to_datetime(ts, utc=True),
                        "price": px,
                        "size": size,
                        "side": side,
                    }
                )
            )
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
