"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:27:49.397332
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from marketdb.store.migrations import helpers as h

# Frozen copies of the seed data this revision installs (document 004).
DEFAULT_ROLES = {
    "admin": "full access",
    "trader": "runs strategies and trades",
    "viewer": "read-only access",
}
DEFAULT_PERMISSIONS = (
    ("admin", "*", "*"),
    ("trader", "strategies", "read"),
    ("trader", "strategies", "update"),
    ("trader", "signals", "read"),
    ("trader", "orders", "*"),
    ("trader", "portfolio", "read"),
    ("trader", "market_data", "read"),
    ("viewer", "strategies", "read"),
    ("viewer", "signals", "read"),
    ("viewer", "portfolio", "read"),
    ("viewer", "market_data", "read"),
)
TIMESERIES = ("trades", "quotes", "candles", "order_book_snapshots", "options_chains")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    backend = h.timeseries_backend()
    op.create_table(
        "configurations",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_configurations")),
    )
    op.create_table(
        "instruments",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False, comment="normalised: trimmed, upper-case"),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("asset_class", sa.Text(), server_default="stock", nullable=False),
        sa.Column(
            "security_type",
            sa.Text(),
            nullable=True,
            comment="provider code, e.g. CS, ADRC (Polygon type)",
        ),
        sa.Column("exchange", sa.Text(), nullable=True),
        sa.Column(
            "calendar",
            sa.Text(),
            nullable=True,
            comment="exchange_calendars code (XNYS); NULL or 24/7 = UTC days",
        ),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("currency_symbol", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("tick_size", sa.Numeric(), nullable=True),
        sa.Column("lot_size", sa.Numeric(), nullable=True),
        sa.Column("multiplier", sa.Numeric(), nullable=True),
        sa.Column("expiry_date", sa.Date(), nullable=True),
        sa.Column("strike_price", sa.Numeric(), nullable=True),
        sa.Column("option_right", sa.Text(), nullable=True),
        sa.Column("underlying_id", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("cik", sa.Text(), nullable=True),
        sa.Column("composite_figi", sa.Text(), nullable=True),
        sa.Column("share_class_figi", sa.Text(), nullable=True),
        sa.Column("market_cap", sa.BigInteger(), nullable=True),
        sa.Column("weighted_shares_outstanding", sa.BigInteger(), nullable=True),
        sa.Column("listed_at", sa.Date(), nullable=True),
        sa.Column("delisted_at", sa.Date(), nullable=True),
        sa.Column(
            "last_updated_utc",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="provider's own last-updated timestamp",
        ),
        sa.Column(
            "data_version",
            sa.BigInteger(),
            server_default="0",
            nullable=False,
            comment="bumped by every committed market-data write; cache key",
        ),
        sa.Column(
            "metadata",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "asset_class IN ('stock', 'etf', 'fund', 'index', 'crypto', 'forex', 'future', 'option', 'bond', 'other')",
            name=op.f("ck_instruments_asset_class_valid"),
        ),
        sa.CheckConstraint(
            "lot_size > 0 AND lot_size < 'Infinity'", name=op.f("ck_instruments_lot_size_positive")
        ),
        sa.CheckConstraint(
            "multiplier > 0 AND multiplier < 'Infinity'",
            name=op.f("ck_instruments_multiplier_positive"),
        ),
        sa.CheckConstraint("option_right IN ('call', 'put')", name=op.f("ck_instruments_option_right_valid")),
        sa.CheckConstraint(
            "strike_price > 0 AND strike_price < 'Infinity'",
            name=op.f("ck_instruments_strike_price_positive"),
        ),
        sa.CheckConstraint(
            "symbol = upper(btrim(symbol)) AND symbol <> ''",
            name=op.f("ck_instruments_symbol_normalised"),
        ),
        sa.CheckConstraint(
            "tick_size > 0 AND tick_size < 'Infinity'",
            name=op.f("ck_instruments_tick_size_positive"),
        ),
        sa.CheckConstraint(
            "market_cap IS NULL OR market_cap >= 0",
            name=op.f("ck_instruments_market_cap_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["underlying_id"],
            ["instruments.id"],
            name=op.f("fk_instruments_underlying_id_instruments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instruments")),
        sa.UniqueConstraint("symbol", name=op.f("uq_instruments_symbol")),
    )
    op.create_index("ix_instruments_is_active", "instruments", ["is_active"], unique=False)
    op.create_index("ix_instruments_underlying_id", "instruments", ["underlying_id"], unique=False)
    op.create_table(
        "portfolio_snapshots",
        sa.Column("portfolio", sa.Text(), server_default="default", nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_value", sa.Numeric(), nullable=False),
        sa.Column("cash", sa.Numeric(), nullable=False),
        sa.Column("positions_value", sa.Numeric(), nullable=False),
        sa.Column("total_pnl", sa.Numeric(), nullable=False),
        sa.Column("unrealized_pnl", sa.Numeric(), nullable=False),
        sa.Column("realized_pnl", sa.Numeric(), nullable=False),
        sa.Column("gross_exposure", sa.Numeric(), nullable=False),
        sa.Column("net_exposure", sa.Numeric(), nullable=False),
        sa.Column("n_positions", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "cash > '-Infinity' AND cash < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_cash_finite"),
        ),
        sa.CheckConstraint(
            "gross_exposure >= 0 AND gross_exposure < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_gross_exposure_non_negative"),
        ),
        sa.CheckConstraint(
            "net_exposure > '-Infinity' AND net_exposure < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_net_exposure_finite"),
        ),
        sa.CheckConstraint(
            "positions_value > '-Infinity' AND positions_value < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_positions_value_finite"),
        ),
        sa.CheckConstraint(
            "realized_pnl > '-Infinity' AND realized_pnl < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_realized_pnl_finite"),
        ),
        sa.CheckConstraint(
            "total_pnl > '-Infinity' AND total_pnl < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_total_pnl_finite"),
        ),
        sa.CheckConstraint(
            "total_value > '-Infinity' AND total_value < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_total_value_finite"),
        ),
        sa.CheckConstraint(
            "unrealized_pnl > '-Infinity' AND unrealized_pnl < 'Infinity'",
            name=op.f("ck_portfolio_snapshots_unrealized_pnl_finite"),
        ),
        sa.CheckConstraint("n_positions >= 0", name=op.f("ck_portfolio_snapshots_n_positions_non_negative")),
        sa.PrimaryKeyConstraint("portfolio", "ts", name=op.f("pk_portfolio_snapshots")),
    )
    op.create_table(
        "roles",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )
    op.create_table(
        "timeseries_policies",
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("partition_interval", sa.Text(), nullable=False, comment="'N days' or '1 month'"),
        sa.Column("compress_after", sa.Interval(), nullable=True),
        sa.Column("retain_for", sa.Interval(), nullable=True),
        sa.Column("backend", sa.Text(), server_default="native", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "backend IN ('native', 'timescaledb')",
            name=op.f("ck_timeseries_policies_backend_valid"),
        ),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_timeseries_policies")),
    )
    op.create_table(
        "candles",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.Text(), nullable=False),
        sa.Column(
            "ts",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="bucket start; '1d': session date 00:00 UTC",
        ),
        sa.Column("source", sa.Text(), server_default="trades", nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), server_default="0", nullable=False),
        sa.Column("vwap", sa.Double(), nullable=True),
        sa.Column("trade_count", sa.BigInteger(), nullable=True),
        sa.Column(
            "notional",
            sa.Double(),
            nullable=True,
            comment="sum(price * size): makes vwap mergeable",
        ),
        sa.Column("buy_volume", sa.Double(), nullable=True),
        sa.Column("sell_volume", sa.Double(), nullable=True),
        sa.Column(
            "first_ns",
            sa.BigInteger(),
            nullable=True,
            comment="epoch ns of the first trade (mergeable open)",
        ),
        sa.Column("first_seq", sa.Integer(), nullable=True),
        sa.Column(
            "last_ns",
            sa.BigInteger(),
            nullable=True,
            comment="epoch ns of the last trade (mergeable close)",
        ),
        sa.Column("last_seq", sa.Integer(), nullable=True),
        sa.Column("adj_open", sa.Double(), nullable=True),
        sa.Column("adj_high", sa.Double(), nullable=True),
        sa.Column("adj_low", sa.Double(), nullable=True),
        sa.Column("adj_close", sa.Double(), nullable=True),
        sa.Column("adj_volume", sa.Double(), nullable=True),
        sa.Column("div_cash", sa.Double(), nullable=True),
        sa.Column("split_factor", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "adj_close > '-Infinity' AND adj_close < 'Infinity'",
            name=op.f("ck_candles_adj_close_finite"),
        ),
        sa.CheckConstraint(
            "adj_high > '-Infinity' AND adj_high < 'Infinity'",
            name=op.f("ck_candles_adj_high_finite"),
        ),
        sa.CheckConstraint(
            "adj_low > '-Infinity' AND adj_low < 'Infinity'", name=op.f("ck_candles_adj_low_finite")
        ),
        sa.CheckConstraint(
            "adj_open > '-Infinity' AND adj_open < 'Infinity'",
            name=op.f("ck_candles_adj_open_finite"),
        ),
        sa.CheckConstraint(
            "adj_volume >= 0 AND adj_volume < 'Infinity'",
            name=op.f("ck_candles_adj_volume_non_negative"),
        ),
        sa.CheckConstraint(
            "close > '-Infinity' AND close < 'Infinity'", name=op.f("ck_candles_close_finite")
        ),
        sa.CheckConstraint(
            "div_cash >= 0 AND div_cash < 'Infinity'", name=op.f("ck_candles_div_cash_non_negative")
        ),
        sa.CheckConstraint("high > '-Infinity' AND high < 'Infinity'", name=op.f("ck_candles_high_finite")),
        sa.CheckConstraint(
            "interval ~ '^[1-9][0-9]*(s|m|h|d|w|mo)$'", name=op.f("ck_candles_interval_format")
        ),
        sa.CheckConstraint("low > '-Infinity' AND low < 'Infinity'", name=op.f("ck_candles_low_finite")),
        sa.CheckConstraint("open > '-Infinity' AND open < 'Infinity'", name=op.f("ck_candles_open_finite")),
        sa.CheckConstraint(
            "split_factor > 0 AND split_factor < 'Infinity'",
            name=op.f("ck_candles_split_factor_positive"),
        ),
        sa.CheckConstraint(
            "volume >= 0 AND volume < 'Infinity'", name=op.f("ck_candles_volume_non_negative")
        ),
        sa.CheckConstraint("vwap > '-Infinity' AND vwap < 'Infinity'", name=op.f("ck_candles_vwap_finite")),
        sa.CheckConstraint(
            "high >= low AND high >= open AND high >= close AND low <= open AND low <= close",
            name=op.f("ck_candles_ohlc_consistent"),
        ),
        sa.CheckConstraint(
            "trade_count IS NULL OR trade_count >= 0",
            name=op.f("ck_candles_trade_count_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_candles_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "interval", "ts", "source", name=op.f("pk_candles")),
        **h.partitioned(backend),
    )
    op.create_table(
        "corporate_actions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("action_type", sa.Text(), nullable=False),
        sa.Column("ex_date", sa.Date(), nullable=False),
        sa.Column("record_date", sa.Date(), nullable=True),
        sa.Column("pay_date", sa.Date(), nullable=True),
        sa.Column("declared_date", sa.Date(), nullable=True),
        sa.Column(
            "ratio",
            sa.Double(),
            nullable=True,
            comment="split: new shares per old share (4.0 for 4-for-1)",
        ),
        sa.Column("amount", sa.Numeric(), nullable=True, comment="cash dividend per share"),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column(
            "known_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="when this action became known: point-in-time adjustment uses it",
        ),
        sa.Column("source", sa.Text(), server_default="manual", nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(action_type = 'split' AND ratio IS NOT NULL) OR (action_type = 'cash_dividend' AND amount IS NOT NULL)",
            name=op.f("ck_corporate_actions_action_has_value"),
        ),
        sa.CheckConstraint(
            "action_type IN ('split', 'cash_dividend')",
            name=op.f("ck_corporate_actions_action_type_valid"),
        ),
        sa.CheckConstraint(
            "amount >= 0 AND amount < 'Infinity'",
            name=op.f("ck_corporate_actions_amount_non_negative"),
        ),
        sa.CheckConstraint(
            "ratio > 0 AND ratio < 'Infinity'", name=op.f("ck_corporate_actions_ratio_positive")
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_corporate_actions_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corporate_actions")),
        sa.UniqueConstraint(
            "instrument_id",
            "action_type",
            "ex_date",
            "source",
            name=op.f("uq_corporate_actions_instrument_id_action_type_ex_date_source"),
        ),
    )
    op.create_table(
        "heston_parameters",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kappa", sa.Double(), nullable=False),
        sa.Column("theta", sa.Double(), nullable=False),
        sa.Column("sigma", sa.Double(), nullable=False),
        sa.Column("rho", sa.Double(), nullable=False),
        sa.Column("v0", sa.Double(), nullable=False),
        sa.Column(
            "feller_satisfied",
            sa.Boolean(),
            sa.Computed("2 * kappa * theta > sigma * sigma", persisted=True),
            nullable=True,
        ),
        sa.Column("rmse", sa.Double(), nullable=True),
        sa.Column("r_squared", sa.Double(), nullable=True),
        sa.Column("n_options", sa.Integer(), nullable=True),
        sa.Column("calibration_time_ms", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kappa > 0 AND kappa < 'Infinity'", name=op.f("ck_heston_parameters_kappa_positive")
        ),
        sa.CheckConstraint(
            "r_squared > '-Infinity' AND r_squared < 'Infinity'",
            name=op.f("ck_heston_parameters_r_squared_finite"),
        ),
        sa.CheckConstraint(
            "rmse >= 0 AND rmse < 'Infinity'", name=op.f("ck_heston_parameters_rmse_non_negative")
        ),
        sa.CheckConstraint(
            "sigma > 0 AND sigma < 'Infinity'", name=op.f("ck_heston_parameters_sigma_positive")
        ),
        sa.CheckConstraint(
            "theta > 0 AND theta < 'Infinity'", name=op.f("ck_heston_parameters_theta_positive")
        ),
        sa.CheckConstraint("v0 >= 0 AND v0 < 'Infinity'", name=op.f("ck_heston_parameters_v0_non_negative")),
        sa.CheckConstraint("rho >= -1 AND rho <= 1", name=op.f("ck_heston_parameters_rho_range")),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_heston_parameters_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "ts", name=op.f("pk_heston_parameters")),
    )
    op.create_index(
        "ix_heston_parameters_instrument_id_ts",
        "heston_parameters",
        ["instrument_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_table(
        "options_chains",
        sa.Column("underlying_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expiration", sa.Date(), nullable=False),
        sa.Column("strike", sa.Double(), nullable=False),
        sa.Column("option_right", sa.Text(), nullable=False),
        sa.Column("bid", sa.Double(), nullable=True),
        sa.Column("ask", sa.Double(), nullable=True),
        sa.Column("last_price", sa.Double(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("open_interest", sa.BigInteger(), nullable=True),
        sa.Column("implied_vol", sa.Double(), nullable=True),
        sa.Column("delta", sa.Double(), nullable=True),
        sa.Column("gamma", sa.Double(), nullable=True),
        sa.Column("theta", sa.Double(), nullable=True),
        sa.Column("vega", sa.Double(), nullable=True),
        sa.Column("rho", sa.Double(), nullable=True),
        sa.Column("underlying_price", sa.Double(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.CheckConstraint("ask >= 0 AND ask < 'Infinity'", name=op.f("ck_options_chains_ask_non_negative")),
        sa.CheckConstraint("bid >= 0 AND bid < 'Infinity'", name=op.f("ck_options_chains_bid_non_negative")),
        sa.CheckConstraint(
            "delta > '-Infinity' AND delta < 'Infinity'",
            name=op.f("ck_options_chains_delta_finite"),
        ),
        sa.CheckConstraint(
            "gamma > '-Infinity' AND gamma < 'Infinity'",
            name=op.f("ck_options_chains_gamma_finite"),
        ),
        sa.CheckConstraint(
            "implied_vol >= 0 AND implied_vol < 'Infinity'",
            name=op.f("ck_options_chains_implied_vol_non_negative"),
        ),
        sa.CheckConstraint(
            "last_price >= 0 AND last_price < 'Infinity'",
            name=op.f("ck_options_chains_last_price_non_negative"),
        ),
        sa.CheckConstraint(
            "option_right IN ('call', 'put')", name=op.f("ck_options_chains_option_right_valid")
        ),
        sa.CheckConstraint(
            "rho > '-Infinity' AND rho < 'Infinity'", name=op.f("ck_options_chains_rho_finite")
        ),
        sa.CheckConstraint(
            "strike > 0 AND strike < 'Infinity'", name=op.f("ck_options_chains_strike_positive")
        ),
        sa.CheckConstraint(
            "theta > '-Infinity' AND theta < 'Infinity'",
            name=op.f("ck_options_chains_theta_finite"),
        ),
        sa.CheckConstraint(
            "underlying_price > 0 AND underlying_price < 'Infinity'",
            name=op.f("ck_options_chains_underlying_price_positive"),
        ),
        sa.CheckConstraint(
            "vega > '-Infinity' AND vega < 'Infinity'", name=op.f("ck_options_chains_vega_finite")
        ),
        sa.CheckConstraint(
            "open_interest IS NULL OR open_interest >= 0",
            name=op.f("ck_options_chains_open_interest_non_negative"),
        ),
        sa.CheckConstraint(
            "volume IS NULL OR volume >= 0", name=op.f("ck_options_chains_volume_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["underlying_id"],
            ["instruments.id"],
            name=op.f("fk_options_chains_underlying_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "underlying_id",
            "ts",
            "expiration",
            "strike",
            "option_right",
            name=op.f("pk_options_chains"),
        ),
        **h.partitioned(backend),
    )
    op.create_index("ix_options_chains_expiration", "options_chains", ["expiration"], unique=False)
    op.create_table(
        "order_book_snapshots",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bid_prices", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("bid_sizes", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("ask_prices", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("ask_sizes", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("total_bid_size", sa.Double(), nullable=True),
        sa.Column("total_ask_size", sa.Double(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "total_ask_size >= 0 AND total_ask_size < 'Infinity'",
            name=op.f("ck_order_book_snapshots_total_ask_size_non_negative"),
        ),
        sa.CheckConstraint(
            "total_bid_size >= 0 AND total_bid_size < 'Infinity'",
            name=op.f("ck_order_book_snapshots_total_bid_size_non_negative"),
        ),
        sa.CheckConstraint(
            "cardinality(bid_prices) = cardinality(bid_sizes) AND cardinality(ask_prices) = cardinality(ask_sizes)",
            name=op.f("ck_order_book_snapshots_levels_match"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_order_book_snapshots_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "ts", name=op.f("pk_order_book_snapshots")),
        **h.partitioned(backend),
    )
    op.create_table(
        "ou_parameters",
        sa.Column("pair_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asset1_id", sa.Integer(), nullable=False),
        sa.Column("asset2_id", sa.Integer(), nullable=False),
        sa.Column("hedge_ratio", sa.Double(), nullable=False),
        sa.Column("theta", sa.Double(), nullable=False, comment="mean-reversion speed"),
        sa.Column("mu", sa.Double(), nullable=False),
        sa.Column("sigma", sa.Double(), nullable=False),
        sa.Column("half_life", sa.Double(), sa.Computed("ln(2.0) / theta", persisted=True), nullable=True),
        sa.Column("adf_statistic", sa.Double(), nullable=True),
        sa.Column("adf_pvalue", sa.Double(), nullable=True),
        sa.Column("entry_lower", sa.Double(), nullable=True),
        sa.Column("entry_upper", sa.Double(), nullable=True),
        sa.Column("exit_target", sa.Double(), nullable=True),
        sa.Column("stop_loss", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "adf_statistic > '-Infinity' AND adf_statistic < 'Infinity'",
            name=op.f("ck_ou_parameters_adf_statistic_finite"),
        ),
        sa.CheckConstraint(
            "entry_lower > '-Infinity' AND entry_lower < 'Infinity'",
            name=op.f("ck_ou_parameters_entry_lower_finite"),
        ),
        sa.CheckConstraint(
            "entry_upper > '-Infinity' AND entry_upper < 'Infinity'",
            name=op.f("ck_ou_parameters_entry_upper_finite"),
        ),
        sa.CheckConstraint(
            "exit_target > '-Infinity' AND exit_target < 'Infinity'",
            name=op.f("ck_ou_parameters_exit_target_finite"),
        ),
        sa.CheckConstraint(
            "hedge_ratio > '-Infinity' AND hedge_ratio < 'Infinity'",
            name=op.f("ck_ou_parameters_hedge_ratio_finite"),
        ),
        sa.CheckConstraint("mu > '-Infinity' AND mu < 'Infinity'", name=op.f("ck_ou_parameters_mu_finite")),
        sa.CheckConstraint("sigma > 0 AND sigma < 'Infinity'", name=op.f("ck_ou_parameters_sigma_positive")),
        sa.CheckConstraint(
            "stop_loss > '-Infinity' AND stop_loss < 'Infinity'",
            name=op.f("ck_ou_parameters_stop_loss_finite"),
        ),
        sa.CheckConstraint("theta > 0 AND theta < 'Infinity'", name=op.f("ck_ou_parameters_theta_positive")),
        sa.CheckConstraint(
            "adf_pvalue >= 0 AND adf_pvalue <= 1",
            name=op.f("ck_ou_parameters_adf_pvalue_unit_interval"),
        ),
        sa.CheckConstraint("asset1_id <> asset2_id", name=op.f("ck_ou_parameters_distinct_assets")),
        sa.ForeignKeyConstraint(
            ["asset1_id"],
            ["instruments.id"],
            name=op.f("fk_ou_parameters_asset1_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asset2_id"],
            ["instruments.id"],
            name=op.f("fk_ou_parameters_asset2_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pair_id", "ts", name=op.f("pk_ou_parameters")),
    )
    op.create_index(
        "ix_ou_parameters_pair_id_ts",
        "ou_parameters",
        ["pair_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_table(
        "pattern_events",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("timeframe", sa.Text(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_pattern_events_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "ts", "pattern", name=op.f("pk_pattern_events")),
    )
    op.create_index(
        "ix_pattern_events_instrument_id_ts",
        "pattern_events",
        ["instrument_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_index(
        "ix_pattern_events_pattern_ts",
        "pattern_events",
        ["pattern", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_table(
        "permissions",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["role"], ["roles.name"], name=op.f("fk_permissions_role_roles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint("role", "resource", "action", name=op.f("uq_permissions_role_resource_action")),
    )
    op.create_table(
        "quotes",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts_nanos", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("bid", sa.Double(), nullable=True),
        sa.Column("ask", sa.Double(), nullable=True),
        sa.Column("bid_size", sa.Double(), nullable=True),
        sa.Column("ask_size", sa.Double(), nullable=True),
        sa.Column("exchange", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.CheckConstraint("ask > '-Infinity' AND ask < 'Infinity'", name=op.f("ck_quotes_ask_finite")),
        sa.CheckConstraint(
            "ask_size >= 0 AND ask_size < 'Infinity'", name=op.f("ck_quotes_ask_size_non_negative")
        ),
        sa.CheckConstraint("bid > '-Infinity' AND bid < 'Infinity'", name=op.f("ck_quotes_bid_finite")),
        sa.CheckConstraint(
            "bid_size >= 0 AND bid_size < 'Infinity'", name=op.f("ck_quotes_bid_size_non_negative")
        ),
        sa.CheckConstraint("bid IS NOT NULL OR ask IS NOT NULL", name=op.f("ck_quotes_has_side")),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_quotes_seq_non_negative")),
        sa.CheckConstraint("ts_nanos BETWEEN 0 AND 999", name=op.f("ck_quotes_ts_nanos_range")),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_quotes_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "ts", "ts_nanos", "seq", name=op.f("pk_quotes")),
        **h.partitioned(backend),
    )
    op.create_table(
        "sabr_parameters",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("maturity", sa.Double(), nullable=False, comment="time to expiry in years"),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("beta", sa.Double(), nullable=False),
        sa.Column("rho", sa.Double(), nullable=False),
        sa.Column("nu", sa.Double(), nullable=False),
        sa.Column("rmse", sa.Double(), nullable=True),
        sa.Column("n_options", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "alpha > 0 AND alpha < 'Infinity'", name=op.f("ck_sabr_parameters_alpha_positive")
        ),
        sa.CheckConstraint(
            "maturity > 0 AND maturity < 'Infinity'",
            name=op.f("ck_sabr_parameters_maturity_positive"),
        ),
        sa.CheckConstraint("nu >= 0 AND nu < 'Infinity'", name=op.f("ck_sabr_parameters_nu_non_negative")),
        sa.CheckConstraint(
            "rmse >= 0 AND rmse < 'Infinity'", name=op.f("ck_sabr_parameters_rmse_non_negative")
        ),
        sa.CheckConstraint("beta >= 0 AND beta <= 1", name=op.f("ck_sabr_parameters_beta_range")),
        sa.CheckConstraint("rho >= -1 AND rho <= 1", name=op.f("ck_sabr_parameters_rho_range")),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_sabr_parameters_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "ts", "maturity", name=op.f("pk_sabr_parameters")),
    )
    op.create_index(
        "ix_sabr_parameters_instrument_id_ts",
        "sabr_parameters",
        ["instrument_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_table(
        "symbol_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), server_default="listing", nullable=False),
        sa.CheckConstraint(
            "reason IN ('listing', 'rename', 'delisting', 'relisting')",
            name=op.f("ck_symbol_history_reason_valid"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_symbol_history_valid_range")
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_symbol_history_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symbol_history")),
        sa.UniqueConstraint("symbol", "valid_from", name=op.f("uq_symbol_history_symbol_valid_from")),
    )
    op.create_index("ix_symbol_history_instrument_id", "symbol_history", ["instrument_id"], unique=False)
    op.create_table(
        "trades",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts_nanos", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("size", sa.Double(), server_default="0", nullable=False),
        sa.Column(
            "side",
            sa.SmallInteger(),
            nullable=True,
            comment="aggressor: 1 buy, -1 sell, NULL unknown",
        ),
        sa.Column("trade_id", sa.Text(), nullable=True),
        sa.Column("exchange", sa.Text(), nullable=True),
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.CheckConstraint("price > '-Infinity' AND price < 'Infinity'", name=op.f("ck_trades_price_finite")),
        sa.CheckConstraint("size >= 0 AND size < 'Infinity'", name=op.f("ck_trades_size_non_negative")),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_trades_seq_non_negative")),
        sa.CheckConstraint("side IN (-1, 1)", name=op.f("ck_trades_side_valid")),
        sa.CheckConstraint("ts_nanos BETWEEN 0 AND 999", name=op.f("ck_trades_ts_nanos_range")),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_trades_instrument_id_instruments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instrument_id", "ts", "ts_nanos", "seq", name=op.f("pk_trades")),
        **h.partitioned(backend),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default="viewer", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("position('@' in email) > 1", name=op.f("ck_users_email_format")),
        sa.CheckConstraint("length(username) BETWEEN 1 AND 64", name=op.f("ck_users_username_length")),
        sa.ForeignKeyConstraint(["role"], ["roles.name"], name=op.f("fk_users_role_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True)
    op.create_index("uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True)
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "actor",
            sa.Text(),
            nullable=True,
            comment="username at the time; survives user deletion",
        ),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("old_value", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
        sa.Column("new_value", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
        sa.Column("ip_address", postgresql.INET(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_audit_logs_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
    )
    op.create_index("ix_audit_logs_resource", "audit_logs", ["resource_type", "resource_id"], unique=False)
    op.create_index("ix_audit_logs_ts", "audit_logs", [sa.literal_column("ts DESC")], unique=False)
    op.create_index(
        "ix_audit_logs_user_id_ts",
        "audit_logs",
        ["user_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_table(
        "broker_credentials",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("broker_name", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), server_default="default", nullable=False),
        sa.Column("encrypted_api_key", sa.LargeBinary(), nullable=False),
        sa.Column("encrypted_secret", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("encryption_key_id", sa.Text(), nullable=False),
        sa.Column(
            "config",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_broker_credentials_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_credentials")),
        sa.UniqueConstraint(
            "user_id",
            "broker_name",
            "label",
            name=op.f("uq_broker_credentials_user_id_broker_name_label"),
        ),
    )
    op.create_index(
        "ix_broker_credentials_encryption_key_id",
        "broker_credentials",
        ["encryption_key_id"],
        unique=False,
    )
    op.create_table(
        "strategies",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("strategy_type", sa.Text(), server_default="custom", nullable=False),
        sa.Column("class_name", sa.Text(), nullable=True),
        sa.Column(
            "config",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "risk_limits",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("symbols", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("status", sa.Text(), server_default="stopped", nullable=False),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("execution_mode", sa.Text(), server_default="paper", nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "execution_mode IN ('paper', 'live')", name=op.f("ck_strategies_execution_mode_valid")
        ),
        sa.CheckConstraint("id ~ '^[A-Za-z0-9_.-]{1,100}$'", name=op.f("ck_strategies_id_format")),
        sa.CheckConstraint(
            "status IN ('stopped', 'running', 'paused', 'error')",
            name=op.f("ck_strategies_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_strategies_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategies")),
    )
    op.create_index("ix_strategies_execution_mode", "strategies", ["execution_mode"], unique=False)
    op.create_index("ix_strategies_is_enabled", "strategies", ["is_enabled"], unique=False)
    op.create_index("ix_strategies_status", "strategies", ["status"], unique=False)
    op.create_index("ix_strategies_strategy_type", "strategies", ["strategy_type"], unique=False)
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'trialing', 'past_due', 'cancelled', 'expired')",
            name=op.f("ck_subscriptions_status_valid"),
        ),
        sa.CheckConstraint(
            "end_date IS NULL OR end_date >= start_date", name=op.f("ck_subscriptions_date_range")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index("ix_subscriptions_user_id", "subscriptions", ["user_id"], unique=False)
    op.create_table(
        "user_secrets",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key_name", sa.Text(), nullable=False),
        sa.Column(
            "encrypted_value",
            sa.LargeBinary(),
            nullable=False,
            comment="nonce || AES-GCM ciphertext",
        ),
        sa.Column(
            "wrapped_key",
            sa.LargeBinary(),
            nullable=False,
            comment="data key sealed by the master key",
        ),
        sa.Column("encryption_key_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_secrets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_secrets")),
        sa.UniqueConstraint("user_id", "key_name", name=op.f("uq_user_secrets_user_id_key_name")),
    )
    op.create_index("ix_user_secrets_encryption_key_id", "user_secrets", ["encryption_key_id"], unique=False)
    op.create_table(
        "positions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("strategy_id", sa.Text(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False, comment="signed: > 0 long, < 0 short"),
        sa.Column(
            "cost_basis",
            sa.Numeric(),
            server_default="0",
            nullable=False,
            comment="signed entry cost of the open quantity; average = cost_basis / quantity",
        ),
        sa.Column("average_entry_price", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("current_price", sa.Numeric(), nullable=True),
        sa.Column("unrealized_pnl", sa.Numeric(), nullable=True),
        sa.Column("realized_pnl", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("commissions", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("stop_loss_price", sa.Numeric(), nullable=True),
        sa.Column("target_price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "average_entry_price >= 0 AND average_entry_price < 'Infinity'",
            name=op.f("ck_positions_average_entry_price_non_negative"),
        ),
        sa.CheckConstraint(
            "commissions > '-Infinity' AND commissions < 'Infinity'",
            name=op.f("ck_positions_commissions_finite"),
        ),
        sa.CheckConstraint(
            "cost_basis > '-Infinity' AND cost_basis < 'Infinity'",
            name=op.f("ck_positions_cost_basis_finite"),
        ),
        sa.CheckConstraint(
            "current_price > 0 AND current_price < 'Infinity'",
            name=op.f("ck_positions_current_price_positive"),
        ),
        sa.CheckConstraint(
            "quantity > '-Infinity' AND quantity < 'Infinity'",
            name=op.f("ck_positions_quantity_finite"),
        ),
        sa.CheckConstraint(
            "realized_pnl > '-Infinity' AND realized_pnl < 'Infinity'",
            name=op.f("ck_positions_realized_pnl_finite"),
        ),
        sa.CheckConstraint(
            "status = 'open' OR closed_at IS NOT NULL", name=op.f("ck_positions_closed_has_time")
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_positions_status_valid")),
        sa.CheckConstraint(
            "stop_loss_price > 0 AND stop_loss_price < 'Infinity'",
            name=op.f("ck_positions_stop_loss_price_positive"),
        ),
        sa.CheckConstraint(
            "target_price > 0 AND target_price < 'Infinity'",
            name=op.f("ck_positions_target_price_positive"),
        ),
        sa.CheckConstraint(
            "unrealized_pnl > '-Infinity' AND unrealized_pnl < 'Infinity'",
            name=op.f("ck_positions_unrealized_pnl_finite"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_positions_instrument_id_instruments"),
        ),
        sa.ForeignKeyConstraint(
            ["strategy_id"], ["strategies.id"], name=op.f("fk_positions_strategy_id_strategies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
    )
    op.create_index(
        "ix_positions_one_open",
        "positions",
        ["strategy_id", "instrument_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_positions_status", "positions", ["status"], unique=False)
    op.create_index("ix_positions_strategy_id", "positions", ["strategy_id"], unique=False)
    op.create_table(
        "posts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False, comment="denormalised; kept in step on rename"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("strategy_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("length(text) > 0", name=op.f("ck_posts_text_not_empty")),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_posts_strategy_id_strategies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_posts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
    )
    op.create_index("ix_posts_created_at", "posts", [sa.literal_column("created_at DESC")], unique=False)
    op.create_index(
        "ix_posts_user_id_created_at",
        "posts",
        ["user_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_table(
        "signals",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("strategy_id", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("signal_type", sa.Text(), nullable=False),
        sa.Column("strength", sa.Double(), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("target_price", sa.Numeric(), nullable=True),
        sa.Column("stop_loss", sa.Numeric(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "data",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'executed', 'expired', 'cancelled')",
            name=op.f("ck_signals_status_valid"),
        ),
        sa.CheckConstraint(
            "stop_loss > 0 AND stop_loss < 'Infinity'", name=op.f("ck_signals_stop_loss_positive")
        ),
        sa.CheckConstraint(
            "strategy_id IS NULL OR (strength IS NOT NULL AND confidence IS NOT NULL AND signal_type IN ('LONG', 'SHORT', 'EXIT_LONG', 'EXIT_SHORT'))",
            name=op.f("ck_signals_strategy_signal_complete"),
        ),
        sa.CheckConstraint(
            "target_price > 0 AND target_price < 'Infinity'",
            name=op.f("ck_signals_target_price_positive"),
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_signals_confidence_unit_interval")
        ),
        sa.CheckConstraint(
            "strategy_id IS NOT NULL OR user_id IS NOT NULL", name=op.f("ck_signals_has_owner")
        ),
        sa.CheckConstraint("strength >= 0 AND strength <= 1", name=op.f("ck_signals_strength_unit_interval")),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_signals_instrument_id_instruments")
        ),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_signals_strategy_id_strategies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_signals_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    op.create_index(
        "ix_signals_active",
        "signals",
        ["strategy_id", "instrument_id"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_signals_instrument_id_ts",
        "signals",
        ["instrument_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_index(
        "ix_signals_strategy_id_ts",
        "signals",
        ["strategy_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_index(
        "ix_signals_user_id_ts", "signals", ["user_id", sa.literal_column("ts DESC")], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=True, comment="caller's idempotency key"),
        sa.Column("strategy_id", sa.Text(), nullable=True),
        sa.Column("signal_id", sa.Uuid(), nullable=True),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=True),
        sa.Column("stop_price", sa.Numeric(), nullable=True),
        sa.Column("time_in_force", sa.Text(), server_default="day", nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("filled_quantity", sa.Numeric(), server_default="0", nullable=False),
        sa.Column(
            "filled_notional",
            sa.Numeric(),
            server_default="0",
            nullable=False,
            comment="sum(fill qty * fill price): avg_fill_price stays exact",
        ),
        sa.Column("avg_fill_price", sa.Numeric(), nullable=True),
        sa.Column("commission", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("broker_order_id", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "commission > '-Infinity' AND commission < 'Infinity'",
            name=op.f("ck_orders_commission_finite"),
        ),
        sa.CheckConstraint(
            "filled_notional > '-Infinity' AND filled_notional < 'Infinity'",
            name=op.f("ck_orders_filled_notional_finite"),
        ),
        sa.CheckConstraint(
            "order_type IN ('market', 'limit', 'stop', 'stop_limit')",
            name=op.f("ck_orders_order_type_valid"),
        ),
        sa.CheckConstraint(
            "order_type NOT IN ('limit', 'stop_limit') OR price IS NOT NULL",
            name=op.f("ck_orders_limit_has_price"),
        ),
        sa.CheckConstraint(
            "order_type NOT IN ('stop', 'stop_limit') OR stop_price IS NOT NULL",
            name=op.f("ck_orders_stop_has_price"),
        ),
        sa.CheckConstraint("price > 0 AND price < 'Infinity'", name=op.f("ck_orders_price_positive")),
        sa.CheckConstraint(
            "quantity > 0 AND quantity < 'Infinity'", name=op.f("ck_orders_quantity_positive")
        ),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side_valid")),
        sa.CheckConstraint(
            "status IN ('pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')",
            name=op.f("ck_orders_status_valid"),
        ),
        sa.CheckConstraint(
            "stop_price > 0 AND stop_price < 'Infinity'", name=op.f("ck_orders_stop_price_positive")
        ),
        sa.CheckConstraint(
            "time_in_force IN ('day', 'gtc', 'ioc', 'fok', 'opg', 'cls', 'gtd')",
            name=op.f("ck_orders_time_in_force_valid"),
        ),
        sa.CheckConstraint(
            "filled_quantity >= 0 AND filled_quantity <= quantity",
            name=op.f("ck_orders_filled_within_quantity"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_orders_instrument_id_instruments")
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_orders_signal_id_signals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["strategy_id"],
            ["strategies.id"],
            name=op.f("fk_orders_strategy_id_strategies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    op.create_index("ix_orders_broker_order_id", "orders", ["broker_order_id"], unique=False)
    op.create_index("ix_orders_created_at", "orders", [sa.literal_column("created_at DESC")], unique=False)
    op.create_index(
        "ix_orders_instrument_id_created_at",
        "orders",
        ["instrument_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index(
        "ix_orders_open",
        "orders",
        ["status"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'open', 'partially_filled')"),
    )
    op.create_index(
        "ix_orders_strategy_id_created_at",
        "orders",
        ["strategy_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("commission", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("commission_currency", sa.Text(), nullable=True),
        sa.Column("venue", sa.Text(), nullable=True),
        sa.Column("broker_exec_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "commission > '-Infinity' AND commission < 'Infinity'",
            name=op.f("ck_executions_commission_finite"),
        ),
        sa.CheckConstraint("price > 0 AND price < 'Infinity'", name=op.f("ck_executions_price_positive")),
        sa.CheckConstraint(
            "quantity > 0 AND quantity < 'Infinity'", name=op.f("ck_executions_quantity_positive")
        ),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_executions_side_valid")),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.id"],
            name=op.f("fk_executions_instrument_id_instruments"),
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_executions_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint("order_id", "broker_exec_id", name=op.f("uq_executions_order_id_broker_exec_id")),
    )
    op.create_index(
        "ix_executions_instrument_id_ts",
        "executions",
        ["instrument_id", sa.literal_column("ts DESC")],
        unique=False,
    )
    op.create_index("ix_executions_order_id", "executions", ["order_id"], unique=False)
    op.create_table(
        "order_history",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("filled_quantity", sa.Numeric(), nullable=True),
        sa.Column("ts", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("details", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')",
            name=op.f("ck_order_history_status_valid"),
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_history_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_history")),
    )
    op.create_index("ix_order_history_order_id_ts", "order_history", ["order_id", "ts"], unique=False)
    op.create_index("ix_order_history_ts", "order_history", [sa.literal_column("ts DESC")], unique=False)
    h.setup_timeseries(backend, TIMESERIES)
    h.seed_roles(DEFAULT_ROLES, DEFAULT_PERMISSIONS)
    op.execute(h.TICKS_VIEW)
    op.execute(h.TICKS_VIEW_COMMENT)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS ticks")
    op.drop_index("ix_order_history_ts", table_name="order_history")
    op.drop_index("ix_order_history_order_id_ts", table_name="order_history")
    op.drop_table("order_history")
    op.drop_index("ix_executions_order_id", table_name="executions")
    op.drop_index("ix_executions_instrument_id_ts", table_name="executions")
    op.drop_table("executions")
    op.drop_index("ix_orders_strategy_id_created_at", table_name="orders")
    op.drop_index(
        "ix_orders_open",
        table_name="orders",
        postgresql_where=sa.text("status IN ('pending', 'open', 'partially_filled')"),
    )
    op.drop_index("ix_orders_instrument_id_created_at", table_name="orders")
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_orders_broker_order_id", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_signals_user_id_ts", table_name="signals")
    op.drop_index("ix_signals_strategy_id_ts", table_name="signals")
    op.drop_index("ix_signals_instrument_id_ts", table_name="signals")
    op.drop_index("ix_signals_active", table_name="signals", postgresql_where=sa.text("status = 'active'"))
    op.drop_table("signals")
    op.drop_index("ix_posts_user_id_created_at", table_name="posts")
    op.drop_index("ix_posts_created_at", table_name="posts")
    op.drop_table("posts")
    op.drop_index("ix_positions_strategy_id", table_name="positions")
    op.drop_index("ix_positions_status", table_name="positions")
    op.drop_index(
        "ix_positions_one_open", table_name="positions", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_table("positions")
    op.drop_index("ix_user_secrets_encryption_key_id", table_name="user_secrets")
    op.drop_table("user_secrets")
    op.drop_index("ix_subscriptions_user_id", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index("ix_strategies_strategy_type", table_name="strategies")
    op.drop_index("ix_strategies_status", table_name="strategies")
    op.drop_index("ix_strategies_is_enabled", table_name="strategies")
    op.drop_index("ix_strategies_execution_mode", table_name="strategies")
    op.drop_table("strategies")
    op.drop_index("ix_broker_credentials_encryption_key_id", table_name="broker_credentials")
    op.drop_table("broker_credentials")
    op.drop_index("ix_audit_logs_user_id_ts", table_name="audit_logs")
    op.drop_index("ix_audit_logs_ts", table_name="audit_logs")
    op.drop_index("ix_audit_logs_resource", table_name="audit_logs")
    op.drop_table("audit_logs")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_table("users")
    op.drop_table("trades")
    op.drop_index("ix_symbol_history_instrument_id", table_name="symbol_history")
    op.drop_table("symbol_history")
    op.drop_index("ix_sabr_parameters_instrument_id_ts", table_name="sabr_parameters")
    op.drop_table("sabr_parameters")
    op.drop_table("quotes")
    op.drop_table("permissions")
    op.drop_index("ix_pattern_events_pattern_ts", table_name="pattern_events")
    op.drop_index("ix_pattern_events_instrument_id_ts", table_name="pattern_events")
    op.drop_table("pattern_events")
    op.drop_index("ix_ou_parameters_pair_id_ts", table_name="ou_parameters")
    op.drop_table("ou_parameters")
    op.drop_table("order_book_snapshots")
    op.drop_index("ix_options_chains_expiration", table_name="options_chains")
    op.drop_table("options_chains")
    op.drop_index("ix_heston_parameters_instrument_id_ts", table_name="heston_parameters")
    op.drop_table("heston_parameters")
    op.drop_table("corporate_actions")
    op.drop_table("candles")
    op.drop_table("timeseries_policies")
    op.drop_table("roles")
    op.drop_table("portfolio_snapshots")
    op.drop_index("ix_instruments_underlying_id", table_name="instruments")
    op.drop_index("ix_instruments_is_active", table_name="instruments")
    op.drop_table("instruments")
    op.drop_table("configurations")
