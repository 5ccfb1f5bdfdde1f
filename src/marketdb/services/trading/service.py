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
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

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
from marketdb.services.trading.state import OrderStatus, SignalStatus

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = ["Trading"]

Number = Decimal | int | str


class Trading:
    """Strategies, signals, orders, fills, positions, portfolio, patterns, model parameters.

    ``Trading(db)`` acts anonymously (audit rows without a user);
    ``Trading(db, actor=...)`` or :meth:`as_actor` act for a user, with their
    IP and user agent (the API does this per request). Instruments may be given as ids or
    symbols everywhere.
    """

    def __init__(self, db: Database, *, actor: Actor | None = None) -> None:
        self._db = db
        self.actor = actor if actor is not None else Actor()

    def as_actor(
        self,
        who: Actor | uuid.UUID | str | None,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Trading:
        """A Trading acting (and audited) as ``who``: an Actor, or a user id plus IP and agent."""
        if isinstance(who, Actor):
            return Trading(self._db, actor=who)
        user_id = None if who is None else as_uuid(who, "user id")
        return Trading(self._db, actor=Actor(user_id=user_id, ip=ip, user_agent=user_agent))

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        # A constraint violation that slipped past validation becomes a marketdb error (by SQLSTATE).
        with self._db.transaction(translate_errors=True) as conn:
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
    ) -> dict[str, Any]:
        """Create a strategy (:class:`Conflict` if the id exists). Mode is ``paper`` or ``live``."""
        with self._tx() as conn:
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
            )
            return row

    def update_strategy(self, strategy_id: str, **changes: Any) -> dict[str, Any]:
        """Update name, description, strategy_type, class_name, config, risk_limits,
        symbols, execution_mode or status (config and risk_limits are replaced whole)."""
        with self._tx() as conn:
            return _strategies.update_strategy(conn, self.actor, strategy_id, **changes)

    def enable_strategy(self, strategy_id: str) -> dict[str, Any]:
        """Enable a strategy."""
        with self._tx() as conn:
            return _strategies.set_enabled(conn, self.actor, strategy_id, True)

    def disable_strategy(self, strategy_id: str) -> dict[str, Any]:
        """Disable a strategy (a running or paused one becomes stopped)."""
        with self._tx() as conn:
            return _strategies.set_enabled(conn, self.actor, strategy_id, False)

    def strategy(self, strategy_id: str) -> dict[str, Any]:
        """One strategy (:class:`NotFound` if unknown)."""
        with self._tx() as conn:
            return _strategies.get_strategy(conn, strategy_id)

    def strategies(
        self,
        *,
        enabled: bool | None = None,
        execution_mode: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Strategies, optionally filtered."""
        with self._tx() as conn:
            return _strategies.list_strategies(
                conn, enabled=enabled, execution_mode=execution_mode, status=status
            )

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
    ) -> dict[str, Any]:
        """Record a strategy signal (``strategy_id``) or a user signal (``user_id``)."""
        with self._tx() as conn:
            return _signals.create_signal(
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

    def set_signal_status(
        self, signal_id: uuid.UUID | str, status: str, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Move a signal to executed, expired or cancelled (validated)."""
        with self._tx() as conn:
            return _signals.set_signal_status(conn, self.actor, signal_id, status, reason=reason)

    def execute_signal(self, signal_id: uuid.UUID | str) -> dict[str, Any]:
        """Mark an active signal executed."""
        return self.set_signal_status(signal_id, SignalStatus.EXECUTED)

    def cancel_signal(self, signal_id: uuid.UUID | str, *, reason: str | None = None) -> dict[str, Any]:
        """Cancel an active signal."""
        return self.set_signal_status(signal_id, SignalStatus.CANCELLED, reason=reason)

    def expire_signals(self, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
        """Expire active signals past their ``expires_at``; returns their ids."""
        with self._tx() as conn:
            return _signals.expire_signals(conn, self.actor, now=now)

    def signal(self, signal_id: uuid.UUID | str) -> dict[str, Any]:
        """One signal."""
        with self._tx() as conn:
            return _signals.get_signal(conn, signal_id)

    def active_signals(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        user_id: uuid.UUID | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Active signals, newest first (served by the partial index)."""
        with self._tx() as conn:
            return _signals.active_signals(
                conn, strategy_id=strategy_id, instrument=instrument, user_id=user_id, limit=limit
            )

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
    ) -> list[dict[str, Any]]:
        """Signals in any status, newest first."""
        with self._tx() as conn:
            return _signals.list_signals(
                conn,
                strategy_id=strategy_id,
                instrument=instrument,
                user_id=user_id,
                status=status,
                start=start,
                end=end,
                limit=limit,
            )

    # ---------------------------------------------------------------- orders
    def submit_order(
        self,
        strategy_id: str,
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
    ) -> dict[str, Any]:
        """Submit an order (status ``pending``); idempotent by ``client_order_id``."""
        with self._tx() as conn:
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
            return order

    def transition_order(
        self,
        order_id: uuid.UUID | str,
        status: str,
        *,
        reason: str | None = None,
        broker_order_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Move an order to open, cancelled, rejected or expired (validated, with history)."""
        with self._tx() as conn:
            return _orders.transition_order(
                conn,
                self.actor,
                order_id,
                status,
                reason=reason,
                broker_order_id=broker_order_id,
                details=details,
            )

    def accept_order(
        self, order_id: uuid.UUID | str, *, broker_order_id: str | None = None
    ) -> dict[str, Any]:
        """The venue acknowledged the order: ``pending -> open``."""
        return self.transition_order(order_id, OrderStatus.OPEN, broker_order_id=broker_order_id)

    def cancel_order(self, order_id: uuid.UUID | str, *, reason: str | None = None) -> dict[str, Any]:
        """Cancel a working order."""
        return self.transition_order(order_id, OrderStatus.CANCELLED, reason=reason)

    def reject_order(self, order_id: uuid.UUID | str, *, reason: str) -> dict[str, Any]:
        """The venue rejected the order (``reason`` is stored as its error message)."""
        return self.transition_order(order_id, OrderStatus.REJECTED, reason=reason)

    def expire_order(self, order_id: uuid.UUID | str) -> dict[str, Any]:
        """The order expired (time in force ran out)."""
        return self.transition_order(order_id, OrderStatus.EXPIRED)

    def expire_orders(self, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
        """Expire open and partially filled orders past their ``expires_at``."""
        with self._tx() as conn:
            return _orders.expire_orders(conn, self.actor, now=now)

    def order(self, order_id: uuid.UUID | str) -> dict[str, Any]:
        """One order."""
        with self._tx() as conn:
            return _orders.get_order(conn, order_id)

    def orders(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        status: str | None = None,
        working: bool = False,
        limit: int | None = 1000,
    ) -> list[dict[str, Any]]:
        """Orders, newest first."""
        with self._tx() as conn:
            return _orders.list_orders(
                conn,
                strategy_id=strategy_id,
                instrument=instrument,
                status=status,
                working=working,
                limit=limit,
            )

    def order_history(self, order_id: uuid.UUID | str) -> list[dict[str, Any]]:
        """Status history of an order, oldest first."""
        with self._tx() as conn:
            return _orders.order_history(conn, order_id)

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
        with self._tx() as conn:
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
    ) -> list[dict[str, Any]]:
        """Executions, oldest first."""
        with self._tx() as conn:
            return _fills.list_fills(conn, order_id=order_id, strategy_id=strategy_id, limit=limit)

    # ------------------------------------------------------------- positions
    def position(self, strategy_id: str, instrument: InstrumentRef) -> dict[str, Any] | None:
        """The open position of a strategy in an instrument, or None."""
        with self._tx() as conn:
            return _positions.get_open_position(conn, strategy_id, instrument)

    def positions(
        self,
        *,
        strategy_id: str | None = None,
        instrument: InstrumentRef | None = None,
        status: str = "open",
    ) -> list[dict[str, Any]]:
        """Positions (``status``: open, closed or all)."""
        with self._tx() as conn:
            return _positions.list_positions(
                conn, strategy_id=strategy_id, instrument=instrument, status=status
            )

    def set_stops(
        self,
        strategy_id: str,
        instrument: InstrumentRef,
        *,
        stop_loss: Number | None = UNSET,
        target: Number | None = UNSET,
    ) -> dict[str, Any]:
        """Set or clear (``None``) the stop-loss and target price of the open position."""
        with self._tx() as conn:
            return _positions.set_stops(
                conn, self.actor, strategy_id, instrument, stop_loss=stop_loss, target=target
            )

    def mark_to_market(
        self,
        *,
        strategy_id: str | None = None,
        prices: Mapping[InstrumentRef, Number | float] | None = None,
    ) -> list[dict[str, Any]]:
        """Update current price and unrealized P&L of open positions from the latest prices."""
        with self._tx() as conn:
            return _positions.mark_positions(conn, self.actor, strategy_id=strategy_id, prices=prices)

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
    ) -> dict[str, Any]:
        """Compute a valuation and store it as a portfolio snapshot (same transaction)."""
        with self._tx() as conn:
            valuation = _portfolio.value_portfolio(
                conn,
                portfolio=portfolio,
                strategies=strategies,
                cash=cash,
                initial_cash=initial_cash,
                prices=prices,
                ts=ts,
            )
            return _portfolio.write_snapshot(conn, self.actor, valuation)

    def portfolio_series(
        self,
        *,
        portfolio: str = "default",
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored snapshots of a portfolio, in time order."""
        with self._tx() as conn:
            return _portfolio.snapshot_series(conn, portfolio=portfolio, start=start, end=end, limit=limit)

    # -------------------------------------------------------------- patterns
    def record_pattern(
        self,
        instrument: InstrumentRef,
        ts: dt.datetime,
        pattern: str,
        *,
        details: dict[str, Any] | None = None,
        timeframe: str | None = None,
    ) -> dict[str, Any]:
        """Record a pattern detection (idempotent on instrument, time and pattern)."""
        with self._tx() as conn:
            event, _ = _patterns.record_pattern(
                conn, self.actor, instrument, ts, pattern, details=details, timeframe=timeframe
            )
            return event

    def patterns(
        self,
        *,
        pattern: str | Sequence[str] | None = None,
        instruments: Sequence[InstrumentRef] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        timeframe: str | None = None,
        limit: int | None = 1000,
    ) -> list[dict[str, Any]]:
        """Pattern events by pattern, instrument and time, newest first."""
        with self._tx() as conn:
            return _patterns.query_patterns(
                conn,
                pattern=pattern,
                instruments=instruments,
                start=start,
                end=end,
                timeframe=timeframe,
                limit=limit,
            )

    # ------------------------------------------------------ model parameters
    def record_heston(self, instrument: InstrumentRef, ts: dt.datetime, **params: Any) -> dict[str, Any]:
        """Store a Heston calibration (kappa, theta, sigma, rho, v0, [rmse, r_squared,
        n_options, calibration_time_ms]); ``feller_satisfied`` is computed."""
        with self._tx() as conn:
            return _models.record_heston(conn, self.actor, instrument, ts, **params)

    def record_sabr(
        self, instrument: InstrumentRef, ts: dt.datetime, slices: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Store a SABR calibration, one slice per maturity."""
        with self._tx() as conn:
            return _models.record_sabr(conn, self.actor, instrument, ts, slices)

    def record_ou(
        self, asset1: InstrumentRef, asset2: InstrumentRef, ts: dt.datetime, **params: Any
    ) -> dict[str, Any]:
        """Store an OU pair fit (hedge_ratio, theta, mu, sigma, ...); ``half_life`` is computed."""
        with self._tx() as conn:
            return _models.record_ou(conn, self.actor, asset1, asset2, ts, **params)

    def latest_heston(
        self, instrument: InstrumentRef, *, as_of: dt.datetime | None = None
    ) -> dict[str, Any] | None:
        """Newest Heston calibration at or before ``as_of``."""
        with self._tx() as conn:
            return _models.latest_heston(conn, instrument, as_of=as_of)

    def latest_sabr(
        self, instrument: InstrumentRef, *, as_of: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every maturity of the newest SABR calibration at or before ``as_of``."""
        with self._tx() as conn:
            return _models.latest_sabr(conn, instrument, as_of=as_of)

    def latest_ou(self, pair_id: str, *, as_of: dt.datetime | None = None) -> dict[str, Any] | None:
        """Newest OU fit of a pair at or before ``as_of``."""
        with self._tx() as conn:
            return _models.latest_ou(conn, pair_id, as_of=as_of)

    # ------------------------------------------------------------------ seed
    def seed_examples(self) -> dict[str, list[str]]:
        """Load document 003's NIFTY/BANKNIFTY instruments and example strategies (idempotent)."""
        with self._tx() as conn:
            return _seed.seed_examples(conn, self.actor)
