"""Vendor bars are first-class: provider candles roll up into every coarser stored interval of
their source (real data from /work/shared/realdata; those tests skip when it is absent).

References are computed independently with pandas: fixed intervals by ``resample`` aligned
to the epoch, daily bars by the sessions of ``exchange_calendars`` (regular hours
``[open, close)``, labelled with the session date), weeks and months from those days.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import NotFound
from marketdb.store.schema import tables as t
from tests.bars.test_db import add_instrument

REAL = Path("/work/shared/realdata")
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="needs /work/shared/realdata")
OHLCV = ["open", "high", "low", "close", "volume"]
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def stored(db: marketdb.MarketDB, iid: int, interval: str, source: str) -> pd.DataFrame:
    c = t.candles
    with db.transaction() as conn:
        rows = conn.execute(
            sa.select(c.c.ts, c.c.open, c.c.high, c.c.low, c.c.close, c.c.volume, c.c.rolled_from)
            .where(c.c.instrument_id == iid, c.c.interval == interval, c.c.source == source)
            .order_by(c.c.ts)
        ).all()
    frame = pd.DataFrame(rows, columns=["ts", *OHLCV, "rolled_from"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")


def resampled(minutes: pd.DataFrame, rule: str) -> pd.DataFrame:
    return (
        minutes.set_index("ts")[OHLCV]
        .resample(rule, label="left", closed="left", origin="start_day" if rule == "1D" else "epoch")
        .agg(AGG)  # type: ignore[arg-type]
        .dropna(subset=["open"])
    )


def by_sessions(minutes: pd.DataFrame, calendar: str | None) -> pd.DataFrame:
    """Daily bars: each candle in the regular session whose [open, close) holds its start."""
    if calendar is None:
        return resampled(minutes, "1D")
    lo, hi = minutes["ts"].min(), minutes["ts"].max()
    cal = xcals.get_calendar(
        calendar, start=(lo - pd.Timedelta(days=5)).date(), end=(hi + pd.Timedelta(days=5)).date()
    )
    sched = cal.schedule
    label = pd.Series(pd.NaT, index=minutes.index, dtype="datetime64[ns, UTC]")
    for session, row in sched.iterrows():
        inside = (minutes["ts"] >= row["open"]) & (minutes["ts"] < row["close"])
        label[inside] = (
            pd.Timestamp(session).tz_localize("UTC")
            if pd.Timestamp(session).tzinfo is None
            else pd.Timestamp(session)
        )
    frame = minutes.assign(label=label).dropna(subset=["label"])
    return frame.groupby("label")[OHLCV].agg(AGG).rename_axis("ts")  # type: ignore[arg-type]


def weeks_months(daily: pd.DataFrame, kind: str) -> pd.DataFrame:
    idx = pd.DatetimeIndex(daily.index)
    if kind == "1w":
        key = (idx - pd.to_timedelta(idx.day_of_week, unit="D")).normalize()
    else:
        key = pd.DatetimeIndex([pd.Timestamp(year=d.year, month=d.month, day=1, tz="UTC") for d in idx])
    return daily.groupby(key)[OHLCV].agg(AGG).rename_axis("ts")  # type: ignore[arg-type]


def assert_same(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    assert len(want) > 0, what
    assert len(got) == len(want), (what, len(got), len(want))
    assert list(got.index) == list(want.index), what
    for col in OHLCV:
        assert got[col].tolist() == pytest.approx(want[col].tolist(), rel=1e-12, abs=0), (what, col)
    for col in ("open", "high", "low", "close"):
        assert got[col].tolist() == want[col].tolist(), (what, col)  # picked, so exact


def cme_minutes() -> pd.DataFrame:
    raw = pd.read_csv(REAL / "nautilus_trader/xcme/6EH4.XCME_1min_bars_20240101_20240131.csv")
    raw["ts"] = pd.to_datetime(raw["timestamp_utc"], utc=True)
    raw["volume"] = raw["volume"].astype(float)
    return raw[["ts", *OHLCV]]


@needs_real
def test_cme_minute_candles_roll_up_like_pandas_and_read_at_every_interval(db: marketdb.MarketDB) -> None:
    minutes = cme_minutes()
    iid = add_instrument(db, "6EH4", "CMES")
    res = db.ingest.write_candles(minutes, symbol="6EH4", interval="1m", source="xcme")
    assert res.inserted == len(minutes)
    for interval, rule in (("5m", "5min"), ("15m", "15min"), ("1h", "1h")):
        got = stored(db, iid, interval, "xcme")
        assert set(got["rolled_from"]) == {"1m"}
        assert_same(got, resampled(minutes, rule), interval)
    daily = by_sessions(minutes, "CMES")
    assert_same(stored(db, iid, "1d", "xcme"), daily, "1d")
    for kind in ("1w", "1mo"):
        got = stored(db, iid, kind, "xcme")
        assert set(got["rolled_from"]) == {"1d"}
        assert_same(got, weeks_months(daily, kind), kind)
    # Reads without a source find them and say which source they used.
    for interval, want in (
        ("1h", resampled(minutes, "1h")),
        ("1d", daily),
        ("1w", weeks_months(daily, "1w")),
    ):
        frame = db.query.bars("6EH4", interval)
        assert set(frame["source"]) == {"xcme"}, interval
        assert len(frame) == len(want), interval
    two_h = db.query.bars("6EH4", "2h")  # not stored: rolled up on demand from the vendor's 1h
    assert set(two_h["source"]) == {"xcme"}
    assert len(two_h) == len(resampled(minutes, "2h"))


@needs_real
def test_late_and_corrected_vendor_candles_keep_roll_ups_exact(db: marketdb.MarketDB) -> None:
    minutes = cme_minutes().iloc[:6000].reset_index(drop=True)
    iid = add_instrument(db, "6EH4", "CMES")
    order = list(range(len(minutes)))
    random.Random(5).shuffle(order)
    for part in (order[:2500], order[2500:4000], order[4000:]):  # out of order, late
        db.ingest.write_candles(minutes.iloc[sorted(part)], symbol="6EH4", interval="1m", source="xcme")
    fixed = minutes.copy()
    pick = random.Random(9).sample(range(len(minutes)), 40)
    fixed.loc[pick, "close"] = fixed.loc[pick, "close"] + 0.001
    fixed.loc[pick, "high"] = fixed.loc[pick, ["high", "close"]].max(axis=1)
    fixed.loc[pick, "volume"] = fixed.loc[pick, "volume"] + 7
    res = db.ingest.write_candles(
        fixed.iloc[sorted(pick)], symbol="6EH4", interval="1m", source="xcme", on_conflict="update"
    )
    assert res.updated == len(pick)
    for interval, rule in (("5m", "5min"), ("1h", "1h")):
        assert_same(stored(db, iid, interval, "xcme"), resampled(fixed, rule), interval)
    daily = by_sessions(fixed, "CMES")
    assert_same(stored(db, iid, "1d", "xcme"), daily, "1d")
    assert_same(stored(db, iid, "1w", "xcme"), weeks_months(daily, "1w"), "1w")


def binance_klines(path: Path) -> pd.DataFrame:
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
    else:
        rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame([r[:6] for r in rows], columns=["t", *OHLCV])
    frame["ts"] = pd.to_datetime(frame["t"].astype("int64"), unit="ms", utc=True)
    for col in OHLCV:
        frame[col] = frame[col].astype(float)
    return frame[["ts", *OHLCV]]


@needs_real
@pytest.mark.parametrize(
    ("symbol", "files"),
    [
        ("BTCUSDT", ["binance/http_responses/http_spot_market_klines.json"]),
        ("ADABTC", ["binance/ADABTC-1m-2021-11-27.csv", "binance/ADABTC-1m-2021-11-28.csv"]),
    ],
)
def test_binance_klines_roll_up_like_pandas(db: marketdb.MarketDB, symbol: str, files: list[str]) -> None:
    minutes = pd.concat([binance_klines(REAL / "nautilus_trader" / f) for f in files], ignore_index=True)
    iid = add_instrument(db, symbol, "24/7")
    db.ingest.write_candles(minutes, symbol=symbol, interval="1m", source="binance")
    for interval, rule in (("5m", "5min"), ("15m", "15min"), ("1h", "1h"), ("1d", "1D")):
        assert_same(stored(db, iid, interval, "binance"), resampled(minutes, rule), interval)
    daily = resampled(minutes, "1D")
    assert_same(stored(db, iid, "1w", "binance"), weeks_months(daily, "1w"), "1w")


@needs_real
@pytest.mark.parametrize("symbol", ["AAPL", "KO"])
def test_daily_csv_bars_roll_up_to_weeks_and_months(db: marketdb.MarketDB, symbol: str) -> None:
    path = REAL / "zipline/csvdir_daily" / f"{symbol}.csv"
    iid = add_instrument(db, symbol, "XNYS")
    db.ingest.write_candles(path, symbol=symbol, interval="1d", source="csv")
    daily = stored(db, iid, "1d", "csv")
    assert daily["rolled_from"].isna().all()  # as written
    daily = daily[OHLCV]
    for kind in ("1w", "1mo"):
        got = stored(db, iid, kind, "csv")
        assert set(got["rolled_from"]) == {"1d"}
        assert_same(got, weeks_months(daily, kind), kind)
    assert set(db.query.bars(symbol, "1mo")["source"]) == {"csv"}


@needs_real
def test_polygon_daily_aggregates_roll_up_to_a_week(db: marketdb.MarketDB) -> None:
    body = json.loads(
        (
            REAL / "polygon-client-python/mocks/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json"
        ).read_text()
    )
    iid = add_instrument(db, "AAPL", "XNYS")
    db.ingest.write_candles(body["results"], symbol="AAPL", interval="1d", source="polygon")
    daily = stored(db, iid, "1d", "polygon")[OHLCV]
    assert len(daily) == 2
    assert_same(stored(db, iid, "1w", "polygon"), weeks_months(daily, "1w"), "1w")
    assert_same(stored(db, iid, "1mo", "polygon"), weeks_months(daily, "1mo"), "1mo")


def _minutes(start: str, n: int, base: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    rng = random.Random(n)
    opens = [base + rng.randint(-50, 50) / 100 for _ in range(n)]
    closes = [o + rng.randint(-20, 20) / 100 for o in opens]
    return pd.DataFrame(
        {
            "ts": ts,
            "open": opens,
            "high": [max(o, c) + 0.05 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) - 0.05 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [float(rng.randint(1, 100)) for _ in range(n)],
        }
    )


def test_a_vendors_own_coarser_candles_win_over_roll_ups(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "ZZ", "24/7")
    minutes = _minutes("2024-05-01 00:00", 180)
    db.ingest.write_candles(minutes.iloc[:120], symbol="ZZ", interval="1m", source="acme")
    hourly = resampled(minutes, "1h").reset_index()
    hourly["close"] = hourly["close"] + 1.0
    hourly["high"] = hourly[["high", "close"]].max(axis=1)
    db.ingest.write_candles(hourly, symbol="ZZ", interval="1h", source="acme")  # replaces the roll-ups
    db.ingest.write_candles(minutes.iloc[120:], symbol="ZZ", interval="1m", source="acme")  # late
    got = stored(db, iid, "1h", "acme")
    assert got["rolled_from"].isna().all()
    assert got["close"].tolist() == hourly["close"].tolist()
    assert_same(stored(db, iid, "5m", "acme"), resampled(minutes, "5min"), "5m")


def test_precedence_trades_first_then_the_preferred_vendor(db: marketdb.MarketDB) -> None:
    add_instrument(db, "PP", "24/7")
    minutes = _minutes("2024-05-01 00:00", 120)
    db.ingest.write_candles(minutes, symbol="PP", interval="1m", source="zeta")
    db.ingest.write_candles(
        minutes.assign(close=minutes["close"]), symbol="PP", interval="1m", source="polygon"
    )
    assert set(db.query.bars("PP", "1h")["source"]) == {"polygon"}  # listed vendor before unlisted
    assert set(db.query.bars("PP", "3h")["source"]) == {"polygon"}  # on-demand roll-up too
    assert set(db.query.bars("PP", "1h", source="zeta")["source"]) == {"zeta"}
    ts = [dt.datetime(2024, 5, 1, 0, 0, 1, tzinfo=dt.UTC)]
    db.ingest.write_ticks(pd.DataFrame({"ts": ts, "price": [100.0], "size": [1.0]}), symbol="PP")
    first = db.query.bars("PP", "1h")
    assert first["source"].iloc[0] == "trades"  # bars derived from trades come first


def test_a_read_at_an_interval_the_data_cannot_give_says_so(db: marketdb.MarketDB) -> None:
    add_instrument(db, "DD", "XNYS")
    days = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-03-04", "2024-03-05"], utc=True),
            "open": [10.0, 11.0],
            "high": [11.0, 12.0],
            "low": [9.0, 10.0],
            "close": [10.5, 11.5],
            "volume": [100.0, 200.0],
        }
    )
    db.ingest.write_candles(days, symbol="DD", interval="1d", source="csv")
    with pytest.raises(NotFound) as err:
        db.query.bars("DD", "1h")
    assert "1d from csv" in err.value.message
    with pytest.raises(NotFound):
        db.query.bars("DD", "1d", source="polygon")
    assert len(db.query.bars("DD", "1d")) == 2
    assert db.query.bars("DD", "1d", "2023-01-01", "2023-02-01").empty  # an empty range is an answer
