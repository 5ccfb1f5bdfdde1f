"""migration_log: when each schema revision was applied

Revision ID: 0008
Revises: 0007

``migration_log`` gets one row per migration step (revision, upgrade or
downgrade, when, which marketdb version), written by the Alembic environment
(``store/migrations/env.py``) in the same transaction as the step itself.
``marketdb db status`` shows it. Revisions applied before this one have no
row (their time is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migration_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("revision", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("marketdb_version", sa.Text(), nullable=True),
        sa.CheckConstraint("direction IN ('upgrade', 'downgrade')", name=op.f("ck_migration_log_direction_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_log")),
    )


def downgrade() -> None:
    op.drop_table("migration_log")
