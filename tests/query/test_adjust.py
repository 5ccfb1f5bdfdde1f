"""Point-in-time CRSP-style adjustment: the pure math, against hand-computed series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from marketdb.errors import InvalidInput
from marketdb.services.query import (
    CorporateAction,
    actions_known_at,
    adjust_bars,
    adjustment_factors,
)

UTC = dt.UTC
SESSIONS = [
    dt.date(2024, 1, 2),
    dt.date(2024, 1, 3),
    dt.date(2024, 1, 4),  # last session before the split
    dt.date(2024, 1, 5),  # split 2:1 ex
    dt.date(2024, 1, 8),
    dt.date(2024, 1, 9),  # last session before the dividend
    dt.date(2024, 1, 10),  # dividend 1.00 ex
    dt.date(2024, 1, 11),
]
SPLIT = CorporateAction(
    "split",
    dt.date(2024, 1, 5),
    ratio=2.0,
    known_at=dt.datetime(2024, 1, 3, 21, 0, tzinfo=UTC),
)
DIVIDEND = CorporateAction(
    "cash_dividend",
    dt.date(2024, 1, 10),
    amount=1.0,
    known_at=dt.datetime(2024, 1, 8, 12, 0, tzinfo=UTC),
)


def _raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": [99.0, 101.0, 102.0, 50.5, 51.0, 51.5, 49.0, 49.6],
            "high": [101.0, 103.0, 102.5, 51.5, 52.5, 51.6, 50.0, 50.4],
            "low": [98.0, 100.0, 100.0, 50.0, 50.8, 49.8, 48.9, 49.5],
            "close": [100.0, 102.0, 101.0, 51.0, 52.0, 50.0, 49.5, 50.0],
            "volume": [1000, 1100, 1200, 2600, 2400, 2500, 2000, 1800],
        },
        index=pd.DatetimeIndex(pd.to_datetime(SESSIONS), tz="UTC", name="ts"),
    )


def _assert_rel(actual: np.ndarray, expected: list[float]) -> None:
    exp = np.asarray(expected, dtype=float)
    rel = np.abs(np.asarray(actual, dtype=float) - exp) / np.abs(exp)
    assert rel.max() <= 1e-9, (actual, exp)


def test_split_and_dividend_match_hand_computed_crsp_series() -> None:
    # Hand computation:
    #   dividend factor = 1 - 1.00 / 50.00 (close 2024-01-09) = 0.98, before 2024-01-10
    #   split factor    = 1 / 2, before 2024-01-05; volume x 2 there
    #   price factor: 0.49 (Jan 2-4), 0.98 (Jan 5-9), 1 (Jan 10-11)
    out = adjust_bars(_raw(), SESSIONS, [SPLIT, DIVIDEND], keep_factors=True)
    _assert_rel(out["close"], [49.0, 49.98, 49.49, 49.98, 50.96, 49.0, 49.5, 50.0])
    _assert_rel(out["open"], [48.51, 49.49, 49.98, 49.49, 49.98, 50.47, 49.0, 49.6])
    _assert_rel(out["high"], [49.49, 50.47, 50.225, 50.47, 51.45, 50.568, 50.0, 50.4])
    _assert_rel(out["low"], [48.02, 49.0, 49.0, 49.0, 49.784, 48.804, 48.9, 49.5])
    _assert_rel(out["volume"], [2000, 2200, 2400, 2600, 2400, 2500, 2000, 1800])
    _assert_rel(out["price_factor"], [0.49, 0.49, 0.49, 0.98, 0.98, 0.98, 1.0, 1.0])
    # The raw frame is untouched.
    assert _raw()["close"].iloc[0] == 100.0


def test_as_of_before_the_split_gives_raw_prices() -> None:
    as_of = dt.datetime(2024, 1, 3, 20, 0, tzinfo=UTC)  # before the split was announced
    known = actions_known_at([SPLIT, DIVIDEND], as_of)
    assert known == []
    out = adjust_bars(_raw(), SESSIONS, known)
    pd.testing.assert_frame_equal(out, _raw().astype({"volume": float}))


def test_announced_but_not_yet_ex_does_not_adjust() -> None:
    # Known on Jan 3, ex on Jan 5: on Jan 4 prices are not yet adjusted.
    as_of = dt.datetime(2024, 1, 4, 21, 0, tzinfo=UTC)
    assert actions_known_at([SPLIT, DIVIDEND], as_of) == []


def test_as_of_between_split_and_dividend_applies_only_the_split() -> None:
    as_of = dt.datetime(2024, 1, 8, 0, 0, tzinfo=UTC)
    known = actions_known_at([SPLIT, DIVIDEND], as_of)
    assert known == [SPLIT]
    out = adjust_bars(_raw(), SESSIONS, known)
    _assert_rel(out["close"], [50.0, 51.0, 50.5, 51.0, 52.0, 50.0, 49.5, 50.0])


def test_action_learned_after_its_ex_date_is_not_seen_before() -> None:
    late = CorporateAction(
        "split", dt.date(2024, 1, 5), ratio=2.0, known_at=dt.datetime(2024, 1, 9, tzinfo=UTC)
    )
    assert actions_known_at([late], dt.datetime(2024, 1, 8, tzinfo=UTC)) == []
    assert actions_known_at([late], dt.datetime(2024, 1, 9, tzinfo=UTC)) == [late]


def test_dividend_on_split_ex_date_uses_the_new_share_basis() -> None:
    # 4:1 split and a 0.25 dividend (per new share) both ex 2024-01-05.
    # Previous close 200 per old share = 50 per new share -> factor 1 - 0.25/50 = 0.995.
    sessions = [dt.date(2024, 1, 4), dt.date(2024, 1, 5)]
    bars = pd.DataFrame({"close": [200.0, 49.0], "volume": [100.0, 400.0]})
    actions = [
        CorporateAction("split", dt.date(2024, 1, 5), ratio=4.0),
        CorporateAction("cash_dividend", dt.date(2024, 1, 5), amount=0.25),
    ]
    out = adjust_bars(bars, sessions, actions)
    _assert_rel(out["close"], [200.0 * 0.25 * 0.995, 49.0])
    _assert_rel(out["volume"], [400.0, 400.0])


def test_reference_close_outside_the_window_is_used() -> None:
    # Bars of early January only; the dividend goes ex in March, with the
    # reference close (80, on 2024-03-14) supplied by the reader.
    sessions = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    bars = pd.DataFrame({"close": [70.0, 71.0]})
    div = CorporateAction(
        "cash_dividend",
        dt.date(2024, 3, 15),
        amount=2.0,
        ref_close=80.0,
        ref_date=dt.date(2024, 3, 14),
    )
    out = adjust_bars(bars, sessions, [div])
    _assert_rel(out["close"], [70.0 * 0.975, 71.0 * 0.975])


def test_reverse_split_multiplies_prices_and_divides_volume() -> None:
    sessions = [dt.date(2022, 6, 10), dt.date(2022, 6, 13)]
    bars = pd.DataFrame({"close": [0.25, 2.6], "volume": [1_000_000.0, 90_000.0]})
    out = adjust_bars(bars, sessions, [CorporateAction("split", dt.date(2022, 6, 13), ratio=0.1)])
    _assert_rel(out["close"], [2.5, 2.6])
    _assert_rel(out["volume"], [100_000.0, 90_000.0])


def test_factors_do_not_depend_on_row_order() -> None:
    order = [3, 0, 7, 5, 1, 6, 2, 4]
    raw = _raw()
    f_sorted = adjustment_factors(SESSIONS, raw["close"], [DIVIDEND, SPLIT])
    f_shuffled = adjustment_factors(
        [SESSIONS[i] for i in order], raw["close"].to_numpy()[order], [SPLIT, DIVIDEND]
    )
    np.testing.assert_allclose(f_shuffled.price, f_sorted.price[order], rtol=1e-12)
    np.testing.assert_allclose(f_shuffled.volume, f_sorted.volume[order], rtol=1e-12)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (CorporateAction("split", dt.date(2024, 1, 5), ratio=0.0), "ratio"),
        (CorporateAction("split", dt.date(2024, 1, 5), ratio=None), "ratio"),
        (CorporateAction("cash_dividend", dt.date(2024, 1, 5), amount=-1.0), "amount"),
        (CorporateAction("cash_dividend", dt.date(2024, 1, 5), amount=500.0), "previous close"),
    ],
)
def test_bad_actions_are_refused(action: CorporateAction, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        adjustment_factors(SESSIONS, _raw()["close"], [action])


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        actions_known_at([SPLIT], dt.datetime(2024, 1, 8))
