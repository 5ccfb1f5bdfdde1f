"""Positions: one open row per (strategy, instrument), updated by fills, marked to market.

A position row is the life of one side of a trade. It opens with the first
fill from flat and closes (``status = 'closed'``, ``closed_at`` set, quantity
and cost basis zero) when a fill brings it to exactly zero. A *flip* (a sell
larger than a long, or a buy larger than a short) closes the row, charging
it the fill's realized P&L and the whole commission of the flipping fill, and
opens a new row for the remainder at the fill price. So the realized P&L of
(strategy, instrument) is the sum over its rows, and every row's numbers come
from :mod:`.accounting`.

Marks: the latest trade price in ``trades``, or the latest close in
``candles`` when it is more recent (or there are no trades), per instrument.
Market-data prices are float64; they become Decimals through their shortest
repr, so a stored 101.25 marks at exactly ``Decimal("101.25")``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import (
    Actor,
    InstrumentRef,
    audit,
    resolve_instrument,
    resolve_instruments,
    row_dict,
)
from marketdb.services.trading.accounting import (
    Fill,
    FillEffect,
    PositionState,
    apply_fill,
    to_decimal,
    unrealized_pnl,
)
from marketdb.store.schema import tables as t

_POSITION_COLUMNS = (*t.positions.c, t.instruments.c.symbol)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marker for "leave this field as it is" (``None`` means "clear it").
UNSET: Any = _Unset()


def _select() -> sa.Select[Any]:
    return sa.select(*_POSITION_COLUMNS).join(
        t.instruments, t.instruments.c.id == t.positions.c.instrument_id
    )


def state_of(row: Mapping[str, Any]) -> PositionState:
    """The accounting state stored in a position row."""
    return PositionState(
        quantity=row["quantity"],
        cost_basis=row["cost_basis"],
        realized_pnl=row["realized_pnl"],
        commissions=row["commissions"],
    )


def lock_open_position(
    conn: sa.Connection, strategy_id: str, instrument_id: int, *, create: bool
) -> dict[str, Any] | None:
    """``SELECT .. FOR UPDATE`` the open position; with ``create``, make a flat one first.

    Creation is race-free: ``INSERT .. ON CONFLICT DO NOTHING`` on the partial
    unique index (one open row per strategy and instrument), then the lock.
    Under READ COMMITTED, a concurrent creator makes the insert wait and do
    nothing, and the following SELECT sees the committed row.
    """
    open_row = sa.and_(
        t.positions.c.strategy_id == strategy_id,
        t.positions.c.instrument_id == instrument_id,
        t.positions.c.status == "open",
    )
    query = sa.select(t.positions).where(open_row).with_for_update()
    row = conn.execute(query).first()
    if row is None and create:
        conn.execute(
            pg.insert(t.positions)
            .values(strategy_id=strategy_id, instrument_id=instrument_id, quantity=0)
            .on_conflict_do_nothing(
                index_elements=["strategy_id", "instrument_id"],
                # A literal, not a bind parameter: PostgreSQL must see the
                # predicate to infer the partial index ix_positions_one_open.
                index_where=sa.text("status = 'open'"),
            )
        )
        row = conn.execute(query).first()
    return row_dict(row)


def _unrealized(state: PositionState, current_price: Decimal | None) -> Decimal | None:
    return None if current_price is None else unrealized_pnl(state, current_price)


def apply_fill_to_position(
    conn: sa.Connection,
    strategy_id: str,
    instrument_id: int,
    fill: Fill,
    ts: dt.datetime,
) -> tuple[FillEffect, list[dict[str, Any]]]:
    """Apply ``fill`` to the strategy's open position (locked); returns the rows written.

    The caller holds the order's row lock (lock order: order, then position).
    """
    row = lock_open_position(conn, strategy_id, instrument_id, create=True)
    assert row is not None
    effect = apply_fill(state_of(row), fill)
    after = effect.after
    current = row["current_price"]
    written: list[dict[str, Any]] = []
    if effect.flipped:
        closing = {
            "quantity": Decimal(0),
            "cost_basis": Decimal(0),
            "realized_pnl": after.realized_pnl,
            "commissions": after.commissions,
            "unrealized_pnl": None if current is None else Decimal(0),
            "status": "closed",
            "closed_at": ts,
        }
        written.append(_update(conn, row["id"], closing))
        opened = conn.execute(
            sa.insert(t.positions)
            .values(
                strategy_id=strategy_id,
                instrument_id=instrument_id,
                quantity=after.quantity,
                cost_basis=after.cost_basis,
                average_entry_price=after.average_price,
                realized_pnl=Decimal(0),
                commissions=Decimal(0),
                current_price=current,
                unrealized_pnl=_unrealized(PositionState(after.quantity, after.cost_basis), current),
                opened_at=ts,
            )
            .returning(*t.positions.c)
        ).one()
        written.append(dict(opened._mapping))
        return effect, written
    values: dict[str, Any] = {
        "quantity": after.quantity,
        "cost_basis": after.cost_basis,
        "realized_pnl": after.realized_pnl,
        "commissions": after.commissions,
        "unrealized_pnl": _unrealized(after, current),
    }
    if effect.closed:
        values.update(status="closed", closed_at=ts)  # keeps the entry price of the trade
    else:
        values["average_entry_price"] = after.average_price
    if effect.opened:
        values["opened_at"] = ts
    written.append(_update(conn, row["id"], values))
    return effect, written


def _update(conn: sa.Connection, position_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute(
        sa.update(t.positions)
        .where(t.positions.c.id == position_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*t.positions.c)
    ).one()
    return dict(row._mapping)


def get_open_position(
    conn: sa.Connection, strategy_id: str, instrument: InstrumentRef
) -> dict[str, Any] | None:
    """The open position of a strategy in an instrument, or None."""
    instrument_id = resolve_instrument(conn, instrument)
    row = conn.execute(
        _select().where(
            t.positions.c.strategy_id == strategy_id,
            t.positions.c.instrument_id == instrument_id,
            t.positions.c.status == "open",
        )
    ).first()
    return row_dict(row)


def list_positions(
    conn: sa.Connection,
    *,
    strategy_id: str | None = None,
    instrument: InstrumentRef | None = None,
    status: str = "open",
) -> list[dict[str, Any]]:
    """Positions (``status``: open, closed or all), newest first."""
    status = v.choice(status, "position status", ("open", "closed", "all"))
    query = _select()
    if strategy_id is not None:
        query = query.where(t.positions.c.strategy_id == strategy_id)
    if instrument is not None:
        query = query.where(t.positions.c.instrument_id == resolve_instrument(conn, instrument))
    if status != "all":
        query = query.where(t.positions.c.status == status)
    query = query.order_by(t.positions.c.opened_at.desc(), t.positions.c.id)
    return [dict(r._mapping) for r in conn.execute(query)]


def set_stops(
    conn: sa.Connection,
    actor: Actor,
    strategy_id: str,
    instrument: InstrumentRef,
    *,
    stop_loss: Decimal | int | str | None = UNSET,
    target: Decimal | int | str | None = UNSET,
) -> dict[str, Any]:
    """Set (or clear with ``None``) the stop-loss and target prices of the open position."""
    values: dict[str, Any] = {}
    if stop_loss is not UNSET:
        values["stop_loss_price"] = v.optional_positive_money(stop_loss, "stop-loss price")
    if target is not UNSET:
        values["target_price"] = v.optional_positive_money(target, "target price")
    if not values:
        raise InvalidInput("pass stop_loss and/or target (None clears a price)")
    instrument_id = resolve_instrument(conn, instrument)
    row = lock_open_position(conn, strategy_id, instrument_id, create=False)
    if row is None or row["quantity"] == 0:
        raise NotFound(f"strategy {strategy_id!r} has no open position in {instrument!r}")
    new = _update(conn, row["id"], values)
    audit(
        conn,
        actor,
        "position.set_stops",
        "position",
        row["id"],
        old={k: row[k] for k in values},
        new=values,
    )
    return new


def latest_prices(
    conn: sa.Connection, instrument_ids: Iterable[int]
) -> dict[int, tuple[Decimal, dt.datetime, str]]:
    """Latest usable price per instrument: ``{id: (price, ts, source)}``.

    ``source`` is ``"trade"`` or ``"candle:<interval>"``. The more recent of the
    last trade and the last candle (by bucket start) wins; a trade wins ties.
    Non-positive prices are skipped (they cannot value a position).
    """
    ids = sorted(set(instrument_ids))
    if not ids:
        return {}
    # One index probe per instrument (LATERAL .. LIMIT 1 on the (instrument_id, ts)
    # key), instead of scanning every trade as DISTINCT ON or a window would.
    inst = t.instruments
    tr = t.trades
    last_trade = (
        sa.select(tr.c.price, tr.c.ts)
        .where(tr.c.instrument_id == inst.c.id, tr.c.price > 0)
        .order_by(tr.c.ts.desc(), tr.c.ts_nanos.desc(), tr.c.seq.desc())
        .limit(1)
        .lateral("last_trade")
    )
    trades = conn.execute(
        sa.select(inst.c.id.label("instrument_id"), last_trade.c.price, last_trade.c.ts)
        .select_from(inst.join(last_trade, sa.true()))
        .where(inst.c.id.in_(ids))
    ).all()
    c = t.candles
    last_candle = (
        sa.select(c.c.close, c.c.ts, c.c.interval)
        .where(c.c.instrument_id == inst.c.id, c.c.close > 0)
        .order_by(c.c.ts.desc(), c.c.interval)
        .limit(1)
        .lateral("last_candle")
    )
    candles = conn.execute(
        sa.select(
            inst.c.id.label("instrument_id"),
            last_candle.c.close,
            last_candle.c.ts,
            last_candle.c.interval,
        )
        .select_from(inst.join(last_candle, sa.true()))
        .where(inst.c.id.in_(ids))
    ).all()
    result: dict[int, tuple[Decimal, dt.datetime, str]] = {}
    for candle in candles:
        result[candle.instrument_id] = (
            to_decimal(candle.close, "candle close"),
            candle.ts,
            f"candle:{candle.interval}",
        )
    for trade in trades:
        prior = result.get(trade.instrument_id)
        if prior is None or trade.ts >= prior[1]:
            result[trade.instrument_id] = (to_decimal(trade.price, "trade price"), trade.ts, "trade")
    return result


def mark_positions(
    conn: sa.Connection,
    actor: Actor,
    *,
    strategy_id: str | None = None,
    prices: Mapping[InstrumentRef, Decimal | int | float | str] | None = None,
) -> list[dict[str, Any]]:
    """Mark open positions to market: set ``current_price`` and ``unrealized_pnl``.

    ``prices`` overrides the market-data price per instrument (id or symbol).
    Positions without any price are left as they are and reported with
    ``mark_source = None``. Returns the open positions with ``mark_source``.
    """
    query = sa.select(t.positions).where(t.positions.c.status == "open")
    if strategy_id is not None:
        query = query.where(t.positions.c.strategy_id == strategy_id)
    rows = conn.execute(query.order_by(t.positions.c.id).with_for_update()).all()
    override: dict[int, Decimal] = {}
    if prices:
        ids = resolve_instruments(conn, list(prices))
        override = {ids[k]: v.positive_money(p, f"price of {k}") for k, p in prices.items()}
    market = latest_prices(conn, [r.instrument_id for r in rows if r.instrument_id not in override])
    marked: list[dict[str, Any]] = []
    for r in rows:
        row = dict(r._mapping)
        if r.instrument_id in override:
            price, source = override[r.instrument_id], "given"
        elif r.instrument_id in market:
            price, _, source = market[r.instrument_id]
        else:
            marked.append({**row, "mark_source": None})
            continue
        new = _update(
            conn,
            r.id,
            {"current_price": price, "unrealized_pnl": unrealized_pnl(state_of(row), price)},
        )
        marked.append({**new, "mark_source": source})
    audit(
        conn,
        actor,
        "position.mark",
        "position",
        None,
        new={
            "strategy_id": strategy_id,
            "marks": {str(m["id"]): m["current_price"] for m in marked if m["mark_source"]},
        },
    )
    symbols = dict(
        conn.execute(
            sa.select(t.instruments.c.id, t.instruments.c.symbol).where(
                t.instruments.c.id.in_({m["instrument_id"] for m in marked})
            )
        ).all()
    )
    return [{**m, "symbol": symbols.get(m["instrument_id"])} for m in marked]
