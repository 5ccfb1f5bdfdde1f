"""Issue 14: the trading and accounts gaps of seeds 002, 003 and 004, each with the seed's own call."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import ConfigurationError, Conflict, InvalidInput
from marketdb.services.trading.orders import parse_order_type
from marketdb.store.schema import tables as t

PW = "correct horse battery staple"


def test_seed002_sign_up_with_email_only_and_login_by_email_or_username(db: marketdb.MarketDB) -> None:
    acc = db.accounts
    # Seed 002's users table has email + password_hash + role DEFAULT 'user', no username.
    acc.set_config("accounts.default_role", "user")
    alice = acc.sign_up("Alice.Smith@example.org", PW)
    assert alice.role == "user"
    assert alice.username == "Alice.Smith"
    twin = acc.create_user(None, "alice.smith@another.org", PW)  # same local part: a free username
    assert twin.username == "alice.smith-2"
    assert acc.authenticate("alice.smith@example.org", PW).id == alice.id
    assert acc.authenticate("alice.smith", PW).id == alice.id
    assert acc.authenticate("alice.smith-2", PW).id == twin.id
    with pytest.raises(Conflict, match="email"):
        acc.sign_up("ALICE.SMITH@example.org", PW)


def test_seed002_roles_are_data_with_the_seed_role_user(db: marketdb.MarketDB) -> None:
    acc = db.accounts
    assert "user" in {r.name for r in acc.list_roles()}
    # Without configuration the default stays viewer; an app names its own default role.
    assert acc.create_user(None, "v@example.org", PW).role == "viewer"
    acc.create_role("analyst", "the app's own role")
    acc.grant("analyst", "market_data", "read")
    acc.set_config("accounts.default_role", "analyst")
    assert acc.sign_up("a@example.org", PW).role == "analyst"
    # Seed 002's user owns signals: role 'user' may create its own (user) signals.
    acc.set_config("accounts.default_role", "user")
    bob = acc.sign_up("bob@example.org", PW)
    db.trading.seed_examples()
    as_bob = db.trading.as_user(bob.id)
    sig = as_bob.create_signal("NIFTY", "whale_alert", user_id=bob.id, data={"size": 120})
    assert sig["user_id"] == bob.id
    assert sig["data"] == {"size": 120}
    with pytest.raises(marketdb.errors.PermissionDenied):
        as_bob.submit_order(None, "NIFTY", "buy", 1)


@pytest.mark.parametrize(
    ("broker", "ours", "prices"),
    [
        ("MARKET", "market", {}),
        ("LIMIT", "limit", {"price": 100}),
        ("SL", "stop_limit", {"price": 99, "stop_price": 100}),
        ("SL-M", "stop", {"stop_price": 100}),
        ("MKT", "market", {}),
        ("LMT", "limit", {"price": 100}),
        ("STP", "stop", {"stop_price": 100}),
        ("STP LMT", "stop_limit", {"price": 99, "stop_price": 100}),
        ("stop_market", "stop", {"stop_price": 100}),
    ],
)
def test_seed003_broker_order_kinds_map_to_marketdb_types(
    db: marketdb.MarketDB, broker: str, ours: str, prices: dict[str, int]
) -> None:
    db.trading.seed_examples()
    # Seed 003: order_type 'BUY'/'SELL' is our side; order_kind MARKET/LIMIT/SL/SL-M our type.
    order = db.trading.submit_order("ema_crossover", "NIFTY", "BUY", 50, order_type=broker, **prices)
    assert order["order_type"] == ours
    assert parse_order_type(broker) == ours


def test_seed003_unknown_order_kind_names_the_accepted_spellings() -> None:
    with pytest.raises(InvalidInput, match=r"order type must be one of .*SL-M"):
        parse_order_type("TRAILING")


def test_seed003_pool_size_min_5_max_20_through_connect(db_url: str, pg_server: object) -> None:
    db = marketdb.connect(db_url, home=pg_server.home, pool_min_size=5, pool_max_size=20)  # type: ignore[attr-defined]
    try:
        pool = db.engine.pool
        assert pool.size() == 5  # type: ignore[attr-defined]
        assert pool._max_overflow == 15  # type: ignore[attr-defined]
    finally:
        db.close()
    with pytest.raises(ConfigurationError, match="pool_min_size <= pool_max_size"):
        marketdb.connect(db_url, home=pg_server.home, pool_min_size=30, pool_max_size=20)  # type: ignore[attr-defined]


def test_seed004_manual_order_without_strategy_fills_and_books_positions(db: marketdb.MarketDB) -> None:
    tr = db.trading
    tr.seed_examples()
    order = tr.submit_order(None, "NIFTY", "buy", 10, order_type="limit", price="22000.5")
    assert order["strategy_id"] is None
    tr.accept_order(order["id"])
    fill = tr.record_fill(order["id"], 10, "22000.5")
    assert fill.order["status"] == "filled"
    assert fill.order["strategy_id"] is None
    manual = tr.position("manual", "NIFTY")
    assert manual is not None
    assert manual["quantity"] == Decimal(10)
    assert tr.strategy("manual")["strategy_type"] == "manual"
    # Seed 004's own statement: an order row with strategy_id NULL.
    with db.transaction() as conn:
        n = conn.execute(
            sa.select(sa.func.count()).select_from(t.orders).where(t.orders.c.strategy_id.is_(None))
        )
        assert n.scalar_one() == 1


def test_seed004_execute_signal_creates_the_linked_order_in_one_call(db: marketdb.MarketDB) -> None:
    tr = db.trading
    tr.seed_examples()
    sig = tr.create_signal("BANKNIFTY", "SHORT", strategy_id="ema_crossover", strength=0.8, confidence=0.7)
    done = tr.execute_signal(sig["id"], 25, order_type="SL-M", stop_price="48000")
    assert done.signal["status"] == "executed"
    assert done.order is not None
    assert (done.order["signal_id"], done.order["side"], done.order["order_type"]) == (
        sig["id"],
        "sell",
        "stop",
    )
    assert (done.order["strategy_id"], done.order["symbol"]) == ("ema_crossover", "BANKNIFTY")
    assert [o["id"] for o in tr.orders(strategy_id="ema_crossover")] == [done.order["id"]]
    # A second execution makes no second order.
    with pytest.raises(Conflict):
        tr.execute_signal(sig["id"], 25)
    assert len(tr.orders()) == 1
    # A failing order leaves the signal active (one transaction).
    other = tr.create_signal("NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5)
    with pytest.raises(InvalidInput):
        tr.execute_signal(other["id"], 5, order_type="limit")
    assert tr.signal(other["id"])["status"] == "active"
    # A user signal has no implied side: it must be given; the order is manual.
    user = db.accounts.create_user("u1", "u1@example.org", PW)
    mine = tr.create_signal("NIFTY", "breakout", user_id=user.id)
    with pytest.raises(InvalidInput, match="implies no order side"):
        tr.execute_signal(mine["id"], 1)
    manual = tr.execute_signal(mine["id"], 1, side="buy").order
    assert manual is not None
    assert manual["strategy_id"] is None
    assert manual["signal_id"] == mine["id"]


def test_seed004_execute_signal_needs_both_permissions(db: marketdb.MarketDB) -> None:
    tr = db.trading
    tr.seed_examples()
    trader = db.accounts.create_user("tr", "tr@example.org", PW, role="trader")
    sig = tr.create_signal("NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5)
    with pytest.raises(marketdb.errors.PermissionDenied, match="update signals"):
        tr.as_user(trader.id).execute_signal(sig["id"], 1)
    db.accounts.grant("trader", "signals", "update")
    assert tr.as_user(trader.id).execute_signal(sig["id"], 1).order is not None
    viewer = db.accounts.create_user("vi", "vi@example.org", PW)
    db.accounts.grant("viewer", "signals", "update")
    sig2 = tr.create_signal("NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5)
    with pytest.raises(marketdb.errors.PermissionDenied, match="create orders"):
        tr.as_user(viewer.id).execute_signal(sig2["id"], 1)
    assert tr.signal(sig2["id"])["status"] == "active"
    _ = dt
