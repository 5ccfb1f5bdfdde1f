"""Alembic, driven from Python: upgrade, downgrade, current revision, drift check."""

from __future__ import annotations

from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from marketdb.settings import Settings

__all__ = [
    "alembic_config",
    "check_drift",
    "current_revision",
    "downgrade",
    "head_revision",
    "history",
    "upgrade",
]


def alembic_config(engine: sa.Engine, settings: Settings) -> Config:
    """An Alembic Config pointing at marketdb's migrations and this engine."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("marketdb.store") / "migrations"))
    # The engine travels in attributes; no URL (and no password) is written into the config.
    cfg.attributes["engine"] = engine
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(engine: sa.Engine, settings: Settings, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    command.upgrade(alembic_config(engine, settings), revision)


def downgrade(engine: sa.Engine, settings: Settings, revision: str = "-1") -> None:
    """Migrate the database down to ``revision`` (``base`` removes everything)."""
    command.downgrade(alembic_config(engine, settings), revision)


def head_revision(engine: sa.Engine, settings: Settings) -> str | None:
    """The newest revision marketdb ships."""
    return ScriptDirectory.from_config(alembic_config(engine, settings)).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_drift(engine: sa.Engine) -> list[Any]:
    """Differences between the live schema and the metadata (empty = no drift)."""
    from alembic.autogenerate import compare_metadata

    from marketdb.store.migrations.env_helpers import include_name, include_object
    from marketdb.store.schema import metadata

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_name": include_name,
                "include_object": include_object,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        return list(compare_metadata(ctx, metadata))


def history(engine: sa.Engine, settings: Settings) -> list[dict[str, Any]]:
    """Every revision marketdb ships, oldest first, with whether and when it was applied.

    ``applied_at`` comes from ``migration_log`` (the newest upgrade of that
    revision); revisions applied before the log existed (migration 0008) show
    ``applied`` True with ``applied_at`` None.
    """
    script = ScriptDirectory.from_config(alembic_config(engine, settings))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        logged: dict[str, Any] = {}
        if conn.execute(sa.text("SELECT to_regclass('migration_log')")).scalar() is not None:
            rows = conn.execute(
                sa.text(
                    "SELECT DISTINCT ON (revision) revision, direction, applied_at FROM migration_log "
                    "ORDER BY revision, applied_at DESC, id DESC"
                )
            )
            logged = {r.revision: r for r in rows if r.direction == "upgrade"}
    applied = set()
    if current is not None:
        applied = {current} | {r.revision for r in script.iterate_revisions(current, "base")}
    out = []
    for rev in reversed(list(script.walk_revisions())):
        entry = logged.get(rev.revision)
        out.append(
            {
                "revision": rev.revision,
                "description": (rev.doc or "").strip(),
                "applied": rev.revision in applied,
                "applied_at": entry.applied_at if entry is not None and rev.revision in applied else None,
            }
        )
    return out
