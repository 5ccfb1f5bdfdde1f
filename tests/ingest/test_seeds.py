"""Seed applications' ingest gaps (issue 14): 000 asset types, 004 market_data bid/ask."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import marketdb


@pytest.mark.parametrize(("asset_type", "asset_class"),
                         [("crypto", "crypto"), ("forex", "forex"), ("stock", "stock")])
def test_seed000_asset_type_maps_to_asset_class(
    db: marketdb.MarketDB, asset_type: str, asset_class: str
) -> None:
    # seed 000: assets(symbol, name, type TEXT -- 'stock', 'crypto', 'forex')
    db.ingest.write_instruments([{"symbol": "X1", "name": "thing", "type": asset_type}])
    with db.raw() as conn:
        row = conn.execute("SELECT asset_class, security_type FROM instruments").fetchone()
    assert row == (asset_class, asset_type)


def test_seed000_an_explicit_asset_class_wins_over_type(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "GLD", "type": "crypto", "asset_class": "etf"}])
    with db.raw() as conn:
        assert conn.execute("SELECT asset_class FROM instruments").fetchone() == ("etf",)


def test_seed004_market_data_rows_keep_bid_and_ask(db: marketdb.MarketDB) -> None:
    # seed 004: market_data(time, symbol, open, high, low, close, volume, vwap, bid, ask,
    # bid_size, ask_size) -- one row per bar with its closing quote
    db.ingest.write_instruments([{"symbol": "SPY"}])
    t0 = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    rows = [{"time": t0 + dt.timedelta(minutes=i), "symbol": "SPY", "open": 470.0 + i,
             "high": 471.0 + i, "low": 469.5 + i, "close": 470.5 + i, "volume": 1000 + i,
             "vwap": 470.2 + i, "bid": 470.4 + i, "ask": 470.6 + i, "bid_size": 300,
             "ask_size": 200 + i} for i in range(3)]
    res = db.ingest.write_candles(rows, interval="1m", source="seed004")
    assert res.inserted == 3
    bars = db.query.bars("SPY", "1m", t0, t0 + dt.timedelta(hours=1),
                         columns=["open", "close", "vwap", "bid", "ask", "bid_size", "ask_size"])
    assert bars["bid"].tolist() == [470.4, 471.4, 472.4]
    assert bars["ask"].tolist() == [470.6, 471.6, 472.6]
    assert bars["ask_size"].tolist() == [200.0, 201.0, 202.0]
    assert (bars["ask"] - bars["bid"]).round(6).tolist() == [0.2] * 3  # the seed's spread


def test_seed004_a_crossed_closing_quote_is_rejected(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "SPY"}])
    row = {"time": pd.Timestamp("2024-01-02T14:30Z"), "symbol": "SPY", "open": 1.0, "high": 1.0,
           "low": 1.0, "close": 1.0, "bid": 1.1, "ask": 1.0}
    with pytest.raises(marketdb.errors.InvalidInput, match="crossed_quote"):
        db.ingest.write_candles([row], interval="1m")
