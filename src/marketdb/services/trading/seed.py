"""Example data of document 003: the NIFTY and BANKNIFTY indices and two strategies.

Idempotent: rows that exist (instrument by symbol, strategy by id) are left
untouched, so running it twice, or after editing a seeded strategy, changes
nothing. Document 003 keeps the instrument list inside each strategy's
``config.instruments``; here it lives in the ``symbols`` column, and
``risk_percent`` (risk per trade) in ``risk_limits``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.services.trading._common import Actor, audit
from marketdb.services.trading.strategies import create_strategy
from marketdb.store.schema import tables as t

EXAMPLE_INSTRUMENTS: tuple[dict[str, Any], ...] = (
    {
        "symbol": "NIFTY",
        "name": "NIFTY 50",
        "exchange": "NSE",
        "asset_class": "index",
        "currency": "INR",
        # exchange_calendars has no XNSE; NSE trades BSE's (XBOM) sessions and holidays.
        "calendar": "XBOM",
        "tick_size": Decimal("0.05"),
        "lot_size": Decimal(1),
    },
    {
        "symbol": "BANKNIFTY",
        "name": "NIFTY BANK",
        "exchange": "NSE",
        "asset_class": "index",
        "currency": "INR",
        "calendar": "XBOM",
        "tick_size": Decimal("0.05"),
        "lot_size": Decimal(1),
    },
)

EXAMPLE_STRATEGIES: tuple[dict[str, Any], ...] = (
    {
        "strategy_id": "ema_crossover",
        "name": "EMA Crossover Strategy",
        "description": "Simple EMA crossover with risk management",
        "class_name": "EMACrossoverStrategy",
        "strategy_type": "trend_following",
        "config": {"fast_ema": 9, "slow_ema": 21},
        "risk_limits": {"risk_percent": 1.0},
        "symbols": ["NIFTY", "BANKNIFTY"],
        "execution_mode": "paper",
    },
    {
        "strategy_id": "support_resistance",
        "name": "Support Resistance Strategy",
        "description": "Price action at key levels",
        "class_name": "SupportResistanceStrategy",
        "strategy_type": "price_action",
        "config": {"lookback_periods": 20, "min_touches": 2},
        "risk_limits": {"risk_percent": 0.5},
        "symbols": ["NIFTY"],
        "execution_mode": "paper",
    },
)


def seed_examples(conn: sa.Connection, actor: Actor) -> dict[str, list[str]]:
    """Load the examples; returns what was created and what already existed."""
    created_instruments: list[str] = []
    for instrument in EXAMPLE_INSTRUMENTS:
        row = conn.execute(
            pg.insert(t.instruments)
            .values(**instrument)
            .on_conflict_do_nothing(index_elements=["symbol"])
            .returning(t.instruments.c.id)
        ).first()
        if row is not None:
            created_instruments.append(instrument["symbol"])
            audit(conn, actor, "instrument.create", "instrument", row.id, new=instrument)
    created_strategies: list[str] = []
    for spec in EXAMPLE_STRATEGIES:
        _, created = create_strategy(conn, actor, **spec, if_exists="skip")
        if created:
            created_strategies.append(spec["strategy_id"])
    return {
        "instruments_created": created_instruments,
        "instruments_existing": [
            i["symbol"] for i in EXAMPLE_INSTRUMENTS if i["symbol"] not in created_instruments
        ],
        "strategies_created": created_strategies,
        "strategies_existing": [
            s["strategy_id"] for s in EXAMPLE_STRATEGIES if s["strategy_id"] not in created_strategies
        ],
    }
