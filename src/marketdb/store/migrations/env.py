"""Alembic environment: runs with the engine marketdb hands over (or sqlalchemy.url)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from marketdb.settings import Settings
from marketdb.store.migrations.env_helpers import include_name, include_object
from marketdb.store.schema import metadata

config = context.config


def _log_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    """Record each applied step in ``migration_log`` (migration 0008), same transaction."""
    conn = ctx.connection
    if conn.execute(sa.text("SELECT to_regclass('migration_log')")).scalar() is None:
        return  # before 0008, or 0008 itself just downgraded
    from importlib.metadata import PackageNotFoundError, version

    try:
        marketdb_version = version("marketdb")
    except PackageNotFoundError:  # running from a source tree that was never installed
        marketdb_version = "unknown"
    conn.execute(
        sa.text(
            "INSERT INTO migration_log (revision, direction, marketdb_version) VALUES (:r, :d, :v)"
        ),
        {"r": step.up_revision_id, "d": "upgrade" if step.is_upgrade else "downgrade", "v": marketdb_version},
    )


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    settings = config.attributes.get("settings") or Settings.from_env()
    with engine.connect() as connection:
        # Serialise concurrent migrators (two processes starting at once). The
        # lock is session-level; commit right away so the migration below runs
        # (and commits) in its own transaction *before* the lock is released.
        connection.execute(sa.text("SELECT pg_advisory_lock(hashtext('marketdb.migrations'))"))
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                include_name=include_name,
                include_object=include_object,
                compare_type=True,
                transaction_per_migration=False,
                on_version_apply=_log_step,
            )
            context.config.attributes["settings"] = settings
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(hashtext('marketdb.migrations'))"))
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("marketdb migrations run online only: use `marketdb db upgrade`")
run_migrations_online()
