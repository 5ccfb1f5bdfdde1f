"""Building blocks used by migration scripts.

Migration scripts are history: once released, a revision must keep creating
exactly what it created. Change these helpers only in backward-compatible
ways; a new revision that needs different behaviour gets a new helper.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from marketdb.store.timeseries import DEFAULT_POLICIES, Backend, backend_named, detect_backend


def timeseries_backend() -> Backend:
    """The backend for new time-series tables on the server being migrated."""
    from alembic import context

    settings = context.config.attributes.get("settings")
    setting = settings.timescaledb if settings is not None else "auto"
    backend = detect_backend(op.get_bind(), setting)
    if backend == "timescaledb":
        op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    return backend


def partitioned(backend: Backend) -> dict[str, Any]:
    """create_table keyword arguments of a time-series table on ``backend``."""
    return {"postgresql_partition_by": "RANGE (ts)"} if backend == "native" else {}


def setup_timeseries(backend: Backend, tables: tuple[str, ...]) -> None:
    """Record policies; on TimescaleDB turn the tables into hypertables with policies."""
    policies = sa.table(
        "timeseries_policies",
        sa.column("table_name", sa.Text()),
        sa.column("partition_interval", sa.Text()),
        sa.column("compress_after", sa.Interval()),
        sa.column("retain_for", sa.Interval()),
        sa.column("backend", sa.Text()),
    )
    rows = []
    for name in tables:
        p = DEFAULT_POLICIES[name]
        rows.append(
            {
                "table_name": name,
                "partition_interval": p.partition_interval,
                "compress_after": p.compress_after,
                "retain_for": p.retain_for,
                "backend": backend,
            }
        )
        if backend == "timescaledb":
            # Hypertable, compression settings and compression job, as the backend defines them.
            backend_named("timescaledb").create_table(op.get_bind(), name, p)
    op.bulk_insert(policies, rows)


def seed_roles(roles: dict[str, str], permissions: tuple[tuple[str, str, str], ...]) -> None:
    """Insert the default roles and permissions (document 004)."""
    roles_t = sa.table("roles", sa.column("name", sa.Text()), sa.column("description", sa.Text()))
    perms_t = sa.table(
        "permissions",
        sa.column("role", sa.Text()),
        sa.column("resource", sa.Text()),
        sa.column("action", sa.Text()),
    )
    op.bulk_insert(roles_t, [{"name": k, "description": v} for k, v in roles.items()])
    op.bulk_insert(perms_t, [{"role": r, "resource": s, "action": a} for r, s, a in permissions])


TICKS_VIEW = """
CREATE VIEW ticks AS
SELECT t.instrument_id,
       i.symbol,
       t.ts,
       t.ts_nanos,
       t.seq,
       (EXTRACT(EPOCH FROM t.ts) * 1000000)::bigint * 1000 + t.ts_nanos AS ts_ns,
       t.price,
       t.size,
       t.side,
       t.trade_id,
       t.exchange,
       t.conditions,
       t.source
FROM trades t
JOIN instruments i ON i.id = t.instrument_id
"""

TICKS_VIEW_COMMENT = (
    "COMMENT ON VIEW ticks IS 'Stable SQL view of tick trades with symbols; "
    "the physical layout behind it may change (see docs/schema.md).'"
)
