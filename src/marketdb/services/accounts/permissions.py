"""Roles and permissions as data: ``roles`` and ``permissions (role, resource, action)``.

A user may do ``action`` on ``resource`` when their role has a permission
row whose resource is that resource or ``'*'`` and whose action is that action
or ``'*'``. Inactive users may do nothing. Every check reads the tables (no
cache), so a grant or revoke applies to the very next check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import Conflict, NotFound, PermissionDenied
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.accounts.users import User, UserRef, get_user
from marketdb.store.schema import tables as t

__all__ = [
    "WILDCARD",
    "Permission",
    "Role",
    "authorize",
    "create_role",
    "delete_role",
    "grant",
    "list_permissions",
    "list_roles",
    "require",
    "require_active",
    "require_actor",
    "revoke",
]

#: Matches any resource or any action.
WILDCARD = "*"

p = t.permissions
r = t.roles


@dataclass(frozen=True, slots=True)
class Permission:
    """One ``(role, resource, action)`` grant; ``'*'`` is a wildcard."""

    role: str
    resource: str
    action: str


@dataclass(frozen=True, slots=True)
class Role:
    """A role and its description."""

    name: str
    description: str | None


def _role_of(conn: sa.Connection, user: UserRef) -> tuple[str, bool, uuid.UUID]:
    if isinstance(user, User):
        # Re-read: the role or activity may have changed since the User was loaded.
        user = user.id
    found = get_user(conn, user)
    return found.role, found.is_active, found.id


def authorize(conn: sa.Connection, user: UserRef, resource: str, action: str) -> bool:
    """True when ``user`` is active and their role grants ``action`` on ``resource``."""
    resource = v.name_text("resource", resource)
    action = v.name_text("action", action)
    try:
        role, active, _ = _role_of(conn, user)
    except NotFound:
        return False
    if not active:
        return False
    stmt = sa.select(
        sa.exists().where(
            p.c.role == role,
            p.c.resource.in_([resource, WILDCARD]),
            p.c.action.in_([action, WILDCARD]),
        )
    )
    return bool(conn.execute(stmt).scalar_one())


def require(conn: sa.Connection, user: UserRef, resource: str, action: str) -> None:
    """Raise :class:`~marketdb.errors.PermissionDenied` unless :func:`authorize` allows it."""
    if not authorize(conn, user, resource, action):
        raise PermissionDenied(
            f"not allowed to {action} {resource}",
            hint="ask an admin for a role that grants it (`marketdb users set-role`)",
        )


def _active_user(conn: sa.Connection, user_id: uuid.UUID, doing: str) -> Any:
    """The acting user's row, locked ``FOR SHARE``; PermissionDenied if absent or deactivated."""
    row = conn.execute(
        sa.select(t.users.c.username, t.users.c.role, t.users.c.is_active)
        .where(t.users.c.id == user_id)
        .with_for_update(read=True)
    ).first()
    if row is None:
        raise PermissionDenied(
            f"user {user_id} does not exist: not allowed to {doing}",
            hint="act as an existing user, or as the system actor",
        )
    if not row.is_active:
        raise PermissionDenied(
            f"user {row.username!r} is deactivated: not allowed to {doing}",
            hint="an admin can reactivate the account (`marketdb users activate`)",
        )
    return row


def require_active(conn: sa.Connection, actor: Actor | None) -> None:
    """The acting user (if any) exists and is active; the system actor always passes."""
    if actor is None or actor.user_id is None:
        return
    _active_user(conn, actor.user_id, "read")


def require_actor(
    conn: sa.Connection,
    actor: Actor | None,
    resource: str,
    action: str,
    *,
    owner: uuid.UUID | None = None,
) -> None:
    """Check, in the caller's transaction, that ``actor`` may do ``action`` on ``resource``.

    The system actor (``None`` or an :class:`Actor` without ``user_id``) always
    may: it is the library used directly, with the database's own credentials.
    A user must exist and be active, and either own the thing changed
    (``owner`` is their id: their own password, settings, secrets, posts) or
    hold a role that grants the permission. The user's row is read ``FOR
    SHARE``, so a concurrent deactivation or role change waits for this
    transaction (or this one sees its result): the check and the change commit
    together.

    Raises:
        PermissionDenied: naming the user, the action and the resource.
    """
    if actor is None or actor.user_id is None:
        return
    resource = v.name_text("resource", resource)
    action = v.name_text("action", action)
    row = _active_user(conn, actor.user_id, f"{action} {resource}")
    who = row.username
    if owner is not None and owner == actor.user_id:
        return
    allowed = conn.execute(
        sa.select(
            sa.exists().where(
                p.c.role == row.role,
                p.c.resource.in_([resource, WILDCARD]),
                p.c.action.in_([action, WILDCARD]),
            )
        )
    ).scalar_one()
    if not allowed:
        raise PermissionDenied(
            f"user {who!r} (role {row.role!r}) is not allowed to {action} {resource}",
            hint=f"ask an admin to grant {resource}:{action} to role {row.role!r} "
            "or to give the user another role (`marketdb users set-role`)",
            details={"user": who, "role": row.role, "resource": resource, "action": action},
        )


def _check_role_exists(conn: sa.Connection, role: str) -> str:
    role = v.name_text("role", role)
    if conn.execute(sa.select(r.c.name).where(r.c.name == role)).first() is None:
        raise NotFound(f"no role {role!r}", hint="list roles with Accounts.list_roles()")
    return role


def list_roles(conn: sa.Connection) -> list[Role]:
    """All roles, by name."""
    return [Role(row.name, row.description) for row in conn.execute(sa.select(r).order_by(r.c.name))]


def list_permissions(conn: sa.Connection, role: str | None = None) -> list[Permission]:
    """The grants of ``role`` (or of every role), sorted."""
    stmt = sa.select(p.c.role, p.c.resource, p.c.action).order_by(p.c.role, p.c.resource, p.c.action)
    if role is not None:
        stmt = stmt.where(p.c.role == _check_role_exists(conn, role))
    return [Permission(row.role, row.resource, row.action) for row in conn.execute(stmt)]


def create_role(
    conn: sa.Connection, name: str, description: str | None = None, *, actor: Actor | None = None
) -> Role:
    """Create a role with no permissions yet."""
    name = v.name_text("role", name)
    if description is not None:
        description = v.body_text("description", description, max_len=1000)
    if conn.execute(sa.select(r.c.name).where(r.c.name == name)).first() is not None:
        raise Conflict(f"role {name!r} already exists", hint="pick another name")
    conn.execute(sa.insert(r).values(name=name, description=description))
    audit_as(conn, actor, "role.create", "role", name, None, {"name": name, "description": description})
    return Role(name, description)


def delete_role(conn: sa.Connection, name: str, *, actor: Actor | None = None) -> None:
    """Delete a role and its permissions. Refused while users still have it."""
    name = _check_role_exists(conn, name)
    holders = conn.execute(
        sa.select(sa.func.count()).select_from(t.users).where(t.users.c.role == name)
    ).scalar_one()
    if holders:
        raise Conflict(
            f"role {name!r} is still held by {holders} user(s)",
            hint="give those users another role first (`marketdb users set-role`)",
        )
    grants = [(x.resource, x.action) for x in list_permissions(conn, name)]
    conn.execute(sa.delete(r).where(r.c.name == name))
    audit_as(conn, actor, "role.delete", "role", name, {"name": name, "permissions": grants}, None)


def grant(conn: sa.Connection, role: str, resource: str, action: str, *, actor: Actor | None = None) -> bool:
    """Allow ``role`` to do ``action`` on ``resource`` ('*' for any). False if already granted."""
    role = _check_role_exists(conn, role)
    resource = v.name_text("resource", resource)
    action = v.name_text("action", action)
    inserted = conn.execute(
        pg.insert(p)
        .values(role=role, resource=resource, action=action)
        .on_conflict_do_nothing()
        .returning(p.c.id)
    ).first()
    if inserted is None:
        return False
    perm = {"role": role, "resource": resource, "action": action}
    audit_as(conn, actor, "permission.grant", "permission", inserted.id, None, perm)
    return True


def revoke(conn: sa.Connection, role: str, resource: str, action: str, *, actor: Actor | None = None) -> bool:
    """Remove exactly this grant (wildcards are not expanded). False if it did not exist."""
    role = _check_role_exists(conn, role)
    resource = v.name_text("resource", resource)
    action = v.name_text("action", action)
    deleted = conn.execute(
        sa.delete(p).where(p.c.role == role, p.c.resource == resource, p.c.action == action).returning(p.c.id)
    ).first()
    if deleted is None:
        return False
    perm = {"role": role, "resource": resource, "action": action}
    audit_as(conn, actor, "permission.revoke", "permission", deleted.id, perm, None)
    return True
