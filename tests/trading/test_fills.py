"""Fills through the service on a real PostgreSQL: orders, history, positions, P&L."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketdb
from marketdb.errors import Conflict, InvalidInput
from marketdb.services.trading import Fill, Side, Trading
from marketdb.services.trading.accounting import apply_fills, unrealized_pnl
from marketdb.store.schema import tables as t

D = Decimal
UTC = dt.UTC


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    tr = db.trading
    tr.seed_examples()
    return tr


def table_counts(db: marketdb.MarketDB) -> dict[str, int]:
    with db.transaction() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (t.orders, t.order_history, t.executions, t.positions, t.audit_logs)
        }


def strategy_books(db: marketdb.MarketDB, strategy_id: str, symbol: str) -> dict[str, Any]:
    """Everything recorded for one (strategy, instrument), read back from the database."""
    with db.transaction() as conn:
        rows = conn.execute(
            sa.select(t.positions)
            .join(t.instruments, t.instruments.c.id == t.positions.c.instrument_id)
            .where(t.positions.c.strategy_id == strategy_id, t.instruments.c.symbol == symbol)
        ).all()
        fills = conn.execute(
            sa.select(t.executions)
            .join(t.orders, t.orders.c.id == t.executions.c.order_id)
            .where(t.orders.c.strategy_id == strategy_id)
        ).all()
    open_rows = [r for r in rows if r.status == "open"]
    assert len(open_rows) <= 1
    return {
        "rows": rows,
        "open": open_rows[0] if open_rows else None,
        "quantity": sum((r.quantity for r in open_rows), D(0)),
        "cost_basis": sum((r.cost_basis for r in open_rows), D(0)),
        "realized": sum((r.realized_pnl for r in rows), D(0)),
        "commissions": sum((r.commissions for r in rows), D(0)),
        "signed_sum": sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), D(0)),
        "cash": sum((f.quantity * f.price * (1 if f.side == "sell" else -1) for f in fills), D(0)),
        "fill_commissions": sum((f.commission for f in fills), D(0)),
    }


def assert_reconciles(books: dict[str, Any], mark: Decimal) -> None:
    unrealized = books["quantity"] * mark - books["cost_basis"]
    assert books["quantity"] == books["signed_sum"]
    assert books["commissions"] == books["fill_commissions"]
    assert books["realized"] + unrealized == (
        books["cash"] + books["quantity"] * mark - books["fill_commissions"]
    )


# --- worked examples -------------------------------------------------------------------


def test_partial_fills_update_order_history_and_position(db: marketdb.MarketDB, trading: Trading) -> None:
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", "10")
    trading.accept_order(order["id"])
    first = trading.record_fill(order["id"], "4", "100", commission="1.20", broker_exec_id="E1")
    assert first.order["status"] == "partially_filled"
    assert first.order["filled_quantity"] == 4
    assert first.order["avg_fill_price"] == 100
    assert first.positions[0]["quantity"] == 4
    assert first.realized_pnl == D("-1.20")
    second = trading.record_fill(order["id"], "6", "101", commission="1.80", broker_exec_id="E2")
    assert second.order["status"] == "filled"
    assert second.order["executed_at"] is not None
    assert second.order["filled_notional"] == D("1006")
    assert second.order["avg_fill_price"] == D("100.6")
    assert second.order["commission"] == D("3.00")
    position = trading.position("ema_crossover", "NIFTY")
    assert position is not None
    assert (position["quantity"], position["cost_basis"]) == (D(10), D(1006))
    assert position["average_entry_price"] == D("100.6")
    assert position["realized_pnl"] == D("-3.00")
    assert position["commissions"] == D("3.00")
    history = trading.order_history(order["id"])
    assert [(h["from_status"], h["status"], h["filled_quantity"]) for h in history] == [
        (None, "pending", 0),
        ("pending", "open", 0),
        ("open", "partially_filled", 4),
        ("partially_filled", "filled", 10),
    ]
    assert history[2]["details"]["broker_exec_id"] == "E1"
    assert [f["broker_exec_id"] for f in trading.fills(order_id=order["id"])] == ["E1", "E2"]
    with db.transaction() as conn:
        actions = conn.execute(
            sa.select(t.audit_logs.c.action).where(t.audit_logs.c.action == "execution.record")
        ).all()
    assert len(actions) == 2


def test_duplicate_broker_execution_id_is_ignored(db: marketdb.MarketDB, trading: Trading) -> None:
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", "10")
    first = trading.record_fill(order["id"], "4", "100", broker_exec_id="X-1")
    before = table_counts(db)
    again = trading.record_fill(order["id"], "4", "100", broker_exec_id="X-1")
    assert again.duplicate
    assert again.execution["id"] == first.execution["id"]
    assert again.order["filled_quantity"] == 4
    assert table_counts(db) == before
    # A retry of the fill that completed the order is a duplicate, not a Conflict.
    trading.record_fill(order["id"], "6", "100", broker_exec_id="X-2")
    before = table_counts(db)
    retry = trading.record_fill(order["id"], "6", "100", broker_exec_id="X-2")
    assert retry.duplicate
    assert retry.order["status"] == "filled"
    assert table_counts(db) == before


def test_at_most_one_open_position_per_strategy_and_instrument(
    db: marketdb.MarketDB, trading: Trading
) -> None:
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", "1")
    position = trading.record_fill(order["id"], "1", "100").positions[0]
    with (
        pytest.raises(sa.exc.IntegrityError, match="ix_positions_one_open"),
        db.transaction() as conn,
    ):
        conn.execute(
            sa.insert(t.positions).values(
                strategy_id="ema_crossover", instrument_id=position["instrument_id"], quantity=1
            )
        )


def test_reduce_close_and_reopen_creates_a_new_position_row(trading: Trading) -> None:
    buy = trading.submit_order("ema_crossover", "NIFTY", "buy", "3")
    trading.record_fill(buy["id"], "3", "100")
    sell = trading.submit_order("ema_crossover", "NIFTY", "sell", "3")
    partial = trading.record_fill(sell["id"], "1", "110")
    assert partial.realized_pnl == D(10)
    closing = trading.record_fill(sell["id"], "2", "90")
    closed = closing.positions[0]
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    assert (closed["quantity"], closed["cost_basis"], closed["realized_pnl"]) == (0, 0, D(-10))
    assert closed["average_entry_price"] == 100  # the entry price of the closed trade
    assert trading.position("ema_crossover", "NIFTY") is None
    again = trading.submit_order("ema_crossover", "NIFTY", "buy", "1")
    reopened = trading.record_fill(again["id"], "1", "95").positions[0]
    assert reopened["id"] != closed["id"]
    assert reopened["status"] == "open"
    assert len(trading.positions(strategy_id="ema_crossover", status="all")) == 2


def test_flip_closes_the_long_row_and_opens_a_short_row(trading: Trading) -> None:
    buy = trading.submit_order("ema_crossover", "NIFTY", "buy", "5")
    trading.record_fill(buy["id"], "5", "100")
    sell = trading.submit_order("ema_crossover", "NIFTY", "sell", "8")
    result = trading.record_fill(sell["id"], "8", "104", commission="2")
    old, new = result.positions
    assert (old["status"], old["quantity"], old["realized_pnl"], old["commissions"]) == (
        "closed",
        0,
        D(18),
        D(2),
    )  # (104 - 100) * 5 - 2
    assert (new["status"], new["quantity"], new["cost_basis"]) == ("open", D(-3), D(-312))
    assert new["average_entry_price"] == 104
    assert (new["realized_pnl"], new["commissions"]) == (0, 0)
    assert result.realized_pnl == D(18)


def test_fill_rejections_write_nothing(db: marketdb.MarketDB, trading: Trading) -> None:
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", "2")
    trading.record_fill(order["id"], "1", "100")
    before = table_counts(db)
    with pytest.raises(Conflict, match="overfill"):
        trading.record_fill(order["id"], "1.5", "100")
    for bad in (
        {"quantity": "0"},
        {"quantity": "-1"},
        {"price": "0"},
        {"price": "-5"},
        {"commission": "-0.01"},
        {"price": "Infinity"},
        {"quantity": "NaN"},
    ):
        args = {"quantity": "1", "price": "100", "commission": "0", **bad}
        with pytest.raises(InvalidInput):
            trading.record_fill(order["id"], args["quantity"], args["price"], commission=args["commission"])
    trading.cancel_order(order["id"])
    before = table_counts(db)
    with pytest.raises(Conflict, match="is cancelled: it cannot take fills"):
        trading.record_fill(order["id"], "1", "100")
    assert table_counts(db) == before


def test_database_checks_back_up_the_service(db: marketdb.MarketDB, trading: Trading) -> None:
    """Writers that bypass the service still meet the CHECK constraints."""
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", "2")
    for column, value in (("quantity", D(0)), ("filled_quantity", D(3)), ("price", D(-1))):
        with (
            pytest.raises(sa.exc.IntegrityError, match="violates check constraint"),
            db.transaction() as conn,
        ):
            conn.execute(sa.update(t.orders).where(t.orders.c.id == order["id"]).values({column: value}))
    assert trading.order(order["id"])["quantity"] == 2


# --- property: fills through the service -----------------------------------------------

_strategy_ids = itertools.count()

fill_specs = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.lists(  # partial fills of one order
            st.decimals(min_value=D("0.01"), max_value=D(50), places=2),
            min_size=1,
            max_size=3,
        ),
        st.decimals(min_value=D("0.05"), max_value=D(1000), places=2),
        st.sampled_from([D(0), D("0.01"), D("1.25")]),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=fill_specs, mark=st.decimals(min_value=D("0.05"), max_value=D(1000), places=2))
def test_property_position_is_signed_sum_and_pnl_reconciles_exactly(
    db: marketdb.MarketDB, trading: Trading, specs: list[Any], mark: Decimal
) -> None:
    strategy_id = f"prop_{next(_strategy_ids)}"
    trading.create_strategy(strategy_id, "property test")
    model: list[Fill] = []
    for side, parts, price, commission in specs:
        order = trading.submit_order(strategy_id, "NIFTY", side, sum(parts, D(0)))
        for qty in parts:
            trading.record_fill(order["id"], qty, price, commission=commission)
            model.append(Fill(Side(side), qty, price, commission))
        assert trading.order(order["id"])["status"] == "filled"
        assert trading.order(order["id"])["avg_fill_price"] == price

    books = strategy_books(db, strategy_id, "NIFTY")
    assert_reconciles(books, mark)
    expected = apply_fills(model)
    assert books["quantity"] == expected.quantity
    assert books["cost_basis"] == expected.cost_basis
    assert books["realized"] == expected.realized_pnl
    assert books["realized"] + unrealized_pnl(expected, mark) == (
        books["cash"] + expected.quantity * mark - books["fill_commissions"]
    )
    valuation = trading.value_portfolio(
        strategies=[strategy_id], prices={"NIFTY": mark}, initial_cash="1000000"
    )
    assert valuation.total_value - D(1000000) == valuation.total_pnl
    assert valuation.realized_pnl == books["realized"]


# --- concurrency ------------------------------------------------------------------------

THREADS = 8
FILLS_PER_THREAD = 25


def _run_threads(target: Any, n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors


def _price(i: int, j: int) -> Decimal:
    return D(100) + D(i * FILLS_PER_THREAD + j) / 100


def test_concurrent_fills_on_one_order_lose_no_update(db: marketdb.MarketDB, trading: Trading) -> None:
    qty = D("0.5")
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", qty * THREADS * FILLS_PER_THREAD)
    trading.accept_order(order["id"])

    def fill(i: int) -> None:
        for j in range(FILLS_PER_THREAD):
            trading.record_fill(order["id"], qty, _price(i, j), commission="0.01", broker_exec_id=f"T{i}-{j}")

    assert _run_threads(fill, THREADS) == []
    prices = [_price(i, j) for i in range(THREADS) for j in range(FILLS_PER_THREAD)]
    final = trading.order(order["id"])
    assert final["status"] == "filled"
    assert final["filled_quantity"] == qty * len(prices)
    assert final["filled_notional"] == sum((qty * p for p in prices), D(0))
    assert final["commission"] == D("0.01") * len(prices)
    history = trading.order_history(order["id"])
    assert len(history) == 2 + len(prices)
    assert [h["filled_quantity"] for h in history[2:]] == [qty * k for k in range(1, 201)]
    position = trading.position("ema_crossover", "NIFTY")
    assert position is not None
    assert position["quantity"] == qty * len(prices)
    assert position["cost_basis"] == final["filled_notional"]
    assert position["realized_pnl"] == -D("0.01") * len(prices)
    assert_reconciles(strategy_books(db, "ema_crossover", "NIFTY"), D(101))


def test_concurrent_buys_and_sells_on_one_position_reconcile(db: marketdb.MarketDB, trading: Trading) -> None:
    """Half the threads buy, half sell the same (initially flat) position, in parallel."""
    qty = D("0.25")
    half = THREADS // 2 * FILLS_PER_THREAD
    buy = trading.submit_order("ema_crossover", "BANKNIFTY", "buy", qty * half)
    sell = trading.submit_order("ema_crossover", "BANKNIFTY", "sell", qty * half + 1)

    def fill(i: int) -> None:
        order = buy if i % 2 == 0 else sell
        for j in range(FILLS_PER_THREAD):
            trading.record_fill(order["id"], qty, _price(i, j), commission="0.03")

    assert _run_threads(fill, THREADS) == []
    books = strategy_books(db, "ema_crossover", "BANKNIFTY")
    assert books["quantity"] == 0
    assert trading.order(buy["id"])["status"] == "filled"
    assert trading.order(sell["id"])["status"] == "partially_filled"
    assert_reconciles(books, D(123))
    # Flat: realized equals the net cash flow exactly, whatever the interleaving.
    assert books["realized"] == books["cash"] - books["fill_commissions"]


def test_concurrent_duplicate_execution_is_recorded_once(db: marketdb.MarketDB, trading: Trading) -> None:
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", "5")
    results: list[Any] = []

    def fill(_: int) -> None:
        results.append(trading.record_fill(order["id"], "1", "100", broker_exec_id="SAME"))

    assert _run_threads(fill, THREADS) == []
    assert sum(not r.duplicate for r in results) == 1
    assert trading.order(order["id"])["filled_quantity"] == 1
    assert len(trading.fills(order_id=order["id"])) == 1
