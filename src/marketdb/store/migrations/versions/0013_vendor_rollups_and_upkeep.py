"""vendor roll-ups and the maintenance run log

Revision ID: 0013
Revises: 0012

* ``candles.rolled_from``: NULL for candles as written (by a provider or derived from
  trades); the finer interval a stored provider roll-up was computed from otherwise
  (e.g. ``'1m'`` for the ``1h`` bars rolled up from a vendor's 1m candles). Roll-ups are
  recomputed when their source candles change and never replace written candles.
* ``maintenance_runs``: one row per scheduled or manual maintenance run (who ran it,
  when, how long, what each step did, errors), shown by ``marketdb doctor``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "candles",
        sa.Column(
            "rolled_from",
            sa.Text(),
            nullable=True,
            comment="NULL: written; else the finer interval this provider roll-up was computed from",
        ),
    )
    op.create_table(
        "maintenance_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runner", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'failed', 'skipped')", name=op.f("ck_maintenance_runs_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_runs")),
    )
    op.create_index("ix_maintenance_runs_started_at", "maintenance_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_runs_started_at", table_name="maintenance_runs")
    op.drop_table("maintenance_runs")
    op.drop_column("candles", "rolled_from")
