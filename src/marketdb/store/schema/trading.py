"""Trading records: strategies, signals, orders, fills, positions, portfolio,
pattern events and calibrated model parameters.

Money (quantities, prices, cash, P&L) is ``numeric`` and Python ``Decimal``.
Model parameters and scores are ``double precision``. Trading records
reference instruments without cascading deletes: an instrument with fills
cannot be deleted by accident.
"""

from __future__ import annotations

import sqlalchemy as sa

from marketdb.store.schema._base import (
    JSONB,
    Float,
    Money,
    created_at,
    finite,
    instrument_fk,
    metadata,
    non_negative,
    now,
    one_of,
    positive,
    unit_interval,
    updated_at,
    uuid_pk,
)

TS = sa.DateTime(timezone=True)
STRATEGY_SIGNAL_TYPES = ("LONG", "SHORT", "EXIT_LONG", "EXIT_SHORT")
SIGNAL_STATUSES = ("active", "executed", "expired", "cancelled")
ORDER_SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "opg", "cls", "gtd")
ORDER_STATUSES = (
    "pending",
    "open",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
)
OPEN_ORDER_STATUSES = ("pending", "open", "partially_filled")

strategies = sa.Table(
    "strategies",
    metadata,
    sa.Column("id", sa.Text(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("description", sa.Text()),
    sa.Column("strategy_type", sa.Text(), nullable=False, server_default="custom"),
    sa.Column("class_name", sa.Text()),
    sa.Column("config", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("risk_limits", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("symbols", sa.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'::text[]")),
    sa.Column("status", sa.Text(), nullable=False, server_default="stopped"),
    sa.Column("is_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("execution_mode", sa.Text(), nullable=False, server_default="paper"),
    sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
    created_at(),
    updated_at(),
    sa.CheckConstraint("id ~ '^[A-Za-z0-9_.-]{1,100}$'", name="id_format"),
    one_of("status", ("stopped", "running", "paused", "error")),
    one_of("execution_mode", ("paper", "live")),
)
sa.Index("ix_strategies_status", strategies.c.status)
sa.Index("ix_strategies_strategy_type", strategies.c.strategy_type)
sa.Index("ix_strategies_is_enabled", strategies.c.is_enabled)
sa.Index("ix_strategies_execution_mode", strategies.c.execution_mode)

# Strategy signals (document 004) and user-owned signals (document 002) in one table.
signals = sa.Table(
    "signals",
    metadata,
    uuid_pk(),
    sa.Column("ts", TS, nullable=False, server_default=now()),
    sa.Column("strategy_id", sa.Text(), sa.ForeignKey("strategies.id", ondelete="CASCADE")),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE")),
    instrument_fk(ondelete=None),
    sa.Column("signal_type", sa.Text(), nullable=False),
    sa.Column("strength", Float),
    sa.Column("confidence", Float),
    sa.Column("target_price", Money),
    sa.Column("stop_loss", Money),
    sa.Column("expires_at", TS),
    sa.Column("data", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("status", sa.Text(), nullable=False, server_default="active"),
    updated_at(),
    unit_interval("strength"),
    unit_interval("confidence"),
    positive("target_price"),
    positive("stop_loss"),
    one_of("status", SIGNAL_STATUSES),
    sa.CheckConstraint("strategy_id IS NOT NULL OR user_id IS NOT NULL", name="has_owner"),
    sa.CheckConstraint(
        "strategy_id IS NULL OR (strength IS NOT NULL AND confidence IS NOT NULL "
        "AND signal_type IN ('LONG', 'SHORT', 'EXIT_LONG', 'EXIT_SHORT'))",
        name="strategy_signal_complete",
    ),
)
sa.Index("ix_signals_strategy_id_ts", signals.c.strategy_id, signals.c.ts.desc())
sa.Index("ix_signals_instrument_id_ts", signals.c.instrument_id, signals.c.ts.desc())
sa.Index("ix_signals_user_id_ts", signals.c.user_id, signals.c.ts.desc())
sa.Index(
    "ix_signals_active",
    signals.c.strategy_id,
    signals.c.instrument_id,
    postgresql_where=signals.c.status == "active",
)

orders = sa.Table(
    "orders",
    metadata,
    uuid_pk(),
    sa.Column("client_order_id", sa.Text(), comment="caller's idempotency key"),
    sa.Column("strategy_id", sa.Text(), sa.ForeignKey("strategies.id", ondelete="SET NULL")),
    sa.Column("signal_id", sa.Uuid(), sa.ForeignKey("signals.id", ondelete="SET NULL")),
    instrument_fk(ondelete=None),
    sa.Column("side", sa.Text(), nullable=False),
    sa.Column("order_type", sa.Text(), nullable=False),
    sa.Column("quantity", Money, nullable=False),
    sa.Column("price", Money),
    sa.Column("stop_price", Money),
    sa.Column("time_in_force", sa.Text(), nullable=False, server_default="day"),
    sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
    sa.Column("filled_quantity", Money, nullable=False, server_default="0"),
    sa.Column(
        "filled_notional",
        Money,
        nullable=False,
        server_default="0",
        comment="sum(fill qty * fill price): avg_fill_price stays exact",
    ),
    sa.Column("avg_fill_price", Money),
    sa.Column("commission", Money, nullable=False, server_default="0"),
    sa.Column("broker_order_id", sa.Text()),
    sa.Column("error_message", sa.Text()),
    created_at(),
    updated_at(),
    sa.Column("executed_at", TS),
    sa.Column("cancelled_at", TS),
    sa.Column("expires_at", TS),
    sa.UniqueConstraint("client_order_id"),
    one_of("side", ORDER_SIDES),
    one_of("order_type", ORDER_TYPES),
    one_of("time_in_force", TIME_IN_FORCE),
    one_of("status", ORDER_STATUSES),
    positive("quantity"),
    positive("price"),
    positive("stop_price"),
    sa.CheckConstraint("filled_quantity >= 0 AND filled_quantity <= quantity", name="filled_within_quantity"),
    finite("filled_notional"),
    finite("commission"),
    sa.CheckConstraint(
        "order_type NOT IN ('limit', 'stop_limit') OR price IS NOT NULL", name="limit_has_price"
    ),
    sa.CheckConstraint(
        "order_type NOT IN ('stop', 'stop_limit') OR stop_price IS NOT NULL", name="stop_has_price"
    ),
)
sa.Index("ix_orders_strategy_id_created_at", orders.c.strategy_id, orders.c.created_at.desc())
sa.Index("ix_orders_instrument_id_created_at", orders.c.instrument_id, orders.c.created_at.desc())
sa.Index("ix_orders_created_at", orders.c.created_at.desc())
sa.Index("ix_orders_broker_order_id", orders.c.broker_order_id)
sa.Index(
    "ix_orders_open",
    orders.c.status,
    postgresql_where=orders.c.status.in_(OPEN_ORDER_STATUSES),
)

order_history = sa.Table(
    "order_history",
    metadata,
    uuid_pk(),
    sa.Column("order_id", sa.Uuid(), sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("from_status", sa.Text()),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("filled_quantity", Money),
    sa.Column("ts", TS, nullable=False, server_default=now()),
    sa.Column("details", JSONB),
    one_of("status", ORDER_STATUSES),
)
sa.Index("ix_order_history_order_id_ts", order_history.c.order_id, order_history.c.ts)
sa.Index("ix_order_history_ts", order_history.c.ts.desc())

executions = sa.Table(
    "executions",
    metadata,
    uuid_pk(),
    sa.Column("order_id", sa.Uuid(), sa.ForeignKey("orders.id"), nullable=False),
    instrument_fk(ondelete=None),
    sa.Column("ts", TS, nullable=False, server_default=now()),
    sa.Column("side", sa.Text(), nullable=False),
    sa.Column("quantity", Money, nullable=False),
    sa.Column("price", Money, nullable=False),
    sa.Column("commission", Money, nullable=False, server_default="0"),
    sa.Column("commission_currency", sa.Text()),
    sa.Column("venue", sa.Text()),
    sa.Column("broker_exec_id", sa.Text()),
    sa.UniqueConstraint("order_id", "broker_exec_id"),
    one_of("side", ORDER_SIDES),
    positive("quantity"),
    positive("price"),
    finite("commission"),
)
sa.Index("ix_executions_order_id", executions.c.order_id)
sa.Index("ix_executions_instrument_id_ts", executions.c.instrument_id, executions.c.ts.desc())

positions = sa.Table(
    "positions",
    metadata,
    uuid_pk(),
    sa.Column("strategy_id", sa.Text(), sa.ForeignKey("strategies.id"), nullable=False),
    instrument_fk(ondelete=None),
    sa.Column("quantity", Money, nullable=False, comment="signed: > 0 long, < 0 short"),
    sa.Column(
        "cost_basis",
        Money,
        nullable=False,
        server_default="0",
        comment="signed entry cost of the open quantity; average = cost_basis / quantity",
    ),
    sa.Column("average_entry_price", Money, nullable=False, server_default="0"),
    sa.Column("current_price", Money),
    sa.Column("unrealized_pnl", Money),
    sa.Column("realized_pnl", Money, nullable=False, server_default="0"),
    sa.Column("commissions", Money, nullable=False, server_default="0"),
    sa.Column("stop_loss_price", Money),
    sa.Column("target_price", Money),
    sa.Column("status", sa.Text(), nullable=False, server_default="open"),
    sa.Column("opened_at", TS, nullable=False, server_default=now()),
    sa.Column("closed_at", TS),
    updated_at(),
    one_of("status", ("open", "closed")),
    finite("quantity"),
    finite("cost_basis"),
    non_negative("average_entry_price"),
    positive("current_price"),
    finite("unrealized_pnl"),
    finite("realized_pnl"),
    finite("commissions"),
    positive("stop_loss_price"),
    positive("target_price"),
    sa.CheckConstraint("status = 'open' OR closed_at IS NOT NULL", name="closed_has_time"),
)
sa.Index("ix_positions_strategy_id", positions.c.strategy_id)
sa.Index("ix_positions_status", positions.c.status)
sa.Index(
    "ix_positions_one_open",
    positions.c.strategy_id,
    positions.c.instrument_id,
    unique=True,
    postgresql_where=positions.c.status == "open",
)

portfolio_snapshots = sa.Table(
    "portfolio_snapshots",
    metadata,
    sa.Column("portfolio", sa.Text(), primary_key=True, server_default="default"),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("total_value", Money, nullable=False),
    sa.Column("cash", Money, nullable=False),
    sa.Column("positions_value", Money, nullable=False),
    sa.Column("total_pnl", Money, nullable=False),
    sa.Column("unrealized_pnl", Money, nullable=False),
    sa.Column("realized_pnl", Money, nullable=False),
    sa.Column("gross_exposure", Money, nullable=False),
    sa.Column("net_exposure", Money, nullable=False),
    sa.Column("n_positions", sa.Integer(), nullable=False),
    *(
        finite(c)
        for c in (
            "total_value",
            "cash",
            "positions_value",
            "total_pnl",
            "unrealized_pnl",
            "realized_pnl",
            "net_exposure",
        )
    ),
    non_negative("gross_exposure"),
    sa.CheckConstraint("n_positions >= 0", name="n_positions_non_negative"),
)

# Pattern detections (document 001 events).
pattern_events = sa.Table(
    "pattern_events",
    metadata,
    instrument_fk(primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("pattern", sa.Text(), primary_key=True),
    sa.Column("timeframe", sa.Text()),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    created_at(),
)
sa.Index("ix_pattern_events_pattern_ts", pattern_events.c.pattern, pattern_events.c.ts.desc())
sa.Index("ix_pattern_events_instrument_id_ts", pattern_events.c.instrument_id, pattern_events.c.ts.desc())

# Calibrated model parameters (document 004). Derived quantities are generated
# columns: computed by the database, never trusted from input.
heston_parameters = sa.Table(
    "heston_parameters",
    metadata,
    instrument_fk(primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("kappa", Float, nullable=False),
    sa.Column("theta", Float, nullable=False),
    sa.Column("sigma", Float, nullable=False),
    sa.Column("rho", Float, nullable=False),
    sa.Column("v0", Float, nullable=False),
    sa.Column(
        "feller_satisfied", sa.Boolean(), sa.Computed("2 * kappa * theta > sigma * sigma", persisted=True)
    ),
    sa.Column("rmse", Float),
    sa.Column("r_squared", Float),
    sa.Column("n_options", sa.Integer()),
    sa.Column("calibration_time_ms", sa.Integer()),
    positive("kappa"),
    positive("theta"),
    positive("sigma"),
    non_negative("v0"),
    sa.CheckConstraint("rho >= -1 AND rho <= 1", name="rho_range"),
    non_negative("rmse"),
    finite("r_squared"),
)
sa.Index(
    "ix_heston_parameters_instrument_id_ts", heston_parameters.c.instrument_id, heston_parameters.c.ts.desc()
)

sabr_parameters = sa.Table(
    "sabr_parameters",
    metadata,
    instrument_fk(primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("maturity", Float, primary_key=True, comment="time to expiry in years"),
    sa.Column("alpha", Float, nullable=False),
    sa.Column("beta", Float, nullable=False),
    sa.Column("rho", Float, nullable=False),
    sa.Column("nu", Float, nullable=False),
    sa.Column("rmse", Float),
    sa.Column("n_options", sa.Integer()),
    positive("maturity"),
    positive("alpha"),
    sa.CheckConstraint("beta >= 0 AND beta <= 1", name="beta_range"),
    sa.CheckConstraint("rho >= -1 AND rho <= 1", name="rho_range"),
    non_negative("nu"),
    non_negative("rmse"),
)
sa.Index("ix_sabr_parameters_instrument_id_ts", sabr_parameters.c.instrument_id, sabr_parameters.c.ts.desc())

ou_parameters = sa.Table(
    "ou_parameters",
    metadata,
    sa.Column("pair_id", sa.Text(), primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    instrument_fk("asset1_id"),
    instrument_fk("asset2_id"),
    sa.Column("hedge_ratio", Float, nullable=False),
    sa.Column("theta", Float, nullable=False, comment="mean-reversion speed"),
    sa.Column("mu", Float, nullable=False),
    sa.Column("sigma", Float, nullable=False),
    sa.Column("half_life", Float, sa.Computed("ln(2.0) / theta", persisted=True)),
    sa.Column("adf_statistic", Float),
    sa.Column("adf_pvalue", Float),
    sa.Column("entry_lower", Float),
    sa.Column("entry_upper", Float),
    sa.Column("exit_target", Float),
    sa.Column("stop_loss", Float),
    finite("hedge_ratio"),
    positive("theta"),
    finite("mu"),
    positive("sigma"),
    finite("adf_statistic"),
    unit_interval("adf_pvalue"),
    finite("entry_lower"),
    finite("entry_upper"),
    finite("exit_target"),
    finite("stop_loss"),
    sa.CheckConstraint("asset1_id <> asset2_id", name="distinct_assets"),
)
sa.Index("ix_ou_parameters_pair_id_ts", ou_parameters.c.pair_id, ou_parameters.c.ts.desc())
