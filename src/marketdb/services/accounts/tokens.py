"""Login sessions and API keys for the HTTP API, stored only as SHA-256 digests.

A session token or API key is 32 random bytes (256 bits) shown to the client
once; the database keeps its digest. Sessions expire after ``idle_seconds``
without use and at ``expires_at`` whatever the use. API keys act with a role
no higher than their owner's (its permissions must be a subset of the
owner's at creation) and every request checks *both* the key's role and the
owner's current role and activity, so disabling a user, changing their role
or revoking a key applies to the very next request.

:class:`ApiAuth` wraps each operation in its own transaction (``db`` style);
the module functions take the caller's connection.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound, PermissionDenied
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts import users as user_mod
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.accounts.permissions import WILDCARD
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = [
    "ApiAuth",
    "ApiKeyInfo",
    "Principal",
    "hash_token",
    "role_allows",
]

SESSION_PREFIX: Final = "mdbs_"
KEY_PREFIX: Final = "mdbk_"
DEFAULT_IDLE: Final = dt.timedelta(hours=2)
DEFAULT_ABSOLUTE: Final = dt.timedelta(hours=24)
#: last_used_at is written at most this often per session or key (saves a write per request).
TOUCH_EVERY: Final = dt.timedelta(seconds=30)

s = t.api_sessions
k = t.api_keys
u = t.users
p = t.permissions


def hash_token(token: str) -> bytes:
    """The SHA-256 digest stored for a session token or API key."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user, through a session or an API key.

    ``role`` is the user's role as read for this request; ``key_role`` the
    API key's role (None for sessions). Both must allow an action.
    """

    user_id: uuid.UUID
    username: str
    role: str
    key_id: uuid.UUID | None = None
    key_role: str | None = None
    session_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key without its secret value."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    role: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


def _now(conn: sa.Connection) -> dt.datetime:
    now: dt.datetime = conn.execute(sa.select(sa.func.now())).scalar_one()
    return now


def role_allows(conn: sa.Connection, role: str, resource: str, action: str) -> bool:
    """Does ``role`` hold ``action`` on ``resource`` (wildcards included)?"""
    stmt = sa.select(
        sa.exists().where(
            p.c.role == role,
            p.c.resource.in_([resource, WILDCARD]),
            p.c.action.in_([action, WILDCARD]),
        )
    )
    return bool(conn.execute(stmt).scalar_one())


def _grant_exists(role: Any, resource: str, action: str) -> sa.Exists:
    return sa.exists().where(
        p.c.role == role,
        p.c.resource.in_([resource, WILDCARD]),
        p.c.action.in_([action, WILDCARD]),
    )


def allows(conn: sa.Connection, principal: Principal, resource: str, action: str) -> bool:
    """May ``principal`` do it now? Re-reads the user's role and activity (no cache); one query."""
    cond = sa.and_(u.c.is_active, _grant_exists(u.c.role, resource, action))
    if principal.key_role is not None:
        cond = sa.and_(cond, _grant_exists(principal.key_role, resource, action))
    found = conn.execute(sa.select(cond).where(u.c.id == principal.user_id)).scalar_one_or_none()
    return bool(found)


# ------------------------------------------------------------------ sessions
def create_session(
    conn: sa.Connection,
    user_id: uuid.UUID,
    *,
    idle: dt.timedelta = DEFAULT_IDLE,
    absolute: dt.timedelta = DEFAULT_ABSOLUTE,
    actor: Actor | None = None,
) -> tuple[str, dt.datetime]:
    """Open a session for ``user_id``: returns the token (shown once) and its absolute expiry."""
    if idle <= dt.timedelta(0) or absolute <= dt.timedelta(0):
        raise InvalidInput(
            "session lifetimes must be positive", hint="pass positive idle/absolute timedeltas"
        )
    token = _new_token(SESSION_PREFIX)
    now = _now(conn)
    expires = now + absolute
    who = actor or Actor()
    conn.execute(
        sa.insert(s).values(
            token_hash=hash_token(token),
            user_id=user_id,
            idle_seconds=max(1, int(idle.total_seconds())),
            expires_at=expires,
            ip_address=who.ip,
            user_agent=None if who.user_agent is None else who.user_agent[:512],
        )
    )
    return token, expires


def resolve_session(conn: sa.Connection, token: str) -> Principal | None:
    """The principal of a live session token, or None (unknown, revoked, expired, idle, user inactive)."""
    if not token.startswith(SESSION_PREFIX):
        return None
    digest = hash_token(token)
    now = sa.func.now()
    idle = sa.func.make_interval(0, 0, 0, 0, 0, 0, s.c.idle_seconds)
    row = conn.execute(
        sa.select(
            s.c.user_id,
            u.c.username,
            u.c.role,
            sa.and_(
                s.c.revoked_at.is_(None), u.c.is_active, now < s.c.expires_at, now - s.c.last_used_at <= idle
            ).label("live"),
            (now - s.c.last_used_at > sa.literal(TOUCH_EVERY)).label("stale"),
        )
        .join(u, u.c.id == s.c.user_id)
        .where(s.c.token_hash == digest)
    ).first()
    if row is None or not row.live:
        return None
    if row.stale:
        conn.execute(sa.update(s).where(s.c.token_hash == digest).values(last_used_at=now))
    return Principal(row.user_id, row.username, row.role, session_hash=digest)


def revoke_session(conn: sa.Connection, digest: bytes, *, actor: Actor | None = None) -> bool:
    """End a session (logout). False if it was not live."""
    done = conn.execute(
        sa.update(s)
        .where(s.c.token_hash == digest, s.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(s.c.user_id)
    ).first()
    if done is None:
        return False
    audit_as(conn, actor, "session.logout", "session", None, None, None, default_user_id=done.user_id)
    return True


def revoke_user_sessions(conn: sa.Connection, user_id: uuid.UUID) -> int:
    """End every live session of a user (password change, deactivation)."""
    res = conn.execute(
        sa.update(s).where(s.c.user_id == user_id, s.c.revoked_at.is_(None)).values(revoked_at=sa.func.now())
    )
    return int(res.rowcount or 0)


# ------------------------------------------------------------------ API keys
def _key_info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        row.id,
        row.user_id,
        row.name,
        row.prefix,
        row.role,
        row.created_at,
        row.last_used_at,
        row.expires_at,
        row.revoked_at,
    )


def create_api_key(
    conn: sa.Connection,
    owner: uuid.UUID,
    name: str,
    *,
    role: str | None = None,
    expires_at: dt.datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiKeyInfo, str]:
    """Create an API key for ``owner``; returns its info and the key (shown once).

    ``role`` defaults to the owner's role; another role is accepted only when
    every permission it grants is also granted to the owner's role.
    """
    name = v.name_text("name", name, max_len=100)
    user = user_mod.get_user(conn, owner)
    if not user.is_active:
        raise PermissionDenied("an inactive user cannot create API keys", hint="activate the user first")
    role = user.role if role is None else v.name_text("role", role)
    grants = conn.execute(sa.select(p.c.resource, p.c.action).where(p.c.role == role)).all()
    if conn.execute(sa.select(t.roles.c.name).where(t.roles.c.name == role)).first() is None:
        raise InvalidInput(f"unknown role {role!r}", hint="list roles with `marketdb users roles`")
    for g in grants:
        if not role_allows(conn, user.role, g.resource, g.action):
            raise PermissionDenied(
                f"role {role!r} grants {g.action} on {g.resource}, which {user.username!r} does not hold",
                hint=f"pick a role no higher than {user.role!r}",
            )
    key = _new_token(KEY_PREFIX)
    row = conn.execute(
        sa.insert(k)
        .values(
            user_id=user.id,
            name=name,
            prefix=key[:12],
            key_hash=hash_token(key),
            role=role,
            expires_at=expires_at,
        )
        .returning(*k.c)
    ).one()
    info = _key_info(row)
    audit_as(
        conn,
        actor,
        "api_key.create",
        "api_key",
        info.id,
        None,
        {"name": name, "role": role, "prefix": info.prefix, "user_id": str(user.id)},
    )
    return info, key


def list_api_keys(conn: sa.Connection, owner: uuid.UUID | None = None) -> list[ApiKeyInfo]:
    """API keys (of ``owner``, or all), newest first, without their values."""
    stmt = sa.select(*[c for c in k.c if c.name != "key_hash"]).order_by(k.c.created_at.desc(), k.c.id)
    if owner is not None:
        stmt = stmt.where(k.c.user_id == owner)
    return [_key_info(r) for r in conn.execute(stmt)]


def get_api_key(conn: sa.Connection, key_id: uuid.UUID) -> ApiKeyInfo:
    """One API key's info; :class:`NotFound` if unknown."""
    row = conn.execute(sa.select(*[c for c in k.c if c.name != "key_hash"]).where(k.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"no API key {key_id}", hint="list your keys with GET /v1/auth/keys")
    return _key_info(row)


def revoke_api_key(conn: sa.Connection, key_id: uuid.UUID, *, actor: Actor | None = None) -> ApiKeyInfo:
    """Revoke an API key (idempotent); effective for the very next request."""
    before = get_api_key(conn, key_id)
    if before.revoked_at is None:
        conn.execute(sa.update(k).where(k.c.id == key_id).values(revoked_at=sa.func.now()))
        audit_as(conn, actor, "api_key.revoke", "api_key", key_id, {"revoked": False}, {"revoked": True})
    return get_api_key(conn, key_id)


def resolve_api_key(conn: sa.Connection, key: str) -> Principal | None:
    """The principal of a live API key, or None (unknown, revoked, expired, owner inactive)."""
    if not key.startswith(KEY_PREFIX):
        return None
    digest = hash_token(key)
    now = sa.func.now()
    row = conn.execute(
        sa.select(
            k.c.id,
            k.c.role,
            k.c.user_id,
            u.c.username,
            u.c.role.label("user_role"),
            sa.and_(
                k.c.revoked_at.is_(None),
                u.c.is_active,
                sa.or_(k.c.expires_at.is_(None), now < k.c.expires_at),
            ).label("live"),
            sa.or_(k.c.last_used_at.is_(None), now - k.c.last_used_at > sa.literal(TOUCH_EVERY)).label(
                "stale"
            ),
        )
        .join(u, u.c.id == k.c.user_id)
        .where(k.c.key_hash == digest)
    ).first()
    if row is None or not row.live:
        return None
    if row.stale:
        conn.execute(sa.update(k).where(k.c.id == row.id).values(last_used_at=now))
    return Principal(row.user_id, row.username, row.user_role, key_id=row.id, key_role=row.role)


class ApiAuth:
    """Sessions and API keys, one transaction per call (``ApiAuth(db)``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_session(
        self,
        user_id: uuid.UUID,
        *,
        idle: dt.timedelta = DEFAULT_IDLE,
        absolute: dt.timedelta = DEFAULT_ABSOLUTE,
        actor: Actor | None = None,
    ) -> tuple[str, dt.datetime]:
        """See :func:`create_session`."""
        with self._db.transaction() as conn:
            return create_session(conn, user_id, idle=idle, absolute=absolute, actor=actor)

    def resolve(self, token: str) -> Principal | None:
        """A session token or an API key -> its live principal, or None."""
        with self._db.transaction() as conn:
            if token.startswith(KEY_PREFIX):
                return resolve_api_key(conn, token)
            return resolve_session(conn, token)

    def check(
        self, token: str | None, principal: Principal | None, resource: str | None, action: str | None
    ) -> tuple[Principal | None, bool]:
        """Resolve ``token`` (unless ``principal`` is given) and check one permission, in one transaction.

        Returns ``(principal, allowed)``; ``resource=None`` only checks that the user is active.
        """
        with self._db.transaction() as conn:
            if principal is None and token is not None:
                principal = (
                    resolve_api_key(conn, token)
                    if token.startswith(KEY_PREFIX)
                    else resolve_session(conn, token)
                )
            if principal is None:
                return None, False
            if resource is None or action is None:
                row = conn.execute(sa.select(u.c.is_active).where(u.c.id == principal.user_id)).first()
                return principal, bool(row is not None and row.is_active)
            return principal, allows(conn, principal, resource, action)

    def allows(self, principal: Principal, resource: str, action: str) -> bool:
        """See :func:`allows`."""
        with self._db.transaction() as conn:
            return allows(conn, principal, resource, action)

    def allows_self(self, principal: Principal) -> bool:
        """Is the principal's user still active (for routes on one's own objects)?"""
        with self._db.transaction() as conn:
            row = conn.execute(sa.select(u.c.is_active).where(u.c.id == principal.user_id)).first()
        return bool(row is not None and row.is_active)

    def audit(
        self,
        actor: Actor | None,
        action: str,
        resource_type: str,
        resource_id: object | None,
        old: Any,
        new: Any,
    ) -> int:
        """Write one audit row for a change a service does not audit itself (ingest, instruments)."""
        with self._db.transaction() as conn:
            return audit_as(conn, actor, action, resource_type, resource_id, old, new)

    def logout(self, digest: bytes, *, actor: Actor | None = None) -> bool:
        """See :func:`revoke_session`."""
        with self._db.transaction() as conn:
            return revoke_session(conn, digest, actor=actor)

    def create_api_key(
        self,
        owner: uuid.UUID,
        name: str,
        *,
        role: str | None = None,
        expires_at: dt.datetime | None = None,
        actor: Actor | None = None,
    ) -> tuple[ApiKeyInfo, str]:
        """See :func:`create_api_key`."""
        with self._db.transaction() as conn:
            return create_api_key(conn, owner, name, role=role, expires_at=expires_at, actor=actor)

    def list_api_keys(self, owner: uuid.UUID | None = None) -> list[ApiKeyInfo]:
        """See :func:`list_api_keys`."""
        with self._db.transaction() as conn:
            return list_api_keys(conn, owner)

    def get_api_key(self, key_id: uuid.UUID) -> ApiKeyInfo:
        """See :func:`get_api_key`."""
        with self._db.transaction() as conn:
            return get_api_key(conn, key_id)

    def revoke_api_key(self, key_id: uuid.UUID, *, actor: Actor | None = None) -> ApiKeyInfo:
        """See :func:`revoke_api_key`."""
        with self._db.transaction() as conn:
            return revoke_api_key(conn, key_id, actor=actor)
