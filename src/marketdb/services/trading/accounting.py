"""Exact position accounting in :class:`~decimal.Decimal`: pure functions, no I/O.

A position is kept as four numbers (:class:`PositionState`):

``quantity``
    Signed: positive long, negative short, zero flat.
``cost_basis``
    Signed cost of the open quantity at average cost: the sum of
    ``signed quantity * price`` over the opening fills, minus the cost removed by
    reductions. Positive for a long, negative for a short, zero when flat. The
    average entry price is *derived* from it (``cost_basis / quantity``), never
    the other way round.
``realized_pnl``
    Realized profit and loss **net of every commission** (see below).
``commissions``
    The sum of all commissions paid on the position, kept separately so the
    gross figure is always ``realized_pnl + commissions``.

Why a cost basis and not an average price
-----------------------------------------
An average price such as ``(100 + 100 + 101) / 3`` has no finite decimal
expansion. Rounding it on every increase leaks a residue into P&L on every
fill, and the books stop reconciling. Keeping the cost basis instead makes every
increase exact (``cost_basis += quantity * price`` is a finite product and sum).
Only a *partial* reduction needs a division: the cost removed is
``cost_basis * closed / |quantity|``, rounded to :data:`COST_QUANTUM`. The very
same rounded amount is subtracted from the cost basis and used for the realized
P&L, so nothing is lost: the rounding only moves value between "realized" and
"unrealized", and the identity below holds exactly. A reduction that closes the
whole position removes the whole cost basis, so a flat position always has a
cost basis of exactly zero.

The reconciliation identity (holds exactly, for any sequence of fills)
---------------------------------------------------------------------
::

    realized_pnl + unrealized_pnl(mark)
        == sum(cash flows of the fills) + quantity * mark - commissions

where a buy of ``q`` at ``p`` is a cash flow of ``-q * p``, a sell ``+q * p``, and
``unrealized_pnl(mark) = quantity * mark - cost_basis``.

How commission enters P&L
-------------------------
Every fill's commission is charged to ``realized_pnl`` at the time of the fill,
*including the commission of opening fills*. Commission is a cost the moment it
is paid whatever happens to the position later, so it is never capitalized into
the cost basis (the average entry price is the pure average of fill prices) and
unrealized P&L never contains commission. ``commissions`` keeps the running
total, so gross realized P&L is ``realized_pnl + commissions``.

Rules
-----
* Increasing (or opening from flat): weighted average cost.
* Reducing: realized P&L on the closed quantity, ``(price - average) * closed``
  for a long and ``(average - price) * closed`` for a short.
* Flipping (a sell larger than a long, or a buy larger than a short): the old
  side is closed completely and the remainder opens the other side at the fill
  price; the commission of the fill is charged once.
* Reaching zero closes the position (``quantity == cost_basis == 0``).

Prices may have any sign (negative prices have traded, e.g. WTI futures in
April 2020); whether a given price is acceptable is the caller's decision.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from marketdb.errors import InvalidInput

__all__ = [
    "COST_QUANTUM",
    "PRICE_QUANTUM",
    "Fill",
    "FillEffect",
    "PositionState",
    "Side",
    "apply_fill",
    "apply_fills",
    "average_price",
    "cash_flow",
    "exact_product",
    "exact_sum",
    "to_decimal",
    "trim",
    "unrealized_pnl",
]

#: Rounding step of the cost removed by a *partial* reduction (the only division
#: in the books). Realized P&L and cost basis therefore never carry more
#: decimal places than this, or than the inputs themselves.
COST_QUANTUM = Decimal("1E-10")

#: Rounding step of the *derived* average entry price (informational only: no
#: P&L figure is ever computed from the rounded average).
PRICE_QUANTUM = Decimal("1E-10")

# Additions, subtractions and multiplications must be exact: trap any rounding.
# 60 significant digits hold any product of two numeric(38, 18)-sized values.
_EXACT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
# The one division (and the quantizations) round on purpose.
_ROUND = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)

_ZERO = Decimal(0)


class Side(StrEnum):
    """Side of an order or a fill."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """``+1`` for a buy, ``-1`` for a sell."""
        return 1 if self is Side.BUY else -1


def to_decimal(value: Decimal | int | float | str, name: str = "value") -> Decimal:
    """Convert ``value`` to a finite :class:`Decimal` or raise :class:`InvalidInput`.

    Floats are converted through their shortest ``repr`` (``0.1`` becomes
    ``Decimal("0.1")``, not the binary expansion); pass ``Decimal`` or ``str``
    to be explicit. Booleans are refused.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number, got a boolean {value!r}")
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, float):
            result = Decimal(repr(value))
        elif isinstance(value, int | str):
            result = Decimal(value)
        else:
            raise InvalidInput(
                f"{name} must be a Decimal, int, float or numeric string, got {type(value).__name__}"
            )
    except decimal.InvalidOperation:
        raise InvalidInput(f"{name} is not a number: {value!r}") from None
    if not result.is_finite():
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    # Normalize -0 to 0 so equality and storage never see a signed zero.
    return result + _ZERO if result.is_zero() else result


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``quantity`` (> 0) traded on ``side`` at ``price``.

    ``commission`` (>= 0) is the fee paid for this execution.
    """

    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal = _ZERO

    def __post_init__(self) -> None:
        try:
            side = Side(self.side)
        except ValueError:
            raise InvalidInput(f"fill side must be 'buy' or 'sell', got {self.side!r}") from None
        quantity = to_decimal(self.quantity, "fill quantity")
        price = to_decimal(self.price, "fill price")
        commission = to_decimal(self.commission, "fill commission")
        if quantity <= 0:
            raise InvalidInput(
                f"fill quantity must be greater than zero, got {quantity}",
                hint="a fill always trades a positive quantity; use side='sell' to sell",
            )
        if commission < 0:
            raise InvalidInput(f"fill commission must be zero or positive, got {commission}")
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "quantity", quantity)
        object.__setattr__(self, "price", price)
        object.__setattr__(self, "commission", commission)

    @property
    def signed_quantity(self) -> Decimal:
        """``+quantity`` for a buy, ``-quantity`` for a sell."""
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class PositionState:
    """The accounting state of one position (see the module docstring).

    The default instance is a flat position with no history.
    """

    quantity: Decimal = _ZERO
    cost_basis: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    commissions: Decimal = _ZERO

    def __post_init__(self) -> None:
        quantity = to_decimal(self.quantity, "position quantity")
        cost_basis = to_decimal(self.cost_basis, "position cost basis")
        realized = to_decimal(self.realized_pnl, "position realized P&L")
        commissions = to_decimal(self.commissions, "position commissions")
        if quantity.is_zero() and not cost_basis.is_zero():
            raise InvalidInput(f"a flat position must have a zero cost basis, got {cost_basis}")
        if commissions < 0:
            raise InvalidInput(f"position commissions cannot be negative, got {commissions}")
        object.__setattr__(self, "quantity", quantity)
        object.__setattr__(self, "cost_basis", cost_basis)
        object.__setattr__(self, "realized_pnl", realized)
        object.__setattr__(self, "commissions", commissions)

    @property
    def is_flat(self) -> bool:
        """True when the quantity is zero."""
        return self.quantity.is_zero()

    @property
    def side(self) -> str:
        """``"long"``, ``"short"`` or ``"flat"``."""
        if self.quantity > 0:
            return "long"
        if self.quantity < 0:
            return "short"
        return "flat"

    @property
    def average_price(self) -> Decimal | None:
        """Average entry price rounded to :data:`PRICE_QUANTUM`, ``None`` when flat."""
        return average_price(self.quantity, self.cost_basis)

    @property
    def gross_realized_pnl(self) -> Decimal:
        """Realized P&L before commissions."""
        return _EXACT.add(self.realized_pnl, self.commissions)


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What :func:`apply_fill` did.

    ``closed_quantity`` and ``opened_quantity`` are unsigned; a flip has both.
    ``realized_pnl`` is this fill's contribution (net of its commission).
    """

    before: PositionState
    after: PositionState
    closed_quantity: Decimal
    opened_quantity: Decimal
    realized_pnl: Decimal

    @property
    def flipped(self) -> bool:
        """True when the fill turned a long into a short or back."""
        return _sign(self.before.quantity) * _sign(self.after.quantity) < 0

    @property
    def closed(self) -> bool:
        """True when the fill brought a non-flat position to exactly zero."""
        return not self.before.is_flat and self.after.is_flat

    @property
    def opened(self) -> bool:
        """True when the fill opened a position from flat."""
        return self.before.is_flat and not self.after.is_flat


def average_price(quantity: Decimal, cost_basis: Decimal) -> Decimal | None:
    """Average entry price ``cost_basis / quantity`` rounded to :data:`PRICE_QUANTUM`.

    Returns ``None`` for a flat position. The sign convention makes the result
    positive for positive prices whether the position is long or short.
    """
    if quantity.is_zero():
        return None
    return trim(_ROUND.divide(cost_basis, quantity).quantize(PRICE_QUANTUM, context=_ROUND))


def trim(value: Decimal) -> Decimal:
    """``value`` without trailing fractional zeros (``103.5000`` -> ``103.5``, ``100.0`` -> ``100``).

    Same number, shorter text; never switches to exponent notation for integers.
    """
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=_ROUND)
    return value.normalize(context=_ROUND)


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def _signed(sign: int, value: Decimal) -> Decimal:
    return value if sign >= 0 else value.copy_negate()


def apply_fill(state: PositionState, fill: Fill) -> FillEffect:
    """Apply one fill to a position and return the new state with what happened.

    Pure: ``state`` is not modified. See the module docstring for the rules.
    Raises :class:`InvalidInput` if the numbers carry more digits than exact
    arithmetic at 60 significant digits allows.
    """
    try:
        return _apply_fill(state, fill)
    except decimal.DecimalException as exc:
        raise InvalidInput(
            f"fill {fill.side} {fill.quantity} @ {fill.price} cannot be applied exactly "
            f"to a position of {state.quantity} ({type(exc).__name__})",
            hint="quantities and prices must fit in 60 significant digits when multiplied",
        ) from None


def _apply_fill(state: PositionState, fill: Fill) -> FillEffect:
    q = state.quantity
    basis = state.cost_basis
    realized = state.realized_pnl
    s = fill.signed_quantity
    p = fill.price
    closed_qty = _ZERO
    opened_qty = _ZERO

    if q.is_zero() or _sign(q) == _sign(s):
        # Opening or increasing: weighted average cost, kept as a cost basis.
        q = _EXACT.add(q, s)
        basis = _EXACT.add(basis, _EXACT.multiply(s, p))
        opened_qty = fill.quantity
    else:
        held = abs(q)
        closed_qty = min(fill.quantity, held)
        if closed_qty == held:
            removed = basis  # closing all of it: no division, no residue
        else:
            removed = _ROUND.divide(_EXACT.multiply(basis, closed_qty), held).quantize(
                COST_QUANTUM, context=_ROUND
            )
        # Cash received for the closed part (negative when buying back a short)
        # minus the cost it carried. Long: (p - avg) * c; short: (avg - p) * c.
        proceeds = _EXACT.multiply(_signed(_sign(q), closed_qty), p)
        realized = _EXACT.add(realized, _EXACT.subtract(proceeds, removed))
        basis = _EXACT.subtract(basis, removed)
        q = _EXACT.add(q, _signed(_sign(s), closed_qty))
        remainder = _EXACT.subtract(fill.quantity, closed_qty)
        if remainder > 0:
            # Flip: the rest opens the other side at the fill price.
            q = _signed(_sign(s), remainder)
            basis = _EXACT.multiply(q, p)
            opened_qty = remainder

    realized = _EXACT.subtract(realized, fill.commission)
    after = replace(
        state,
        quantity=q,
        cost_basis=basis,
        realized_pnl=realized,
        commissions=_EXACT.add(state.commissions, fill.commission),
    )
    return FillEffect(
        before=state,
        after=after,
        closed_quantity=closed_qty,
        opened_quantity=opened_qty,
        realized_pnl=_EXACT.subtract(realized, state.realized_pnl),
    )


def exact_sum(*values: Decimal) -> Decimal:
    """Sum of Decimals without rounding (raises :class:`InvalidInput` if digits would be lost)."""
    try:
        total = _ZERO
        for value in values:
            total = _EXACT.add(total, value)
        return total
    except decimal.DecimalException:
        raise InvalidInput("sum has more than 60 significant digits") from None


def exact_product(a: Decimal, b: Decimal) -> Decimal:
    """``a * b`` without rounding (raises :class:`InvalidInput` if digits would be lost)."""
    try:
        return _EXACT.multiply(a, b)
    except decimal.DecimalException:
        raise InvalidInput(f"{a} * {b} has more than 60 significant digits") from None


def apply_fills(fills: list[Fill], state: PositionState | None = None) -> PositionState:
    """Apply ``fills`` in order, starting flat (or from ``state``)."""
    current = state if state is not None else PositionState()
    for fill in fills:
        current = apply_fill(current, fill).after
    return current


def unrealized_pnl(state: PositionState, mark: Decimal | int | float | str) -> Decimal:
    """Unrealized P&L of ``state`` at ``mark``: ``quantity * mark - cost_basis`` (exact)."""
    mark_price = to_decimal(mark, "mark price")
    try:
        return _EXACT.subtract(_EXACT.multiply(state.quantity, mark_price), state.cost_basis)
    except decimal.DecimalException as exc:
        raise InvalidInput(
            f"unrealized P&L of {state.quantity} at {mark_price} cannot be computed exactly "
            f"({type(exc).__name__})"
        ) from None


def cash_flow(fill: Fill) -> Decimal:
    """Signed cash flow of a fill before commission: ``-q * p`` for a buy, ``+q * p`` for a sell."""
    return _EXACT.multiply(-fill.signed_quantity, fill.price)
