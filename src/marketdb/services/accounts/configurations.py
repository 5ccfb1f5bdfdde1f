"""Configurations (document 004): application settings as key -> JSON value.

Each entry keeps a description, ``updated_at`` and ``updated_by`` (the actor's
name). Values whose key names a secret (``smtp_password``, ``*_token``) are
redacted in audit rows; better still, keep secrets in ``user_secrets`` or in
the environment and only their names here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.store.schema import tables as t

__all__ = ["Configuration", "delete_config", "get_config", "list_configs", "set_config"]

cfg = t.configurations


@dataclass(frozen=True, slots=True)
class Configuration:
    """One configuration entry."""

    key: str
    value: Any
    description: str | None
    updated_at: dt.datetime
    updated_by: str | None


def _config(row: Any) -> Configuration:
    return Configuration(row.key, row.value, row.description, row.updated_at, row.updated_by)


def _json(value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"configuration value is not JSON: {type(exc).__name__}",
            hint="use dicts, lists, strings, finite numbers, booleans and None",
        ) from None
    if "\\u0000" in text:
        raise InvalidInput("configuration value contains a NUL character", hint="remove it")
    return json.loads(text)


def _updated_by(conn: sa.Connection, actor: Actor | None) -> str | None:
    if actor is None:
        return None
    if actor.name is not None:
        return actor.name
    if actor.user_id is not None:
        name = conn.execute(
            sa.select(t.users.c.username).where(t.users.c.id == actor.user_id)
        ).scalar_one_or_none()
        return name if name is not None else str(actor.user_id)
    return None


def set_config(
    conn: sa.Connection,
    key: str,
    value: Any,
    *,
    description: str | None = None,
    actor: Actor | None = None,
) -> Configuration:
    """Create or replace the entry ``key``; the description is kept when not given."""
    key = v.name_text("configuration key", key)
    value = _json(value)
    if description is not None:
        description = v.body_text("description", description, max_len=2000)
    before = conn.execute(sa.select(cfg).where(cfg.c.key == key).with_for_update()).first()
    values: dict[str, Any] = {
        "key": key,
        "value": value,
        "updated_at": sa.func.now(),
        "updated_by": _updated_by(conn, actor),
    }
    if description is not None:
        values["description"] = description
    insert = pg.insert(cfg).values(**values)
    upsert = insert.on_conflict_do_update(
        index_elements=[cfg.c.key], set_={k: insert.excluded[k] for k in values if k != "key"}
    ).returning(cfg)
    after = _config(conn.execute(upsert).one())
    old = None if before is None else {before.key: before.value, "description": before.description}
    new = {after.key: after.value, "description": after.description}
    action = "configuration.create" if before is None else "configuration.update"
    audit_as(conn, actor, action, "configuration", key, old, new)
    return after


def get_config(conn: sa.Connection, key: str, default: Any = ...) -> Any:
    """The value of ``key``; ``default`` when given and the key is absent, else NotFound."""
    row = conn.execute(sa.select(cfg.c.value).where(cfg.c.key == key)).first()
    if row is None:
        if default is not ...:
            return default
        raise NotFound(f"no configuration {key!r}", hint="set it with Accounts.set_config()")
    return row.value


def list_configs(conn: sa.Connection, prefix: str | None = None) -> list[Configuration]:
    """All entries (or those whose key starts with ``prefix``), by key."""
    stmt = sa.select(cfg).order_by(cfg.c.key)
    if prefix:
        stmt = stmt.where(cfg.c.key.startswith(prefix, autoescape=True))
    return [_config(r) for r in conn.execute(stmt)]


def delete_config(conn: sa.Connection, key: str, *, actor: Actor | None = None) -> None:
    """Delete the entry ``key``."""
    row = conn.execute(sa.delete(cfg).where(cfg.c.key == key).returning(cfg)).first()
    if row is None:
        raise NotFound(f"no configuration {key!r}")
    old = {row.key: row.value, "description": row.description}
    audit_as(conn, actor, "configuration.delete", "configuration", key, old, None)
