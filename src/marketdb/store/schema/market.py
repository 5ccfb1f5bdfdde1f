"""Market data: the security master and the time-series tables.

Prices and sizes of market data are ``double precision`` (float64: compact,
fast, Arrow-native). Time-series tables are partitioned by ``ts``; see
``marketdb.store.timeseries`` for hypertables vs native range partitions.
"""

from __future__ import annotations

import sqlalchemy as sa

from marketdb.store.schema._base import (
    JSONB,
    Float,
    created_at,
    finite,
    instrument_fk,
    metadata,
    non_negative,
    now,
    one_of,
    positive,
    updated_at,
)

ASSET_CLASSES = ("stock", "etf", "fund", "index", "crypto", "forex", "future", "option", "bond", "other")
OPTION_RIGHTS = ("call", "put")
TS = sa.DateTime(timezone=True)
# trades/quotes carry no per-row foreign key (it made COPY 2.7x slower): ingest checks the
# ids and row-locks the instruments it writes, and a delete trigger on instruments removes
# their ticks (migration 0003).

# The security master (documents 000 assets, 001 symbols, 003 instruments).
instruments = sa.Table(
    "instruments",
    metadata,
    sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
    sa.Column("symbol", sa.Text(), nullable=False, comment="normalised: trimmed, upper-case"),
    sa.Column("name", sa.Text()),
    sa.Column("asset_class", sa.Text(), nullable=False, server_default="stock"),
    sa.Column("security_type", sa.Text(), comment="provider code, e.g. CS, ADRC (Polygon type)"),
    sa.Column("exchange", sa.Text()),
    sa.Column("calendar", sa.Text(), comment="exchange_calendars code (XNYS); NULL or 24/7 = UTC days"),
    sa.Column("currency", sa.Text()),
    sa.Column("currency_symbol", sa.Text()),
    sa.Column("locale", sa.Text()),
    sa.Column("tick_size", sa.Numeric()),
    sa.Column("lot_size", sa.Numeric()),
    sa.Column("multiplier", sa.Numeric()),
    sa.Column("expiry_date", sa.Date()),
    sa.Column("strike_price", sa.Numeric()),
    sa.Column("option_right", sa.Text()),
    sa.Column("underlying_id", sa.Integer(), sa.ForeignKey("instruments.id", ondelete="SET NULL")),
    sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("cik", sa.Text()),
    sa.Column("composite_figi", sa.Text()),
    sa.Column("share_class_figi", sa.Text()),
    sa.Column("market_cap", sa.BigInteger()),
    sa.Column("weighted_shares_outstanding", sa.BigInteger()),
    sa.Column("listed_at", sa.Date()),
    sa.Column("delisted_at", sa.Date()),
    sa.Column("last_updated_utc", TS, comment="provider's own last-updated timestamp"),
    sa.Column(
        "data_version",
        sa.BigInteger(),
        nullable=False,
        server_default="0",
        comment="bumped by every committed market-data write; cache key",
    ),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    created_at(),
    updated_at(),
    sa.UniqueConstraint("symbol"),
    one_of("asset_class", ASSET_CLASSES),
    one_of("option_right", OPTION_RIGHTS),
    positive("tick_size"),
    positive("lot_size"),
    positive("multiplier"),
    positive("strike_price"),
    sa.CheckConstraint("symbol = upper(btrim(symbol)) AND symbol <> ''", name="symbol_normalised"),
    sa.CheckConstraint("market_cap IS NULL OR market_cap >= 0", name="market_cap_non_negative"),
)
sa.Index("ix_instruments_is_active", instruments.c.is_active)
sa.Index("ix_instruments_underlying_id", instruments.c.underlying_id)

# Renames and delistings: old data stays reachable by the symbol it had then.
symbol_history = sa.Table(
    "symbol_history",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    instrument_fk(),
    sa.Column("symbol", sa.Text(), nullable=False),
    sa.Column("valid_from", TS, nullable=False),
    sa.Column("valid_to", TS),
    sa.Column("reason", sa.Text(), nullable=False, server_default="listing"),
    sa.UniqueConstraint("symbol", "valid_from"),
    sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_range"),
    one_of("reason", ("listing", "rename", "delisting", "relisting")),
)
sa.Index("ix_symbol_history_instrument_id", symbol_history.c.instrument_id)

# Splits and dividends; adjusted prices are derived from these at read time.
corporate_actions = sa.Table(
    "corporate_actions",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    instrument_fk(),
    sa.Column("action_type", sa.Text(), nullable=False),
    sa.Column("ex_date", sa.Date(), nullable=False),
    sa.Column("record_date", sa.Date()),
    sa.Column("pay_date", sa.Date()),
    sa.Column("declared_date", sa.Date()),
    sa.Column("ratio", Float, comment="split: new shares per old share (4.0 for 4-for-1)"),
    sa.Column("amount", sa.Numeric(), comment="cash dividend per share"),
    sa.Column("currency", sa.Text()),
    sa.Column(
        "known_at",
        TS,
        nullable=False,
        server_default=now(),
        comment="when this action became known: point-in-time adjustment uses it",
    ),
    sa.Column("source", sa.Text(), nullable=False, server_default="manual"),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.UniqueConstraint("instrument_id", "action_type", "ex_date", "source"),
    one_of("action_type", ("split", "cash_dividend")),
    positive("ratio"),
    non_negative("amount"),
    sa.CheckConstraint(
        "(action_type = 'split' AND ratio IS NOT NULL) OR "
        "(action_type = 'cash_dividend' AND amount IS NOT NULL)",
        name="action_has_value",
    ),
)

# Tick trades (documents 000 ticks, 001 ticks, 003 tick_data). ts holds
# microseconds, ts_nanos the sub-microsecond rest; seq keeps distinct trades
# that share a timestamp: a 63-bit key derived from the provider trade id or the
# trade's content (store/tick_identity.py), so identity never depends on how
# the input was split into calls.
trades = sa.Table(
    "trades",
    metadata,
    sa.Column("instrument_id", sa.Integer(), primary_key=True),  # no per-row FK: see above
    sa.Column("ts", TS, primary_key=True),
    sa.Column("ts_nanos", sa.SmallInteger(), primary_key=True, server_default="0"),
    sa.Column("seq", sa.BigInteger(), primary_key=True, server_default="0"),
    sa.Column("price", Float, nullable=False),
    sa.Column("size", Float, nullable=False, server_default="0"),
    sa.Column("side", sa.SmallInteger(), comment="aggressor: 1 buy, -1 sell, NULL unknown"),
    sa.Column("trade_id", sa.Text()),
    sa.Column("exchange", sa.Text()),
    sa.Column("conditions", sa.Text()),
    sa.Column("source", sa.Text()),
    sa.CheckConstraint("ts_nanos BETWEEN 0 AND 999", name="ts_nanos_range"),
    sa.CheckConstraint("seq >= 0", name="seq_non_negative"),
    finite("price"),
    non_negative("size"),
    sa.CheckConstraint("side IN (-1, 1)", name="side_valid"),
    postgresql_partition_by="RANGE (ts)",
)

# Top-of-book quotes (the bid/ask/size columns of document 000's ticks and 004's market_data).
quotes = sa.Table(
    "quotes",
    metadata,
    sa.Column("instrument_id", sa.Integer(), primary_key=True),  # no per-row FK: see above
    sa.Column("ts", TS, primary_key=True),
    sa.Column("ts_nanos", sa.SmallInteger(), primary_key=True, server_default="0"),
    sa.Column("seq", sa.BigInteger(), primary_key=True, server_default="0"),
    sa.Column("bid", Float),
    sa.Column("ask", Float),
    sa.Column("bid_size", Float),
    sa.Column("ask_size", Float),
    sa.Column("exchange", sa.Text()),
    sa.Column("source", sa.Text()),
    sa.CheckConstraint("ts_nanos BETWEEN 0 AND 999", name="ts_nanos_range"),
    sa.CheckConstraint("seq >= 0", name="seq_non_negative"),
    sa.CheckConstraint("bid IS NOT NULL OR ask IS NOT NULL", name="has_side"),
    finite("bid"),
    finite("ask"),
    non_negative("bid_size"),
    non_negative("ask_size"),
    postgresql_partition_by="RANGE (ts)",
)

# OHLCV bars at any interval: derived from trades (source 'trades', kept up to
# date at ingest) and provider candles (source = provider) side by side.
candles = sa.Table(
    "candles",
    metadata,
    instrument_fk(primary_key=True),
    sa.Column("interval", sa.Text(), primary_key=True),
    sa.Column("ts", TS, primary_key=True, comment="bucket start; '1d': session date 00:00 UTC"),
    sa.Column("source", sa.Text(), primary_key=True, server_default="trades"),
    sa.Column("open", Float, nullable=False),
    sa.Column("high", Float, nullable=False),
    sa.Column("low", Float, nullable=False),
    sa.Column("close", Float, nullable=False),
    sa.Column("volume", Float, nullable=False, server_default="0"),
    sa.Column("vwap", Float),
    sa.Column("trade_count", sa.BigInteger()),
    sa.Column("notional", Float, comment="sum(price * size): makes vwap mergeable"),
    sa.Column("buy_volume", Float),
    sa.Column("sell_volume", Float),
    sa.Column("first_ns", sa.BigInteger(), comment="epoch ns of the first trade (mergeable open)"),
    sa.Column("first_seq", sa.BigInteger()),
    sa.Column("last_ns", sa.BigInteger(), comment="epoch ns of the last trade (mergeable close)"),
    sa.Column("last_seq", sa.BigInteger()),
    sa.Column("adj_open", Float),
    sa.Column("adj_high", Float),
    sa.Column("adj_low", Float),
    sa.Column("adj_close", Float),
    sa.Column("adj_volume", Float),
    sa.Column("div_cash", Float),
    sa.Column("split_factor", Float),
    sa.Column("bid", Float, comment="closing best bid of the bar, when the provider has it"),
    sa.Column("ask", Float, comment="closing best ask of the bar, when the provider has it"),
    sa.Column("bid_size", Float, comment="closing best bid size of the bar, when the provider has it"),
    sa.Column("ask_size", Float, comment="closing best ask size of the bar, when the provider has it"),
    sa.Column(
        "rolled_from",
        sa.Text(),
        comment="NULL: written; else the finer interval this provider roll-up was computed from",
    ),
    sa.CheckConstraint("interval ~ '^[1-9][0-9]*(s|m|h|d|w|mo)$'", name="interval_format"),
    finite("open"),
    finite("high"),
    finite("low"),
    finite("close"),
    non_negative("volume"),
    finite("vwap"),
    sa.CheckConstraint(
        "high >= low AND high >= open AND high >= close AND low <= open AND low <= close",
        name="ohlc_consistent",
    ),
    sa.CheckConstraint("trade_count IS NULL OR trade_count >= 0", name="trade_count_non_negative"),
    finite("adj_open"),
    finite("adj_high"),
    finite("adj_low"),
    finite("adj_close"),
    non_negative("adj_volume"),
    non_negative("div_cash"),
    positive("split_factor"),
    finite("bid"),
    finite("ask"),
    non_negative("bid_size"),
    non_negative("ask_size"),
    postgresql_partition_by="RANGE (ts)",
)

# Market depth (document 003): price/size arrays per side, best level first.
order_book_snapshots = sa.Table(
    "order_book_snapshots",
    metadata,
    instrument_fk(primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("bid_prices", sa.ARRAY(Float), nullable=False),
    sa.Column("bid_sizes", sa.ARRAY(Float), nullable=False),
    sa.Column("ask_prices", sa.ARRAY(Float), nullable=False),
    sa.Column("ask_sizes", sa.ARRAY(Float), nullable=False),
    sa.Column("total_bid_size", Float),
    sa.Column("total_ask_size", Float),
    sa.Column("source", sa.Text()),
    sa.CheckConstraint(
        "cardinality(bid_prices) = cardinality(bid_sizes) "
        "AND cardinality(ask_prices) = cardinality(ask_sizes)",
        name="levels_match",
    ),
    non_negative("total_bid_size"),
    non_negative("total_ask_size"),
    postgresql_partition_by="RANGE (ts)",
)

# Options chains with implied volatility and Greeks (document 004).
options_chains = sa.Table(
    "options_chains",
    metadata,
    instrument_fk("underlying_id", primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("expiration", sa.Date(), primary_key=True),
    sa.Column("strike", Float, primary_key=True),
    sa.Column("option_right", sa.Text(), primary_key=True),
    sa.Column("bid", Float),
    sa.Column("ask", Float),
    sa.Column("last_price", Float),
    sa.Column("volume", sa.BigInteger()),
    sa.Column("open_interest", sa.BigInteger()),
    sa.Column("implied_vol", Float),
    sa.Column("delta", Float),
    sa.Column("gamma", Float),
    sa.Column("theta", Float),
    sa.Column("vega", Float),
    sa.Column("rho", Float),
    sa.Column("underlying_price", Float),
    sa.Column("source", sa.Text()),
    one_of("option_right", OPTION_RIGHTS),
    positive("strike"),
    non_negative("bid"),
    non_negative("ask"),
    non_negative("last_price"),
    sa.CheckConstraint("volume IS NULL OR volume >= 0", name="volume_non_negative"),
    sa.CheckConstraint("open_interest IS NULL OR open_interest >= 0", name="open_interest_non_negative"),
    non_negative("implied_vol"),
    finite("delta"),
    finite("gamma"),
    finite("theta"),
    finite("vega"),
    finite("rho"),
    positive("underlying_price"),
    postgresql_partition_by="RANGE (ts)",
)
sa.Index("ix_options_chains_expiration", options_chains.c.expiration)

# Per-table time-series settings (partition size, compression, retention).
timeseries_policies = sa.Table(
    "timeseries_policies",
    metadata,
    sa.Column("table_name", sa.Text(), primary_key=True),
    sa.Column("partition_interval", sa.Text(), nullable=False, comment="'N days' or '1 month'"),
    sa.Column("compress_after", sa.Interval()),
    sa.Column("retain_for", sa.Interval()),
    sa.Column("backend", sa.Text(), nullable=False, server_default="native"),
    updated_at(),
    one_of("backend", ("native", "timescaledb")),
)
