"""Every vendor file of the shared corpus loads with at most a preset, equal to a pandas
reference built here independently (skipped when /work/shared/realdata is absent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import marketdb
from marketdb.errors import InvalidInput

REAL = Path("/work/shared/realdata")
NT = REAL / "nautilus_trader"
TI = REAL / "tiingo-python/bodies"
PG = REAL / "polygon-client-python/mocks"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real-data corpus not available")


def stored(db: marketdb.MarketDB, sql: str) -> pd.DataFrame:
    with db.raw() as conn:
        cur = conn.execute(sql)
        cols = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def candles(db: marketdb.MarketDB) -> pd.DataFrame:
    df = stored(db, "SELECT i.symbol, c.interval, c.ts, c.open, c.high, c.low, c.close, "
                    "c.volume, c.notional, c.trade_count, c.vwap FROM candles c JOIN instruments i "
                    "ON i.id = c.instrument_id WHERE c.source <> 'trades' AND c.rolled_from IS NULL "
                    "ORDER BY 1, 2, 3")
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def trades(db: marketdb.MarketDB) -> pd.DataFrame:
    df = stored(db, "SELECT i.symbol, t.ts, t.price, t.size, t.side, t.trade_id FROM trades t "
                    "JOIN instruments i ON i.id = t.instrument_id ORDER BY 1, 2, t.seq")
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def quotes(db: marketdb.MarketDB) -> pd.DataFrame:
    df = stored(db, "SELECT i.symbol, q.ts, q.bid, q.ask, q.bid_size, q.ask_size FROM quotes q "
                    "JOIN instruments i ON i.id = q.instrument_id ORDER BY 1, 2, q.seq")
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got[list(want.columns)].reset_index(drop=True)
    want = want.reset_index(drop=True)
    for c in want.columns:
        if want[c].dtype.kind == "f":
            got[c] = got[c].astype(float)
        elif want[c].dtype.kind in "iu":
            got[c] = got[c].astype("int64")
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=False, rtol=1e-12)


def ms(s: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.to_numeric(s), unit="ms", utc=True)


# ------------------------------------------------------------------ binance
@pytest.mark.parametrize("name", ["ADABTC-1m-2021-11-27.csv", "ADABTC-1m-2021-11-28.csv"])
def test_binance_public_data_klines_csv(db: marketdb.MarketDB, name: str) -> None:
    path = NT / "binance" / name
    res = db.ingest.write_candles(path, preset="binance-klines", symbol="ADABTC", interval="1m",
                                  auto_register=True)
    raw = pd.read_csv(path, header=None)
    assert res.inserted == len(raw)
    want = pd.DataFrame({"symbol": "ADABTC", "ts": ms(raw[0]), "open": raw[1], "high": raw[2],
                         "low": raw[3], "close": raw[4], "volume": raw[5], "notional": raw[7],
                         "trade_count": raw[8]})
    same(candles(db), want)


def test_binance_rest_klines_json_arrays(db: marketdb.MarketDB) -> None:
    path = NT / "binance/http_responses/http_spot_market_klines.json"
    db.ingest.write_candles(path, preset="binance-klines", symbol="BTCUSDT", interval="1m",
                            auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text()))
    want = pd.DataFrame({"symbol": "BTCUSDT", "ts": ms(raw[0]),
                         **{k: raw[i].astype(float) for k, i in
                            (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5),
                             ("notional", 7))}, "trade_count": raw[8]})
    same(candles(db), want)


@pytest.mark.parametrize(("name", "preset", "keys"), [
    ("http_responses/http_spot_market_agg_trades.json", "binance-aggtrades",
     ("T", "p", "q", "m", "a")),
    ("http_responses/http_spot_market_trades.json", "binance-trades",
     ("time", "price", "qty", "isBuyerMaker", "id")),
    ("http_responses/http_spot_market_historical_trades.json", "binance-trades",
     ("time", "price", "qty", "isBuyerMaker", "id")),
])
def test_binance_rest_trades(db: marketdb.MarketDB, name: str, preset: str,
                             keys: tuple[str, ...]) -> None:
    path = NT / "binance" / name
    res = db.ingest.write_ticks(path, preset=preset, symbol="BTCUSDT", auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text()))
    t, p, q, m, i = keys
    assert res.inserted == len(raw)
    want = pd.DataFrame({"symbol": "BTCUSDT", "ts": ms(raw[t]), "price": raw[p].astype(float),
                         "size": raw[q].astype(float),
                         "side": np.where(raw[m], -1, 1), "trade_id": raw[i].astype(str)})
    same(trades(db).sort_values(["ts", "trade_id"]), want.sort_values(["ts", "trade_id"]))


@pytest.mark.parametrize(("name", "preset", "id_key"), [
    ("ws_spot_agg_trade.json", "binance-aggtrades", "a"),
    ("ws_spot_trade.json", "binance-ws-trades", "t"),
])
def test_binance_stream_messages(db: marketdb.MarketDB, name: str, preset: str,
                                 id_key: str) -> None:
    path = NT / "binance/ws_messages" / name
    db.ingest.write_ticks(path, preset=preset, auto_register=True)
    d = json.loads(path.read_text())["data"]
    want = pd.DataFrame({"symbol": [d["s"]], "ts": ms(pd.Series([d["T"]])),
                         "price": [float(d["p"])], "size": [float(d["q"])],
                         "side": [-1 if d["m"] else 1], "trade_id": [str(d[id_key])]})
    same(trades(db), want)


# ---------------------------------------------------------- okx, coinbase, deribit
def test_okx_candles_and_trades(db: marketdb.MarketDB) -> None:
    path = NT / "okx/http_get_candlesticks_full.json"
    db.ingest.write_candles(path, preset="okx-candles", symbol="BTC-USDT", interval="1m",
                            auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text())["data"])
    want = pd.DataFrame({"symbol": "BTC-USDT", "ts": ms(raw[0]),
                         **{k: raw[i].astype(float) for k, i in
                            (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5),
                             ("notional", 7))}}).sort_values("ts")
    same(candles(db), want)
    path = NT / "okx/http_get_trades.json"
    db.ingest.write_ticks(path, preset="okx-trades", auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text())["data"])
    want = pd.DataFrame({"symbol": raw["instId"], "ts": ms(raw["ts"]),
                         "price": raw["px"].astype(float), "size": raw["sz"].astype(float),
                         "side": raw["side"].map({"buy": 1, "sell": -1}),
                         "trade_id": raw["tradeId"]}).sort_values("ts")
    same(trades(db), want)


def test_coinbase_candles(db: marketdb.MarketDB) -> None:
    path = NT / "coinbase/http_candles.json"
    db.ingest.write_candles(path, preset="coinbase-candles", symbol="BTC-USD", interval="1h",
                            auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text())["candles"])
    want = pd.DataFrame({"symbol": "BTC-USD",
                         "ts": pd.to_datetime(raw["start"].astype(int), unit="s", utc=True),
                         **{k: raw[k].astype(float) for k in ("open", "high", "low", "close",
                                                              "volume")}}).sort_values("ts")
    same(candles(db), want)


def test_deribit_trades(db: marketdb.MarketDB) -> None:
    path = NT / "deribit/http_get_last_trades.json"
    db.ingest.write_ticks(path, preset="deribit-trades", auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text())["result"]["trades"])
    want = pd.DataFrame({"symbol": raw["instrument_name"], "ts": ms(raw["timestamp"]),
                         "price": raw["price"], "size": raw["amount"],
                         "side": raw["direction"].map({"buy": 1, "sell": -1}),
                         "trade_id": raw["trade_id"]}).sort_values(["ts", "trade_id"])
    same(trades(db).sort_values(["ts", "trade_id"]), want)


# ------------------------------------------------------------------ tiingo
def test_tiingo_crypto_nested_price_data(db: marketdb.MarketDB) -> None:
    path = TI / "crypto_price_history__0.json"
    res = db.ingest.write_candles(path, preset="tiingo-crypto", interval="1d", auto_register=True)
    assert res.rejected == 0
    rows = [{"symbol": d["ticker"].upper(), **p} for d in json.loads(path.read_text())
            for p in d["priceData"]]
    raw = pd.DataFrame(rows)
    want = pd.DataFrame({"symbol": raw["symbol"], "ts": pd.to_datetime(raw["date"], utc=True),
                         "open": raw["open"], "high": raw["high"], "low": raw["low"],
                         "close": raw["close"], "volume": raw["volume"],
                         "notional": raw["volumeNotional"],
                         "trade_count": raw["tradesDone"]}).sort_values(["symbol", "ts"])
    same(candles(db), want)


def test_tiingo_crypto_top_of_book_as_quotes(db: marketdb.MarketDB) -> None:
    path = TI / "crypto_top_of_book__0.json"
    with pytest.raises(InvalidInput, match="crossed"):
        db.ingest.write_ticks(path, preset="tiingo-crypto-top", auto_register=True)
    db.ingest.write_ticks(path, preset="tiingo-crypto-top", auto_register=True, crossed="allow")
    rows = [{"symbol": d["ticker"].upper(), **p} for d in json.loads(path.read_text())
            for p in d["topOfBookData"]]
    raw = pd.DataFrame(rows)
    want = pd.DataFrame({"symbol": raw["symbol"],
                         "ts": pd.to_datetime(raw["quoteTimestamp"], utc=True),
                         "bid": raw["bidPrice"], "ask": raw["askPrice"]}).sort_values("symbol")
    same(quotes(db), want)
    assert trades(db).empty  # the last sale is not a trade at the quote's time


@pytest.mark.parametrize(("name", "interval"), [
    ("ticker_price__0.json", "1d"),
    ("ticker_price_with_date__0.json", "1d"),
    ("ticker_price_with_date_csv__0.csv", "1d"),
    ("ticker_price_pandas_daily_csv__0.csv", "1d"),
    ("ticker_price_pandas_daily_metric_name__0.json", "1d"),
    ("ticker_price_weekly__0.json", "1w"),
    ("ticker_price_pandas_weekly_multiple_tickers__1.json", "1w"),
    ("ticker_price_pandas_weekly_multiple_tickers_csv__1.csv", "1w"),
])
def test_tiingo_daily_and_weekly(db: marketdb.MarketDB, name: str, interval: str) -> None:
    path = TI / name
    db.ingest.write_candles(path, preset="tiingo-daily", symbol="X", interval=interval,
                            auto_register=True)
    raw = pd.read_csv(path) if name.endswith(".csv") else pd.DataFrame(json.loads(path.read_text()))
    day = pd.to_datetime(raw["date"].astype(str).str[:10], utc=True)
    want = pd.DataFrame({"symbol": "X", "interval": interval, "ts": day, "open": raw["open"],
                         "high": raw["high"], "low": raw["low"], "close": raw["close"],
                         "volume": raw["volume"]}).sort_values("ts")
    same(candles(db), want)


def test_tiingo_iex_intraday(db: marketdb.MarketDB) -> None:
    path = TI / "intraday_price__0.json"
    db.ingest.write_candles(path, preset="tiingo-iex", symbol="GOOGL", interval="30m",
                            auto_register=True)
    raw = pd.DataFrame(json.loads(path.read_text()))
    want = pd.DataFrame({"symbol": "GOOGL", "ts": pd.to_datetime(raw["date"], utc=True),
                         **{k: raw[k] for k in ("open", "high", "low", "close")}})
    same(candles(db), want)


# ------------------------------------------------------------------ polygon
@pytest.mark.parametrize("rel", [
    "v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json",
    "v2/aggs/ticker/AAPL/range/1/day/2005-04-02/2005-04-04.json",
    "v2/aggs/ticker/AAPL/prev.json",
    "v2/aggs/grouped/locale/us/market/stocks/2005-04-04_adjusted=true.json",
])
def test_polygon_aggregates(db: marketdb.MarketDB, rel: str) -> None:
    path = PG / rel
    db.ingest.write_candles(path, preset="polygon-aggs", interval="1d", auto_register=True)
    doc = json.loads(path.read_text())
    raw = pd.DataFrame(doc["results"])
    sym = raw["T"] if "T" in raw else doc["ticker"]
    # Polygon daily t is an instant in New York; the bar is that New York date.
    day = pd.to_datetime(raw["t"], unit="ms", utc=True).dt.tz_convert("America/New_York")
    want = pd.DataFrame({"symbol": sym, "ts": pd.to_datetime(day.dt.strftime("%Y-%m-%d"),
                                                             utc=True),
                         "open": raw["o"], "high": raw["h"], "low": raw["l"], "close": raw["c"],
                         "volume": raw["v"], "trade_count": raw["n"], "vwap": raw["vw"]})
    same(candles(db), want)


def test_polygon_grouped_daily_t_is_the_ticker_without_a_preset(db: marketdb.MarketDB) -> None:
    path = PG / "v2/aggs/grouped/locale/us/market/stocks/2005-04-04_adjusted=true.json"
    db.ingest.write_candles(path, interval="1d", tz="America/New_York", auto_register=True)
    got = candles(db)
    assert list(got["symbol"]) == ["GIK"]
    assert str(got["ts"][0].date()) == "2020-10-14"


@pytest.mark.parametrize(("rel", "table"), [
    ("v3/trades/AAPL_limit=2.json", "trades"),
    ("v3/quotes/AAPL.json", "quotes"),
    ("v3/quotes/AAPL_cursor=YXA9MTkyODgxNjYmYXM9JmxpbWl0PTEwJm9yZGVyPWRlc2Mm_trunc.json", "quotes"),
])
def test_polygon_trades_and_quotes(db: marketdb.MarketDB, rel: str, table: str) -> None:
    path = PG / rel
    preset = "polygon-trades" if table == "trades" else "polygon-quotes"
    db.ingest.write_ticks(path, preset=preset, symbol="AAPL", auto_register=True,
                          crossed="allow")
    raw = pd.DataFrame(json.loads(path.read_text())["results"])
    ts = pd.to_datetime(raw["sip_timestamp"], unit="ns", utc=True)
    if table == "trades":
        want = pd.DataFrame({"symbol": "AAPL", "ts": ts, "price": raw["price"],
                             "size": raw["size"].astype(float), "trade_id": raw["id"]})
        got = trades(db)
    else:
        want = pd.DataFrame({"symbol": "AAPL", "ts": ts, "bid": raw["bid_price"],
                             "ask": raw["ask_price"], "bid_size": raw["bid_size"].astype(float),
                             "ask_size": raw["ask_size"].astype(float)})
        got = quotes(db)
    # ns lost in the vendor's float round-trip: compare to the microsecond
    want["ts"] = want["ts"].dt.floor("us")
    got["ts"] = got["ts"].dt.floor("us")
    keys = ["ts", "price", "size"] if table == "trades" else ["ts", "bid", "ask"]  # ts ties: stable order
    same(got.sort_values(keys).reset_index(drop=True),
         want.sort_values(keys).reset_index(drop=True))


# ------------------------------------------------------------ fx tick files
def test_histdata_with_the_preset_only(db: marketdb.MarketDB) -> None:
    path = NT / "histdata/quote_tick_data.csv"
    res = db.ingest.write_ticks(path, preset="histdata", symbol="EURUSD", auto_register=True)
    raw = pd.read_csv(path, header=None, names=["ts", "bid", "ask", "v"], dtype={"ts": str})
    assert res.received == len(raw) == 9500
    ts = (pd.to_datetime(raw["ts"], format="%Y%m%d %H%M%S%f") + pd.Timedelta(hours=5)
          ).dt.tz_localize("UTC")
    got = quotes(db)
    assert got["ts"].min() == ts.min()
    assert len(got) + res.duplicates == len(raw)
    want = pd.DataFrame({"ts": ts, "bid": raw["bid"], "ask": raw["ask"]}).drop_duplicates(
        subset=["ts"], keep="first")
    assert set(got["ts"]) == set(want["ts"])


def test_headerless_csv_with_names_and_unknown_preset(db: marketdb.MarketDB,
                                                      tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown preset"):
        db.ingest.write_ticks(NT / "histdata/quote_tick_data.csv", preset="nope")
    path = NT / "binance/ADABTC-1m-2021-11-27.csv"
    res = db.ingest.write_candles(path, names=["ts", "open", "high", "low", "close", "volume"],
                                  symbol="ADABTC", interval="1m", ts_unit="ms",
                                  auto_register=True)
    assert res.inserted == len(pd.read_csv(path, header=None))


def _records(path: Path) -> Any:
    return json.loads(path.read_text())
