"""Exact position accounting (pure functions, no database)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdb.errors import InvalidInput
from marketdb.services.trading.accounting import (
    COST_QUANTUM,
    PRICE_QUANTUM,
    Fill,
    PositionState,
    Side,
    apply_fill,
    apply_fills,
    cash_flow,
    to_decimal,
    unrealized_pnl,
)

D = Decimal


def buy(qty: str, price: str, commission: str = "0") -> Fill:
    return Fill(Side.BUY, D(qty), D(price), D(commission))


def sell(qty: str, price: str, commission: str = "0") -> Fill:
    return Fill(Side.SELL, D(qty), D(price), D(commission))


# --- worked examples -----------------------------------------------------------------


def test_opening_and_increasing_long_uses_weighted_average_cost() -> None:
    state = apply_fills([buy("10", "100"), buy("30", "104")])
    assert state.quantity == 40
    assert state.cost_basis == D("4120")
    assert state.average_price == D("103")
    assert state.realized_pnl == 0
    assert state.side == "long"


def test_partial_reduction_of_long_realizes_price_minus_average() -> None:
    state = apply_fills([buy("10", "100"), buy("30", "104")])
    effect = apply_fill(state, sell("15", "110"))
    assert effect.closed_quantity == 15
    assert effect.opened_quantity == 0
    assert effect.realized_pnl == D("105")  # (110 - 103) * 15
    assert effect.after.quantity == 25
    assert effect.after.average_price == D("103")
    assert not effect.closed
    assert not effect.flipped


def test_short_reduction_realizes_average_minus_price() -> None:
    state = apply_fills([sell("10", "50"), sell("10", "52")])
    assert state.quantity == -20
    assert state.cost_basis == D("-1020")
    assert state.average_price == D("51")
    effect = apply_fill(state, buy("5", "48"))
    assert effect.realized_pnl == D("15")  # (51 - 48) * 5
    assert effect.after.quantity == -15


def test_flip_closes_old_side_and_opens_remainder_at_fill_price() -> None:
    state = apply_fills([buy("10", "100")])
    effect = apply_fill(state, sell("25", "90", "2.5"))
    assert effect.flipped
    assert effect.closed_quantity == 10
    assert effect.opened_quantity == 15
    assert effect.realized_pnl == D("-102.5")  # (90 - 100) * 10 - 2.5 commission
    assert effect.after.quantity == -15
    assert effect.after.cost_basis == D("-1350")
    assert effect.after.average_price == D("90")
    assert effect.after.commissions == D("2.5")


def test_short_to_long_flip() -> None:
    effect = apply_fill(apply_fills([sell("4", "20")]), buy("6", "18"))
    assert effect.flipped
    assert effect.realized_pnl == D("8")  # (20 - 18) * 4
    assert effect.after.quantity == 2
    assert effect.after.average_price == D("18")


def test_reaching_zero_closes_with_zero_cost_basis() -> None:
    # Averages of 1/3 leave a residue in a rounded average; the cost basis does not.
    state = apply_fills([buy("1", "100"), buy("1", "100"), buy("1", "101")])
    state = apply_fill(state, sell("1", "102")).after
    effect = apply_fill(state, sell("2", "99"))
    assert effect.closed
    assert effect.after.is_flat
    assert effect.after.cost_basis == 0
    assert effect.after.average_price is None
    assert effect.after.side == "flat"
    # Closed round trip: realized equals the net cash flow exactly.
    assert effect.after.realized_pnl == D("-301") + D("102") + D("198")


def test_commission_is_charged_to_realized_on_every_fill_including_opening() -> None:
    state = apply_fill(PositionState(), buy("10", "100", "1.25")).after
    assert state.realized_pnl == D("-1.25")
    assert state.average_price == D("100")  # commission is not capitalized
    assert unrealized_pnl(state, "100") == 0
    state = apply_fill(state, sell("10", "101", "1.25")).after
    assert state.realized_pnl == D("7.50")
    assert state.gross_realized_pnl == D("10")
    assert state.commissions == D("2.50")


def test_partial_reduction_rounds_removed_cost_to_quantum_and_books_stay_exact() -> None:
    state = apply_fills([buy("1", "100"), buy("1", "100"), buy("1", "101")])
    effect = apply_fill(state, sell("1", "102"))
    # removed cost = 301 / 3 = 100.333... rounded to COST_QUANTUM
    removed = (D(301) / 3).quantize(COST_QUANTUM)
    assert effect.realized_pnl == D("102") - removed
    assert effect.after.cost_basis == D("301") - removed
    mark = D("101.7")
    assert effect.after.realized_pnl + unrealized_pnl(effect.after, mark) == (D("-301") + D("102") + 2 * mark)


def test_unrealized_pnl_of_long_and_short() -> None:
    assert unrealized_pnl(apply_fills([buy("3", "10")]), "12.5") == D("7.5")
    assert unrealized_pnl(apply_fills([sell("3", "10")]), "12.5") == D("-7.5")
    assert unrealized_pnl(PositionState(), "12.5") == 0


def test_cash_flow_signs() -> None:
    assert cash_flow(buy("2", "10")) == D("-20")
    assert cash_flow(sell("2", "10")) == D("20")


def test_negative_prices_are_arithmetic_like_any_other() -> None:
    effect = apply_fill(apply_fills([buy("1", "-37.63")]), sell("1", "10"))
    assert effect.realized_pnl == D("47.63")


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": D(0)}, "greater than zero"),
        ({"quantity": D(-1)}, "greater than zero"),
        ({"commission": D("-0.01")}, "commission"),
        ({"price": D("NaN")}, "finite"),
        ({"price": D("Infinity")}, "finite"),
        ({"quantity": "abc"}, "not a number"),
        ({"side": "hold"}, "'buy' or 'sell'"),
        ({"quantity": True}, "boolean"),
    ],
)
def test_fill_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"side": "buy", "quantity": D(1), "price": D(1), **kwargs}
    with pytest.raises(InvalidInput, match=message):
        Fill(**args)  # type: ignore[arg-type]


def test_fill_accepts_strings_ints_and_floats_via_shortest_repr() -> None:
    fill = Fill("sell", "2", 0.1, 0)  # type: ignore[arg-type]
    assert fill.side is Side.SELL
    assert fill.quantity == D(2)
    assert fill.price == D("0.1")
    assert fill.signed_quantity == D(-2)


def test_position_state_rejects_cost_basis_without_quantity() -> None:
    with pytest.raises(InvalidInput, match="flat position"):
        PositionState(quantity=D(0), cost_basis=D(1))


def test_to_decimal_normalizes_negative_zero() -> None:
    assert str(to_decimal(D("-0"))) == "0"


def test_too_many_digits_is_invalid_input_not_silent_rounding() -> None:
    huge = D("1" * 40 + ".5")
    with pytest.raises(InvalidInput, match="exactly"):
        apply_fill(apply_fills([buy(str(huge), str(huge))]), buy(str(huge), str(huge)))


# --- properties ----------------------------------------------------------------------

quantities = st.decimals(
    min_value=D("0.0001"), max_value=D("1000"), places=4, allow_nan=False, allow_infinity=False
)
prices = st.decimals(
    min_value=D("0.01"), max_value=D("100000"), places=2, allow_nan=False, allow_infinity=False
)
commissions = st.one_of(
    st.just(D(0)),
    st.decimals(min_value=D(0), max_value=D("50"), places=4, allow_nan=False),
)
fills_strategy = st.builds(
    Fill,
    side=st.sampled_from([Side.BUY, Side.SELL]),
    quantity=quantities,
    price=prices,
    commission=commissions,
)


@st.composite
def fill_sequences(draw: st.DrawFn) -> list[Fill]:
    """Random fills, with deliberate exact closes and flips mixed in."""
    fills: list[Fill] = []
    position = D(0)
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        kind = draw(st.sampled_from(["random", "random", "close", "flip"]))
        if kind == "random" or position == 0:
            fill = draw(fills_strategy)
        else:
            side = Side.SELL if position > 0 else Side.BUY
            qty = abs(position) if kind == "close" else abs(position) + draw(quantities)
            fill = Fill(side, qty, draw(prices), draw(commissions))
        fills.append(fill)
        position += fill.signed_quantity
    return fills


def fraction_reference(fills: list[Fill]) -> tuple[Fraction, Fraction]:
    """Average-cost books in exact rationals: (quantity, realized net of commission)."""
    qty = Fraction(0)
    avg = Fraction(0)
    realized = Fraction(0)
    for fill in fills:
        s = Fraction(fill.signed_quantity)
        p = Fraction(fill.price)
        if qty == 0 or (qty > 0) == (s > 0):
            avg = (avg * abs(qty) + p * abs(s)) / (abs(qty) + abs(s))
            qty += s
        else:
            closed = min(abs(s), abs(qty))
            direction = 1 if qty > 0 else -1
            realized += (p - avg) * closed * direction
            qty += closed if s > 0 else -closed
            rest = abs(s) - closed
            if rest:
                qty = rest if s > 0 else -rest
                avg = p
            elif qty == 0:
                avg = Fraction(0)
        realized -= Fraction(fill.commission)
    return qty, realized


@settings(max_examples=400, deadline=None)
@given(fills=fill_sequences(), mark=prices)
def test_quantity_is_signed_sum_and_pnl_reconciles_exactly(fills: list[Fill], mark: Decimal) -> None:
    state = apply_fills(fills)

    assert state.quantity == sum((f.signed_quantity for f in fills), D(0))
    cash = sum((cash_flow(f) for f in fills), D(0))
    paid = sum((f.commission for f in fills), D(0))
    assert state.commissions == paid
    # The acceptance identity, exact in Decimal (no tolerance).
    assert state.realized_pnl + unrealized_pnl(state, mark) == cash + state.quantity * mark - paid
    if state.is_flat:
        assert state.cost_basis == 0
        assert state.realized_pnl == cash - paid


@settings(max_examples=300, deadline=None)
@given(fills=fill_sequences())
def test_realized_matches_rational_average_cost_within_rounding(fills: list[Fill]) -> None:
    """Independent model: exact rationals. Only partial reductions may round."""
    state = apply_fills(fills)
    ref_qty, ref_realized = fraction_reference(fills)
    assert Fraction(state.quantity) == ref_qty
    partial_reductions = 0
    current = PositionState()
    for fill in fills:
        effect = apply_fill(current, fill)
        if effect.closed_quantity and effect.closed_quantity < abs(current.quantity):
            partial_reductions += 1
        current = effect.after
    tolerance = Fraction(COST_QUANTUM) / 2 * partial_reductions
    assert abs(Fraction(state.realized_pnl) - ref_realized) <= tolerance
    if state.average_price is not None:
        true_avg = Fraction(state.cost_basis) / Fraction(state.quantity)
        # Half a quantum, plus the 60-digit division's own rounding.
        slack = Fraction(PRICE_QUANTUM) / 2 + Fraction(1, 10**40)
        assert abs(Fraction(state.average_price) - true_avg) <= slack


@settings(max_examples=200, deadline=None)
@given(fills=fill_sequences(), price=prices)
def test_trading_at_one_price_without_commission_realizes_nothing(fills: list[Fill], price: Decimal) -> None:
    same = [Fill(f.side, f.quantity, price) for f in fills]
    state = apply_fills(same)
    # The cost basis is always quantity * price, so no reduction ever rounds.
    assert state.realized_pnl == 0
    assert unrealized_pnl(state, price) == 0
