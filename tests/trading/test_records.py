"""Typed trading records (issue 9 item 5): Trading returns frozen dataclasses with Decimal money."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

import marketdb
from marketdb.services.trading import (
    Execution,
    HestonFit,
    Order,
    OrderHistoryEntry,
    PatternEvent,
    PortfolioSnapshot,
    Position,
    Signal,
    Strategy,
)
from marketdb.services.trading.records import Record

UTC = dt.UTC


def test_trading_returns_typed_records_that_serialise(db: marketdb.MarketDB) -> None:
    tr = db.trading
    tr.seed_examples()
    strategy = tr.strategy("ema_crossover")
    assert isinstance(strategy, Strategy)
    order = tr.submit_order("ema_crossover", "NIFTY", "buy", "2.5", order_type="limit", price="100.25")
    assert isinstance(order, Order)
    assert order.quantity == Decimal("2.5")
    assert isinstance(order.price, Decimal)
    assert isinstance(order.id, uuid.UUID)
    assert order.symbol == "NIFTY"
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.status = "filled"  # type: ignore[misc]
    tr.accept_order(order.id)
    fill = tr.record_fill(order.id, "2.5", "100.25", broker_exec_id="b1")
    assert isinstance(fill.execution, Execution)
    assert isinstance(fill.order, Order)
    assert fill.order.avg_fill_price == Decimal("100.25")
    assert all(isinstance(p, Position) for p in fill.positions)
    (position,) = tr.positions(strategy_id="ema_crossover")
    assert isinstance(position, Position)
    assert position.quantity == Decimal("2.5")
    assert all(isinstance(h, OrderHistoryEntry) for h in tr.order_history(order.id))
    assert all(isinstance(f, Execution) for f in tr.fills(order_id=order.id))
    signal = tr.create_signal("NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5)
    assert isinstance(signal, Signal)
    assert isinstance(tr.snapshot_portfolio(cash=1000, prices={"NIFTY": 101}), PortfolioSnapshot)
    assert isinstance(tr.record_pattern("NIFTY", dt.datetime(2024, 1, 2, tzinfo=UTC), "doji"), PatternEvent)
    heston = tr.record_heston(
        "NIFTY", dt.datetime(2024, 1, 2, tzinfo=UTC), kappa=2, theta=0.04, sigma=0.3, rho=-0.7, v0=0.05
    )
    assert isinstance(heston, HestonFit)
    assert heston.feller_satisfied is True
    # The HTTP API serialises them with dataclasses.asdict; every value survives JSON as text.
    for record in (strategy, order, fill.execution, position, signal, heston):
        as_dict = dataclasses.asdict(record)
        assert as_dict == record.to_dict()
        assert json.loads(json.dumps(as_dict, default=str))["id" if "id" in as_dict else "ts"] is not None
    assert json.loads(json.dumps(order.to_dict(), default=str))["quantity"] == "2.5"


def test_records_read_like_the_old_rows_and_refuse_unknown_columns(db: marketdb.MarketDB) -> None:
    db.trading.seed_examples()
    order = db.trading.submit_order(None, "NIFTY", "sell", 1)
    assert order["status"] == order.status == "pending"
    assert order.get("strategy_id") is None
    assert order.get("nope", 5) == 5
    assert "symbol" in order
    assert list(order)[:2] == ["id", "client_order_id"]
    with pytest.raises(KeyError):
        order["nope"]
    row = order.to_dict()
    assert Order.from_row(row) == order
    with pytest.raises(TypeError, match="no field"):
        Order.from_row({**row, "surprise": 1})
    assert issubclass(Order, Record)
