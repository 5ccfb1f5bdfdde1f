"""Operations tables: row-based retention of ordinary (non-partitioned) tables.

Time-series tables keep their retention in ``timeseries_policies`` (whole
partitions or TimescaleDB chunks are dropped). Ordinary tables such as
``order_history``, ``signals`` or ``portfolio_snapshots`` have no partitions, so
``marketdb maintain`` deletes their old rows in batches instead, as configured
here. There are no default rows: retention is opt-in (docs/timeseries.md).
Created by migration ``0002``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from marketdb.store.schema._base import metadata, updated_at

__all__ = ["maintenance_runs", "migration_log", "retention_policies"]

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    sa.Column("table_name", sa.Text(), primary_key=True),
    sa.Column("time_column", sa.Text(), nullable=False),
    sa.Column("retain_for", sa.Interval(), nullable=False),
    updated_at(),
    sa.CheckConstraint("retain_for > interval '0'", name="retain_for_positive"),
)

#: One row per schema migration step marketdb applied (migration ``0008``):
#: ``marketdb db status`` shows when each revision was applied. Revisions
#: applied before the log existed have no row.
migration_log = sa.Table(
    "migration_log",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column("revision", sa.Text(), nullable=False),
    sa.Column("direction", sa.Text(), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("marketdb_version", sa.Text()),
    sa.CheckConstraint("direction IN ('upgrade', 'downgrade')", name="direction_known"),
)

#: One row per maintenance run (migration ``0013``): scheduled (``maintain --loop``, the
#: runner inside ``serve``) or manual. ``steps`` holds what each step did and how long it
#: took; ``marketdb doctor`` shows the latest runs.
maintenance_runs = sa.Table(
    "maintenance_runs",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("runner", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("steps", JSONB(), nullable=False, server_default="[]"),
    sa.Column("error", sa.Text()),
    sa.CheckConstraint("status IN ('running', 'ok', 'failed', 'skipped')", name="status_known"),
    sa.Index("ix_maintenance_runs_started_at", "started_at"),
)
