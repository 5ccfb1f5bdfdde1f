"""Typed trading records: what :class:`~marketdb.services.trading.Trading` returns.

Frozen dataclasses, one per table family, with exact ``Decimal`` money and
quantities, timezone-aware ``datetime`` values and ``uuid.UUID`` ids. They
serialise with :func:`dataclasses.asdict` (or :meth:`Record.to_dict`); the HTTP
API turns them into JSON. For code written against the earlier dict rows,
``record["field"]``, ``record.get("field")`` and ``record.keys()`` still read
the fields (read-only).

The module functions (``orders.submit_order`` and friends, for composing
several steps in one transaction) keep returning plain dicts; ``Trading``
converts with :meth:`Record.from_row`, which refuses unknown columns so a
schema change cannot silently drop a field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, TypeVar

__all__ = [
    "Execution",
    "HestonFit",
    "Order",
    "OrderHistoryEntry",
    "OuFit",
    "PatternEvent",
    "PortfolioSnapshot",
    "Position",
    "Record",
    "SabrSlice",
    "Signal",
    "Strategy",
]

R = TypeVar("R", bound="Record")


class Record:
    """Base of the trading records: construction from a row, dict and mapping-style reads."""

    __slots__ = ()

    @classmethod
    def from_row(cls: type[R], row: Mapping[str, Any]) -> R:
        """Build the record from a result row (a mapping of column names to values)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(row) - names
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}: update records.py")
        return cls(**row)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``dataclasses.asdict``)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    def keys(self) -> list[str]:
        """The field names, in order."""
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> Any:
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name``, or ``default`` if there is no such field."""
        return getattr(self, name) if name in self.keys() else default


@dataclasses.dataclass(frozen=True, slots=True)
class Strategy(Record):
    """A row of ``strategies``."""

    id: str
    name: str
    description: str | None
    strategy_type: str
    class_name: str | None
    config: dict[str, Any]
    risk_limits: dict[str, Any]
    symbols: list[str]
    status: str
    is_enabled: bool
    execution_mode: str
    created_by: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Signal(Record):
    """A strategy signal (``strategy_id``) or a user signal (``user_id``), with its symbol."""

    id: uuid.UUID
    ts: dt.datetime
    strategy_id: str | None
    user_id: uuid.UUID | None
    instrument_id: int
    signal_type: str
    strength: float | None
    confidence: float | None
    target_price: Decimal | None
    stop_loss: Decimal | None
    expires_at: dt.datetime | None
    data: dict[str, Any]
    status: str
    updated_at: dt.datetime
    symbol: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Order(Record):
    """An order with its symbol; ``strategy_id`` is None for a manual order."""

    id: uuid.UUID
    client_order_id: str | None
    strategy_id: str | None
    signal_id: uuid.UUID | None
    instrument_id: int
    side: str
    order_type: str
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str
    status: str
    filled_quantity: Decimal
    filled_notional: Decimal
    avg_fill_price: Decimal | None
    commission: Decimal
    broker_order_id: str | None
    error_message: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    executed_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    expires_at: dt.datetime | None
    symbol: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OrderHistoryEntry(Record):
    """One status change of an order."""

    id: uuid.UUID
    order_id: uuid.UUID
    from_status: str | None
    status: str
    filled_quantity: Decimal | None
    ts: dt.datetime
    details: dict[str, Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Execution(Record):
    """One fill (a row of ``executions``); listings add the order's strategy and the symbol."""

    id: uuid.UUID
    order_id: uuid.UUID
    instrument_id: int
    ts: dt.datetime
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    commission_currency: str | None
    venue: str | None
    broker_exec_id: str | None
    strategy_id: str | None = None
    symbol: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Position(Record):
    """A position of a strategy in an instrument (``mark_source`` set by mark to market)."""

    id: uuid.UUID
    strategy_id: str
    instrument_id: int
    quantity: Decimal
    cost_basis: Decimal
    average_entry_price: Decimal
    current_price: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal
    commissions: Decimal
    stop_loss_price: Decimal | None
    target_price: Decimal | None
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    updated_at: dt.datetime
    symbol: str | None = None
    mark_source: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PortfolioSnapshot(Record):
    """A stored portfolio valuation."""

    portfolio: str
    ts: dt.datetime
    total_value: Decimal
    cash: Decimal
    positions_value: Decimal
    total_pnl: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    n_positions: int


@dataclasses.dataclass(frozen=True, slots=True)
class PatternEvent(Record):
    """A detected chart pattern."""

    instrument_id: int
    ts: dt.datetime
    pattern: str
    timeframe: str | None
    details: dict[str, Any]
    created_at: dt.datetime
    symbol: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HestonFit(Record):
    """A Heston calibration (``feller_satisfied`` computed by the database)."""

    instrument_id: int
    ts: dt.datetime
    kappa: float
    theta: float
    sigma: float
    rho: float
    v0: float
    feller_satisfied: bool | None
    rmse: float | None
    r_squared: float | None
    n_options: int | None
    calibration_time_ms: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class SabrSlice(Record):
    """One maturity of a SABR calibration."""

    instrument_id: int
    ts: dt.datetime
    maturity: float
    alpha: float
    beta: float
    rho: float
    nu: float
    rmse: float | None
    n_options: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class OuFit(Record):
    """An Ornstein-Uhlenbeck pair fit (``half_life`` computed)."""

    pair_id: str
    ts: dt.datetime
    asset1_id: int
    asset2_id: int
    hedge_ratio: float
    theta: float
    mu: float
    sigma: float
    half_life: float | None
    adf_statistic: float | None
    adf_pvalue: float | None
    entry_lower: float | None
    entry_upper: float | None
    exit_target: float | None
    stop_loss: float | None
