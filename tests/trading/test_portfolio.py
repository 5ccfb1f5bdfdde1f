"""Positions marked to market and portfolio snapshots, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.trading import Trading
from marketdb.store import timeseries
from marketdb.store.schema import tables as t

D = Decimal
UTC = dt.UTC
T0 = dt.datetime(2025, 7, 21, 9, 15, tzinfo=UTC)


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    tr = db.trading
    tr.seed_examples()
    return tr


def instrument_id(db: marketdb.MarketDB, symbol: str) -> int:
    with db.transaction() as conn:
        return conn.execute(
            sa.select(t.instruments.c.id).where(t.instruments.c.symbol == symbol)
        ).scalar_one()


def add_trade(db: marketdb.MarketDB, symbol: str, ts: dt.datetime, price: float) -> None:
    with db.transaction() as conn:
        timeseries.ensure_partitions(conn, "trades", ts, ts)
        conn.execute(
            sa.insert(t.trades).values(instrument_id=instrument_id(db, symbol), ts=ts, price=price, size=1.0)
        )


def add_candle(
    db: marketdb.MarketDB, symbol: str, ts: dt.datetime, close: float, interval: str = "1d"
) -> None:
    with db.transaction() as conn:
        timeseries.ensure_partitions(conn, "candles", ts, ts)
        conn.execute(
            sa.insert(t.candles).values(
                instrument_id=instrument_id(db, symbol),
                interval=interval,
                ts=ts,
                source="test",
                open=close,
                high=close,
                low=close,
                close=close,
                volume=1.0,
            )
        )


def fill(
    trading: Trading, strategy: str, symbol: str, side: str, qty: str, price: str, commission: str = "0"
) -> None:
    order = trading.submit_order(strategy, symbol, side, qty)
    trading.record_fill(order["id"], qty, price, commission=commission)


def test_latest_price_prefers_the_more_recent_of_trade_and_candle(
    db: marketdb.MarketDB, trading: Trading
) -> None:
    assert trading.latest_price("NIFTY") is None
    add_candle(db, "NIFTY", T0 - dt.timedelta(days=1), 22000.5)
    assert trading.latest_price("NIFTY") == (D("22000.5"), T0 - dt.timedelta(days=1), "candle:1d")
    add_trade(db, "NIFTY", T0, 22010.25)
    add_trade(db, "NIFTY", T0 - dt.timedelta(minutes=1), 1.0)
    assert trading.latest_price("NIFTY") == (D("22010.25"), T0, "trade")
    add_candle(db, "NIFTY", T0 + dt.timedelta(minutes=5), 22020.0, "1m")
    assert trading.latest_price("NIFTY")[2] == "candle:1m"  # type: ignore[index]


def test_mark_to_market_sets_current_price_and_unrealized(db: marketdb.MarketDB, trading: Trading) -> None:
    fill(trading, "ema_crossover", "NIFTY", "buy", "2", "22000")
    fill(trading, "ema_crossover", "BANKNIFTY", "sell", "1", "50000")
    add_trade(db, "NIFTY", T0, 22010.25)
    marked = {m["symbol"]: m for m in trading.mark_to_market()}
    assert marked["NIFTY"]["current_price"] == D("22010.25")
    assert marked["NIFTY"]["unrealized_pnl"] == D("20.50")
    assert marked["NIFTY"]["mark_source"] == "trade"
    assert marked["BANKNIFTY"]["mark_source"] is None  # no price anywhere: left as is
    assert marked["BANKNIFTY"]["current_price"] is None
    given = {m["symbol"]: m for m in trading.mark_to_market(prices={"BANKNIFTY": "49000"})}
    assert given["BANKNIFTY"]["unrealized_pnl"] == D(1000)
    assert given["BANKNIFTY"]["mark_source"] == "given"
    # A later fill keeps unrealized consistent with the stored mark.
    fill(trading, "ema_crossover", "NIFTY", "buy", "1", "22030")
    position = trading.position("ema_crossover", "NIFTY")
    assert position is not None
    assert position["unrealized_pnl"] == D("22010.25") * 3 - D(66030)


def test_stops_and_targets(trading: Trading) -> None:
    fill(trading, "ema_crossover", "NIFTY", "buy", "1", "22000")
    pos = trading.set_stops("ema_crossover", "NIFTY", stop_loss="21900", target="22300")
    assert (pos["stop_loss_price"], pos["target_price"]) == (D(21900), D(22300))
    pos = trading.set_stops("ema_crossover", "NIFTY", stop_loss=None)
    assert (pos["stop_loss_price"], pos["target_price"]) == (None, D(22300))
    with pytest.raises(InvalidInput, match="greater than zero"):
        trading.set_stops("ema_crossover", "NIFTY", target="-1")
    with pytest.raises(NotFound, match="no open position"):
        trading.set_stops("support_resistance", "NIFTY", target="1")


def test_portfolio_valuation_snapshot_and_series(db: marketdb.MarketDB, trading: Trading) -> None:
    fill(trading, "ema_crossover", "NIFTY", "buy", "2", "100", commission="1")
    fill(trading, "ema_crossover", "NIFTY", "sell", "1", "110", commission="1")
    fill(trading, "support_resistance", "BANKNIFTY", "sell", "3", "200")
    add_trade(db, "NIFTY", T0, 120.0)
    add_trade(db, "BANKNIFTY", T0, 190.0)
    snap = trading.snapshot_portfolio(initial_cash="10000", ts=T0)
    # NIFTY: long 1 @100, mark 120 -> +20 unrealized; realized 10 - 2 commissions = 8
    # BANKNIFTY: short 3 @200, mark 190 -> +30 unrealized
    assert snap["realized_pnl"] == D(8)
    assert snap["unrealized_pnl"] == D(50)
    assert snap["total_pnl"] == D(58)
    assert snap["positions_value"] == D(120) - D(570)
    assert snap["net_exposure"] == D(-450)
    assert snap["gross_exposure"] == D(690)
    assert snap["cash"] == D(10000) - 200 + 110 + 600 - 2
    assert snap["total_value"] == D(10058)
    assert snap["n_positions"] == 2
    only = trading.value_portfolio(strategies=["ema_crossover"], cash="5")
    assert (only.cash, only.n_positions, only.total_value) == (D(5), 1, D(125))
    later = trading.snapshot_portfolio(
        initial_cash="10000", ts=T0 + dt.timedelta(hours=1), prices={"NIFTY": "130"}
    )
    assert later["unrealized_pnl"] == D(60)
    with pytest.raises(Conflict, match="already has a snapshot"):
        trading.snapshot_portfolio(initial_cash="10000", ts=T0)
    series = trading.portfolio_series(start=T0)
    assert [s["ts"] for s in series] == [T0, T0 + dt.timedelta(hours=1)]
    assert trading.portfolio_series(start=T0, end=T0 + dt.timedelta(hours=1))[0]["ts"] == T0
    assert trading.portfolio_series(portfolio="other") == []


def test_unpriced_positions_are_valued_at_cost(trading: Trading) -> None:
    fill(trading, "ema_crossover", "NIFTY", "buy", "2", "100")
    valuation = trading.value_portfolio()
    assert valuation.unpriced == ["NIFTY"]
    assert (valuation.positions_value, valuation.unrealized_pnl) == (D(200), D(0))
    assert valuation.total_value == valuation.total_pnl  # initial cash 0, no commission
