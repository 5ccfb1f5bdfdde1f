"""Alembic environment: runs with the engine marketdb hands over (or sqlalchemy.url)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from marketdb.settings import Settings
from marketdb.store.migrations.env_helpers import include_name, include_object
from marketdb.store.schema import metadata

config = context.config


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
