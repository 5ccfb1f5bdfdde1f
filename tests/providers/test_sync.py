"""Provider adapters and `sync` against a local server replaying recorded responses.

Pagination (Polygon's recorded next_url pages; Binance klines by start time),
429 with Retry-After, a 500 mid-sync followed by a resume with no duplicates and
no gaps, bad and missing keys, keys from sealed user secrets, no requests for
stored ranges or ranges without a session."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import marketdb
from marketdb.cli import sync as sync_cmd
from marketdb.errors import ConfigurationError
from marketdb.services.accounts import Accounts, KeyRing
from marketdb.services.providers import Providers
from marketdb.services.providers.binance import Binance

from .replay import Seen, serve

REAL = Path("/work/shared/realdata")
NT = REAL / "nautilus_trader/binance/http_responses"
TI = REAL / "tiingo-python/bodies"
PG = REAL / "polygon-client-python/mocks"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="shared real-data corpus not available")
UTC = dt.UTC


def frame(db: marketdb.MarketDB, sql: str) -> pd.DataFrame:
    with db.raw() as conn:
        cur = conn.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description or []])


def state(db: marketdb.MarketDB) -> list[tuple[Any, ...]]:
    with db.raw() as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT provider, kind, interval, range_start, range_end, rows "
            "FROM provider_sync_ranges ORDER BY range_start").fetchall()]


def utc_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, UTC)


# ------------------------------------------------------------------ binance
@needs_real
def test_binance_klines_paginate_survive_a_500_and_resume(db: marketdb.MarketDB) -> None:
    recorded = json.loads((NT / "http_spot_market_klines.json").read_text())
    opens = [int(k[0]) for k in recorded]
    since, until = utc_ms(opens[0]), utc_ms(opens[-1] + 60_000)
    broken = {"on": True}

    def klines(q: dict[str, str], h: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        lo, hi, limit = int(q["startTime"]), int(q["endTime"]), int(q["limit"])
        return 200, {}, [k for k in recorded if lo <= int(k[0]) <= hi][:limit]

    def fault(seen: Seen) -> tuple[int, dict[str, str], Any] | None:
        if broken["on"] and int(seen.query.get("startTime", 0)) > opens[2]:
            return 500, {}, {"msg": "internal error"}
        return None

    with serve() as replay:
        replay.route("/api/v3/klines", klines)
        replay.faults.append(fault)
        waits: list[float] = []

        def adapter() -> Binance:
            p = db.providers.open("binance", base_url=replay.url, max_retries=2, backoff=0.01,
                                  sleep=waits.append)
            assert isinstance(p, Binance)
            p.limit = 3  # three klines a page: pagination over the ten recorded
            return p

        first = db.providers.sync(adapter(), ["BTCUSDT"], kind="bars", interval="1m",
                                  since=since, until=until)
        assert [i.status for i in first.items] == ["failed"]
        assert "HTTP 500" in (first.items[0].error or "")
        assert first.requests == 1 + 3  # a page, then the 500 and its two retries
        assert len(waits) == 2
        assert state(db) == [("binance", "bars", "1m", since, utc_ms(opens[2] + 1), 3)]

        broken["on"] = False
        replay.requests.clear()
        second = db.providers.sync(adapter(), ["BTCUSDT"], kind="bars", interval="1m",
                                   since=since, until=until)
        item = second.items[0]
        assert (item.status, item.fetched, item.duplicates) == ("ok", 7, 0)
        assert int(replay.requests[0].query["startTime"]) == opens[2] + 1  # resumed, not restarted
        assert state(db) == [("binance", "bars", "1m", since, until, 10)]  # one range: no gap

        replay.requests.clear()
        third = db.providers.sync(adapter(), ["BTCUSDT"], kind="bars", interval="1m",
                                  since=since, until=until)
        assert third.items[0].status == "skipped"
        assert replay.requests == []

    got = frame(db, "SELECT ts, open, high, low, close, volume, notional, trade_count "
                    "FROM candles WHERE source = 'binance' AND rolled_from IS NULL ORDER BY ts")
    raw = pd.DataFrame(recorded)
    want = pd.DataFrame({"ts": pd.to_datetime(raw[0], unit="ms", utc=True),
                         "open": raw[1].astype(float), "high": raw[2].astype(float),
                         "low": raw[3].astype(float), "close": raw[4].astype(float),
                         "volume": raw[5].astype(float), "notional": raw[7].astype(float),
                         "trade_count": raw[8]})
    got["ts"] = pd.to_datetime(got["ts"], utc=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@needs_real
def test_binance_agg_trades_by_from_id(db: marketdb.MarketDB) -> None:
    recorded = json.loads((NT / "http_spot_market_agg_trades.json").read_text())
    times = [int(t["T"]) for t in recorded]

    def agg(q: dict[str, str], h: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        limit = int(q["limit"])
        if "fromId" in q:
            rows = [t for t in recorded if int(t["a"]) >= int(q["fromId"])]
        else:
            rows = [t for t in recorded if int(q["startTime"]) <= int(t["T"]) <= int(q["endTime"])]
        return 200, {}, rows[:limit]

    with serve() as replay:
        replay.route("/api/v3/aggTrades", agg)
        p = db.providers.open("binance", base_url=replay.url)
        assert isinstance(p, Binance)
        p.limit = 2
        rep = db.providers.sync(p, ["BTCUSDT"], kind="trades", since=utc_ms(times[0]),
                                until=utc_ms(times[-1] + 1))
        assert rep.items[0].status == "ok"
        assert any("fromId" in r.query for r in replay.requests)
    got = frame(db, "SELECT trade_id, price, size, side FROM trades ORDER BY ts, seq")
    assert list(got["trade_id"]) == [str(t["a"]) for t in recorded]
    assert list(got["side"]) == [-1 if t["m"] else 1 for t in recorded]
    assert list(got["price"]) == [float(t["p"]) for t in recorded]


# ------------------------------------------------------------------ polygon
@needs_real
def test_polygon_quotes_follow_the_recorded_next_url(db: marketdb.MarketDB) -> None:
    page1 = json.loads((PG / "v3/quotes/AAPL.json").read_text())
    page2 = json.loads((PG / "v3/quotes/AAPL_cursor=YXA9MTkyODgxNjYmYXM9JmxpbWl0PTEwJm9yZGVyPWRl"
                           "c2Mm_trunc.json").read_text())
    key = "pk-test-0123456789"
    with serve() as replay:
        def quotes(q: dict[str, str], h: dict[str, str]) -> tuple[int, dict[str, str], Any]:
            if "cursor" in q:
                return 200, {}, page2
            body = dict(page1)
            body["next_url"] = page1["next_url"]  # the vendor host: the client keeps its base URL
            return 200, {}, body

        replay.route("/v3/quotes/AAPL", quotes)
        rep = db.providers.sync("polygon", ["AAPL"], kind="quotes", since="2022-05-10",
                                until="2022-05-11", api_key=key, base_url=replay.url)
        assert rep.items[0].status == "ok"
        assert rep.requests == 2
        assert [r.query.get("apiKey") for r in replay.requests] == [key, key]
        assert "cursor" in replay.requests[1].query
    raw = pd.DataFrame(page1["results"] + page2["results"])
    got = frame(db, "SELECT bid, ask, bid_size, ask_size FROM quotes")
    want = raw[["bid_price", "ask_price", "bid_size", "ask_size"]].set_axis(
        ["bid", "ask", "bid_size", "ask_size"], axis=1).astype(float)
    key_cols = ["bid", "ask", "bid_size", "ask_size"]
    assert sorted(map(tuple, got[key_cols].to_numpy())) == sorted(
        map(tuple, want.to_numpy()))
    assert state(db)[0][3:5] == (dt.datetime(2022, 5, 10, tzinfo=UTC),
                                 dt.datetime(2022, 5, 11, tzinfo=UTC))


@needs_real
def test_polygon_daily_aggs_reference_and_actions(db: marketdb.MarketDB) -> None:
    aggs = json.loads((PG / "v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json")
                      .read_text())
    with serve() as replay:
        replay.route("/v2/aggs/ticker/AAPL/range/1/day/1112313600000/1112659199999", aggs)
        replay.route("/v3/reference/tickers/AAPL",
                     json.loads((PG / "v3/reference/tickers/AAPL.json").read_text()))
        splits = json.loads((PG / "v3/reference/splits.json").read_text())
        divs = json.loads((PG / "v3/reference/dividends.json").read_text())
        replay.route("/v3/reference/splits", {"results": [
            r for r in splits["results"] if r["ticker"] == "GOOGL"]})
        replay.route("/v3/reference/dividends", {"results": divs["results"][:1]})
        kw: dict[str, Any] = {"api_key": "k", "base_url": replay.url}
        bars = db.providers.sync("polygon", ["AAPL"], kind="bars", since="2005-04-01",
                                 until="2005-04-05", **kw)
        assert bars.items[0].fetched == 2
        ref = db.providers.sync("polygon", ["AAPL"], kind="reference", **kw)
        assert ref.items[0].inserted + ref.items[0].duplicates + ref.items[0].fetched >= 1
        act = db.providers.sync("polygon", ["GOOGL"], kind="actions", since="2000-01-01",
                                until="2026-01-01", **kw)
        assert act.items[0].rejected == 0
    got = frame(db, "SELECT ts::date AS d, close FROM candles "
                    "WHERE source = 'polygon' AND rolled_from IS NULL ORDER BY 1")
    assert [str(d) for d in got["d"]] == ["2005-04-01", "2005-04-04"]  # New York dates, DST
    assert list(got["close"]) == [r["c"] for r in aggs["results"]]
    inst = frame(db, "SELECT cik, composite_figi FROM instruments WHERE symbol = 'AAPL'")
    meta = json.loads((PG / "v3/reference/tickers/AAPL.json").read_text())["results"]
    assert tuple(inst.iloc[0]) == (meta["cik"], meta["composite_figi"])
    acts = frame(db, "SELECT action_type, ratio FROM corporate_actions ORDER BY ex_date")
    assert ("split", 20.0) in list(map(tuple, acts.to_numpy()))


# ------------------------------------------------------------------- tiingo
@needs_real
def test_tiingo_429_retry_after_then_nothing_to_fetch(db: marketdb.MarketDB) -> None:
    body = json.loads((TI / "ticker_price_pandas_daily_equivalent_requesting_json_or_csv__0.json")
                      .read_text())
    key = "tiingo-secret-value-42"
    calls = {"n": 0}

    def prices(q: dict[str, str], h: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, {"Retry-After": "7"}, {"detail": "slow down"}
        return 200, {}, body

    with serve() as replay:
        replay.route("/tiingo/daily/googl/prices", prices)
        waits: list[float] = []
        p = db.providers.open("tiingo", api_key=key, base_url=replay.url, sleep=waits.append)
        rep = db.providers.sync(p, ["GOOGL"], kind="bars", since="2018-01-05", until="2018-01-20")
        assert waits == [7.0]
        assert rep.requests == 2
        assert rep.items[0].fetched == 10
        assert all(r.headers.get("Authorization") == f"Token {key}" for r in replay.requests)
        assert not any(key in r.raw for r in replay.requests)  # never in a URL
        replay.requests.clear()
        again = db.providers.sync(db.providers.open("tiingo", api_key=key, base_url=replay.url),
                                  ["GOOGL"], kind="bars", since="2018-01-05", until="2018-01-20")
        assert again.requests == 0
        assert replay.requests == []
    got = frame(db, "SELECT ts::date AS d, close, adj_close, div_cash, split_factor FROM candles "
                    "WHERE source = 'tiingo' AND rolled_from IS NULL ORDER BY 1")
    raw = pd.DataFrame(body)
    assert [str(d) for d in got["d"]] == list(raw["date"].str[:10])
    assert list(got["adj_close"]) == list(raw["adjClose"])
    assert list(got["close"]) == list(raw["close"])


def test_a_range_without_sessions_makes_no_request(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "IBM", "calendar": "XNYS"}])
    with serve() as replay:
        rep = db.providers.sync("tiingo", ["IBM"], kind="bars", since="2018-01-06",
                                until="2018-01-08", api_key="k", base_url=replay.url)
        assert replay.requests == []
    assert rep.items[0].status == "skipped"
    assert rep.items[0].skipped_ranges == 1
    assert len(state(db)) == 1


def test_bad_key_names_the_provider_and_where_to_set_it(db: marketdb.MarketDB,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with serve() as replay:
        replay.route("/tiingo/daily/aapl/prices",
                     lambda q, h: (401, {}, {"detail": "Invalid token."}))
        with pytest.raises(ConfigurationError) as err:
            db.providers.sync("tiingo", ["AAPL"], since="2024-01-02", until="2024-01-04",
                              api_key="wrong-key-xyz", base_url=replay.url)
        text = f"{err.value}"
        assert "tiingo" in text
        assert "tiingo_api_key" in text
        assert "TIINGO_API_KEY" in text
        assert "wrong-key-xyz" not in text
        monkeypatch.delenv("TIINGO_API_KEY", raising=False)
        replay.requests.clear()
        with pytest.raises(ConfigurationError, match="tiingo needs an API key") as err2:
            db.providers.sync("tiingo", ["AAPL"], base_url=replay.url)
        assert "TIINGO_API_KEY" in str(err2.value)
        assert replay.requests == []
        monkeypatch.setenv("TIINGO_API_KEY", "from-env")
        replay.route("/tiingo/daily/aapl/prices", lambda q, h: (200, {}, []))
        db.providers.sync("tiingo", ["AAPL"], since="2024-01-02", until="2024-01-04",
                          base_url=replay.url)
        assert replay.requests[-1].headers["Authorization"] == "Token from-env"


def test_key_from_the_users_sealed_secret(db: marketdb.MarketDB,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    acc = Accounts(db, keyring=KeyRing({"k1": os.urandom(32)}, "k1"))
    db.__dict__["accounts"] = acc  # the client's cached service, with a test key ring
    acc.create_user("alice", "alice@example.com", "correct horse battery staple")
    acc.set_secret("alice", "polygon_api_key", "sealed-polygon-key")
    providers = Providers(db, ingest=db.ingest, accounts=acc)
    assert providers.api_key("polygon", user="alice") == "sealed-polygon-key"
    with serve() as replay:
        replay.route("/v3/reference/tickers/ZZZ", {"results": {"ticker": "ZZZ", "name": "Z"}})
        db.providers.sync("polygon", ["ZZZ"], kind="reference", user="alice",
                          base_url=replay.url)
        assert replay.requests[0].query["apiKey"] == "sealed-polygon-key"


# ------------------------------------------------------------------- kraken
def test_kraken_trades_cursor_and_rate_limit_in_the_body(db: marketdb.MarketDB) -> None:
    # No recorded Kraken REST responses exist in the corpus: these follow Kraken's documented
    # shape ({"error": [], "result": {PAIR: [[price, volume, time, side, type, misc, id]],
    # "last": ns}}).
    t0 = 1_700_000_000
    rows = [[f"{100 + i}.0", "0.5", t0 + i + 0.25, "b" if i % 2 else "s", "l", "", 1000 + i]
            for i in range(6)]
    calls = {"n": 0}

    def trades(q: dict[str, str], h: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            return 200, {}, {"error": ["EAPI:Rate limit exceeded"]}
        since = int(q["since"])
        page = [r for r in rows if int(float(r[2]) * 1e9) > since][:2]
        last = str(int(float(page[-1][2]) * 1e9)) if page else q["since"]
        return 200, {}, {"error": [], "result": {"XXBTZUSD": page, "last": last}}

    with serve() as replay:
        replay.route("/0/public/Trades", trades)
        waits: list[float] = []
        p = db.providers.open("kraken", base_url=replay.url, sleep=waits.append)
        rep = db.providers.sync(p, ["XBTUSD"], kind="trades",
                                since=dt.datetime.fromtimestamp(t0, UTC),
                                until=dt.datetime.fromtimestamp(t0 + 10, UTC))
        assert rep.items[0].status == "ok"
        assert len(waits) == 1
    got = frame(db, "SELECT trade_id, price, side FROM trades ORDER BY ts")
    assert list(got["trade_id"]) == [str(r[6]) for r in rows]
    assert list(got["side"]) == [1 if r[3] == "b" else -1 for r in rows]


# ---------------------------------------------------------------------- cli
@needs_real
def test_cli_sync_and_quality(db: marketdb.MarketDB, db_url: str) -> None:
    recorded = json.loads((NT / "http_spot_market_klines.json").read_text())
    app = typer.Typer()
    app.command("sync")(sync_cmd.sync)
    app.command("quality")(sync_cmd.quality)
    since = utc_ms(int(recorded[0][0])).isoformat()
    until = utc_ms(int(recorded[-1][0]) + 60_000).isoformat()
    with serve() as replay:
        replay.route("/api/v3/klines", lambda q, h: (200, {}, [
            k for k in recorded if int(q["startTime"]) <= int(k[0]) <= int(q["endTime"])]))
        args = ["sync", "binance", "BTCUSDT", "--kind", "bars", "--interval", "1m", "--since",
                since, "--until", until, "--base-url", replay.url, "--url", db_url, "--json"]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["fetched"] == 10
        assert out["items"][0]["status"] == "ok"
        r2 = CliRunner().invoke(app, args)
        assert json.loads(r2.stdout)["requests"] == 0
    q = CliRunner().invoke(app, ["quality", "BTCUSDT", "--interval", "1m", "--url", db_url,
                                 "--json"])
    assert q.exit_code == 0, q.output
    rep = json.loads(q.stdout)
    assert {c["check"]: c["status"] for c in rep["checks"]}["gaps"] == "ok"
