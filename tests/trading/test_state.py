"""Order and signal state machines: every edge of the cartesian product, legal or not."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from marketdb.errors import Conflict, InvalidInput
from marketdb.services.trading.state import (
    ORDER_TRANSITIONS,
    SIGNAL_TRANSITIONS,
    TERMINAL_ORDER_STATUSES,
    OrderStatus,
    SignalStatus,
    is_terminal,
    status_after_fill,
    validate_order_transition,
    validate_signal_transition,
)

OS = OrderStatus

# The documented edge set, written out independently of the module's table.
LEGAL_ORDER_EDGES = {
    (OS.PENDING, OS.OPEN),
    (OS.PENDING, OS.PARTIALLY_FILLED),
    (OS.PENDING, OS.FILLED),
    (OS.PENDING, OS.CANCELLED),
    (OS.PENDING, OS.REJECTED),
    (OS.OPEN, OS.PARTIALLY_FILLED),
    (OS.OPEN, OS.FILLED),
    (OS.OPEN, OS.CANCELLED),
    (OS.OPEN, OS.REJECTED),
    (OS.OPEN, OS.EXPIRED),
    (OS.PARTIALLY_FILLED, OS.PARTIALLY_FILLED),
    (OS.PARTIALLY_FILLED, OS.FILLED),
    (OS.PARTIALLY_FILLED, OS.CANCELLED),
    (OS.PARTIALLY_FILLED, OS.EXPIRED),
}

ALL_ORDER_EDGES = list(itertools.product(OrderStatus, OrderStatus))


def test_table_matches_documented_edge_set() -> None:
    table = {(frm, to) for frm, targets in ORDER_TRANSITIONS.items() for to in targets}
    assert table == LEGAL_ORDER_EDGES
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)


@pytest.mark.parametrize(("frm", "to"), ALL_ORDER_EDGES, ids=[f"{a}->{b}" for a, b in ALL_ORDER_EDGES])
def test_every_order_edge(frm: OrderStatus, to: OrderStatus) -> None:
    if (frm, to) in LEGAL_ORDER_EDGES:
        assert validate_order_transition(frm.value, to.value) == (frm, to)
        return
    with pytest.raises(Conflict) as info:
        validate_order_transition(frm, to, order_id=42)
    message = str(info.value)
    assert f"{frm.value} -> {to.value}" in message
    assert "order 42" in message
    legal = sorted(t.value for f, t in LEGAL_ORDER_EDGES if f == frm)
    assert info.value.details == {"from": frm.value, "to": to.value, "legal": legal}
    if legal:
        assert ", ".join(legal) in message
    else:
        assert "terminal" in message


def test_terminal_statuses() -> None:
    assert {OS.FILLED, OS.CANCELLED, OS.REJECTED, OS.EXPIRED} == TERMINAL_ORDER_STATUSES
    assert is_terminal("FILLED")
    assert not is_terminal("open")


def test_status_names_are_case_insensitive_and_unknown_names_are_invalid_input() -> None:
    assert validate_order_transition("PENDING", "Open") == (OS.PENDING, OS.OPEN)
    with pytest.raises(InvalidInput, match="unknown order status 'done'"):
        validate_order_transition("open", "done")


SS = SignalStatus
LEGAL_SIGNAL_EDGES = {(SS.ACTIVE, SS.EXECUTED), (SS.ACTIVE, SS.EXPIRED), (SS.ACTIVE, SS.CANCELLED)}
ALL_SIGNAL_EDGES = list(itertools.product(SignalStatus, SignalStatus))


def test_signal_table_matches_documented_edge_set() -> None:
    table = {(frm, to) for frm, targets in SIGNAL_TRANSITIONS.items() for to in targets}
    assert table == LEGAL_SIGNAL_EDGES


@pytest.mark.parametrize(("frm", "to"), ALL_SIGNAL_EDGES, ids=[f"{a}->{b}" for a, b in ALL_SIGNAL_EDGES])
def test_every_signal_edge(frm: SignalStatus, to: SignalStatus) -> None:
    if (frm, to) in LEGAL_SIGNAL_EDGES:
        assert validate_signal_transition(frm, to) == (frm, to)
        return
    with pytest.raises(Conflict, match=f"{frm.value} -> {to.value}"):
        validate_signal_transition(frm, to, signal_id="s1")


@pytest.mark.parametrize(
    ("ordered", "filled", "expected"),
    [
        ("10", "10", OS.FILLED),
        ("10", "9.5", OS.PARTIALLY_FILLED),
        ("1", "0.0001", OS.PARTIALLY_FILLED),
    ],
)
def test_status_after_fill(ordered: str, filled: str, expected: OrderStatus) -> None:
    assert status_after_fill(Decimal(ordered), Decimal(filled)) is expected


def test_status_after_fill_refuses_overfill_and_nothing_filled() -> None:
    with pytest.raises(Conflict, match="overfill"):
        status_after_fill(Decimal(10), Decimal("10.01"))
    with pytest.raises(InvalidInput):
        status_after_fill(Decimal(10), Decimal(0))
