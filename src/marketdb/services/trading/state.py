"""Lifecycle state machines of orders and signals: the legal edges, validated in one place.

Orders
------
The happy path is ``pending -> open -> partially_filled -> filled``; a market
order may be filled (wholly or partly) before the venue acknowledges it, so
``pending`` may go straight to ``partially_filled`` or ``filled``. Orders end
``cancelled``, ``rejected`` or ``expired`` from the statuses listed below.

The exact edge set (:data:`ORDER_TRANSITIONS`):

==================  ===============================================================
from                legal targets
==================  ===============================================================
pending             open, partially_filled, filled, cancelled, rejected
open                partially_filled, filled, cancelled, rejected, expired
partially_filled    partially_filled, filled, cancelled, expired
filled              (terminal)
cancelled           (terminal)
rejected            (terminal)
expired             (terminal)
==================  ===============================================================

Decisions worth knowing:

* ``partially_filled -> partially_filled`` is legal: every fill appends a history
  row, and a fill that does not complete the order leaves it partially filled.
  No other status may transition to itself.
* ``pending -> expired`` is not legal: an order the venue never acknowledged was
  never working, so it is either rejected or cancelled.
* ``partially_filled -> rejected`` is not legal: once something traded, the order
  ends as filled, cancelled (the rest) or expired (the rest).
* Terminal states are final. A broker that reports a fill after a cancel was
  *requested* is fine (the order is still open until the cancel is confirmed);
  a fill after a *confirmed* cancel is a broker-reconciliation problem and is
  refused, not silently absorbed.

Signals
-------
``active -> executed | expired | cancelled``; the three targets are terminal.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from marketdb.errors import Conflict, InvalidInput

__all__ = [
    "ORDER_TRANSITIONS",
    "SIGNAL_TRANSITIONS",
    "TERMINAL_ORDER_STATUSES",
    "WORKING_ORDER_STATUSES",
    "OrderStatus",
    "SignalStatus",
    "is_terminal",
    "parse_order_status",
    "parse_signal_status",
    "status_after_fill",
    "validate_order_transition",
    "validate_signal_transition",
]


class OrderStatus(StrEnum):
    """Status of an order (stored lower case in ``orders.status``)."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class SignalStatus(StrEnum):
    """Status of a signal (stored lower case in ``signals.status``)."""

    ACTIVE = "active"
    EXECUTED = "executed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


_O = OrderStatus

#: Legal order status transitions: ``from -> set of legal targets``.
ORDER_TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    _O.PENDING: frozenset({_O.OPEN, _O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.REJECTED}),
    _O.OPEN: frozenset({_O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.REJECTED, _O.EXPIRED}),
    _O.PARTIALLY_FILLED: frozenset({_O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.EXPIRED}),
    _O.FILLED: frozenset(),
    _O.CANCELLED: frozenset(),
    _O.REJECTED: frozenset(),
    _O.EXPIRED: frozenset(),
}

#: Statuses from which an order can never move again.
TERMINAL_ORDER_STATUSES: Final[frozenset[OrderStatus]] = frozenset(
    status for status, targets in ORDER_TRANSITIONS.items() if not targets
)

#: Statuses of an order that may still trade (the "open orders" of a blotter).
WORKING_ORDER_STATUSES: Final[frozenset[OrderStatus]] = frozenset({_O.PENDING, _O.OPEN, _O.PARTIALLY_FILLED})

_S = SignalStatus

#: Legal signal status transitions.
SIGNAL_TRANSITIONS: Final[dict[SignalStatus, frozenset[SignalStatus]]] = {
    _S.ACTIVE: frozenset({_S.EXECUTED, _S.EXPIRED, _S.CANCELLED}),
    _S.EXECUTED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.CANCELLED: frozenset(),
}


def parse_order_status(value: str | OrderStatus) -> OrderStatus:
    """Return ``value`` as an :class:`OrderStatus` (case-insensitive) or raise InvalidInput."""
    try:
        return OrderStatus(str(value).lower())
    except ValueError:
        legal = ", ".join(s.value for s in OrderStatus)
        raise InvalidInput(f"unknown order status {value!r}; expected one of: {legal}") from None


def parse_signal_status(value: str | SignalStatus) -> SignalStatus:
    """Return ``value`` as a :class:`SignalStatus` (case-insensitive) or raise InvalidInput."""
    try:
        return SignalStatus(str(value).lower())
    except ValueError:
        legal = ", ".join(s.value for s in SignalStatus)
        raise InvalidInput(f"unknown signal status {value!r}; expected one of: {legal}") from None


def is_terminal(status: str | OrderStatus) -> bool:
    """True when an order in ``status`` can never change again."""
    return parse_order_status(status) in TERMINAL_ORDER_STATUSES


def _targets_text(targets: frozenset[OrderStatus] | frozenset[SignalStatus]) -> str:
    return ", ".join(sorted(t.value for t in targets))


def validate_order_transition(
    current: str | OrderStatus, target: str | OrderStatus, *, order_id: object = None
) -> tuple[OrderStatus, OrderStatus]:
    """Check that an order may move from ``current`` to ``target``.

    Returns both as :class:`OrderStatus`. Raises :class:`Conflict` naming the two
    statuses and the legal targets when the edge is illegal, and
    :class:`InvalidInput` for an unknown status name.
    """
    frm, to = parse_order_status(current), parse_order_status(target)
    _check_edge("order", order_id, frm, to, ORDER_TRANSITIONS[frm])
    return frm, to


def validate_signal_transition(
    current: str | SignalStatus, target: str | SignalStatus, *, signal_id: object = None
) -> tuple[SignalStatus, SignalStatus]:
    """Check that a signal may move from ``current`` to ``target`` (raises :class:`Conflict`)."""
    frm, to = parse_signal_status(current), parse_signal_status(target)
    _check_edge("signal", signal_id, frm, to, SIGNAL_TRANSITIONS[frm])
    return frm, to


def _check_edge(kind: str, ident: object, frm: Any, to: Any, legal: Any) -> None:
    """Raise :class:`Conflict` naming both statuses and the legal targets if ``frm -> to`` is illegal."""
    if to in legal:
        return
    which = f"{kind} {ident}" if ident is not None else kind
    if legal:
        allowed = f"legal targets from {frm.value!r}: {_targets_text(legal)}"
    else:
        allowed = f"{frm.value!r} is terminal: no transition is legal"
    raise Conflict(
        f"illegal status transition for {which}: {frm.value} -> {to.value}; {allowed}",
        hint=f"re-read the {kind} and decide from its current status",
        details={"from": frm.value, "to": to.value, "legal": sorted(t.value for t in legal)},
    )


def status_after_fill(order_quantity: Decimal, filled_quantity: Decimal) -> OrderStatus:
    """Status of an order of ``order_quantity`` once ``filled_quantity`` has traded.

    Raises :class:`InvalidInput` for a non-positive fill total and :class:`Conflict`
    for an overfill (more traded than ordered).
    """
    if filled_quantity <= 0:
        raise InvalidInput(f"filled quantity must be positive after a fill, got {filled_quantity}")
    if filled_quantity > order_quantity:
        raise Conflict(
            f"fill would overfill the order: {filled_quantity} filled of {order_quantity} ordered",
            hint="check the fill quantity against the order's remaining quantity",
        )
    if filled_quantity == order_quantity:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED
