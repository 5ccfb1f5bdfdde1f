"""Point-in-time adjusted bars read from PostgreSQL, and the provider cross-check."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.services.query import Query
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

UTC = dt.UTC
REALDATA = Path("/work/shared/realdata")
SESSIONS = [dt.date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 10, 11)]
CLOSES = [100.0, 102.0, 101.0, 51.0, 52.0, 50.0, 49.5, 50.0]
OPENS = [99.0, 101.0, 102.0, 50.5, 51.0, 51.5, 49.0, 49.6]
VOLUMES = [1000.0, 1100.0, 1200.0, 2600.0, 2400.0, 2500.0, 2000.0, 1800.0]
# Hand-computed (see test_query_adjust.py): price factors 0.49 / 0.98 / 1, volume x2 before the split.
ADJ_CLOSE = [49.0, 49.98, 49.49, 49.98, 50.96, 49.0, 49.5, 50.0]
ADJ_OPEN = [48.51, 49.49, 49.98, 49.49, 49.98, 50.47, 49.0, 49.6]
ADJ_VOLUME = [2000.0, 2200.0, 2400.0, 2600.0, 2400.0, 2500.0, 2000.0, 1800.0]
SPLIT_KNOWN = dt.datetime(2024, 1, 3, 21, 0, tzinfo=UTC)
DIV_KNOWN = dt.datetime(2024, 1, 8, 12, 0, tzinfo=UTC)


def _rel(actual: Any, expected: list[float]) -> float:
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    return float(np.max(np.abs(a - e) / np.abs(e)))


def _day(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)


@pytest.fixture
def adj_db(db: marketdb.MarketDB) -> marketdb.MarketDB:
    """XYZ (XNYS): 8 daily bars, a 2:1 split ex 2024-01-05 and a 1.00 dividend ex 2024-01-10."""
    with db.transaction() as conn:
        ensure_partitions(conn, "candles", dt.date(2023, 12, 20), dt.date(2024, 1, 15))
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="XYZ", calendar="XNYS").returning(t.instruments.c.id)
        ).scalar_one()
        conn.execute(sa.insert(t.candles), [
            {"instrument_id": iid, "interval": "1d", "ts": _day(d), "source": "trades", "open": o,
             "high": max(o, c) + 1, "low": min(o, c) - 1, "close": c, "volume": v}
            for d, o, c, v in zip(SESSIONS, OPENS, CLOSES, VOLUMES, strict=True)
        ])
        # Intraday bars: the last regular minute before the split (15:59 New York),
        # an after-hours minute that is still Jan 4 in New York (01:00 UTC Jan 5),
        # and the first minute after the dividend.
        conn.execute(sa.insert(t.candles), [
            {"instrument_id": iid, "interval": "1m", "ts": ts, "source": "trades", "open": c,
             "high": c, "low": c, "close": c, "volume": 10.0}
            for ts, c in (
                (dt.datetime(2024, 1, 4, 20, 59, tzinfo=UTC), 101.0),
                (dt.datetime(2024, 1, 5, 1, 0, tzinfo=UTC), 101.2),
                (dt.datetime(2024, 1, 10, 14, 30, tzinfo=UTC), 49.5),
            )
        ])
        conn.execute(sa.insert(t.corporate_actions), [
            {"instrument_id": iid, "action_type": "split", "ex_date": dt.date(2024, 1, 5),
             "ratio": 2.0, "amount": None, "known_at": SPLIT_KNOWN, "source": "polygon"},
            # The same split from a second source counts once.
            {"instrument_id": iid, "action_type": "split", "ex_date": dt.date(2024, 1, 5),
             "ratio": 2.0, "amount": None, "known_at": SPLIT_KNOWN + dt.timedelta(hours=1),
             "source": "tiingo"},
            {"instrument_id": iid, "action_type": "cash_dividend", "ex_date": dt.date(2024, 1, 10),
             "ratio": None, "amount": 1.0, "known_at": DIV_KNOWN, "source": "polygon"},
        ])
    return db


@pytest.mark.parametrize("transport", ["adbc", "copy"])
def test_adjusted_daily_bars_match_the_hand_computed_crsp_series(
    adj_db: marketdb.MarketDB, transport: str
) -> None:
    with Query(adj_db, transport=transport) as q:  # type: ignore[arg-type]
        adj = q.bars("XYZ", "1d", "2024-01-01", "2024-01-31", adjusted=True)
        raw = q.bars("XYZ", "1d", "2024-01-01", "2024-01-31")
    assert _rel(adj["close"], ADJ_CLOSE) <= 1e-9
    assert _rel(adj["open"], ADJ_OPEN) <= 1e-9
    assert _rel(adj["volume"], ADJ_VOLUME) <= 1e-9
    assert raw["close"].tolist() == CLOSES
    assert adj.index.equals(raw.index)


def test_as_of_before_the_split_gives_raw_prices(adj_db: marketdb.MarketDB) -> None:
    q = Query(adj_db)
    before = q.bars("XYZ", "1d", adjusted=True, as_of=SPLIT_KNOWN - dt.timedelta(minutes=1))
    raw = q.bars("XYZ", "1d")
    pd.testing.assert_frame_equal(before, raw)
    # On the evening of Jan 8 the split is known and ex; the dividend is known but not ex yet.
    mid = q.bars("XYZ", "1d", adjusted=True, as_of="2024-01-08T23:00:00Z")
    assert _rel(mid["close"], [50.0, 51.0, 50.5, 51.0, 52.0, 50.0, 49.5, 50.0]) <= 1e-9
    # A date as_of means "as known at the end of that day".
    assert q.bars("XYZ", "1d", adjusted=True, as_of="2024-01-10")["close"].tolist() == pytest.approx(
        ADJ_CLOSE, rel=1e-12
    )
    q.close()


def test_intraday_bars_use_the_exchange_date_and_a_reference_close_outside_the_window(
    adj_db: marketdb.MarketDB,
) -> None:
    with Query(adj_db) as q:
        df = q.bars("XYZ", "1m", "2024-01-04", "2024-01-10", adjusted=True)
    # Both bars are Jan 4 in New York: before the split and the dividend (0.49);
    # the reference close for the dividend (50.00 on Jan 9) is not in this window.
    assert _rel(df["close"], [101.0 * 0.49, 101.2 * 0.49, 49.5]) <= 1e-9
    assert _rel(df["volume"], [20.0, 20.0, 10.0]) <= 1e-9


def test_multi_symbol_adjusted_read(adj_db: marketdb.MarketDB) -> None:
    with adj_db.transaction() as conn:
        other = conn.execute(
            sa.insert(t.instruments).values(symbol="OTH").returning(t.instruments.c.id)
        ).scalar_one()
        conn.execute(sa.insert(t.candles).values(
            instrument_id=other, interval="1d", ts=_day(SESSIONS[0]), source="trades",
            open=5.0, high=5.0, low=5.0, close=5.0, volume=1.0))
    with Query(adj_db) as q:
        df = q.bars(["XYZ", "OTH"], "1d", adjusted=True, columns=["close"])
    assert df["symbol"].tolist() == ["OTH"] + ["XYZ"] * 8
    assert df["close"].iloc[0] == 5.0
    assert _rel(df["close"].iloc[1:], ADJ_CLOSE) <= 1e-9
    assert list(df.columns) == ["symbol", "close", "source"]


def test_corporate_actions_as_known(adj_db: marketdb.MarketDB) -> None:
    with Query(adj_db) as q:
        now = q.corporate_actions("XYZ")
        early = q.corporate_actions("XYZ", as_of="2024-01-06")
    assert now["action_type"].tolist() == ["cash_dividend", "split"]
    assert early["action_type"].tolist() == ["split"]


def _provider_bars(db: marketdb.MarketDB, source: str, factor: float) -> None:
    with db.transaction() as conn:
        iid = conn.execute(sa.select(t.instruments.c.id).where(t.instruments.c.symbol == "XYZ")).scalar_one()
        for d, o, c, v in zip(SESSIONS, OPENS, CLOSES, VOLUMES, strict=True):
            f = 0.49 if d < dt.date(2024, 1, 5) else (0.98 if d < dt.date(2024, 1, 10) else 1.0)
            vf = 2.0 if d < dt.date(2024, 1, 5) else 1.0
            conn.execute(sa.insert(t.candles).values(
                instrument_id=iid, interval="1d", ts=_day(d), source=source, open=o,
                high=max(o, c) + 1, low=min(o, c) - 1, close=c, volume=v,
                adj_open=o * f * factor, adj_high=(max(o, c) + 1) * f * factor,
                adj_low=(min(o, c) - 1) * f * factor, adj_close=c * f * factor, adj_volume=v * vf))


def test_check_adjustments_agrees_with_a_consistent_provider(adj_db: marketdb.MarketDB) -> None:
    _provider_bars(adj_db, "tiingo", 1.0)
    with Query(adj_db) as q:
        report = q.check_adjustments("XYZ")
    assert report.source == "tiingo"
    assert report.rows == 8
    assert report.ok, report.mismatches
    assert report.max_rel_diff < 1e-12
    assert "agree" in report.summary()


def test_check_adjustments_reports_each_difference(adj_db: marketdb.MarketDB) -> None:
    _provider_bars(adj_db, "tiingo", 1.01)  # provider prices 1% off on every bar
    with Query(adj_db) as q:
        report = q.check_adjustments("XYZ", source="tiingo")
    assert not report.ok
    assert set(report.mismatches["column"]) == {"adj_open", "adj_high", "adj_low", "adj_close"}
    assert len(report.mismatches) == 4 * 8
    assert report.max_rel_diff == pytest.approx(0.01, rel=1e-6)
    assert "32 values differ" in report.summary()


@pytest.mark.skipif(not REALDATA.exists(), reason="needs /work/shared/realdata")
def test_check_adjustments_on_real_tiingo_aapl_weekly(db: marketdb.MarketDB) -> None:
    """Tiingo's 2020 recording of AAPL weekly bars (after the 4:1 split of 2020-08-31).

    With only the split in corporate_actions, adjVolume (= 4 x volume) agrees
    exactly, and the prices differ by Tiingo's dividend factor (~0.964): the
    report must show exactly that.
    """
    path = REALDATA / "tiingo-python/bodies/ticker_price_pandas_weekly_multiple_tickers_csv__1.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    with db.transaction() as conn:
        ensure_partitions(conn, "candles", dt.date(2018, 1, 1), dt.date(2018, 1, 31))
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="AAPL", calendar="XNYS").returning(t.instruments.c.id)
        ).scalar_one()
        for r in rows:
            conn.execute(sa.insert(t.candles).values(
                instrument_id=iid, interval="1w", ts=_day(dt.date.fromisoformat(r["date"])),
                source="tiingo", open=float(r["open"]), high=float(r["high"]), low=float(r["low"]),
                close=float(r["close"]), volume=float(r["volume"]), adj_open=float(r["adjOpen"]),
                adj_high=float(r["adjHigh"]), adj_low=float(r["adjLow"]), adj_close=float(r["adjClose"]),
                adj_volume=float(r["adjVolume"]), div_cash=float(r["divCash"]),
                split_factor=float(r["splitFactor"])))
        conn.execute(sa.insert(t.corporate_actions).values(
            instrument_id=iid, action_type="split", ex_date=dt.date(2020, 8, 31), ratio=4.0,
            known_at=dt.datetime(2020, 7, 30, tzinfo=UTC), source="polygon"))
    with Query(db) as q:
        report = q.check_adjustments("AAPL", "1w", as_of="2020-10-20")
        early = q.check_adjustments("AAPL", "1w", as_of="2018-06-01")
    assert report.rows == 3
    assert set(report.mismatches["column"]) == {"adj_open", "adj_high", "adj_low", "adj_close"}
    ratio = report.mismatches["stored"] / report.mismatches["derived"]
    assert ratio.between(0.96, 0.97).all()  # the dividends Tiingo folded in since 2018
    # As of 2018 the split was unknown: derived = raw, and the volumes differ 4x.
    vol = early.mismatches[early.mismatches["column"] == "adj_volume"]
    assert (vol["stored"] / vol["derived"]).round(12).unique().tolist() == [4.0]
