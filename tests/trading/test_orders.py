"""Orders on a real PostgreSQL: submission, idempotency, state machine with history."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.trading import OrderStatus, Trading
from marketdb.services.trading.state import ORDER_TRANSITIONS
from marketdb.store.schema import tables as t

D = Decimal
UTC = dt.UTC


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    tr = db.trading
    tr.seed_examples()
    return tr


@pytest.fixture(scope="module")
def shared_db(pg_server: Any, template_db: str) -> Iterator[marketdb.MarketDB]:
    """One database for the 49 edge tests: each works on its own fresh order."""
    name = f"marketdb_trading_edges_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    url = pg_server.create_database(name, template=template_db)
    db = marketdb.connect(url, home=pg_server.home, redis_url=None)
    db.trading.seed_examples()
    yield db
    db.close()
    pg_server.drop_database(name)


def counts(db: marketdb.MarketDB) -> dict[str, int]:
    with db.transaction() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in (
                ("orders", t.orders),
                ("order_history", t.order_history),
                ("executions", t.executions),
                ("positions", t.positions),
                ("audit_logs", t.audit_logs),
            )
        }


def test_submit_market_order_is_pending_with_history_and_audit(
    db: marketdb.MarketDB, trading: Trading
) -> None:
    order = trading.submit_order("ema_crossover", "nifty", "BUY", "2")
    assert order["status"] == "pending"
    assert order["symbol"] == "NIFTY"
    assert order["side"] == "buy"
    assert order["quantity"] == D(2)
    assert order["filled_quantity"] == 0
    history = trading.order_history(order["id"])
    assert [(h["from_status"], h["status"]) for h in history] == [(None, "pending")]
    with db.transaction() as conn:
        actions = (
            conn.execute(
                sa.select(t.audit_logs.c.action).where(t.audit_logs.c.resource_id == str(order["id"]))
            )
            .scalars()
            .all()
        )
    assert actions == ["order.submit"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order_type": "limit"}, "needs a limit price"),
        ({"order_type": "market", "price": "10"}, "takes no limit price"),
        ({"order_type": "stop"}, "needs a stop price"),
        ({"order_type": "stop_limit", "price": "10"}, "needs a stop price"),
        ({"order_type": "stop", "stop_price": "10", "price": "9"}, "takes no limit price"),
        ({"order_type": "iceberg"}, "order type must be one of"),
        ({"time_in_force": "forever"}, "time in force must be one of"),
        ({"time_in_force": "gtd"}, "needs expires_at"),
        ({"quantity": "0"}, "quantity must be greater than zero"),
        ({"quantity": "-1"}, "quantity must be greater than zero"),
        ({"quantity": "NaN"}, "finite"),
        ({"side": "hold"}, "order side must be one of"),
        ({"order_type": "limit", "price": "0"}, "price must be greater than zero"),
        ({"expires_at": dt.datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_orders_are_rejected_and_write_nothing(
    db: marketdb.MarketDB, trading: Trading, kwargs: dict[str, Any], message: str
) -> None:
    before = counts(db)
    args: dict[str, Any] = {"side": "buy", "quantity": "1", **kwargs}
    side, quantity = args.pop("side"), args.pop("quantity")
    with pytest.raises(InvalidInput, match=message):
        trading.submit_order("ema_crossover", "NIFTY", side, quantity, **args)
    assert counts(db) == before


def test_unknown_strategy_symbol_and_signal_are_not_found(trading: Trading) -> None:
    with pytest.raises(NotFound, match="unknown strategy 'nope'"):
        trading.submit_order("nope", "NIFTY", "buy", 1)
    with pytest.raises(NotFound, match=r"unknown instrument.*ZZZ"):
        trading.submit_order("ema_crossover", "ZZZ", "buy", 1)
    with pytest.raises(NotFound, match="unknown signal"):
        trading.submit_order(
            "ema_crossover", "NIFTY", "buy", 1, signal_id="00000000-0000-0000-0000-000000000000"
        )


def test_limit_stop_and_stop_limit_orders(trading: Trading) -> None:
    limit = trading.submit_order(
        "ema_crossover", "NIFTY", "sell", "1", order_type="limit", price="22000.05", time_in_force="gtc"
    )
    assert (limit["price"], limit["stop_price"]) == (D("22000.05"), None)
    stop = trading.submit_order("ema_crossover", "NIFTY", "sell", 1, order_type="stop", stop_price="21000")
    assert stop["stop_price"] == D(21000)
    both = trading.submit_order(
        "ema_crossover",
        "NIFTY",
        "buy",
        1,
        order_type="stop_limit",
        price="21010",
        stop_price="21000",
        time_in_force="gtd",
        expires_at=dt.datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert both["expires_at"] == dt.datetime(2030, 1, 1, tzinfo=UTC)


def test_client_order_id_makes_submission_idempotent(db: marketdb.MarketDB, trading: Trading) -> None:
    first = trading.submit_order("ema_crossover", "NIFTY", "buy", "1.50", client_order_id="c-1")
    before = counts(db)
    again = trading.submit_order("ema_crossover", "NIFTY", "buy", "1.5", client_order_id="c-1")
    assert again["id"] == first["id"]
    assert counts(db) == before
    with pytest.raises(Conflict, match="differing fields: side, quantity"):
        trading.submit_order("ema_crossover", "NIFTY", "sell", "2", client_order_id="c-1")
    assert counts(db) == before


def test_accept_cancel_reject_expire_append_history(trading: Trading) -> None:
    a = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    opened = trading.accept_order(a["id"], broker_order_id="B-1")
    assert opened["status"] == "open"
    assert opened["broker_order_id"] == "B-1"
    cancelled = trading.cancel_order(a["id"], reason="user")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    assert [(h["from_status"], h["status"]) for h in trading.order_history(a["id"])] == [
        (None, "pending"),
        ("pending", "open"),
        ("open", "cancelled"),
    ]
    b = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    rejected = trading.reject_order(b["id"], reason="insufficient margin")
    assert rejected["error_message"] == "insufficient margin"
    c = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    trading.accept_order(c["id"])
    assert trading.expire_order(c["id"])["status"] == "expired"


def test_fill_statuses_only_come_from_fills(trading: Trading) -> None:
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    with pytest.raises(InvalidInput, match="only by recording fills"):
        trading.transition_order(order["id"], "filled")


# Every (from, to) pair the service can be asked for: drive an order to `frm`
# through legal steps, then request `to`. Fill targets go through record_fill.
PATHS: dict[OrderStatus, list[str]] = {
    OrderStatus.PENDING: [],
    OrderStatus.OPEN: ["open"],
    OrderStatus.PARTIALLY_FILLED: ["open", "fill:1"],
    OrderStatus.FILLED: ["open", "fill:4"],
    OrderStatus.CANCELLED: ["cancelled"],
    OrderStatus.REJECTED: ["rejected"],
    OrderStatus.EXPIRED: ["open", "expired"],
}


def _step(trading: Trading, order_id: Any, step: str) -> None:
    if step.startswith("fill:"):
        trading.record_fill(order_id, step.split(":")[1], "100")
    else:
        trading.transition_order(order_id, step)


@pytest.mark.parametrize(
    ("frm", "to"),
    list(itertools.product(OrderStatus, OrderStatus)),
    ids=lambda s: s.value,
)
def test_every_edge_through_the_service(
    shared_db: marketdb.MarketDB, frm: OrderStatus, to: OrderStatus
) -> None:
    db, trading = shared_db, shared_db.trading
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", 4)
    for step in PATHS[frm]:
        _step(trading, order["id"], step)
    assert trading.order(order["id"])["status"] == frm.value
    before = counts(db)
    legal = to in ORDER_TRANSITIONS[frm]
    step = {"partially_filled": "fill:1", "filled": None}.get(to.value, to.value)
    if to is OrderStatus.FILLED:
        remaining = 4 - trading.order(order["id"])["filled_quantity"]
        step = f"fill:{remaining if remaining > 0 else 1}"
    if legal:
        _step(trading, order["id"], step)
        after = trading.order(order["id"])
        assert after["status"] == to.value
        history = trading.order_history(order["id"])
        assert (history[-1]["from_status"], history[-1]["status"]) == (frm.value, to.value)
        assert counts(db)["order_history"] == before["order_history"] + 1
    else:
        with pytest.raises(Conflict, match=f"{frm.value} -> |is {frm.value}: it cannot take"):
            _step(trading, order["id"], step)
        assert counts(db) == before
        assert trading.order(order["id"])["status"] == frm.value


def test_expire_orders_sweep(trading: Trading) -> None:
    soon = dt.datetime(2030, 1, 1, tzinfo=UTC)
    a = trading.submit_order("ema_crossover", "NIFTY", "buy", 2, time_in_force="gtd", expires_at=soon)
    b = trading.submit_order("ema_crossover", "NIFTY", "buy", 2, time_in_force="gtd", expires_at=soon)
    pending = trading.submit_order("ema_crossover", "NIFTY", "buy", 2, time_in_force="gtd", expires_at=soon)
    trading.accept_order(a["id"])
    trading.accept_order(b["id"])
    trading.record_fill(b["id"], 1, 100)
    assert trading.expire_orders(now=soon - dt.timedelta(seconds=1)) == []
    expired = trading.expire_orders(now=soon)
    assert sorted(map(str, expired)) == sorted([str(a["id"]), str(b["id"])])
    assert trading.order(b["id"])["status"] == "expired"
    assert trading.order(pending["id"])["status"] == "pending"


def test_list_orders_filters(trading: Trading) -> None:
    a = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    b = trading.submit_order("support_resistance", "NIFTY", "buy", 1)
    trading.cancel_order(b["id"])
    assert [o["id"] for o in trading.orders(strategy_id="ema_crossover")] == [a["id"]]
    assert [o["id"] for o in trading.orders(working=True)] == [a["id"]]
    assert [o["id"] for o in trading.orders(status="cancelled")] == [b["id"]]
    assert trading.orders(instrument="BANKNIFTY") == []
