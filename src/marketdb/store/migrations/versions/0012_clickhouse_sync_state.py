"""clickhouse_sync_state: the per-(table, instrument) watermark of the ClickHouse sync

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clickhouse_sync_state",
        sa.Column("table_name", sa.Text(), nullable=False, comment="ClickHouse table: trades, quotes, ..."),
        sa.Column(
            "instrument_id", sa.Integer(), nullable=False, comment="no FK: deleted instruments are mirrored"
        ),
        sa.Column(
            "data_version", sa.BigInteger(), nullable=False, comment="instruments.data_version in sync"
        ),
        sa.Column("row_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "instrument_id", name=op.f("pk_clickhouse_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("clickhouse_sync_state")
