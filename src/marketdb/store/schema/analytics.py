"""Analytics-tier bookkeeping: how far each table is mirrored into ClickHouse.

One row per (ClickHouse table, instrument): the instrument's ``data_version``
that the ClickHouse copy matches. ``marketdb clickhouse sync`` re-checks an
instrument only when its ``instruments.data_version`` moved past this
watermark (every committed market-data write bumps it), so late data and
corrections are re-sent and nothing else is read. Created by migration ``0012``.
"""

from __future__ import annotations

import sqlalchemy as sa

from marketdb.store.schema._base import metadata

__all__ = ["clickhouse_sync_state"]

clickhouse_sync_state = sa.Table(
    "clickhouse_sync_state",
    metadata,
    sa.Column("table_name", sa.Text(), primary_key=True, comment="ClickHouse table: trades, quotes, ..."),
    sa.Column(
        "instrument_id", sa.Integer(), primary_key=True, comment="no FK: deleted instruments are mirrored"
    ),
    sa.Column("data_version", sa.BigInteger(), nullable=False, comment="instruments.data_version in sync"),
    sa.Column("row_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("first_ts", sa.DateTime(timezone=True)),
    sa.Column("last_ts", sa.DateTime(timezone=True)),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
