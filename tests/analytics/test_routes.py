"""Reads routed to ClickHouse return the frames PostgreSQL returns."""

from __future__ import annotations

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import marketdb
from marketdb.errors import ConfigurationError, InvalidInput
from marketdb.services.analytics import Analytics
from marketdb.testing import synthetic_trades


@pytest.fixture
def routed(db: marketdb.MarketDB, analytics: Analytics) -> marketdb.MarketDB:
    """``db`` with two stocks and a 24/7 coin, synced, and ``db.analytics`` pointing at the test tier."""
    trades = synthetic_trades(
        ["AAA", "BBB", "BTC"],
        start="2024-03-04",
        days=3,
        trades_per_day=3_000,
        calendars={"BTC": "24/7"},
        seed=11,
    )
    db.ingest.write_ticks(trades, auto_register=True)
    db.__dict__["analytics"] = analytics
    analytics.sync()
    assert analytics.verify().ok
    return db


def _both(read: object, **kw: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert callable(read)
    return read(route="postgres", **kw), read(route="clickhouse", **kw)


def test_intraday_bars_from_scratch_equal_postgres(routed: marketdb.MarketDB) -> None:
    for symbols in ("AAA", ["AAA", "BBB", "BTC"]):
        for interval in ("1m", "5m", "1h"):
            pg, ch = _both(routed.query.bars, symbols=symbols, interval=interval, source="trades")
            assert len(pg) > 0
            assert_frame_equal(ch, pg, check_exact=False, rtol=1e-9)


def test_daily_cross_section_equals_postgres(routed: marketdb.MarketDB) -> None:
    pg, ch = _both(
        routed.query.bars, symbols=["AAA", "BBB", "BTC"], interval="1d", start="2024-03-01", end="2024-04-01"
    )
    assert len(pg) >= 9
    assert_frame_equal(ch, pg, check_exact=False, rtol=1e-9)


def test_tick_reads_equal_postgres(routed: marketdb.MarketDB) -> None:
    for symbols in ("BBB", ["AAA", "BTC"]):
        pg, ch = _both(routed.query.ticks, symbols=symbols, start="2024-03-05", end="2024-03-06")
        assert len(pg) > 0
        assert_frame_equal(ch, pg)
    pg, ch = _both(routed.query.ticks, symbols="AAA", columns=["price", "size"], output="polars")
    assert pg.equals(ch)  # type: ignore[attr-defined]


def test_auto_routes_only_when_in_sync(routed: marketdb.MarketDB) -> None:
    an = routed.analytics
    assert an is not None
    aaa = routed.query.bars("AAA", "1m", source="trades", route="auto")
    assert_frame_equal(aaa, routed.query.bars("AAA", "1m", source="trades", route="postgres"))
    ids = [int(r[0]) for r in an.ch.rows(f"SELECT DISTINCT instrument_id FROM `{an.database}`.trades")]
    assert an.in_sync("trades", ids)
    more = synthetic_trades(["AAA"], start="2024-03-07", days=1, trades_per_day=50, seed=5)
    routed.ingest.write_ticks(more)
    assert not an.in_sync("trades", ids)
    # auto falls back to PostgreSQL, which has the new trades.
    fresh = routed.query.ticks("AAA", route="auto")
    assert len(fresh) == 9_050
    assert len(routed.query.ticks("AAA", route="clickhouse")) == 9_000  # asked for: the tier as it is


def test_unroutable_and_unconfigured(routed: marketdb.MarketDB, db_url: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be answered by ClickHouse"):
        routed.query.bars("AAA", "1m", columns=["buy_volume"], source="trades", route="clickhouse")
    with pytest.raises(InvalidInput, match="adjusted bars are not routable"):
        routed.query.bars("AAA", "1d", adjusted=True, route="clickhouse")
    with pytest.raises(InvalidInput, match="route="):
        routed.query.bars("AAA", "1m", route="duckdb")  # type: ignore[arg-type]
    plain = marketdb.connect(db_url, redis_url=None, clickhouse_url=None)
    try:
        assert plain.analytics is None
        with pytest.raises(ConfigurationError, match="CLICKHOUSE_URL"):
            plain.query.bars("AAA", "1m", route="clickhouse")
        assert len(plain.query.bars("AAA", "1m", source="trades", route="auto")) > 0
    finally:
        plain.close()
