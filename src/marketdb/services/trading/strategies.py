"""Strategies: configuration, risk limits, symbols, execution mode and status.

Functions take a SQLAlchemy connection inside the caller's transaction and an
:class:`~marketdb.services.trading._common.Actor`; each mutation writes its audit
row in that same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import Actor, audit, resolve_instruments, row_dict
from marketdb.store.schema import tables as t

EXECUTION_MODES = ("paper", "live")
STRATEGY_STATUSES = ("stopped", "running", "paused", "error")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_UPDATABLE = frozenset(
    {
        "name",
        "description",
        "strategy_type",
        "class_name",
        "config",
        "risk_limits",
        "symbols",
        "execution_mode",
        "status",
    }
)


def _check_id(strategy_id: str) -> str:
    if not isinstance(strategy_id, str) or not _ID.match(strategy_id):
        raise InvalidInput(
            f"strategy id must be 1-100 characters of letters, digits, '_', '.', '-'; got {strategy_id!r}"
        )
    return strategy_id


def _clean(conn: sa.Connection, field: str, value: Any) -> Any:
    """Validate one strategy field and return its stored form."""
    if field == "name":
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput("strategy name must be a non-empty string")
        return value.strip()
    if field in ("description", "class_name"):
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"strategy {field} must be a string or None")
        return value
    if field == "strategy_type":
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput("strategy type must be a non-empty string")
        return value.strip()
    if field in ("config", "risk_limits"):
        return v.json_object(value, f"strategy {field}")
    if field == "symbols":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise InvalidInput("strategy symbols must be a list of symbols")
        symbols = list(dict.fromkeys(v.symbol(s) for s in value))
        resolve_instruments(conn, symbols)  # NotFound lists every unknown symbol
        return symbols
    if field == "execution_mode":
        return v.choice(value, "execution mode", EXECUTION_MODES)
    if field == "status":
        return v.choice(value, "strategy status", STRATEGY_STATUSES)
    raise InvalidInput(
        f"strategy field {field!r} cannot be updated; updatable: {', '.join(sorted(_UPDATABLE))}"
    )


def get_strategy(conn: sa.Connection, strategy_id: str, *, lock: bool = False) -> dict[str, Any]:
    """One strategy as a dict (raises :class:`NotFound`)."""
    query = sa.select(t.strategies).where(t.strategies.c.id == strategy_id)
    if lock:
        query = query.with_for_update()
    row = row_dict(conn.execute(query).first())
    if row is None:
        raise NotFound(
            f"unknown strategy {strategy_id!r}",
            hint="list strategies with `marketdb strategies list`",
        )
    return row


def list_strategies(
    conn: sa.Connection,
    *,
    enabled: bool | None = None,
    execution_mode: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Strategies ordered by id, optionally filtered."""
    query = sa.select(t.strategies).order_by(t.strategies.c.id)
    if enabled is not None:
        query = query.where(t.strategies.c.is_enabled.is_(enabled))
    if execution_mode is not None:
        query = query.where(
            t.strategies.c.execution_mode == v.choice(execution_mode, "execution mode", EXECUTION_MODES)
        )
    if status is not None:
        query = query.where(t.strategies.c.status == v.choice(status, "strategy status", STRATEGY_STATUSES))
    return [dict(r._mapping) for r in conn.execute(query)]


def create_strategy(
    conn: sa.Connection,
    actor: Actor,
    strategy_id: str,
    name: str,
    *,
    description: str | None = None,
    strategy_type: str = "custom",
    class_name: str | None = None,
    config: dict[str, Any] | None = None,
    risk_limits: dict[str, Any] | None = None,
    symbols: Sequence[str] = (),
    execution_mode: str = "paper",
    enabled: bool = False,
    if_exists: str = "error",
) -> tuple[dict[str, Any], bool]:
    """Create a strategy; returns ``(row, created)``.

    ``if_exists="error"`` raises :class:`Conflict` for an existing id;
    ``"skip"`` returns the existing row untouched (``created`` is False).
    """
    _check_id(strategy_id)
    if if_exists not in ("error", "skip"):
        raise InvalidInput(f"if_exists must be 'error' or 'skip', got {if_exists!r}")
    values = {
        "id": strategy_id,
        "name": _clean(conn, "name", name),
        "description": _clean(conn, "description", description),
        "strategy_type": _clean(conn, "strategy_type", strategy_type),
        "class_name": _clean(conn, "class_name", class_name),
        "config": _clean(conn, "config", config),
        "risk_limits": _clean(conn, "risk_limits", risk_limits),
        "symbols": _clean(conn, "symbols", symbols),
        "execution_mode": _clean(conn, "execution_mode", execution_mode),
        "is_enabled": bool(enabled),
        "created_by": actor.user_id,
    }
    inserted = conn.execute(
        pg.insert(t.strategies)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(*t.strategies.c)
    ).first()
    if inserted is None:
        if if_exists == "skip":
            return get_strategy(conn, strategy_id), False
        raise Conflict(
            f"strategy {strategy_id!r} already exists",
            hint="use update_strategy (`marketdb strategies update`) to change it",
        )
    row = dict(inserted._mapping)
    audit(conn, actor, "strategy.create", "strategy", strategy_id, new=row)
    return row, True


def update_strategy(conn: sa.Connection, actor: Actor, strategy_id: str, **changes: Any) -> dict[str, Any]:
    """Change any of the updatable fields (see ``_UPDATABLE``); returns the new row.

    ``config`` and ``risk_limits`` are replaced as a whole, not merged.
    """
    if not changes:
        raise InvalidInput("nothing to update: pass at least one field")
    old = get_strategy(conn, strategy_id, lock=True)
    values = {field: _clean(conn, field, value) for field, value in changes.items()}
    if values.get("status") == "running" and not old["is_enabled"]:
        raise Conflict(
            f"strategy {strategy_id!r} is disabled and cannot be set running",
            hint="enable it first (`marketdb strategies enable`)",
        )
    row = conn.execute(
        sa.update(t.strategies)
        .where(t.strategies.c.id == strategy_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*t.strategies.c)
    ).one()
    new = dict(row._mapping)
    audit(
        conn,
        actor,
        "strategy.update",
        "strategy",
        strategy_id,
        old={k: old[k] for k in values},
        new={k: new[k] for k in values},
    )
    return new


def set_enabled(conn: sa.Connection, actor: Actor, strategy_id: str, enabled: bool) -> dict[str, Any]:
    """Enable or disable a strategy.

    Disabling also stops it: a ``running`` or ``paused`` strategy becomes
    ``stopped``, so a disabled strategy is never shown as running.
    """
    old = get_strategy(conn, strategy_id, lock=True)
    values: dict[str, Any] = {"is_enabled": bool(enabled)}
    if not enabled and old["status"] in ("running", "paused"):
        values["status"] = "stopped"
    row = conn.execute(
        sa.update(t.strategies)
        .where(t.strategies.c.id == strategy_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*t.strategies.c)
    ).one()
    new = dict(row._mapping)
    audit(
        conn,
        actor,
        "strategy.enable" if enabled else "strategy.disable",
        "strategy",
        strategy_id,
        old={k: old[k] for k in values},
        new=values,
    )
    return new
