"""Fills (executions): one transaction updates the order, its history and the position.

Order of work inside the caller's transaction:

1. ``SELECT .. FOR UPDATE`` the order. Concurrent fills of one order queue here.
2. A fill with a ``broker_exec_id`` already recorded for this order is a
   duplicate: nothing is written and the first execution is returned; the
   same id with a different quantity or price is a :class:`Conflict`.
3. The new status is computed (``partially_filled`` or ``filled``) and checked
   against the state machine; an overfill or a fill on a terminal order raises
   before anything is written.
4. Insert the execution; update the order's filled quantity, exact filled
   notional, average fill price (``filled_notional / filled_quantity``, rounded
   to :data:`~marketdb.services.trading.accounting.PRICE_QUANTUM`), commission
   and status; append ``order_history``.
5. ``SELECT .. FOR UPDATE`` the strategy's open position (creating it if need
   be) and apply the fill with :mod:`.accounting`. Orders without a strategy
   (manual orders) book to the built-in strategy ``manual``.
6. One audit row.

The lock order is always order, then position, so two fills of different
orders on the same position cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import Conflict, InvalidInput
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import Actor, as_uuid, audit, row_dict, utc
from marketdb.services.trading.accounting import (
    Fill,
    Side,
    average_price,
    exact_product,
    exact_sum,
)
from marketdb.services.trading.orders import MANUAL_BOOK, append_history, get_order
from marketdb.services.trading.positions import apply_fill_to_position
from marketdb.services.trading.records import Execution, Order, Position
from marketdb.services.trading.state import (
    TERMINAL_ORDER_STATUSES,
    OrderStatus,
    parse_order_status,
    status_after_fill,
    validate_order_transition,
)
from marketdb.services.trading.strategies import create_strategy
from marketdb.store.schema import tables as t


@dataclass(frozen=True, slots=True)
class FillResult:
    """What :func:`record_fill` did.

    ``duplicate`` is True when the broker execution id had been recorded
    already; then ``order`` is the order as it stands and ``positions`` is empty.
    ``positions`` holds the rows written: one, or two for a flip (closed, then
    opened). ``realized_pnl`` is this fill's contribution, net of its commission.
    """

    execution: Execution
    order: Order
    positions: list[Position] = field(default_factory=list)
    duplicate: bool = False
    realized_pnl: Decimal = Decimal(0)


def record_fill(
    conn: sa.Connection,
    actor: Actor,
    order_id: uuid.UUID | str,
    quantity: Decimal | int | str,
    price: Decimal | int | str,
    *,
    commission: Decimal | int | str = 0,
    ts: dt.datetime | None = None,
    broker_exec_id: str | None = None,
    venue: str | None = None,
    commission_currency: str | None = None,
) -> FillResult:
    """Record one execution of an order (see the module docstring for the steps)."""
    qty = v.positive_money(quantity, "fill quantity")
    px = v.positive_money(price, "fill price")
    fee = v.non_negative_money(commission, "fill commission")
    when = v.event_time(utc(ts, "fill ts"), "fill ts")
    if broker_exec_id is not None and (not isinstance(broker_exec_id, str) or not broker_exec_id):
        raise InvalidInput("broker_exec_id must be a non-empty string or None")
    broker_exec_id = v.optional_text(broker_exec_id, "broker_exec_id")
    venue = v.optional_text(venue, "venue")
    commission_currency = v.optional_text(commission_currency, "commission_currency", max_len=10)

    order = get_order(conn, order_id, lock=True)
    if broker_exec_id is not None:
        seen = row_dict(
            conn.execute(
                sa.select(t.executions).where(
                    t.executions.c.order_id == order["id"],
                    t.executions.c.broker_exec_id == broker_exec_id,
                )
            ).first()
        )
        if seen is not None:
            differing = [
                name
                for name, given in (("quantity", qty), ("price", px))
                if Decimal(seen[name]).normalize() != given.normalize()
            ]
            if differing:
                given = {"quantity": qty, "price": px}
                what = ", ".join(f"{n} {seen[n]} recorded, {given[n]} given" for n in differing)
                raise Conflict(
                    f"broker execution id {broker_exec_id!r} of order {order['id']} was already "
                    f"recorded with different values: {what}",
                    hint="a retry must repeat the same quantity and price; "
                    "a new execution needs a new broker_exec_id",
                    details={"execution_id": str(seen["id"]), "differing": differing},
                )
            return FillResult(execution=Execution.from_row(seen), order=Order.from_row(order), duplicate=True)

    current = parse_order_status(order["status"])
    if current in TERMINAL_ORDER_STATUSES:
        raise Conflict(
            f"order {order['id']} is {current.value}: it cannot take fills",
            hint="a fill after a confirmed cancel/reject/expiry needs reconciling with the broker",
            details={"from": current.value, "to": "fill"},
        )
    book = order["strategy_id"]
    if book is None:
        book = ensure_manual_book(conn, actor)
    filled = exact_sum(order["filled_quantity"], qty)
    remaining = exact_sum(order["quantity"], -order["filled_quantity"])
    if filled > order["quantity"]:
        raise Conflict(
            f"fill of {qty} would overfill order {order['id']}: "
            f"{order['filled_quantity']} of {order['quantity']} filled, {remaining} remaining",
            hint="check the fill quantity against the order's remaining quantity",
        )
    target = status_after_fill(order["quantity"], filled)
    validate_order_transition(current, target, order_id=order["id"])

    inserted = conn.execute(
        pg.insert(t.executions)
        .values(
            order_id=order["id"],
            instrument_id=order["instrument_id"],
            ts=when if when is not None else sa.func.clock_timestamp(),
            side=order["side"],
            quantity=qty,
            price=px,
            commission=fee,
            commission_currency=commission_currency,
            venue=venue,
            broker_exec_id=broker_exec_id,
        )
        .on_conflict_do_nothing(index_elements=["order_id", "broker_exec_id"])
        .returning(*t.executions.c)
    ).first()
    if inserted is None:  # pragma: no cover - the order lock makes this unreachable
        raise Conflict(f"execution {broker_exec_id!r} of order {order['id']} was recorded twice")
    execution = dict(inserted._mapping)

    notional = exact_sum(order["filled_notional"], exact_product(qty, px))
    order_values: dict[str, Any] = {
        "filled_quantity": filled,
        "filled_notional": notional,
        "avg_fill_price": average_price(filled, notional),
        "commission": exact_sum(order["commission"], fee),
        "status": target.value,
        "updated_at": sa.func.now(),
    }
    if target is OrderStatus.FILLED:
        order_values["executed_at"] = execution["ts"]
    conn.execute(sa.update(t.orders).where(t.orders.c.id == order["id"]).values(**order_values))
    append_history(
        conn,
        order["id"],
        current.value,
        target.value,
        filled,
        {
            "event": "fill",
            "execution_id": str(execution["id"]),
            "quantity": str(qty),
            "price": str(px),
            "commission": str(fee),
            "broker_exec_id": broker_exec_id,
        },
    )
    effect, positions = apply_fill_to_position(
        conn,
        book,
        order["instrument_id"],
        Fill(Side(order["side"]), qty, px, fee),
        execution["ts"],
    )
    new_order = get_order(conn, order["id"])
    audit(
        conn,
        actor,
        "execution.record",
        "execution",
        execution["id"],
        new={
            "execution": execution,
            "order": {k: new_order[k] for k in ("id", "status", "filled_quantity", "avg_fill_price")},
            "positions": [
                {k: p[k] for k in ("id", "quantity", "cost_basis", "realized_pnl", "status")}
                for p in positions
            ],
        },
    )
    return FillResult(
        execution=Execution.from_row(execution),
        order=Order.from_row(new_order),
        positions=[Position.from_row(p) for p in positions],
        realized_pnl=effect.realized_pnl,
    )


def ensure_manual_book(conn: sa.Connection, actor: Actor) -> str:
    """The id of the built-in strategy that books manual orders' fills (created on first use)."""
    create_strategy(
        conn,
        actor,
        MANUAL_BOOK,
        "Manual orders",
        description="positions of orders submitted without a strategy",
        strategy_type="manual",
        execution_mode="live",
        if_exists="skip",
    )
    return MANUAL_BOOK


def list_fills(
    conn: sa.Connection,
    *,
    order_id: uuid.UUID | str | None = None,
    strategy_id: str | None = None,
    limit: int | None = 1000,
) -> list[dict[str, Any]]:
    """Executions, oldest first, for an order or a strategy (or all)."""
    query = (
        sa.select(*t.executions.c, t.orders.c.strategy_id, t.instruments.c.symbol)
        .join(t.orders, t.orders.c.id == t.executions.c.order_id)
        .join(t.instruments, t.instruments.c.id == t.executions.c.instrument_id)
    )
    if order_id is not None:
        query = query.where(t.executions.c.order_id == as_uuid(order_id, "order id"))
    if strategy_id is not None:
        query = query.where(t.orders.c.strategy_id == strategy_id)
    query = query.order_by(t.executions.c.ts, t.executions.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]
