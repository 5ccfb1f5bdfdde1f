"""Native time-series tables get a default partition, so no write is ever refused

Until now a row outside every range partition was an error: a raw ``INSERT``
from psql (or COPY from another language) failed unless ``maintain`` had
created that day's partition. With ``<table>_default`` such a row lands;
creating a partition moves the default partition's rows of that period into
it, and ``marketdb maintain`` does so for every period the default partition
holds (docs/timeseries.md). Hypertables need nothing: TimescaleDB creates
chunks on insert.

Downgrade moves every row of the default partitions into range partitions
(creating them) before dropping the default partitions: no row is lost.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen: the time-series tables as of this revision.
TABLES = ("trades", "quotes", "candles", "order_book_snapshots", "options_chains")


def _native() -> bool:
    bind = op.get_bind()
    backend = bind.execute(sa.text("SELECT DISTINCT backend FROM timeseries_policies")).scalar()
    return backend != "timescaledb"


def _has_default(table: str) -> bool:
    row = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class p ON p.oid = pt.partrelid "
                "JOIN pg_namespace n ON n.oid = p.relnamespace "
                "WHERE p.relname = :t AND n.nspname = current_schema() AND pt.partdefid <> 0"
            ),
            {"t": table},
        )
        .first()
    )
    return row is not None


def upgrade() -> None:
    if not _native():
        return
    for table in TABLES:
        if not _has_default(table):
            op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def downgrade() -> None:
    if not _native():
        return
    from marketdb.store.timeseries import NativePartitions

    backend = NativePartitions()
    bind = op.get_bind()
    for table in TABLES:
        exists = bind.execute(
            sa.text("SELECT to_regclass(:n) IS NOT NULL"), {"n": f"{table}_default"}
        ).scalar()
        if not exists:
            continue
        backend.settle(bind, table)
        op.execute(f"DROP TABLE {table}_default")
