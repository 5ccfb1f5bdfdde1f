"""Real provider files (the shared corpus, never copied into the project); skipped without it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import psycopg
import pytest

import marketdb
from marketdb.errors import InvalidInput

REAL = Path("/work/shared/realdata")
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real-data corpus not available")
UTC = dt.UTC


def digest(db: marketdb.MarketDB, table: str) -> tuple[int, str]:
    with db.raw() as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT t::text FROM {} t").format(psycopg.sql.Identifier(table))
        ).fetchall()
    return len(rows), hashlib.sha256("\n".join(sorted(r[0] for r in rows)).encode()).hexdigest()


def test_tiingo_daily_json_and_csv_are_the_same_bars(db: marketdb.MarketDB) -> None:
    body = REAL / "tiingo-python/bodies"
    js = body / "ticker_price_pandas_daily_equivalent_requesting_json_or_csv__0.json"
    cs = body / "ticker_price_pandas_daily_equivalent_requesting_json_or_csv__1.csv"
    first = db.ingest.write_candles(js, symbol="GOOGL", interval="1d", source="tiingo",
                                    auto_register=True)
    assert first.inserted == 10
    before = digest(db, "candles")
    second = db.ingest.write_candles(cs, symbol="GOOGL", interval="1d", source="tiingo")
    assert (second.inserted, second.duplicates) == (0, 10)  # parity: same keys, same values
    assert digest(db, "candles") == before
    with db.raw() as conn:
        assert conn.execute(
            "SELECT min(ts), max(split_factor) FROM candles WHERE interval = '1d'").fetchone() == (
            dt.datetime(2018, 1, 5, tzinfo=UTC), 1.0)


def test_yahoo_tokyo_daily_bars_keep_their_local_dates(db: marketdb.MarketDB) -> None:
    res = db.ingest.write_candles(REAL / "yfinance/4063-T-1d-bad-stock-split.csv", symbol="4063.T",
                                  interval="1d", source="yfinance", auto_register=True)
    assert res.inserted == 22
    with db.raw() as conn:
        newest = conn.execute("SELECT max(ts), min(split_factor) FROM candles").fetchone()
    assert newest == (dt.datetime(2023, 4, 14, tzinfo=UTC), 1.0)  # not 04-13 15:00 UTC


def test_zipline_daily_with_the_ko_split(db: marketdb.MarketDB) -> None:
    res = db.ingest.write_candles(REAL / "zipline/csvdir_daily/KO.csv", symbol="KO", interval="1d",
                                  source="quandl", auto_register=True)
    assert res.inserted == 754
    with db.raw() as conn:
        assert conn.execute(
            "SELECT ts::date FROM candles WHERE split_factor = 2 AND interval = '1d'").fetchall() == [
            (dt.date(2012, 8, 13),)]


def test_binance_trades_and_quotes_with_string_buyer_maker(db: marketdb.MarketDB) -> None:
    base = REAL / "nautilus_trader/binance"
    trades = db.ingest.write_ticks(base / "btcusdt-trades.parquet", symbol="BTCUSDT",
                                   source="binance", auto_register=True)
    assert (trades.inserted, trades.rejected) == (2001, 0)
    quotes = db.ingest.write_ticks(base / "btcusdt-quotes.parquet", source="binance",
                                   auto_register=True)
    assert quotes.by_table["quotes"]["inserted"] == 451
    with db.raw() as conn:
        first = conn.execute("SELECT trade_id, side FROM trades ORDER BY ts, seq LIMIT 2").fetchall()
        assert first == [("553287559", -1), ("553287560", 1)]  # buyer maker -> seller aggressor
        assert conn.execute("SELECT symbol FROM instruments ORDER BY 1").fetchall() == [
            ("BTC/USDT",), ("BTCUSDT",)]
    again = db.ingest.write_ticks(base / "btcusdt-trades.parquet", symbol="BTCUSDT",
                                  source="binance")
    assert again.duplicates == 2001


def test_truefx_and_headerless_histdata_quotes(db: marketdb.MarketDB) -> None:
    res = db.ingest.write_ticks(REAL / "nautilus_trader/truefx/usdjpy-ticks.csv", symbol="USDJPY",
                                source="truefx", auto_register=True)
    assert res.by_table["quotes"]["inserted"] == 1000
    hist = REAL / "nautilus_trader/histdata/quote_tick_data.csv"
    with pytest.raises(InvalidInput, match="without a time zone"):
        db.ingest.write_ticks(hist, symbol="EURUSD", auto_register=True,
                              csv={"column_names": ["ts", "bid", "ask", "unused"]},
                              ts_format="%Y%m%d %H%M%S%f")
    res = db.ingest.write_ticks(hist, symbol="EURUSD", auto_register=True, source="histdata",
                                csv={"column_names": ["ts", "bid", "ask", "unused"]},
                                ts_format="%Y%m%d %H%M%S%f", tz="Etc/GMT+5")  # EST, no DST
    assert res.by_table["quotes"]["inserted"] + res.by_table["quotes"]["duplicates"] == 9500
    with db.raw() as conn:
        first = conn.execute("SELECT min(q.ts) FROM quotes q JOIN instruments i "
                             "ON i.id = q.instrument_id WHERE i.symbol = 'EURUSD'").fetchone()[0]
    assert first == dt.datetime(2020, 1, 1, 22, 0, 0, 65000, tzinfo=UTC)


def test_naive_ftx_bars_need_a_zone(db: marketdb.MarketDB) -> None:
    path = REAL / "nautilus_trader/ftx/btc-perp-20211231-20220201_1m.csv"
    with pytest.raises(InvalidInput, match="tz="):
        db.ingest.write_candles(path, symbol="BTC-PERP", interval="1m", auto_register=True)
    res = db.ingest.write_candles(path, symbol="BTC-PERP", interval="1m", tz="UTC",
                                  source="ftx", auto_register=True)
    assert (res.inserted, res.rejected) == (45031, 0)


def test_optopsy_spx_chain_with_bom_and_padded_header(db: marketdb.MarketDB) -> None:
    res = db.ingest.write_options_chain(REAL / "optopsy/SPX_2018_historicaloptiondata.csv",
                                        ts_format="%m/%d/%Y", tz="America/New_York",
                                        source="historicaloptiondata", auto_register=True)
    assert (res.received, res.rejected) == (14438, 0)
    assert res.inserted + res.duplicates == 14438
    with db.raw() as conn:
        row = conn.execute(
            "SELECT option_right, strike, implied_vol, open_interest, underlying_price "
            "FROM options_chains ORDER BY ts, expiration, strike, option_right LIMIT 1"
        ).fetchone()
    assert row == ("call", 1200.0, 0.0908, 6007, 2695.79)


def test_polygon_splits_dividends_and_trades(db: marketdb.MarketDB) -> None:
    ref = REAL / "polygon-client-python/mocks/v3/reference"
    splits = db.ingest.write_corporate_actions(ref / "splits.json", source="polygon",
                                               auto_register=True)
    assert splits.inserted + splits.duplicates == 10
    divs = db.ingest.write_corporate_actions(ref / "dividends.json", source="polygon",
                                             auto_register=True)
    assert divs.rejected == 0
    with db.raw() as conn:
        ratios = dict(conn.execute(
            "SELECT i.symbol, a.ratio FROM corporate_actions a JOIN instruments i "
            "ON i.id = a.instrument_id WHERE a.action_type = 'split' AND i.symbol IN ('GOOGL', 'BRW')"
        ).fetchall())
    assert ratios == {"GOOGL": 20.0, "BRW": 0.5}
    trades = REAL / "polygon-client-python/mocks/v3/trades/AAPL_limit=2.json"
    res = db.ingest.write_ticks(trades, symbol="AAPL", source="polygon", auto_register=True)
    assert res.inserted == 2
    with db.raw() as conn:
        assert conn.execute("SELECT DISTINCT conditions FROM trades").fetchall() == [("12,37",)]


def test_tiingo_crossed_top_of_book_is_rejected_unless_allowed(db: marketdb.MarketDB) -> None:
    doc = json.loads((REAL / "tiingo-python/bodies/crypto_top_of_book__0.json").read_text())
    rows = [{"symbol": d["ticker"], "ts": d["topOfBookData"][0]["quoteTimestamp"],
             "bid": d["topOfBookData"][0]["bidPrice"], "ask": d["topOfBookData"][0]["askPrice"]}
            for d in doc]
    with pytest.raises(InvalidInput, match="crossed_quote"):
        db.ingest.write_ticks(rows, auto_register=True)
    res = db.ingest.write_ticks(rows, auto_register=True, crossed="allow", source="tiingo")
    assert res.by_table["quotes"]["inserted"] == len(rows)


def test_tiingo_ticker_list_into_the_security_master(db: marketdb.MarketDB) -> None:
    df = pd.read_csv(REAL / "tiingo-python/bodies/list_all_tickers__0.supported_tickers.csv",
                     nrows=3000, dtype=str, keep_default_na=False)
    df = df.replace({"": None})
    res = db.ingest.write_instruments(df)
    assert res.received == 3000
    assert res.inserted + res.duplicates == 3000  # the list repeats some tickers
    with db.raw() as conn:
        row = conn.execute("SELECT asset_class, exchange, currency, metadata->>'startDate' "
                           "FROM instruments WHERE symbol = '000001'").fetchone()
    assert row == ("stock", "SHE", "CNY", "2007-08-30")
