"""`db.quality` / `marketdb quality`: gaps against the calendar, duplicates, outliers,
vendor vs derived bars, staleness -- on data written through the ingest path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

import marketdb

UTC = dt.UTC


def test_quality_finds_what_is_wrong(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "ACME", "calendar": "XNYS"}])
    # Daily vendor bars for the first two weeks of March 2024, one session (03-06) missing.
    days = [d for d in pd.bdate_range("2024-03-01", "2024-03-15") if d.day != 6]
    db.ingest.write_candles(pd.DataFrame({
        "date": [d.strftime("%Y-%m-%d") for d in days], "open": 10.0, "high": 11.0,
        "low": 9.0, "close": 10.5, "volume": 100.0}), symbol="ACME", interval="1d",
        source="vendor")
    # Trades on 2024-03-15 (a session): one repeated print and one bad print.
    t0 = pd.Timestamp("2024-03-15 14:30", tz="UTC")
    rng = np.random.default_rng(7)
    px = list(np.round(10.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, 200))), 6))
    px[100] = 50.0  # a fat-finger print that comes straight back
    ts = [t0 + pd.Timedelta(seconds=i) for i in range(200)]
    trades = pd.DataFrame({"ts": ts, "price": px, "size": 1.0,
                           "trade_id": [str(i) for i in range(200)]})
    dup = trades.iloc[[10]].assign(seq=1)
    db.ingest.write_ticks(trades.assign(seq=0), symbol="ACME", source="feed")
    db.ingest.write_ticks(dup, symbol="ACME", source="feed")
    rep = db.quality.check("ACME", since="2024-03-01", until="2024-03-16", interval="1d",
                           source="vendor", now=dt.datetime(2024, 3, 16, tzinfo=UTC))
    gaps = rep.check("gaps")
    assert (gaps.status, gaps.count) == ("warn", 1)
    assert gaps.examples == [{"ts": "2024-03-06T00:00:00.000000000Z"}]
    dups = rep.check("duplicates")
    assert (dups.status, dups.count) == ("warn", 1)
    out = rep.check("outliers")
    assert (out.status, out.count) == ("warn", 1), out.examples
    assert out.examples[0]["price"] == 50.0
    vd = rep.check("vendor_vs_derived")
    assert vd.status == "warn"  # the vendor's 03-15 bar is not what the trades say
    assert vd.examples[0]["ts"].startswith("2024-03-15")
    assert rep.check("stale").status == "ok"
    later = db.quality.check("ACME", now=dt.datetime(2024, 3, 22, tzinfo=UTC))
    assert later.check("stale").status == "warn"
    assert later.check("stale").count == 4  # 03-18 .. 03-21; 03-22 opens at 13:30 UTC
    assert [s["symbol"] for s in db.quality.stale(now=dt.datetime(2024, 3, 22, tzinfo=UTC))] == [
        "ACME"]
    assert rep.as_dict()["ok"] is True


def test_clean_data_passes(db: marketdb.MarketDB) -> None:
    ts = pd.date_range("2024-01-01", periods=120, freq="1min", tz="UTC")
    db.ingest.write_ticks(pd.DataFrame({"ts": ts, "price": 100 + (pd.Series(range(120)) % 3),
                                        "size": 1.0}), symbol="BTCUSD", auto_register=True)
    rep = db.quality.check("BTCUSD", interval="1m", now=dt.datetime(2024, 1, 1, 2, tzinfo=UTC))
    assert {c.name: c.status for c in rep.checks} == {
        "gaps": "ok", "duplicates": "ok", "outliers": "ok", "vendor_vs_derived": "n/a",
        "stale": "ok"}
