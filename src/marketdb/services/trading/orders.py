"""Orders: submission (idempotent by client order id), status transitions, history.

Every status change goes through :func:`~marketdb.services.trading.state.validate_order_transition`
under a row lock (``SELECT .. FOR UPDATE``) and appends an ``order_history`` row
in the same transaction; an illegal transition raises :class:`Conflict` before
anything is written. Fills move orders to ``partially_filled``/``filled``
(see :mod:`.fills`); :func:`transition_order` handles every other status.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import (
    Actor,
    InstrumentRef,
    as_uuid,
    audit,
    now_utc,
    resolve_instrument,
    row_dict,
    strategy_exists,
    utc,
)
from marketdb.services.trading.accounting import Side
from marketdb.services.trading.state import (
    TERMINAL_ORDER_STATUSES,
    WORKING_ORDER_STATUSES,
    OrderStatus,
    parse_order_status,
    validate_order_transition,
)
from marketdb.store.schema import tables as t

ORDER_TYPES = ("market", "limit", "stop", "stop_limit")

#: Broker spellings of order types, mapped to marketdb's (document 003's Indian
#: brokers: MARKET, LIMIT, SL = stop-loss limit, SL-M = stop-loss market; IB/FIX
#: abbreviations MKT, LMT, STP, STP LMT). Case, spaces, '-' and '_' are ignored.
ORDER_TYPE_ALIASES: dict[str, str] = {
    "market": "market",
    "mkt": "market",
    "limit": "limit",
    "lmt": "limit",
    "stop": "stop",
    "stp": "stop",
    "stopmarket": "stop",
    "stoploss": "stop",
    "stoplossmarket": "stop",
    "slm": "stop",
    "stoplimit": "stop_limit",
    "stplmt": "stop_limit",
    "stoplosslimit": "stop_limit",
    "sl": "stop_limit",
    "sll": "stop_limit",
}


def parse_order_type(value: str) -> str:
    """marketdb's order type for ``value``, a marketdb or broker spelling (``SL-M`` -> ``stop``).

    Raises:
        InvalidInput: naming the field, the value and the accepted spellings.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"order type must be a string, got {type(value).__name__}")
    key = "".join(ch for ch in value.lower() if ch.isalnum())
    found = ORDER_TYPE_ALIASES.get(key)
    if found is None:
        raise InvalidInput(
            f"order type must be one of {', '.join(ORDER_TYPES)} (or a broker spelling such as "
            f"MKT, LMT, SL, SL-M, STP LMT); got {value!r}",
            hint="trailing stops and other conditional types are not supported: "
            "submit the child order your broker sends",
        )
    return found


#: The strategy whose positions book the fills of manual orders (orders without a strategy).
MANUAL_BOOK = "manual"
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "opg", "cls", "gtd")

#: Fields that define an order: a client order id reused with different values
#: for any of them is a conflict, not a retry.
_IDENTITY_FIELDS = (
    "strategy_id",
    "instrument_id",
    "side",
    "order_type",
    "quantity",
    "price",
    "stop_price",
    "time_in_force",
    "signal_id",
)

_ORDER_COLUMNS = (*t.orders.c, t.instruments.c.symbol)


def _select() -> sa.Select[Any]:
    return sa.select(*_ORDER_COLUMNS).join(t.instruments, t.instruments.c.id == t.orders.c.instrument_id)


def append_history(
    conn: sa.Connection,
    order_id: uuid.UUID,
    from_status: str | None,
    status: str,
    filled_quantity: Decimal,
    details: dict[str, Any] | None,
) -> None:
    """Append one ``order_history`` row (caller holds the order's row lock)."""
    conn.execute(
        sa.insert(t.order_history).values(
            order_id=order_id,
            from_status=from_status,
            status=status,
            filled_quantity=filled_quantity,
            details=details,
            # clock_timestamp, not now(): taken under the row lock, so history
            # sorts in the order the changes were made, not transaction starts.
            ts=sa.func.clock_timestamp(),
        )
    )


def get_order(conn: sa.Connection, order_id: uuid.UUID | str, *, lock: bool = False) -> dict[str, Any]:
    """One order with its ``symbol`` (raises :class:`NotFound`).

    ``lock=True`` takes ``FOR UPDATE`` on the order row (not on the instrument).
    """
    oid = as_uuid(order_id, "order id")
    query = _select().where(t.orders.c.id == oid)
    if lock:
        query = query.with_for_update(of=t.orders)
    row = row_dict(conn.execute(query).first())
    if row is None:
        raise NotFound(f"unknown order {oid}", hint="list orders with `marketdb orders list`")
    return row


def find_by_client_order_id(conn: sa.Connection, client_order_id: str) -> dict[str, Any] | None:
    """The order submitted with ``client_order_id``, or None."""
    return row_dict(conn.execute(_select().where(t.orders.c.client_order_id == client_order_id)).first())


def submit_order(
    conn: sa.Connection,
    actor: Actor,
    strategy_id: str | None,
    instrument: InstrumentRef,
    side: str,
    quantity: Decimal | int | str,
    *,
    order_type: str = "market",
    price: Decimal | int | str | None = None,
    stop_price: Decimal | int | str | None = None,
    time_in_force: str = "day",
    client_order_id: str | None = None,
    signal_id: uuid.UUID | str | None = None,
    expires_at: dt.datetime | None = None,
    broker_order_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Submit an order in status ``pending``; returns ``(order, created)``.

    An order of a strategy: fills update the strategy's position in the
    instrument. ``strategy_id=None`` is a *manual* order (document 004): its
    fills book to the built-in strategy ``manual``. ``order_type`` may be a
    broker spelling (``SL-M``, ``SL``, ``MKT``, ...; see :func:`parse_order_type`).
    With ``client_order_id``, submitting the same order again
    returns the first one (``created`` False); reusing the id for a *different*
    order raises :class:`Conflict`.

    Prices by type: market (no price, no stop), limit (price), stop (stop
    price), stop_limit (both). ``gtd`` needs ``expires_at``.
    """
    values: dict[str, Any] = {
        "strategy_id": strategy_id,
        "side": Side(v.choice(side, "order side", ("buy", "sell"))).value,
        "order_type": parse_order_type(order_type),
        "quantity": v.positive_money(quantity, "order quantity"),
        "price": v.optional_positive_money(price, "order price"),
        "stop_price": v.optional_positive_money(stop_price, "order stop price"),
        "time_in_force": v.choice(time_in_force, "time in force", TIME_IN_FORCE),
        "client_order_id": v.optional_text(client_order_id, "client_order_id"),
        "signal_id": None if signal_id is None else as_uuid(signal_id, "signal id"),
        "expires_at": utc(expires_at, "expires_at"),
        "broker_order_id": v.optional_text(broker_order_id, "broker_order_id"),
        "status": OrderStatus.PENDING.value,
    }
    _check_prices(values)
    if values["time_in_force"] == "gtd" and values["expires_at"] is None:
        raise InvalidInput("a 'gtd' (good till date) order needs expires_at")
    if client_order_id is not None and (not isinstance(client_order_id, str) or not client_order_id.strip()):
        raise InvalidInput("client_order_id must be a non-empty string or None")
    if strategy_id is not None:
        strategy_exists(conn, strategy_id)
    values["instrument_id"] = resolve_instrument(conn, instrument)
    if values["signal_id"] is not None:
        found = conn.execute(sa.select(t.signals.c.id).where(t.signals.c.id == values["signal_id"])).first()
        if found is None:
            raise NotFound(f"unknown signal {values['signal_id']}")

    insert = pg.insert(t.orders).values(**values)
    if client_order_id is not None:
        insert = insert.on_conflict_do_nothing(index_elements=["client_order_id"])
    row = conn.execute(insert.returning(t.orders.c.id)).first()
    if row is None:
        # Same client order id: a retry of the same order, or a reuse by mistake.
        existing = find_by_client_order_id(conn, client_order_id or "")
        if existing is None:  # pragma: no cover - deleted between the two statements
            raise Conflict(f"client order id {client_order_id!r} is in use; retry")
        differing = [f for f in _IDENTITY_FIELDS if _norm(existing[f]) != _norm(values[f])]
        if differing:
            raise Conflict(
                f"client order id {client_order_id!r} was already used for a different order "
                f"({existing['id']}); differing fields: {', '.join(differing)}",
                hint="use a new client order id for a new order",
                details={"order_id": str(existing["id"]), "differing": differing},
            )
        return existing, False
    append_history(conn, row.id, None, OrderStatus.PENDING.value, Decimal(0), {"event": "submitted"})
    order = get_order(conn, row.id)
    audit(conn, actor, "order.submit", "order", row.id, new=order)
    return order, True


def _norm(value: Any) -> Any:
    return value.normalize() if isinstance(value, Decimal) else value


def _check_prices(values: dict[str, Any]) -> None:
    kind, price, stop = values["order_type"], values["price"], values["stop_price"]
    needs_price = kind in ("limit", "stop_limit")
    needs_stop = kind in ("stop", "stop_limit")
    if needs_price and price is None:
        raise InvalidInput(f"a {kind} order needs a limit price")
    if not needs_price and price is not None:
        raise InvalidInput(f"a {kind} order takes no limit price (got {price})")
    if needs_stop and stop is None:
        raise InvalidInput(f"a {kind} order needs a stop price")
    if not needs_stop and stop is not None:
        raise InvalidInput(f"a {kind} order takes no stop price (got {stop})")


def transition_order(
    conn: sa.Connection,
    actor: Actor,
    order_id: uuid.UUID | str,
    status: str | OrderStatus,
    *,
    reason: str | None = None,
    broker_order_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move an order to ``open``, ``cancelled``, ``rejected`` or ``expired``.

    Validated under the order's row lock; appends history and an audit row in
    the same transaction. ``partially_filled`` and ``filled`` come only from
    fills (:func:`marketdb.services.trading.fills.record_fill`).
    """
    reason = v.optional_text(reason, "reason", max_len=2000)
    broker_order_id = v.optional_text(broker_order_id, "broker_order_id")
    target = parse_order_status(status)
    if target in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
        raise InvalidInput(
            f"an order becomes {target.value} only by recording fills",
            hint="use record_fill (`marketdb fills record`)",
        )
    order = get_order(conn, order_id, lock=True)
    frm, to = validate_order_transition(order["status"], target, order_id=order["id"])
    values: dict[str, Any] = {"status": to.value, "updated_at": sa.func.now()}
    if to is OrderStatus.CANCELLED:
        values["cancelled_at"] = sa.func.now()
    if to is OrderStatus.REJECTED and reason is not None:
        values["error_message"] = reason
    if broker_order_id is not None:
        values["broker_order_id"] = broker_order_id
    conn.execute(sa.update(t.orders).where(t.orders.c.id == order["id"]).values(**values))
    history = dict(v.json_object(details, "details"))
    if reason is not None:
        history["reason"] = reason
    if broker_order_id is not None:
        history["broker_order_id"] = broker_order_id
    append_history(conn, order["id"], frm.value, to.value, order["filled_quantity"], history or None)
    new = get_order(conn, order["id"])
    audit(
        conn,
        actor,
        f"order.{to.value}",
        "order",
        order["id"],
        old={"status": frm.value},
        new={"status": to.value, **history},
    )
    return new


def expire_orders(conn: sa.Connection, actor: Actor, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Expire working orders whose ``expires_at`` has passed; returns their ids.

    Only ``open`` and ``partially_filled`` orders can expire (a ``pending``
    order past its expiry is left for the caller to cancel or reject).
    """
    cutoff = utc(now, "now") or now_utc()
    ids = (
        conn.execute(
            sa.select(t.orders.c.id)
            .where(
                t.orders.c.status.in_([OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value]),
                t.orders.c.expires_at.is_not(None),
                t.orders.c.expires_at <= cutoff,
            )
            .order_by(t.orders.c.id)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    expired: list[uuid.UUID] = []
    for oid in ids:
        transition_order(conn, actor, oid, OrderStatus.EXPIRED, reason="expires_at passed")
        expired.append(oid)
    return expired


def list_orders(
    conn: sa.Connection,
    *,
    strategy_id: str | None = None,
    instrument: InstrumentRef | None = None,
    status: str | None = None,
    working: bool = False,
    limit: int | None = 1000,
) -> list[dict[str, Any]]:
    """Orders, newest first. ``working=True``: pending, open and partially filled only."""
    query = _select()
    if strategy_id is not None:
        query = query.where(t.orders.c.strategy_id == strategy_id)
    if instrument is not None:
        query = query.where(t.orders.c.instrument_id == resolve_instrument(conn, instrument))
    if status is not None:
        query = query.where(t.orders.c.status == parse_order_status(status).value)
    if working:
        query = query.where(t.orders.c.status.in_([s.value for s in WORKING_ORDER_STATUSES]))
    query = query.order_by(t.orders.c.created_at.desc(), t.orders.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]


def order_history(conn: sa.Connection, order_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """The order's status history, oldest first (raises :class:`NotFound`)."""
    order = get_order(conn, order_id)
    rows = conn.execute(
        sa.select(t.order_history)
        .where(t.order_history.c.order_id == order["id"])
        .order_by(t.order_history.c.ts, t.order_history.c.filled_quantity)
    )
    return [dict(r._mapping) for r in rows]


def is_final(order: dict[str, Any]) -> bool:
    """True when the order's status is terminal."""
    return parse_order_status(order["status"]) in TERMINAL_ORDER_STATUSES
