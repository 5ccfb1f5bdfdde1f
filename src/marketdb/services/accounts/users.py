"""Users: create, look up, authenticate, change password, role, activity, rename, delete.

Functions here take the SQLAlchemy connection of the caller's transaction and
write one audit row per mutation in it. :class:`~.service.Accounts` wraps
them in transactions.

Usernames and emails are unique case-insensitively (unique indexes on
``lower(...)``); the stored spelling is kept as given.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from marketdb.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.accounts.passwords import PasswordHasher
from marketdb.services.accounts.redaction import counts
from marketdb.store.schema import tables as t

__all__ = [
    "AuthenticationFailed",
    "User",
    "UserRef",
    "authenticate",
    "change_password",
    "check_username",
    "create_user",
    "delete_user",
    "get_user",
    "list_users",
    "record_login_failure",
    "rename_user",
    "resolve_user",
    "set_active",
    "set_role",
    "update_settings",
]

u = t.users

_PUBLIC_COLUMNS: Final = (
    u.c.id,
    u.c.username,
    u.c.email,
    u.c.role,
    u.c.is_active,
    u.c.settings,
    u.c.created_at,
    u.c.updated_at,
    u.c.last_login,
)


@dataclass(frozen=True, slots=True)
class User:
    """A user account as services see it (never the password hash)."""

    id: uuid.UUID
    username: str
    email: str
    role: str
    is_active: bool
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    last_login: dt.datetime | None = None

    def public(self) -> dict[str, Any]:
        """The user as a JSON-friendly dict (for audit rows, the CLI and the API)."""
        return {
            "id": str(self.id),
            "username": self.username,
            "email": self.email,
            "role": self.role,
            "is_active": self.is_active,
            "settings": self.settings,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "last_login": None if self.last_login is None else self.last_login.isoformat(),
        }


#: A user named by id (UUID or its text), by username (case-insensitive), or a :class:`User`.
UserRef = User | uuid.UUID | str


def check_username(value: object) -> str:
    """A username: 1-64 printable characters, no '@', not shaped like a UUID.

    Quotes, semicolons and SQL words are fine and stored literally. '@' is
    refused so a username can never equal another account's email at login,
    and a UUID-shaped name would be confused with a user id.
    """
    name = v.name_text("username", value, max_len=v.USERNAME_MAX)
    if "@" in name:
        raise InvalidInput("username must not contain '@'", hint="use the email field for the email address")
    try:
        uuid.UUID(name)
    except ValueError:
        return name
    raise InvalidInput("username must not look like a UUID", hint="it would be confused with a user id")


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        email=row.email,
        role=row.role,
        is_active=row.is_active,
        settings=dict(row.settings or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login=row.last_login,
    )


def _where_ref(ref: UserRef) -> sa.ColumnElement[bool]:
    if isinstance(ref, User):
        return u.c.id == ref.id
    if isinstance(ref, uuid.UUID):
        return u.c.id == ref
    if isinstance(ref, str):
        try:
            return u.c.id == uuid.UUID(ref)
        except ValueError:
            pass
        if not v.storable(ref):
            raise InvalidInput(
                "a username cannot contain NUL or unpaired surrogate characters",
                hint="check the username",
            )
        return sa.func.lower(u.c.username) == sa.func.lower(ref)
    raise InvalidInput(
        f"a user is named by id, username or User, not {type(ref).__name__}",
        hint="pass the user's id (UUID), username or User object",
    )


def _describe(ref: UserRef) -> str:
    return str(ref.id) if isinstance(ref, User) else str(ref)


def get_user(conn: sa.Connection, ref: UserRef, *, for_update: bool = False) -> User:
    """The user named by ``ref`` (id, username case-insensitively, or User)."""
    stmt = sa.select(*_PUBLIC_COLUMNS).where(_where_ref(ref))
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(
            f"no user {_describe(ref)!r}",
            hint="check the spelling, or list users with `marketdb users list`",
        )
    return _user(row)


def resolve_user(conn: sa.Connection, ref: UserRef) -> uuid.UUID:
    """The id of the user named by ``ref``; :class:`NotFound` if there is none.

    A :class:`User` is trusted as loaded; ids and usernames are looked up.
    """
    if isinstance(ref, User):
        return ref.id
    found: uuid.UUID | None = conn.execute(sa.select(u.c.id).where(_where_ref(ref))).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"no user {_describe(ref)!r}",
            hint="check the spelling, or list users with `marketdb users list`",
        )
    return found


def list_users(conn: sa.Connection, *, include_inactive: bool = True) -> list[User]:
    """All users, by username."""
    stmt = sa.select(*_PUBLIC_COLUMNS).order_by(sa.func.lower(u.c.username))
    if not include_inactive:
        stmt = stmt.where(u.c.is_active)
    return [_user(r) for r in conn.execute(stmt)]


def _check_role(conn: sa.Connection, role: str) -> str:
    role = v.name_text("role", role)
    if conn.execute(sa.select(t.roles.c.name).where(t.roles.c.name == role)).first() is None:
        names = conn.execute(sa.select(t.roles.c.name).order_by(t.roles.c.name)).scalars().all()
        raise InvalidInput(
            f"unknown role {role!r}", hint=f"use one of: {', '.join(names)} (or create the role)"
        )
    return role


#: Configuration key naming the role new users get when none is given.
DEFAULT_ROLE_KEY: Final = "accounts.default_role"
_FALLBACK_ROLE: Final = "viewer"


def default_role(conn: sa.Connection) -> str:
    """The role of new users: configuration ``accounts.default_role``, else ``viewer``.

    Roles are data: an application sets its own default with
    ``Accounts.set_config("accounts.default_role", "user")`` (seed 002's role
    ``user`` ships with marketdb).
    """
    value = conn.execute(
        sa.select(t.configurations.c.value).where(t.configurations.c.key == DEFAULT_ROLE_KEY)
    ).scalar_one_or_none()
    return value if isinstance(value, str) and value else _FALLBACK_ROLE


def _username_from_email(conn: sa.Connection, email: str) -> str:
    """A free username made from the email's local part (``alice``, ``alice-2``, ...)."""
    local = email.split("@", 1)[0]
    base = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in local).strip("-.") or "user"
    base = base[: v.USERNAME_MAX - 8]
    taken = set(
        conn.execute(
            sa.select(sa.func.lower(u.c.username)).where(
                sa.func.lower(u.c.username).like(sa.func.lower(sa.literal(base + "%")))
            )
        ).scalars()
    )
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}-{n}"
    try:
        uuid.UUID(candidate)
    except ValueError:
        return candidate
    return f"user-{candidate[:8]}"


def _check_unique(
    conn: sa.Connection, *, username: str | None, email: str | None, except_id: uuid.UUID | None
) -> None:
    for column, value, what in ((u.c.username, username, "username"), (u.c.email, email, "email")):
        if value is None:
            continue
        # lower() on both sides, by the server: the same folding as the unique indexes.
        stmt = sa.select(u.c.id).where(sa.func.lower(column) == sa.func.lower(value))
        if except_id is not None:
            stmt = stmt.where(u.c.id != except_id)
        if conn.execute(stmt).first() is not None:
            raise Conflict(
                f"{what} {value!r} is already taken (case-insensitively)",
                hint=f"choose another {what}",
            )


def _unique_violation(exc: sa.exc.IntegrityError, username: str | None, email: str | None) -> Conflict:
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""
    what, value = ("email", email) if "email" in constraint else ("username", username)
    return Conflict(f"{what} {value!r} is already taken (case-insensitively)", hint=f"choose another {what}")


def create_user(
    conn: sa.Connection,
    hasher: PasswordHasher,
    *,
    username: str | None,
    email: str,
    password: str,
    role: str | None = None,
    settings: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
) -> User:
    """Create an active user with an argon2id password hash.

    ``username=None`` (sign-up with an email only) derives a free username from
    the email's local part (``alice@x.org`` -> ``alice``, ``alice-2``, ...); the
    user can log in with either. ``role=None`` takes :func:`default_role`.

    Raises:
        InvalidInput: bad username, email or role, or the password breaks the policy.
        Conflict: the username or email is taken (case-insensitively).
    """
    email = v.email_text(email)
    clean_settings = v.json_object("settings", {} if settings is None else settings)
    username = check_username(username) if username is not None else _username_from_email(conn, email)
    role = _check_role(conn, role if role is not None else default_role(conn))
    _check_unique(conn, username=username, email=email, except_id=None)
    password_hash = hasher.hash(password, context=(username, email))
    try:
        with conn.begin_nested():
            row = conn.execute(
                sa.insert(u)
                .values(
                    username=username,
                    email=email,
                    password_hash=password_hash,
                    role=role,
                    settings=clean_settings,
                )
                .returning(*_PUBLIC_COLUMNS)
            ).one()
    except sa.exc.IntegrityError as exc:  # a concurrent insert won the race
        raise _unique_violation(exc, username, email) from None
    user = _user(row)
    audit_as(conn, actor, "user.create", "user", user.id, None, user.public())
    return user


def authenticate(
    conn: sa.Connection,
    hasher: PasswordHasher,
    login: str,
    password: str,
    *,
    actor: Actor | None = None,
) -> tuple[User | None, uuid.UUID | None, str]:
    """Check a login (username or email) and password.

    Returns ``(user, None, "ok")`` on success, after recording ``last_login``,
    upgrading an outdated hash and writing a ``user.login`` audit row. On
    failure returns ``(None, user_id_or_None, reason)`` without raising, so the
    caller can commit a ``user.login_failed`` audit row before raising
    :class:`AuthenticationFailed`. Every path verifies exactly one argon2 hash
    (a dummy one for unknown logins), so timing does not reveal which logins exist.
    """
    login_text = login if isinstance(login, str) and v.storable(login) else ""
    row = None
    if login_text and len(login_text) <= v.EMAIL_MAX:
        key = sa.func.lower(sa.literal(login_text, sa.Text()))
        row = conn.execute(
            sa.select(*_PUBLIC_COLUMNS, u.c.password_hash)
            .where(sa.or_(sa.func.lower(u.c.username) == key, sa.func.lower(u.c.email) == key))
            .order_by(
                # A username match wins over an email match of another account.
                sa.case((sa.func.lower(u.c.username) == key, 0), else_=1)
            )
            .limit(1)
        ).first()
    if row is None:
        hasher.verify_dummy(password)
        return None, None, "unknown_user"
    if not hasher.verify(row.password_hash, password):
        return None, row.id, "bad_password"
    if not row.is_active:
        return None, row.id, "inactive"
    values: dict[str, Any] = {"last_login": sa.func.now()}
    if hasher.needs_rehash(row.password_hash):
        values["password_hash"] = hasher.rehash(password)
    updated = conn.execute(
        sa.update(u).where(u.c.id == row.id).values(**values).returning(*_PUBLIC_COLUMNS)
    ).one()
    user = _user(updated)
    new: dict[str, Any] = {"last_login": user.last_login}
    if "password_hash" in values:
        new["hash_upgraded"] = True
    audit_as(conn, actor, "user.login", "user", user.id, None, new, default_user_id=user.id)
    return user, user.id, "ok"


def record_login_failure(
    conn: sa.Connection, user_id: uuid.UUID | None, reason: str, actor: Actor | None
) -> None:
    """Audit a refused login (the attempted login text is not recorded: it may be a password)."""
    audit_as(conn, actor, "user.login_failed", "user", user_id, None, {"reason": reason})


def change_password(
    conn: sa.Connection,
    hasher: PasswordHasher,
    ref: UserRef,
    new_password: str,
    *,
    current_password: str | None = None,
    actor: Actor | None = None,
) -> None:
    """Set a new password. With ``current_password``, it must match first (self-service).

    Raises:
        AuthenticationFailed: ``current_password`` is given and wrong.
        InvalidInput: the new password breaks the policy.
    """
    user = get_user(conn, ref, for_update=True)
    if current_password is not None:
        stored = conn.execute(sa.select(u.c.password_hash).where(u.c.id == user.id)).scalar_one()
        if not hasher.verify(stored, current_password):
            raise AuthenticationFailed(
                "the current password is wrong", hint="type the current password again"
            )
    new_hash = hasher.hash(new_password, context=(user.username, user.email))
    conn.execute(
        sa.update(u).where(u.c.id == user.id).values(password_hash=new_hash, updated_at=sa.func.now())
    )
    audit_as(conn, actor, "user.password_change", "user", user.id, None, {"password": "changed"})


def _update(
    conn: sa.Connection,
    ref: UserRef,
    action: str,
    changes: dict[str, Any],
    actor: Actor | None,
) -> User:
    before = get_user(conn, ref, for_update=True)
    old = {k: getattr(before, k) for k in changes}
    if old == changes:
        return before
    row = conn.execute(
        sa.update(u)
        .where(u.c.id == before.id)
        .values(**changes, updated_at=sa.func.now())
        .returning(*_PUBLIC_COLUMNS)
    ).one()
    audit_as(conn, actor, action, "user", before.id, old, changes)
    return _user(row)


def set_role(conn: sa.Connection, ref: UserRef, role: str, *, actor: Actor | None = None) -> User:
    """Give the user another role (it must exist in ``roles``)."""
    return _update(conn, ref, "user.set_role", {"role": _check_role(conn, role)}, actor)


def set_active(conn: sa.Connection, ref: UserRef, active: bool, *, actor: Actor | None = None) -> User:
    """Deactivate (``active=False``) or reactivate a user. Inactive users cannot log in."""
    action = "user.activate" if active else "user.deactivate"
    return _update(conn, ref, action, {"is_active": bool(active)}, actor)


def update_settings(
    conn: sa.Connection,
    ref: UserRef,
    settings: Mapping[str, Any],
    *,
    replace: bool = False,
    actor: Actor | None = None,
) -> User:
    """Merge ``settings`` into the user's settings (top-level keys), or replace them."""
    settings = v.json_object("settings", settings)
    before = get_user(conn, ref, for_update=True)
    merged = dict(settings) if replace else {**before.settings, **settings}
    return _update(conn, before, "user.update_settings", {"settings": merged}, actor)


def rename_user(
    conn: sa.Connection,
    ref: UserRef,
    *,
    username: str | None = None,
    email: str | None = None,
    actor: Actor | None = None,
) -> User:
    """Change username and/or email; the denormalised ``posts.username`` follows.

    Raises:
        Conflict: the new username or email belongs to another user.
    """
    before = get_user(conn, ref, for_update=True)
    changes: dict[str, Any] = {}
    if username is not None:
        changes["username"] = check_username(username)
    if email is not None:
        changes["email"] = v.email_text(email)
    if not changes:
        return before
    _check_unique(
        conn,
        username=changes.get("username"),
        email=changes.get("email"),
        except_id=before.id,
    )
    try:
        with conn.begin_nested():
            after = _update(conn, before, "user.rename", changes, actor)
    except sa.exc.IntegrityError as exc:
        raise _unique_violation(exc, changes.get("username"), changes.get("email")) from None
    if after.username != before.username:
        conn.execute(sa.update(t.posts).where(t.posts.c.user_id == after.id).values(username=after.username))
    return after


def delete_user(conn: sa.Connection, ref: UserRef, *, actor: Actor | None = None) -> dict[str, Any]:
    """Delete a user; posts, secrets, broker credentials and subscriptions go with it.

    Returns what was removed (counts, secret key names; never values). The
    audit row is written first, so it survives even when the actor deletes
    themself (its ``user_id`` is then cleared by the foreign key, ``actor``
    keeps the name).
    """
    user = get_user(conn, ref, for_update=True)

    def count(table: sa.Table) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user.id)
            ).scalar_one()
        )

    key_names = (
        conn.execute(
            sa.select(t.user_secrets.c.key_name)
            .where(t.user_secrets.c.user_id == user.id)
            .order_by(t.user_secrets.c.key_name)
        )
        .scalars()
        .all()
    )
    removed = {
        "posts": count(t.posts),
        "user_secrets": len(key_names),
        "secret_key_names": list(key_names),
        "broker_credentials": count(t.broker_credentials),
        "subscriptions": count(t.subscriptions),
    }
    audited = {
        **counts({k: n for k, n in removed.items() if isinstance(n, int)}),
        "secret_key_names": removed["secret_key_names"],
    }
    audit_as(conn, actor, "user.delete", "user", user.id, {**user.public(), "removed": audited}, None)
    conn.execute(sa.delete(u).where(u.c.id == user.id))
    return removed
