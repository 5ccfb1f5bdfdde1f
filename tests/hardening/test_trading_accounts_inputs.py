"""Issue 10 items 7/8 for trading and accounts: execution-id reuse, fill dates, JSON settings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput
from marketdb.services.trading import Trading
from marketdb.store.schema import tables as t

UTC = dt.UTC


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    db.trading.seed_examples()
    return db.trading


def _counts(db: marketdb.MarketDB) -> tuple[int, int, int]:
    with db.transaction() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(x)).scalar_one()
            for x in (t.executions, t.order_history, t.audit_logs)
        )


def test_broker_exec_id_reused_with_other_quantity_or_price_is_a_conflict(
    db: marketdb.MarketDB, trading: Trading
) -> None:
    order = trading.accept_order(trading.submit_order("ema_crossover", "NIFTY", "buy", 10)["id"])
    first = trading.record_fill(order["id"], 4, "101.5", broker_exec_id="X-1")
    before = _counts(db)
    same = trading.record_fill(order["id"], "4.0", Decimal("101.50"), broker_exec_id="X-1")
    assert same.duplicate
    assert same.execution["id"] == first.execution["id"]
    with pytest.raises(Conflict, match=r"'X-1'.*different values: quantity 4 recorded, 5 given"):
        trading.record_fill(order["id"], 5, "101.5", broker_exec_id="X-1")
    with pytest.raises(Conflict, match=r"price 101.5 recorded, 102 given"):
        trading.record_fill(order["id"], 4, 102, broker_exec_id="X-1")
    assert _counts(db) == before
    assert trading.order(order["id"])["filled_quantity"] == 4


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1900, 1, 1, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
        dt.datetime(2200, 1, 1, tzinfo=UTC),
        dt.datetime.now(UTC) + dt.timedelta(days=2),
    ],
)
def test_fill_outside_the_plausible_window_is_refused(
    db: marketdb.MarketDB, trading: Trading, when: dt.datetime
) -> None:
    order = trading.accept_order(trading.submit_order("ema_crossover", "NIFTY", "buy", 10)["id"])
    before = _counts(db)
    with pytest.raises(InvalidInput, match="fill ts must be between 1970-01-01 and one day from now"):
        trading.record_fill(order["id"], 1, 100, ts=when)
    assert _counts(db) == before
    ok = trading.record_fill(order["id"], 1, 100, ts=dt.datetime(1999, 12, 31, tzinfo=UTC))
    assert ok.execution["ts"] == dt.datetime(1999, 12, 31, tzinfo=UTC)


def test_user_settings_must_be_json(db: marketdb.MarketDB) -> None:
    acc = db.accounts
    for bad, rule in (
        ({"a": float("nan")}, "NaN"),
        ({"a": float("-inf")}, "infinite"),
        ({"a": b"bytes"}, "not JSON serializable"),
        ({"a": object()}, "not JSON serializable"),
        ({"a": "x\x00"}, "NUL"),
        ("not a dict", "JSON object"),
    ):
        with pytest.raises(InvalidInput, match=rule):
            acc.create_user("sam", "sam@example.org", "correct horse battery staple", settings=bad)  # type: ignore[arg-type]
    assert acc.list_users() == []
    user = acc.create_user(
        "sam", "sam@example.org", "correct horse battery staple", settings={"a": [1, 2.5, None]}
    )
    assert user.settings == {"a": [1, 2.5, None]}
    with pytest.raises(InvalidInput, match="NaN"):
        acc.update_user_settings(user.id, {"b": float("nan")})
    assert acc.get_user(user.id).settings == {"a": [1, 2.5, None]}
