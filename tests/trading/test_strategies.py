"""Strategies and the document 003 seed on a real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.accounts.audit import Actor
from marketdb.services.trading import Trading
from marketdb.store.schema import tables as t


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    return db.trading


def audit_rows(db: marketdb.MarketDB, resource_type: str) -> list[sa.Row[tuple[object, ...]]]:
    with db.transaction() as conn:
        return list(
            conn.execute(
                sa.select(t.audit_logs)
                .where(t.audit_logs.c.resource_type == resource_type)
                .order_by(t.audit_logs.c.id)
            )
        )


def test_seed_examples_is_idempotent(db: marketdb.MarketDB, trading: Trading) -> None:
    first = trading.seed_examples()
    assert first["instruments_created"] == ["NIFTY", "BANKNIFTY"]
    assert first["strategies_created"] == ["ema_crossover", "support_resistance"]
    trading.update_strategy("ema_crossover", config={"fast_ema": 5, "slow_ema": 21})
    second = trading.seed_examples()
    assert second["instruments_created"] == []
    assert second["strategies_created"] == []
    assert second["strategies_existing"] == ["ema_crossover", "support_resistance"]
    assert trading.strategy("ema_crossover")["config"] == {"fast_ema": 5, "slow_ema": 21}
    with db.transaction() as conn:
        nifty = conn.execute(sa.select(t.instruments).where(t.instruments.c.symbol == "NIFTY")).one()
        n = conn.execute(sa.select(sa.func.count()).select_from(t.instruments)).scalar_one()
    assert n == 2
    assert (nifty.exchange, nifty.asset_class, nifty.tick_size, nifty.lot_size) == (
        "NSE",
        "index",
        Decimal("0.05"),
        Decimal(1),
    )
    ema = trading.strategy("ema_crossover")
    assert ema["symbols"] == ["NIFTY", "BANKNIFTY"]
    assert ema["class_name"] == "EMACrossoverStrategy"
    assert ema["risk_limits"] == {"risk_percent": 1.0}
    assert ema["execution_mode"] == "paper"
    assert trading.strategy("support_resistance")["config"] == {"lookback_periods": 20, "min_touches": 2}


def test_create_update_enable_disable_with_audit(db: marketdb.MarketDB, trading: Trading) -> None:
    trading.seed_examples()
    created = trading.create_strategy(
        "pairs.v1",
        "Pairs",
        strategy_type="stat_arb",
        config={"z": 2},
        risk_limits={"max_position": 10},
        symbols=["nifty", "BANKNIFTY", "NIFTY"],
        execution_mode="LIVE",
    )
    assert created["symbols"] == ["NIFTY", "BANKNIFTY"]
    assert created["execution_mode"] == "live"
    assert (created["is_enabled"], created["status"]) == (False, "stopped")
    with pytest.raises(Conflict, match="enable it first"):
        trading.update_strategy("pairs.v1", status="running")
    assert trading.enable_strategy("pairs.v1")["is_enabled"] is True
    running = trading.update_strategy("pairs.v1", status="running", risk_limits={})
    assert (running["status"], running["risk_limits"]) == ("running", {})
    disabled = trading.disable_strategy("pairs.v1")
    assert (disabled["is_enabled"], disabled["status"]) == (False, "stopped")
    actions = [r.action for r in audit_rows(db, "strategy") if r.resource_id == "pairs.v1"]
    assert actions == ["strategy.create", "strategy.enable", "strategy.update", "strategy.disable"]
    update = next(r for r in audit_rows(db, "strategy") if r.action == "strategy.update")
    assert update.old_value["risk_limits"] == {"max_position": 10}
    assert update.new_value == {"status": "running", "risk_limits": {}}
    assert [s["id"] for s in trading.strategies(execution_mode="live")] == ["pairs.v1"]
    assert [s["id"] for s in trading.strategies(enabled=False)] == [
        "ema_crossover",
        "pairs.v1",
        "support_resistance",
    ]


def test_actor_is_recorded(db: marketdb.MarketDB) -> None:
    trading = db.trading.as_actor(Actor(name="ops-script", ip="10.0.0.1", user_agent="cron"))
    trading.create_strategy("s1", "S1")
    row = audit_rows(db, "strategy")[0]
    assert (row.actor, str(row.ip_address), row.user_agent) == ("ops-script", "10.0.0.1", "cron")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"strategy_id": "bad id!"}, InvalidInput, "strategy id must be"),
        ({"name": " "}, InvalidInput, "name must be a non-empty"),
        ({"execution_mode": "yolo"}, InvalidInput, "execution mode must be one of paper, live"),
        ({"config": ["not", "a", "dict"]}, InvalidInput, "config must be a JSON object"),
        ({"symbols": "NIFTY"}, InvalidInput, "list of symbols"),
        ({"symbols": ["NIFTY", "NOPE", "ALSO_NOPE"]}, NotFound, "ALSO_NOPE, NOPE"),
    ],
)
def test_bad_strategies_write_nothing(
    db: marketdb.MarketDB, trading: Trading, kwargs: dict[str, object], error: type, message: str
) -> None:
    trading.seed_examples()
    args: dict[str, object] = {"strategy_id": "ok", "name": "OK", **kwargs}
    with pytest.raises(error, match=message):
        trading.create_strategy(**args)  # type: ignore[arg-type]
    assert [s["id"] for s in trading.strategies()] == ["ema_crossover", "support_resistance"]


def test_duplicate_and_unknown_strategies(trading: Trading) -> None:
    trading.create_strategy("s1", "S1")
    with pytest.raises(Conflict, match="already exists"):
        trading.create_strategy("s1", "again")
    with pytest.raises(NotFound, match="unknown strategy 'nope'"):
        trading.update_strategy("nope", name="x")
    with pytest.raises(InvalidInput, match="cannot be updated"):
        trading.update_strategy("s1", id="s2")
    with pytest.raises(InvalidInput, match="nothing to update"):
        trading.update_strategy("s1")
