"""Signals: strategy-generated (document 004) and user-owned (document 002), one table.

A *strategy signal* has a type among LONG, SHORT, EXIT_LONG, EXIT_SHORT and a
strength and confidence in [0, 1]. A *user signal* belongs to a user, has a
free-form type and carries its payload in ``data`` (JSONB); strength and
confidence are optional. Both live through ``active -> executed | expired |
cancelled`` (:data:`~marketdb.services.trading.state.SIGNAL_TRANSITIONS`).

"Active signals" queries filter on ``status = 'active'`` so PostgreSQL can use
the partial index ``ix_signals_active (strategy_id, instrument_id) WHERE
status = 'active'``, which stays small however many old signals pile up.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
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
from marketdb.services.trading.state import SignalStatus, validate_signal_transition
from marketdb.store.schema import tables as t

STRATEGY_SIGNAL_TYPES = ("LONG", "SHORT", "EXIT_LONG", "EXIT_SHORT")

#: The order side each strategy signal type implies.
SIDE_OF_SIGNAL = {"LONG": "buy", "SHORT": "sell", "EXIT_LONG": "sell", "EXIT_SHORT": "buy"}

_SIGNAL_COLUMNS = (*t.signals.c, t.instruments.c.symbol)


def _select() -> sa.Select[Any]:
    return sa.select(*_SIGNAL_COLUMNS).join(t.instruments, t.instruments.c.id == t.signals.c.instrument_id)


def create_signal(
    conn: sa.Connection,
    actor: Actor,
    instrument: InstrumentRef,
    signal_type: str,
    *,
    strategy_id: str | None = None,
    user_id: uuid.UUID | str | None = None,
    strength: float | None = None,
    confidence: float | None = None,
    target_price: Decimal | int | float | str | None = None,
    stop_loss: Decimal | int | float | str | None = None,
    expires_at: dt.datetime | None = None,
    data: dict[str, Any] | None = None,
    ts: dt.datetime | None = None,
) -> dict[str, Any]:
    """Record a signal and return it (with its ``symbol``).

    Give ``strategy_id`` for a strategy signal (type, strength and confidence
    required) or ``user_id`` for a user signal (any non-empty type).
    """
    if strategy_id is None and user_id is None:
        raise InvalidInput(
            "a signal needs an owner: pass strategy_id (strategy signal) or user_id (user signal)"
        )
    kind = v.text(signal_type, "signal type", max_len=50).strip()
    if strategy_id is not None:
        kind = v.choice(kind, "strategy signal type", STRATEGY_SIGNAL_TYPES, upper=True)
        if strength is None or confidence is None:
            raise InvalidInput("a strategy signal needs both strength and confidence in [0, 1]")
    values: dict[str, Any] = {
        "strategy_id": strategy_id,
        "user_id": None if user_id is None else as_uuid(user_id, "user_id"),
        "signal_type": kind,
        "strength": None if strength is None else v.unit_interval(strength, "signal strength"),
        "confidence": None if confidence is None else v.unit_interval(confidence, "signal confidence"),
        "target_price": v.optional_positive_money(target_price, "signal target price"),
        "stop_loss": v.optional_positive_money(stop_loss, "signal stop loss"),
        "expires_at": utc(expires_at, "expires_at"),
        "data": v.json_object(data, "signal data"),
    }
    if ts is not None:
        values["ts"] = utc(ts, "ts")
    if strategy_id is not None:
        strategy_exists(conn, strategy_id)
    if values["user_id"] is not None:
        found = conn.execute(sa.select(t.users.c.id).where(t.users.c.id == values["user_id"])).first()
        if found is None:
            raise NotFound(f"unknown user {values['user_id']}")
    values["instrument_id"] = resolve_instrument(conn, instrument)
    row = conn.execute(sa.insert(t.signals).values(**values).returning(t.signals.c.id)).one()
    signal = get_signal(conn, row.id)
    audit(conn, actor, "signal.create", "signal", row.id, new=signal)
    return signal


def get_signal(conn: sa.Connection, signal_id: uuid.UUID | str) -> dict[str, Any]:
    """One signal (raises :class:`NotFound`)."""
    sid = as_uuid(signal_id, "signal id")
    row = row_dict(conn.execute(_select().where(t.signals.c.id == sid)).first())
    if row is None:
        raise NotFound(f"unknown signal {sid}")
    return row


def set_signal_status(
    conn: sa.Connection,
    actor: Actor,
    signal_id: uuid.UUID | str,
    status: str | SignalStatus,
    *,
    reason: str | None = None,
) -> dict[str, Any]:
    """Move a signal along its lifecycle (validated; raises :class:`Conflict` if illegal)."""
    sid = as_uuid(signal_id, "signal id")
    current = conn.execute(
        sa.select(t.signals.c.status).where(t.signals.c.id == sid).with_for_update()
    ).first()
    if current is None:
        raise NotFound(f"unknown signal {sid}")
    frm, to = validate_signal_transition(current.status, status, signal_id=sid)
    values: dict[str, Any] = {"status": to.value, "updated_at": sa.func.now()}
    if reason is not None:
        values["data"] = t.signals.c.data.op("||")(sa.func.jsonb_build_object("status_reason", reason))
    conn.execute(sa.update(t.signals).where(t.signals.c.id == sid).values(**values))
    audit(
        conn,
        actor,
        f"signal.{to.value}",
        "signal",
        sid,
        old={"status": frm.value},
        new={"status": to.value, "reason": reason},
    )
    return get_signal(conn, sid)


def execute_signal(
    conn: sa.Connection,
    actor: Actor,
    signal_id: uuid.UUID | str,
    quantity: Decimal | int | str,
    *,
    side: str | None = None,
    order_type: str = "market",
    price: Decimal | int | str | None = None,
    stop_price: Decimal | int | str | None = None,
    time_in_force: str = "day",
    client_order_id: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Turn an active signal into an order and mark it executed; returns ``(signal, order)``.

    The order links back with ``signal_id``, belongs to the signal's strategy
    (none for a user signal: a manual order) and trades the signal's
    instrument; its side follows the signal type (LONG and EXIT_SHORT buy,
    SHORT and EXIT_LONG sell) unless ``side`` is given (required for user
    signals with free-form types). The signal row is locked first, so two
    concurrent executions make one order: the second raises :class:`Conflict`.
    """
    from marketdb.services.trading.orders import submit_order

    sid = as_uuid(signal_id, "signal id")
    current = conn.execute(
        sa.select(
            t.signals.c.status, t.signals.c.signal_type, t.signals.c.strategy_id, t.signals.c.instrument_id
        )
        .where(t.signals.c.id == sid)
        .with_for_update()
    ).first()
    if current is None:
        raise NotFound(f"unknown signal {sid}")
    validate_signal_transition(current.status, SignalStatus.EXECUTED, signal_id=sid)
    if side is None:
        implied = SIDE_OF_SIGNAL.get(current.signal_type.upper())
        if implied is None:
            raise InvalidInput(
                f"signal type {current.signal_type!r} implies no order side",
                hint="pass side='buy' or side='sell'",
            )
        side = implied
    order, _ = submit_order(
        conn,
        actor,
        current.strategy_id,
        current.instrument_id,
        side,
        quantity,
        order_type=order_type,
        price=price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        client_order_id=client_order_id,
        signal_id=sid,
    )
    signal = set_signal_status(conn, actor, sid, SignalStatus.EXECUTED)
    return signal, order


def expire_signals(conn: sa.Connection, actor: Actor, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Expire every active signal whose ``expires_at`` is at or before ``now``.

    Returns the ids it expired. One audit row records the sweep and the ids.
    Safe to run concurrently: rows are updated once (``status = 'active'`` is
    re-checked under the row lock).
    """
    cutoff = utc(now, "now") or now_utc()
    rows = conn.execute(
        sa.update(t.signals)
        .where(
            ACTIVE,
            t.signals.c.expires_at.is_not(None),
            t.signals.c.expires_at <= cutoff,
        )
        .values(status=SignalStatus.EXPIRED.value, updated_at=sa.func.now())
        .returning(t.signals.c.id)
    ).all()
    expired = sorted((r.id for r in rows), key=str)
    if expired:
        audit(
            conn,
            actor,
            "signal.expire_sweep",
            "signal",
            None,
            new={"expired": expired, "cutoff": cutoff},
        )
    return expired


#: ``status = 'active'`` as a SQL literal, not a bind parameter, so every plan
#: (including generic plans of prepared statements) can use the partial index.
ACTIVE = t.signals.c.status == sa.literal_column("'active'")


def active_signals_query(
    *,
    strategy_id: str | None = None,
    instrument_id: int | None = None,
    user_id: uuid.UUID | None = None,
) -> sa.Select[Any]:
    """The SELECT behind :func:`active_signals` (exposed so tests can EXPLAIN it)."""
    query = _select().where(ACTIVE)
    if strategy_id is not None:
        query = query.where(t.signals.c.strategy_id == strategy_id)
    if instrument_id is not None:
        query = query.where(t.signals.c.instrument_id == instrument_id)
    if user_id is not None:
        query = query.where(t.signals.c.user_id == user_id)
    return query.order_by(t.signals.c.ts.desc(), t.signals.c.id)


def active_signals(
    conn: sa.Connection,
    *,
    strategy_id: str | None = None,
    instrument: InstrumentRef | None = None,
    user_id: uuid.UUID | str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Active signals, newest first, for a strategy, an instrument, a user or all."""
    query = active_signals_query(
        strategy_id=strategy_id,
        instrument_id=None if instrument is None else resolve_instrument(conn, instrument),
        user_id=None if user_id is None else as_uuid(user_id, "user_id"),
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]


def list_signals(
    conn: sa.Connection,
    *,
    strategy_id: str | None = None,
    instrument: InstrumentRef | None = None,
    user_id: uuid.UUID | str | None = None,
    status: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int | None = 1000,
) -> list[dict[str, Any]]:
    """Signals in any status, newest first; ``start`` inclusive, ``end`` exclusive."""
    query = _select()
    if strategy_id is not None:
        query = query.where(t.signals.c.strategy_id == strategy_id)
    if instrument is not None:
        query = query.where(t.signals.c.instrument_id == resolve_instrument(conn, instrument))
    if user_id is not None:
        query = query.where(t.signals.c.user_id == as_uuid(user_id, "user_id"))
    if status is not None:
        query = query.where(t.signals.c.status == v.choice(status, "signal status", tuple(SignalStatus)))
    if start is not None:
        query = query.where(t.signals.c.ts >= utc(start, "start"))
    if end is not None:
        query = query.where(t.signals.c.ts < utc(end, "end"))
    query = query.order_by(t.signals.c.ts.desc(), t.signals.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]
