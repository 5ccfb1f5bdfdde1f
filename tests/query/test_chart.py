"""Candlestick charts from a bars DataFrame (matplotlib PNG, plotly HTML)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdb.errors import InvalidInput
from marketdb.services.query import render_chart


def _bars(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1.5, n))
    open_ = np.r_[100.0, close[:-1]] + rng.normal(0, 0.3, n)
    high = np.maximum(open_, close) + rng.uniform(0.1, 1.5, n)
    low = np.minimum(open_, close) - rng.uniform(0.1, 1.5, n)
    idx = pd.bdate_range("2024-01-02", periods=n, tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": rng.integers(1e5, 1e6, n)},
        index=idx,
    )


def test_png_is_written_with_the_requested_size(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = render_chart(_bars(), tmp_path / "bars.png", title="TEST 1d", width=900, height=500)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (900, 500)


def test_html_holds_candles_and_volume(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    out = render_chart(_bars(), tmp_path / "bars.html", title="TEST 1d")
    text = out.read_text(encoding="utf-8")
    assert '"type":"candlestick"' in text
    assert '"type":"bar"' in text
    assert "TEST 1d" in text


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"\.png"):
        render_chart(_bars(), tmp_path / "bars.xlsx")
    with pytest.raises(InvalidInput, match="no bars"):
        render_chart(_bars().iloc[:0], tmp_path / "bars.png")
    with pytest.raises(InvalidInput, match="close"):
        render_chart(_bars().drop(columns="close"), tmp_path / "bars.png")
