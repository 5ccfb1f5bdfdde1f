"""Pattern events and calibrated model parameters on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketdb
from marketdb.errors import InvalidInput, NotFound
from marketdb.services.trading import Trading
from marketdb.services.trading.models import feller_condition, ou_half_life
from marketdb.store.schema import tables as t

UTC = dt.UTC
T0 = dt.datetime(2025, 7, 21, 9, 15, tzinfo=UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    tr = db.trading
    tr.seed_examples()
    return tr


def audit_count(db: marketdb.MarketDB, resource_type: str) -> int:
    with db.transaction() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(t.audit_logs.c.resource_type == resource_type)
        ).scalar_one()


# --- pattern events ----------------------------------------------------------------------


def test_pattern_events_are_idempotent_and_queryable(db: marketdb.MarketDB, trading: Trading) -> None:
    first = trading.record_pattern("NIFTY", T0, "HeadAndShoulders", details={"neckline": 1.5}, timeframe="1d")
    again = trading.record_pattern("nifty", T0, "HeadAndShoulders", details={"neckline": 9})
    assert again == first  # the first detection's details are kept
    assert audit_count(db, "pattern_event") == 1
    trading.record_pattern("NIFTY", T0 + H, "Day1Breakout", timeframe="1m")
    trading.record_pattern("BANKNIFTY", T0 + 2 * H, "HeadAndShoulders", timeframe="1d")
    assert [(e["symbol"], e["pattern"]) for e in trading.patterns()] == [
        ("BANKNIFTY", "HeadAndShoulders"),
        ("NIFTY", "Day1Breakout"),
        ("NIFTY", "HeadAndShoulders"),
    ]
    assert [e["symbol"] for e in trading.patterns(pattern="HeadAndShoulders")] == ["BANKNIFTY", "NIFTY"]
    assert [e["pattern"] for e in trading.patterns(instruments=["NIFTY"], start=T0 + H)] == ["Day1Breakout"]
    assert trading.patterns(end=T0) == []
    assert len(trading.patterns(timeframe="1d")) == 2
    with pytest.raises(NotFound, match="NOPE"):
        trading.patterns(instruments=["NOPE"])
    with pytest.raises(InvalidInput, match="timezone-aware"):
        trading.record_pattern("NIFTY", dt.datetime(2025, 1, 1), "X")


# --- Heston -------------------------------------------------------------------------------

HESTON = {"kappa": 2.0, "theta": 0.04, "sigma": 0.3, "rho": -0.7, "v0": 0.05}


def test_feller_is_computed_by_the_database(db: marketdb.MarketDB, trading: Trading) -> None:
    ok = trading.record_heston("NIFTY", T0, **HESTON, rmse=0.01, n_options=40)
    assert ok["feller_satisfied"] is True  # 2 * 2 * 0.04 = 0.16 > 0.09
    bad = trading.record_heston("NIFTY", T0 + H, **{**HESTON, "sigma": 0.5})
    assert bad["feller_satisfied"] is False  # 0.16 < 0.25
    with pytest.raises(TypeError):
        trading.record_heston("NIFTY", T0, **HESTON, feller_satisfied=True)
    # Even a direct write cannot set it: it is a generated column.
    with pytest.raises(sa.exc.ProgrammingError, match="generated column"), db.transaction() as conn:
        conn.execute(sa.update(t.heston_parameters).values(feller_satisfied=True))


_example = iter(range(10**9))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kappa=st.floats(min_value=0.01, max_value=10),
    theta=st.floats(min_value=0.001, max_value=1),
    sigma=st.floats(min_value=0.01, max_value=2),
)
def test_database_feller_agrees_with_python(
    trading: Trading, kappa: float, theta: float, sigma: float
) -> None:
    ts = T0 + dt.timedelta(seconds=next(_example))
    row = trading.record_heston("NIFTY", ts, kappa=kappa, theta=theta, sigma=sigma, rho=0, v0=0)
    assert row["feller_satisfied"] is feller_condition(kappa, theta, sigma)


def test_feller_boundary_is_strict() -> None:
    assert not feller_condition(1.0, 0.5, 1.0)  # 2 * 1 * 0.5 == 1 == sigma^2
    assert feller_condition(1.0, 0.5, 0.999)


def test_heston_latest_as_of_and_replace(db: marketdb.MarketDB, trading: Trading) -> None:
    trading.record_heston("NIFTY", T0, **HESTON)
    trading.record_heston("NIFTY", T0 + 2 * H, **{**HESTON, "kappa": 3.0})
    assert trading.latest_heston("NIFTY")["kappa"] == 3.0  # type: ignore[index]
    assert trading.latest_heston("NIFTY", as_of=T0 + H)["kappa"] == 2.0  # type: ignore[index]
    assert trading.latest_heston("NIFTY", as_of=T0 - H) is None
    assert trading.latest_heston("BANKNIFTY") is None
    replaced = trading.record_heston("NIFTY", T0, **{**HESTON, "kappa": 2.5})
    assert replaced["kappa"] == 2.5
    with db.transaction() as conn:
        actions = conn.execute(
            sa.select(t.audit_logs.c.action, t.audit_logs.c.old_value)
            .where(t.audit_logs.c.resource_type == "heston_parameters")
            .order_by(t.audit_logs.c.id)
        ).all()
    assert [a.action for a in actions] == [
        "heston_parameters.record",
        "heston_parameters.record",
        "heston_parameters.replace",
    ]
    assert actions[-1].old_value["kappa"] == 2.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kappa": 0}, r"Heston kappa must be in \(0, inf\]"),
        ({"theta": -1}, "Heston theta"),
        ({"sigma": float("inf")}, "finite"),
        ({"rho": -1.5}, r"Heston rho must be in \[-1, 1\]"),
        ({"v0": -0.1}, "Heston v0"),
        ({"rmse": -1}, "rmse"),
        ({"n_options": -3}, "n_options"),
    ],
)
def test_bad_heston_writes_nothing(
    db: marketdb.MarketDB, trading: Trading, change: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        trading.record_heston("NIFTY", T0, **{**HESTON, **change})
    assert trading.latest_heston("NIFTY") is None
    assert audit_count(db, "heston_parameters") == 0


# --- SABR ---------------------------------------------------------------------------------


def test_sabr_per_maturity_latest_surface(trading: Trading) -> None:
    def slice_(maturity: float, alpha: float) -> dict[str, float]:
        return {"maturity": maturity, "alpha": alpha, "beta": 0.5, "rho": -0.3, "nu": 0.4}

    trading.record_sabr("NIFTY", T0, [slice_(0.25, 0.2), slice_(0.5, 0.21), slice_(1.0, 0.22)])
    trading.record_sabr("NIFTY", T0 + H, [slice_(0.5, 0.3)])
    assert [(s["maturity"], s["alpha"]) for s in trading.latest_sabr("NIFTY")] == [(0.5, 0.3)]
    assert [s["maturity"] for s in trading.latest_sabr("NIFTY", as_of=T0 + H / 2)] == [0.25, 0.5, 1.0]
    assert trading.latest_sabr("NIFTY", as_of=T0 - H) == []
    with pytest.raises(InvalidInput, match=r"beta must be in \[0, 1\]"):
        trading.record_sabr("NIFTY", T0, [{**slice_(2.0, 0.2), "beta": 1.5}])
    with pytest.raises(InvalidInput, match="appears twice"):
        trading.record_sabr("NIFTY", T0, [slice_(2.0, 0.2), slice_(2.0, 0.3)])
    with pytest.raises(InvalidInput, match="missing 'nu'"):
        trading.record_sabr("NIFTY", T0, [{"maturity": 1, "alpha": 1, "beta": 1, "rho": 0}])
    assert [s["maturity"] for s in trading.latest_sabr("NIFTY", as_of=T0)] == [0.25, 0.5, 1.0]


# --- OU -----------------------------------------------------------------------------------

OU = {"hedge_ratio": 0.45, "theta": 5.0, "mu": 0.1, "sigma": 0.2}


def test_ou_half_life_is_computed_from_theta(trading: Trading) -> None:
    row = trading.record_ou("NIFTY", "BANKNIFTY", T0, **OU, adf_pvalue=0.01, entry_upper=2.0)
    assert row["pair_id"] == "NIFTY/BANKNIFTY"
    assert row["half_life"] == pytest.approx(math.log(2) / 5.0, rel=1e-12)
    assert ou_half_life(5.0) == pytest.approx(row["half_life"], rel=1e-12)
    trading.record_ou("NIFTY", "BANKNIFTY", T0 + H, **{**OU, "theta": 10.0})
    latest = trading.latest_ou("NIFTY/BANKNIFTY")
    assert latest is not None
    assert latest["half_life"] == pytest.approx(math.log(2) / 10.0, rel=1e-12)
    assert trading.latest_ou("NIFTY/BANKNIFTY", as_of=T0)["theta"] == 5.0  # type: ignore[index]
    assert trading.latest_ou("OTHER") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"theta": 0}, "OU theta"),
        ({"theta": -0.5}, "OU theta"),
        ({"sigma": 0}, "OU sigma"),
        ({"adf_pvalue": 1.2}, "ADF p-value"),
    ],
)
def test_bad_ou_writes_nothing(trading: Trading, change: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        trading.record_ou("NIFTY", "BANKNIFTY", T0, **{**OU, **change})
    with pytest.raises(InvalidInput, match="two different instruments"):
        trading.record_ou("NIFTY", "nifty", T0, **OU)
    assert trading.latest_ou("NIFTY/BANKNIFTY") is None


def test_half_life_needs_positive_theta() -> None:
    with pytest.raises(InvalidInput):
        ou_half_life(0.0)
