"""provider sync state: completed ranges per provider, instrument, kind and interval

`marketdb sync` records here what it has fetched completely, so a repeated sync
makes no requests and an interrupted one resumes after its last stored page
(docs/providers.md).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_sync_ranges",
        sa.Column("provider", sa.Text(), nullable=False, comment="tiingo, polygon, binance, kraken"),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False,
                  comment="bars, trades, quotes, actions, reference"),
        sa.Column("interval", sa.Text(), server_default="", nullable=False,
                  comment="bar interval; '' for other kinds"),
        sa.Column("range_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("range_end", sa.DateTime(timezone=True), nullable=False, comment="exclusive"),
        sa.Column("rows", sa.BigInteger(), server_default="0", nullable=False,
                  comment="records fetched for the range"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint("range_end > range_start",
                           name=op.f("ck_provider_sync_ranges_range_not_empty")),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"],
                                name=op.f("fk_provider_sync_ranges_instrument_id_instruments"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("provider", "instrument_id", "kind", "interval", "range_start",
                                name=op.f("pk_provider_sync_ranges")),
    )


def downgrade() -> None:
    op.drop_table("provider_sync_ranges")
