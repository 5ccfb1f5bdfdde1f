"""The :class:`Trading` facade: one transaction per call over the trading functions.

Each method opens a transaction, does its work and its audit row inside it,
and commits, or rolls everything back on error. To combine several operations
atomically, call the module functions (:mod:`.orders`, :mod:`.fills`, ...)
yourself with one ``db.transaction()`` connection.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from marketdb.services.accounts.permissions import require_active, require_actor
from marketdb.services.accounts.users import resolve_user
from marketdb.services.trading import fills as _fills
from marketdb.services.trading import models as _models
from marketdb.services.trading import orders as _orders
from marketdb.services.trading import patterns as _patterns
from marketdb.services.trading import portfolio as _portfolio
from marketdb.services.trading import positions as _positions
from marketdb.services.trading import seed as _seed
from marketdb.services.trading import signals as _signals
from marketdb.services.trading import strategies as _strategies
from marketdb.services.trading._common import Actor, InstrumentRef, as_uuid, resolve_instrument
from marketdb.services.trading.fills import FillResult
from marketdb.services.trading.portfolio import PortfolioValuation
from marketdb.services.trading.positions import UNSET
from marketdb.services.trading.records import (
    Execution,
    HestonFit,
    Order,
    OrderHistoryEntry,
    OuFit,
    PatternEvent,
    PortfolioSnapshot,
    Position,
    R,
    SabrSlice,
    Signal,
    Strategy,
)
from marketdb.services.trading.state import OrderStatus, SignalStatus

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = ["SignalExecution", "Trading"]

Number = Decimal | int | str


@dataclass(frozen=True, slots=True)
class SignalExecution:
    """What :meth:`Trading.execute_signal` did: the executed signal and the order it made (or None)."""

    signal: Signal
    order: Order | None


def _maybe(record: type[R], row: Mapping[str, Any] | None) -> R | None:
    return None if row is None else record.from_row(row)


def _user_id(db: Database, user: uuid.UUID | str) -> uuid.UUID:
    """The id of a user given by id or username (:class:`NotFound` if unknown)."""
    with db.transaction() as conn:
        return resolve_user(conn, user)


class Trading:
    """Strategies, signals, orders, fills, positions, portfolio, patterns, model parameters.

    ``Trading(db)`` (``db.trading``) is the *system actor*: the library used
    directly with the database's own credentials, no permission checks, audit
    rows without a user. :meth:`as_user` (``db.trading.as_user(user_id)``)
    returns a Trading acting for a user: every mutating method first checks,
    in the same transaction as the change, that the user exists, is active
    and holds the permission in :data:`PERMISSIONS` (``PermissionDenied``
    otherwise); reads only need an active user. Instruments may be given as
    ids or symbols everywhere.
    """

    #: What each mutating method needs: ``method -> (resource, action)``, checked
    #: against the acting user's role in ``permissions`` (``'*'`` matches any).
    PERMISSIONS: ClassVar[Mapping[str, tuple[str, str]]] = {
        "create_strategy": ("strategies", "create"),
        "update_strategy": ("strategies", "update"),
        "enable_strategy": ("strategies", "update"),
        "disable_strategy": ("strategies", "update"),
        "create_signal": ("signals", "create"),
        "set_signal_status": ("signals", "update"),
        "execute_signal": ("signals", "update"),
        "cancel_signal": ("signals", "update"),
        "expire_signals": ("signals", "update"),
        "submit_order": ("orders", "create"),
        "transition_order": ("orders", "update"),
        "accept_order": ("orders", "update"),
        "cancel_order": ("orders", "update"),
        "reject_order": ("orders", "update"),
        "expire_order": ("orders", "update"),
        "expire_orders": ("orders", "update"),
        "record_fill": ("orders", "fill"),
        "set_stops": ("positions", "update"),
        "mark_to_market": ("positions", "update"),
        "snapshot_portfolio": ("portfolio", "create"),
        "record_pattern": ("patterns", "create"),
        "record_heston": ("models", "create"),
        "record_sabr": ("models", "create"),
        "record_ou": ("models", "create"),
        "seed_examples": ("instruments", "create"),
    }

    def __init__(self, db: Database, *, actor: Actor | None = None) -> None:
        self._db = db
        self.actor = actor if actor is not None else Actor()

    def __repr__(self) -> str:
        who = "system" if self.actor.user_id is None else f"user {self.actor.user_id}"
        return f"<Trading as {who}>"

    @property
    def is_system(self) -> bool:
        """True when this Trading acts as the system actor (no permission checks)."""
        return self.actor.user_id is None

    def as_user(
        self,
        user: uuid.UUID | str,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Trading:
        """A Trading acting for ``user`` (its id, or a username, looked up once).

        Every call is then permission-checked and audited as that user; this is
        what the HTTP API uses per request.
        """
        user_id = _user_id(self._db, user)
        return Trading(self._db, actor=Actor(user_id=user_id, ip=ip, user_agent=user_agent))

    def as_actor(
        self,
        who: Actor | uuid.UUID | str | None,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Trading:
        """A Trading acting (and audited) as ``who``: an Actor, or a user id plus IP and agent.

        An Actor without ``user_id`` (or ``None``) is the system actor.
        """
        if isinstance(who, Actor):
            return Trading(self._db, actor=who)
        user_id = None if who is None else as_uuid(who, "user id")
        return Trading(self._db, actor=Actor(user_id=user_id, ip=ip, user_agent=user_agent))

    @contextmanager
    def _tx(self, method: str | None = None) -> Iterator[sa.Connection]:
        """One transaction; for a mutating ``method`` the actor's permission is checked in it first.

        A constraint violation that slipped past validation becomes a marketdb error (by SQLSTATE).
        """
        with self._db.transaction(translate_errors=True) as conn:
            if method is not None:
                resource, action = self.PERMISSIONS[method]
                require_actor(conn, self.actor, resource, action)
            else:
                require_active(conn, self.actor)
            yield conn

    # ------------------------------------------------------------ strategies
    def create_strategy(
        self,
        strategy_id: str,
        name: str,
        *,
        description: str | None = None,
        strategy_type: str = "custom",
        class_name: str | None = None,
        config: dict[str, Any] | None = None,
        risk_limits: dict[str, Any] | None = None,
        symbols: Sequence[str] = (),
        execution_mode: str = "paper",
        enabled: bool = False,
        exist_ok: bool = False,
    ) -> Strategy:
        """Create a strategy; mode is ``paper`` or ``live``.

        An existing id raises :class:`Conflict`, unless ``exist_ok=True``: then the
        existing strategy is returned unchanged (get-or-create; the other arguments
        are not compared or applied -- use :meth:`update_strategy` to change it).
        """
        with self._tx("create_strategy") as conn:
            row, _ = _strategies.create_strategy(
                conn,
                self.actor,
                strategy_id,
                name,
                description=description,
                strategy_type=strategy_type,
                class_name=class_name,
                config=config,
                risk_limits=risk_limits,
                symbols=symbols,
                execution_mode=execution_mode,
                enabled=enabled,
                if_exists="skip" if exist_ok else "error",
            )
            return Strategy.from_row(row)

    def update_strategy(self, strategy_id: str, **changes: Any) -> Strategy:
        """Update name, description, strategy_type, class_name, config, risk_limits,
        symbols, execution_mode or status (config and risk_limits are replaced whole)."""
        with self._tx("update_strategy") as conn:
            return Strategy.from_row(_strategies.update_strategy(conn, self.actor, strategy_id, **changes))

    def enable_strategy(self, strategy_id: str) -> Strategy:
        """Enable a strategy."""
        with self._tx("enable_strategy") as conn:
            return Strategy.from_row(_strategies.set_enabled(conn, self.actor, strategy_id, True))

    def disable_strategy(self, strategy_id: str) -> Strategy:
        """Disable a strategy (a running or paused one becomes stopped)."""
        with self._tx("disable_strategy") as conn:
            return Strategy.from_row(_strategies.set_enabled(conn, self.actor, strategy_id, False))

    def strategy(self, strategy_id: str) -> Strategy:
        """One strategy (:class:`NotFound` if unknown)."""
        with self._tx() as conn:
            return Strategy.from_row(_strategies.get_strategy(conn, strategy_id))

    def strategies(
        self,
        *,
        enabled: bool | None = None,
        execution_mode: str | None = None,
        status: str | None = None,
    ) -> list[Strategy]:
        """Strategies, optionally filtered."""
        with self._tx() as conn:
            return [
                Strategy.from_row(r)
                for r in _strategies.list_strategies(
                    conn, enabled=enabled, execution_mode=execution_mode, status=status
                )
            ]

    # --------------------------------------------------------------- signals
    def create_signal(
        self,
        instrument: InstrumentRef,
        signal_type: str,
        *,
        strategy_id: str | None = None,
        user_id: uuid.UUID | str | None = None,
        strength: float | None = None,
        confidence: float | None = None,
        target_price: Number | None = None,
        stop_loss: Number | None = None,
        expires_at: dt.datetime | None = None,
        data: dict[str, Any] | None = None,
        ts: dt.datetime | None = None,
    ) -> Signal:
        """Record a strategy signal (``strategy_id``) or a user signal (``user_id``)."""
        with self._tx("create_signal") as conn:
            return Signal.from_row(
                _signals.create_signal(
                    conn,
                    self.actor,
                    instrument,
                    signal_type,
                    strategy_id=strategy_id,
                    user_id=user_id,
                    strength=strength,
                    confidence=confidence,
                    target_price=target_price,
                    stop_loss=stop_loss,
                    expires_at=expires_at,
                    data=data,
                    ts=ts,
                )
            )

    def set_signal_status(
        self, signal_id: uuid.UUID | str, status: str, *, reason: str | None = None
    ) -> Signal:
        """Move a signal to executed, expired or cancelled (validated)."""
        with self._tx("set_signal_status") as conn:
            return Signal.from_row(
                _signals.set_signal_status(conn, self.actor, signal_id, status, reason=reason)
            )

    def execute_signal(
        self,
        signal_id: uuid.UUID | str,
        quantity: Number | None = None,
        *,
        side: str | None = None,
        order_type: str = "market",
        price: Number | None = None,
        stop_price: Number | None = None,
        time_in_force: str = "day",
        client_order_id: str | None = None,
    ) -> SignalExecution:
        """Execute an active signal: with ``quantity``, create its order (linked by
        ``signal_id``; side from the signal type unless given) and mark the signal
        executed, in one transaction; without, only mark it executed."""
        with self._tx("execute_signal") as conn:
            if quantity is None:
                signal = _signals.set_signal_status(conn, self.actor, signal_id, SignalStatus.EXECUTED)
                return SignalExecution(signal=Signal.from_row(signal), order=None)
            resource, action = self.PERMISSIONS["submit_order"]
            require_actor(conn, self.actor, resource, action)
            signal, order = _signals.execute_signal(
                conn,
                self.actor,
                signal_id,
                quantity,
                side=side,
                order_type=order_type,
                price=price,
                stop_price=stop_price,
                time_in_force=time_in_force,
                client_order_id=client_order_id,
            )
            return SignalExecution(signal=Signal.from_row(signal), order=Order.from_row(order))

    def cancel_signal(self, signal_id: uuid.UUID | str, *, reason: str | None = None) -> Signal:
        """Cancel an active signal."""
        return self.set_signal_status(signal_id, SignalStatus.CANCELLED, reason=reason)

    def expire_signals(self, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
        """Expire active signals past their ``expires_at``; returns their ids."""
        with self._tx("expire_signals") as conn:
            return _signals.expire_signals(conn, self.actor, now=now)

    def signal(self, signal_id: uuid.UUID | str) -> Signal:
        """One signal."""
        with self._tx() as conn:
            return Signal.from_row(_signals.get_signal(conn, signal_id))

    def active_signals(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        user_id: uuid.UUID | str | None = None,
        limit: int | None = None,
    ) -> list[Signal]:
        """Active signals, newest first (served by the partial index)."""
        with self._tx() as conn:
            return [
                Signal.from_row(r)
                for r in _signals.active_signals(
                    conn, strategy_id=strategy_id, instrument=instrument, user_id=user_id, limit=limit
                )
            ]

    def signals(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        user_id: uuid.UUID | str | None = None,
        status: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = 1000,
    ) -> list[Signal]:
        """Signals in any status, newest first."""
        with self._tx() as conn:
            return [
                Signal.from_row(r)
                for r in _signals.list_signals(
                    conn,
                    strategy_id=strategy_id,
                    instrument=instrument,
                    user_id=user_id,
                    status=status,
                    start=start,
                    end=end,
                    limit=limit,
                )
            ]

    # ---------------------------------------------------------------- orders
    def submit_order(
        self,
        strategy_id: str | None,
        instrument: InstrumentRef,
        side: str,
        quantity: Number,
        *,
        order_type: str = "market",
        price: Number | None = None,
        stop_price: Number | None = None,
        time_in_force: str = "day",
        client_order_id: str | None = None,
        signal_id: uuid.UUID | str | None = None,
        expires_at: dt.datetime | None = None,
        broker_order_id: str | None = None,
    ) -> Order:
        """Submit an order (status ``pending``); idempotent by ``client_order_id``.

        ``strategy_id=None`` submits a manual order (fills book to the strategy
        ``manual``); ``order_type`` may be a broker spelling such as ``SL-M``.
        """
        with self._tx("submit_order") as conn:
            order, _ = _orders.submit_order(
                conn,
                self.actor,
                strategy_id,
                instrument,
                side,
                quantity,
                order_type=order_type,
                price=price,
                stop_price=stop_price,
                time_in_force=time_in_force,
                client_order_id=client_order_id,
                signal_id=signal_id,
                expires_at=expires_at,
                broker_order_id=broker_order_id,
            )
            return Order.from_row(order)

    def transition_order(
        self,
        order_id: uuid.UUID | str,
        status: str,
        *,
        reason: str | None = None,
        broker_order_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Order:
        """Move an order to open, cancelled, rejected or expired (validated, with history)."""
        with self._tx("transition_order") as conn:
            return Order.from_row(
                _orders.transition_order(
                    conn,
                    self.actor,
                    order_id,
                    status,
                    reason=reason,
                    broker_order_id=broker_order_id,
                    details=details,
                )
            )

    def accept_order(self, order_id: uuid.UUID | str, *, broker_order_id: str | None = None) -> Order:
        """The venue acknowledged the order: ``pending -> open``."""
        return self.transition_order(order_id, OrderStatus.OPEN, broker_order_id=broker_order_id)

    def cancel_order(self, order_id: uuid.UUID | str, *, reason: str | None = None) -> Order:
        """Cancel a working order."""
        return self.transition_order(order_id, OrderStatus.CANCELLED, reason=reason)

    def reject_order(self, order_id: uuid.UUID | str, *, reason: str) -> Order:
        """The venue rejected the order (``reason`` is stored as its error message)."""
        return self.transition_order(order_id, OrderStatus.REJECTED, reason=reason)

    def expire_order(self, order_id: uuid.UUID | str) -> Order:
        """The order expired (time in force ran out)."""
        return self.transition_order(order_id, OrderStatus.EXPIRED)

    def expire_orders(self, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
        """Expire open and partially filled orders past their ``expires_at``."""
        with self._tx("expire_orders") as conn:
            return _orders.expire_orders(conn, self.actor, now=now)

    def order(self, order_id: uuid.UUID | str) -> Order:
        """One order."""
        with self._tx() as conn:
            return Order.from_row(_orders.get_order(conn, order_id))

    def orders(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        status: str | None = None,
        working: bool = False,
        limit: int | None = 1000,
    ) -> list[Order]:
        """Orders, newest first."""
        with self._tx() as conn:
            return [
                Order.from_row(r)
                for r in _orders.list_orders(
                    conn,
                    strategy_id=strategy_id,
                    instrument=instrument,
                    status=status,
                    working=working,
                    limit=limit,
                )
            ]

    def order_history(self, order_id: uuid.UUID | str) -> list[OrderHistoryEntry]:
        """Status history of an order, oldest first."""
        with self._tx() as conn:
            return [OrderHistoryEntry.from_row(r) for r in _orders.order_history(conn, order_id)]

    # ----------------------------------------------------------------- fills
    def record_fill(
        self,
        order_id: uuid.UUID | str,
        quantity: Number,
        price: Number,
        *,
        commission: Number = 0,
        ts: dt.datetime | None = None,
        broker_exec_id: str | None = None,
        venue: str | None = None,
        commission_currency: str | None = None,
    ) -> FillResult:
        """Record an execution: order, history and position in one locked transaction."""
        with self._tx("record_fill") as conn:
            return _fills.record_fill(
                conn,
                self.actor,
                order_id,
                quantity,
                price,
                commission=commission,
                ts=ts,
                broker_exec_id=broker_exec_id,
                venue=venue,
                commission_currency=commission_currency,
            )

    def fills(
        self,
        *,
        order_id: uuid.UUID | str | None = None,
        strategy_id: str | None = None,
        limit: int | None = 1000,
    ) -> list[Execution]:
        """Executions, oldest first."""
        with self._tx() as conn:
            return [
                Execution.from_row(r)
                for r in _fills.list_fills(conn, order_id=order_id, strategy_id=strategy_id, limit=limit)
            ]

    # ------------------------------------------------------------- positions
    def position(self, strategy_id: str, instrument: InstrumentRef) -> Position | None:
        """The open position of a strategy in an instrument, or None."""
        with self._tx() as conn:
            return _maybe(Position, _positions.get_open_position(conn, strategy_id, instrument))

    def positions(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        status: str = "open",
    ) -> list[Position]:
        """Positions (``status``: open, closed or all)."""
        with self._tx() as conn:
            return [
                Position.from_row(r)
                for r in _positions.list_positions(
                    conn, strategy_id=strategy_id, instrument=instrument, status=status
                )
            ]

    def set_stops(
        self,
        strategy_id: str,
        instrument: InstrumentRef,
        *,
        stop_loss: Number | None = UNSET,
        target: Number | None = UNSET,
    ) -> Position:
        """Set or clear (``None``) the stop-loss and target price of the open position."""
        with self._tx("set_stops") as conn:
            return Position.from_row(
                _positions.set_stops(
                    conn, self.actor, strategy_id, instrument, stop_loss=stop_loss, target=target
                )
            )

    def mark_to_market(
        self,
        *,
        strategy_id: str | None = None,
        prices: Mapping[InstrumentRef, Number | float] | None = None,
    ) -> list[Position]:
        """Update current price and unrealized P&L of open positions from the latest prices."""
        with self._tx("mark_to_market") as conn:
            return [
                Position.from_row(r)
                for r in _positions.mark_positions(conn, self.actor, strategy_id=strategy_id, prices=prices)
            ]

    def latest_price(self, instrument: InstrumentRef) -> tuple[Decimal, dt.datetime, str] | None:
        """Latest trade price or candle close: ``(price, ts, source)``, or None."""
        with self._tx() as conn:
            instrument_id = resolve_instrument(conn, instrument)
            return _positions.latest_prices(conn, [instrument_id]).get(instrument_id)

    # ------------------------------------------------------------- portfolio
    def value_portfolio(
        self,
        *,
        portfolio: str = "default",
        strategies: Sequence[str] | None = None,
        cash: Number | None = None,
        initial_cash: Number = 0,
        prices: Mapping[InstrumentRef, Number | float] | None = None,
        ts: dt.datetime | None = None,
    ) -> PortfolioValuation:
        """Compute a portfolio valuation without storing it."""
        with self._tx() as conn:
            return _portfolio.value_portfolio(
                conn,
                portfolio=portfolio,
                strategies=strategies,
                cash=cash,
                initial_cash=initial_cash,
                prices=prices,
                ts=ts,
            )

    def snapshot_portfolio(
        self,
        *,
        portfolio: str = "default",
        strategies: Sequence[str] | None = None,
        cash: Number | None = None,
        initial_cash: Number = 0,
        prices: Mapping[InstrumentRef, Number | float] | None = None,
        ts: dt.datetime | None = None,
    ) -> PortfolioSnapshot:
        """Compute a valuation and store it as a portfolio snapshot (same transaction)."""
        with self._tx("snapshot_portfolio") as conn:
            valuation = _portfolio.value_portfolio(
                conn,
                portfolio=portfolio,
                strategies=strategies,
                cash=cash,
                initial_cash=initial_cash,
                prices=prices,
                ts=ts,
            )
            return PortfolioSnapshot.from_row(_portfolio.write_snapshot(conn, self.actor, valuation))

    def portfolio_series(
        self,
        *,
        portfolio: str = "default",
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[PortfolioSnapshot]:
        """Stored snapshots of a portfolio, in time order."""
        with self._tx() as conn:
            return [
                PortfolioSnapshot.from_row(r)
                for r in _portfolio.snapshot_series(
                    conn, portfolio=portfolio, start=start, end=end, limit=limit
                )
            ]

    # -------------------------------------------------------------- patterns
    def record_pattern(
        self,
        instrument: InstrumentRef,
        ts: dt.datetime,
        pattern: str,
        *,
        details: dict[str, Any] | None = None,
        timeframe: str | None = None,
    ) -> PatternEvent:
        """Record a pattern detection (idempotent on instrument, time and pattern)."""
        with self._tx("record_pattern") as conn:
            event, _ = _patterns.record_pattern(
                conn, self.actor, instrument, ts, pattern, details=details, timeframe=timeframe
            )
            return PatternEvent.from_row(event)

    def patterns(
        self,
        *,
        pattern: str | Sequence[str] | None = None,
        instruments: Sequence[InstrumentRef] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        timeframe: str | None = None,
        limit: int | None = 1000,
    ) -> list[PatternEvent]:
        """Pattern events by pattern, instrument and time, newest first."""
        with self._tx() as conn:
            return [
                PatternEvent.from_row(r)
                for r in _patterns.query_patterns(
                    conn,
                    pattern=pattern,
                    instruments=instruments,
                    start=start,
                    end=end,
                    timeframe=timeframe,
                    limit=limit,
                )
            ]

    # ------------------------------------------------------ model parameters
    def record_heston(self, instrument: InstrumentRef, ts: dt.datetime, **params: Any) -> HestonFit:
        """Store a Heston calibration (kappa, theta, sigma, rho, v0, [rmse, r_squared,
        n_options, calibration_time_ms]); ``feller_satisfied`` is computed."""
        with self._tx("record_heston") as conn:
            return HestonFit.from_row(_models.record_heston(conn, self.actor, instrument, ts, **params))

    def record_sabr(
        self, instrument: InstrumentRef, ts: dt.datetime, slices: Sequence[Mapping[str, Any]]
    ) -> list[SabrSlice]:
        """Store a SABR calibration, one slice per maturity."""
        with self._tx("record_sabr") as conn:
            return [
                SabrSlice.from_row(r) for r in _models.record_sabr(conn, self.actor, instrument, ts, slices)
            ]

    def record_ou(
        self, asset1: InstrumentRef, asset2: InstrumentRef, ts: dt.datetime, **params: Any
    ) -> OuFit:
        """Store an OU pair fit (hedge_ratio, theta, mu, sigma, ...); ``half_life`` is computed."""
        with self._tx("record_ou") as conn:
            return OuFit.from_row(_models.record_ou(conn, self.actor, asset1, asset2, ts, **params))

    def latest_heston(
        self, instrument: InstrumentRef, *, as_of: dt.datetime | None = None
    ) -> HestonFit | None:
        """Newest Heston calibration at or before ``as_of``."""
        with self._tx() as conn:
            return _maybe(HestonFit, _models.latest_heston(conn, instrument, as_of=as_of))

    def latest_sabr(self, instrument: InstrumentRef, *, as_of: dt.datetime | None = None) -> list[SabrSlice]:
        """Every maturity of the newest SABR calibration at or before ``as_of``."""
        with self._tx() as conn:
            return [SabrSlice.from_row(r) for r in _models.latest_sabr(conn, instrument, as_of=as_of)]

    def latest_ou(self, pair_id: str, *, as_of: dt.datetime | None = None) -> OuFit | None:
        """Newest OU fit of a pair at or before ``as_of``."""
        with self._tx() as conn:
            return _maybe(OuFit, _models.latest_ou(conn, pair_id, as_of=as_of))

    # ------------------------------------------------------------------ seed
    def seed_examples(self) -> dict[str, list[str]]:
        """Load document 003's NIFTY/BANKNIFTY instruments and example strategies (idempotent)."""
        with self._tx("seed_examples") as conn:
            return _seed.seed_examples(conn, self.actor)
