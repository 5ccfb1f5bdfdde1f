"""As-of join logic (pure pandas part)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketdb.errors import InvalidInput
from marketdb.services.query import asof_merge
from marketdb.services.query._asof import to_timedelta

T0 = pd.Timestamp("2024-03-01 14:30:00", tz="UTC")


def _quotes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", "MSFT", "AAPL"],
            "ts": [T0, T0 + pd.Timedelta("2s"), T0 + pd.Timedelta("1s"), T0 + pd.Timedelta("5s")],
            "bid": [10.0, 11.0, 400.0, 12.0],
            "ask": [10.1, 11.1, 400.5, 12.1],
        }
    )


def _orders() -> pd.DataFrame:
    # Deliberately unsorted, with a duplicate index label and a missing time.
    return pd.DataFrame(
        {
            "symbol": ["AAPL", "MSFT", "AAPL", "AAPL", "AAPL"],
            "when": [
                T0 + pd.Timedelta("3s"),
                T0 + pd.Timedelta("1500ms"),
                T0 - pd.Timedelta("1s"),
                pd.NaT,
                T0 + pd.Timedelta("2s"),
            ],
            "qty": [1, 2, 3, 4, 5],
        },
        index=[10, 11, 10, 12, 13],
    )


def test_backward_keeps_order_index_and_matches_last_quote() -> None:
    out = asof_merge(_orders(), _quotes(), on="when", by="symbol", time_name="quote_ts")
    assert out.index.tolist() == [10, 11, 10, 12, 13]
    assert out["qty"].tolist() == [1, 2, 3, 4, 5]
    bids = out["bid"].tolist()
    assert bids[0] == 11.0  # last AAPL quote at or before +3s is +2s
    assert bids[1] == 400.0
    assert np.isnan(bids[2])  # nothing before T0
    assert np.isnan(bids[3])  # no time
    assert bids[4] == 11.0  # exact match counts
    assert out["quote_ts"].iloc[0] == T0 + pd.Timedelta("2s")
    assert isinstance(out["quote_ts"].dtype, pd.DatetimeTZDtype)


def test_forward_nearest_and_tolerance() -> None:
    fwd = asof_merge(_orders(), _quotes(), on="when", by="symbol", direction="forward")
    assert fwd["bid"].tolist()[0] == 12.0
    assert fwd["bid"].tolist()[2] == 10.0
    near = asof_merge(_orders(), _quotes(), on="when", by="symbol", direction="nearest")
    assert near["bid"].tolist()[0] == 11.0  # +2s is 1s away, +5s is 2s away
    tight = asof_merge(
        _orders(), _quotes(), on="when", by="symbol", tolerance=to_timedelta("500ms")
    )
    assert np.isnan(tight["bid"].tolist()[0])
    assert tight["bid"].tolist()[1] == 400.0


def test_index_join_without_symbol_and_clashing_columns() -> None:
    trades = pd.DataFrame(
        {"price": [10.05, 11.5]},
        index=pd.DatetimeIndex([T0 + pd.Timedelta("1s"), T0 + pd.Timedelta("3s")], name="ts"),
    )
    quotes = _quotes()[lambda d: d.symbol == "AAPL"].drop(columns="symbol")
    quotes["price"] = 0.0
    out = asof_merge(trades, quotes)
    assert out["bid"].tolist() == [10.0, 11.0]
    assert out["price"].tolist() == [10.05, 11.5]
    assert out["price_right"].tolist() == [0.0, 0.0]
    assert "match_ts" in out.columns


def test_naive_times_and_bad_arguments_are_refused() -> None:
    naive = pd.DataFrame({"x": [1]}, index=pd.DatetimeIndex(["2024-03-01"]))
    with pytest.raises(InvalidInput, match="time zone"):
        asof_merge(naive, _quotes())
    with pytest.raises(InvalidInput, match="direction"):
        asof_merge(_orders(), _quotes(), on="when", direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="symbol"):
        asof_merge(_orders().drop(columns="symbol"), _quotes(), on="when", by="symbol")
    with pytest.raises(InvalidInput, match="tolerance"):
        to_timedelta("soon")
