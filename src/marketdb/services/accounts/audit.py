"""The audit log: one row per mutation, written in the mutation's own transaction.

Any service records its mutations with :func:`record_audit`, passing the
connection of the transaction that makes the change, so the change and its
audit row commit or roll back together::

    with db.transaction() as conn:
        conn.execute(update(orders)...)
        record_audit(conn, actor_id=user.id, action="order.cancel",
                     resource_type="order", resource_id=order_id,
                     old={"status": "open"}, new={"status": "cancelled"})

Old and new values go through :func:`~.redaction.redact`: secret-looking keys
(password, secret, api_key, token, ...) and :class:`~.crypto.SecretValue`
objects are replaced by ``"[REDACTED]"``. marketdb's code only ever inserts
into ``audit_logs``; it never updates or deletes audit rows.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from marketdb.errors import InvalidInput
from marketdb.services.accounts.redaction import redact
from marketdb.store.schema import tables as t

__all__ = ["SYSTEM", "Actor", "AuditEntry", "audit_as", "query_audit", "record_audit"]

_MAX_USER_AGENT: Final = 512
_MAX_LIMIT: Final = 10_000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, and from where: recorded with every audit row.

    ``user_id`` is the acting user (None for marketdb itself or an operator
    without an account); ``name`` overrides the recorded actor name (default:
    the user's username, looked up in the same statement); ``ip`` and
    ``user_agent`` are recorded when the caller (CLI, HTTP API) supplies them.
    """

    user_id: uuid.UUID | None = None
    name: str | None = None
    ip: str | None = None
    user_agent: str | None = None


#: The actor for changes marketdb makes on its own (migrations, maintenance).
SYSTEM: Final = Actor(name="system")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of ``audit_logs``."""

    id: int
    ts: dt.datetime
    user_id: uuid.UUID | None
    actor: str | None
    action: str
    resource_type: str
    resource_id: str | None
    old_value: Any
    new_value: Any
    ip_address: str | None
    user_agent: str | None


def _check_ip(ip: str | None) -> str | None:
    if ip is None or ip == "":
        return None
    try:
        return str(ipaddress.ip_address(str(ip).strip()))
    except ValueError:
        raise InvalidInput(
            f"{ip!r} is not an IP address",
            hint="pass the client's IPv4 or IPv6 address, or None",
        ) from None


def _check_text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"audit {name} must be non-empty text", hint=f"pass a {name} string")
    return value


def record_audit(
    conn: sa.Connection | psycopg.Connection[Any],
    *,
    actor_id: uuid.UUID | str | None,
    action: str,
    resource_type: str,
    resource_id: object | None,
    old: Any,
    new: Any,
    ip: str | None = None,
    user_agent: str | None = None,
    actor_name: str | None = None,
) -> int:
    """Insert one audit row in the caller's transaction and return its id.

    ``conn`` is the SQLAlchemy or psycopg connection of the transaction making
    the change. ``actor_id`` is the acting user's id (or None); the actor's
    username is recorded alongside so the row stays readable after the user is
    deleted (``actor_name`` overrides it, e.g. ``"system"``). An ``actor_id``
    that names no user never fails the mutation: ``user_id`` is then NULL and
    ``actor`` holds the id. ``old`` and ``new``
    are redacted and converted to JSON; ``resource_id`` is stored as text.

    Raises:
        InvalidInput: empty action or resource type, or ``ip`` is not an IP address.
    """
    _check_text("action", action)
    _check_text("resource_type", resource_type)
    user_id = _as_uuid(actor_id)
    values: dict[str, Any] = {
        "user_id": user_id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else str(resource_id),
        "old_value": redact(old),
        "new_value": redact(new),
        "ip_address": _check_ip(ip),
        "user_agent": None if user_agent is None else str(user_agent)[:_MAX_USER_AGENT],
    }
    if isinstance(conn, psycopg.Connection):
        return _insert_psycopg(conn, values, actor_name)
    users = t.users
    actor_expr: Any = sa.null()
    if user_id is not None:
        # An id that names no (longer existing) user must not make the mutation fail:
        # user_id is then NULL and the actor column keeps the id as text.
        values["user_id"] = sa.select(users.c.id).where(users.c.id == user_id).scalar_subquery()
        actor_expr = sa.func.coalesce(
            sa.select(users.c.username).where(users.c.id == user_id).scalar_subquery(),
            sa.literal(str(user_id), sa.Text()),
        )
    if actor_name is not None:
        actor_expr = sa.literal(actor_name, sa.Text())
    stmt = sa.insert(t.audit_logs).values(actor=actor_expr, **values).returning(t.audit_logs.c.id)
    return int(conn.execute(stmt).scalar_one())


def audit_as(
    conn: sa.Connection | psycopg.Connection[Any],
    actor: Actor | None,
    action: str,
    resource_type: str,
    resource_id: object | None,
    old: Any,
    new: Any,
    *,
    default_user_id: uuid.UUID | None = None,
) -> int:
    """:func:`record_audit` with the who/where taken from an :class:`Actor`.

    ``default_user_id`` is recorded as the acting user when the actor has none
    (a user logging in acts as themself).
    """
    who = actor or Actor()
    return record_audit(
        conn,
        actor_id=who.user_id if who.user_id is not None else default_user_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        old=old,
        new=new,
        ip=who.ip,
        user_agent=who.user_agent,
        actor_name=who.name,
    )


def _insert_psycopg(conn: psycopg.Connection[Any], values: dict[str, Any], actor_name: str | None) -> int:
    from psycopg import sql

    params = dict(values)
    for key in ("old_value", "new_value"):
        params[key] = None if params[key] is None else Jsonb(params[key])
    params["actor_name"] = actor_name
    query = sql.SQL(
        "INSERT INTO audit_logs (user_id, actor, action, resource_type, resource_id, "
        "old_value, new_value, ip_address, user_agent) VALUES ("
        "(SELECT id FROM users WHERE id = %(user_id)s::uuid), "
        "COALESCE(%(actor_name)s::text, "
        "(SELECT username FROM users WHERE id = %(user_id)s::uuid), %(user_id)s::text), "
        "%(action)s, %(resource_type)s, %(resource_id)s, %(old_value)s, %(new_value)s, "
        "%(ip_address)s::inet, %(user_agent)s) RETURNING id"
    )
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def _as_uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a user id (UUID)", hint="pass the acting user's id or None"
        ) from None


def query_audit(
    conn: sa.Connection,
    *,
    user_id: uuid.UUID | str | None = None,
    resource_type: str | None = None,
    resource_id: object | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit rows matching every given filter, newest first.

    ``user_id`` is the acting user; ``since`` is inclusive and ``until``
    exclusive; at most ``limit`` rows (1..10000).
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {_MAX_LIMIT}, got {limit}",
            hint="page with `until` set to the oldest ts you have seen",
        )
    a = t.audit_logs
    stmt = sa.select(a)
    if user_id is not None:
        stmt = stmt.where(a.c.user_id == _as_uuid(user_id))
    if resource_type is not None:
        stmt = stmt.where(a.c.resource_type == resource_type)
    if resource_id is not None:
        stmt = stmt.where(a.c.resource_id == str(resource_id))
    if action is not None:
        stmt = stmt.where(a.c.action == action)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(
                f"{name} must be timezone-aware", hint="use datetime(..., tzinfo=datetime.UTC)"
            )
    if since is not None:
        stmt = stmt.where(a.c.ts >= since)
    if until is not None:
        stmt = stmt.where(a.c.ts < until)
    stmt = stmt.order_by(a.c.ts.desc(), a.c.id.desc()).limit(limit)
    return [
        AuditEntry(
            id=r.id,
            ts=r.ts,
            user_id=r.user_id,
            actor=r.actor,
            action=r.action,
            resource_type=r.resource_type,
            resource_id=r.resource_id,
            old_value=r.old_value,
            new_value=r.new_value,
            ip_address=None if r.ip_address is None else str(r.ip_address),
            user_agent=r.user_agent,
        )
        for r in conn.execute(stmt)
    ]
