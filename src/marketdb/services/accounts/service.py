"""The :class:`Accounts` facade: every accounts operation in its own transaction.

``db.accounts`` (or ``Accounts(db)``) is what the CLI, the HTTP API and
library users call. Each method opens one transaction, does the work through
the module functions (``users``, ``permissions``, ``vault``, ``posts``,
``subscriptions``, ``configurations``) and writes its audit row in that same
transaction. Code that must combine several steps atomically can call the
module functions with its own connection from ``db.transaction()``.

Every mutating method takes ``actor=`` (:class:`~.audit.Actor`: who, from
which IP, with which user agent) for the audit row.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from marketdb.errors import ConfigurationError, NotFound
from marketdb.services.accounts import configurations as cfg_mod
from marketdb.services.accounts import permissions as perm_mod
from marketdb.services.accounts import posts as post_mod
from marketdb.services.accounts import subscriptions as sub_mod
from marketdb.services.accounts import users as user_mod
from marketdb.services.accounts import vault
from marketdb.services.accounts.audit import Actor, AuditEntry, audit_as, query_audit
from marketdb.services.accounts.crypto import KeyRing, SecretValue
from marketdb.services.accounts.passwords import PasswordHasher, default_hasher
from marketdb.services.accounts.redaction import counts
from marketdb.services.accounts.users import AuthenticationFailed, User, UserRef
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = ["Accounts"]

log = logging.getLogger(__name__)

_LOGIN_FAILED = "invalid username or password"


class Accounts:
    """Users, roles and permissions, sealed secrets, audit log, posts, subscriptions, configuration.

    ``keyring`` defaults to the master keys in ``db.settings``
    (``MARKETDB_MASTER_KEYS`` / ``MARKETDB_MASTER_KEY_FILE``), loaded on first
    use; ``hasher`` defaults to argon2id at OWASP's floor.
    """

    def __init__(
        self,
        db: Database,
        *,
        keyring: KeyRing | None = None,
        hasher: PasswordHasher | None = None,
        actor: Actor | None = None,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self.hasher = hasher or default_hasher()
        self.actor = actor

    def __repr__(self) -> str:
        who = "system" if self.actor is None or self.actor.user_id is None else f"user {self.actor.user_id}"
        return f"<Accounts on {self._db!r} as {who}>"

    #: What each guarded method needs: ``method -> (resource, action, owner_may)``.
    #: ``owner_may``: the user the change is about may do it to themselves
    #: (own password, settings, secrets, posts, ...) without the permission.
    PERMISSIONS: ClassVar[Mapping[str, tuple[str, str, bool]]] = {
        "create_user": ("users", "create", False),
        "sign_up": ("users", "create", False),
        "change_password": ("users", "update", True),
        "set_role": ("users", "set_role", False),
        "deactivate": ("users", "update", False),
        "activate": ("users", "update", False),
        "rename_user": ("users", "update", True),
        "update_user_settings": ("users", "update", True),
        "delete_user": ("users", "delete", True),
        "create_role": ("roles", "create", False),
        "delete_role": ("roles", "delete", False),
        "grant": ("permissions", "grant", False),
        "revoke": ("permissions", "revoke", False),
        "set_secret": ("secrets", "update", True),
        "get_secret": ("secrets", "read", True),
        "delete_secret": ("secrets", "delete", True),
        "set_broker_credential": ("broker_credentials", "update", True),
        "get_broker_credential": ("broker_credentials", "read", True),
        "delete_broker_credential": ("broker_credentials", "delete", True),
        "rotate": ("keys", "rotate", False),
        "create_post": ("posts", "create", True),
        "delete_post": ("posts", "delete", True),
        "create_subscription": ("subscriptions", "create", False),
        "set_subscription_status": ("subscriptions", "update", False),
        "cancel_subscription": ("subscriptions", "update", True),
        "set_config": ("configurations", "update", False),
        "delete_config": ("configurations", "delete", False),
    }

    def as_user(
        self,
        user: UserRef,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Accounts:
        """An Accounts acting for ``user`` (id, username or User): every change is
        permission-checked and audited as that user (see :data:`PERMISSIONS`)."""
        with self._db.transaction() as conn:
            user_id = user_mod.resolve_user(conn, user)
        return Accounts(
            self._db,
            keyring=self._keyring,
            hasher=self.hasher,
            actor=Actor(user_id=user_id, ip=ip, user_agent=user_agent),
        )

    def _who(self, actor: Actor | None) -> Actor | None:
        return actor if actor is not None else self.actor

    @contextmanager
    def _guard(
        self,
        method: str,
        actor: Actor | None,
        owner: Callable[[sa.Connection], uuid.UUID | None] | None = None,
    ) -> Iterator[sa.Connection]:
        """One transaction in which ``actor``'s permission for ``method`` is checked first."""
        resource, action, owner_may = self.PERMISSIONS[method]
        with self._db.transaction() as conn:
            owner_id = None
            if owner_may and owner is not None and actor is not None and actor.user_id is not None:
                try:
                    owner_id = owner(conn)
                except NotFound:
                    owner_id = None  # unknown target: the permission decides, then the call says NotFound
            perm_mod.require_actor(conn, actor, resource, action, owner=owner_id)
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A read transaction: the bound user (if any) must exist and be active."""
        with self._db.transaction() as conn:
            perm_mod.require_active(conn, self.actor)
            yield conn

    @cached_property
    def keyring(self) -> KeyRing:
        """The master keys (from the settings unless one was passed in)."""
        if self._keyring is not None:
            return self._keyring
        return KeyRing.from_settings(self._db.settings)

    # ------------------------------------------------------------------ users
    def create_user(
        self,
        username: str | None,
        email: str,
        password: str,
        *,
        role: str | None = None,
        settings: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> User:
        """Create an active user (password hashed with argon2id; see :mod:`.passwords`).

        ``username=None`` derives one from the email (login works with either);
        ``role=None`` gives the default role (configuration ``accounts.default_role``,
        else ``viewer``). ``settings`` must be a JSON object (finite numbers only).
        """
        actor = self._who(actor)
        with self._guard("create_user", actor) as conn:
            return user_mod.create_user(
                conn,
                self.hasher,
                username=username,
                email=email,
                password=password,
                role=role,
                settings=settings,
                actor=actor,
            )

    def sign_up(
        self,
        email: str,
        password: str,
        *,
        username: str | None = None,
        settings: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> User:
        """Register a user by email (seed 002): the default role, a username derived
        from the email unless given; log in later with the email or the username."""
        return self.create_user(username, email, password, settings=settings, actor=actor)

    def authenticate(self, login: str, password: str, *, actor: Actor | None = None) -> User:
        """Return the user whose username or email is ``login`` if ``password`` matches.

        Unknown login, wrong password and deactivated account all raise the same
        :class:`AuthenticationFailed` after the same amount of hashing work. A
        hash with outdated parameters is upgraded on success. Success and
        failure both leave an audit row (failures without the attempted login).
        """
        with self._db.transaction() as conn:
            user, user_id, reason = user_mod.authenticate(conn, self.hasher, login, password, actor=actor)
            if user is None:
                user_mod.record_login_failure(conn, user_id, reason, actor)
        if user is None:
            raise AuthenticationFailed(_LOGIN_FAILED, hint="check the username (or email) and the password")
        return user

    def get_user(self, user: UserRef) -> User:
        """A user by id, username (case-insensitive) or User."""
        with self._read() as conn:
            return user_mod.get_user(conn, user)

    def list_users(self, *, include_inactive: bool = True) -> list[User]:
        """All users by username."""
        with self._read() as conn:
            return user_mod.list_users(conn, include_inactive=include_inactive)

    def change_password(
        self,
        user: UserRef,
        new_password: str,
        *,
        current_password: str | None = None,
        actor: Actor | None = None,
    ) -> None:
        """Set a new password; with ``current_password`` it must match first."""
        actor = self._who(actor)
        with self._guard("change_password", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            user_mod.change_password(
                conn,
                self.hasher,
                user,
                new_password,
                current_password=current_password,
                actor=actor,
            )

    def set_role(self, user: UserRef, role: str, *, actor: Actor | None = None) -> User:
        """Give ``user`` another role."""
        actor = self._who(actor)
        with self._guard("set_role", actor) as conn:
            return user_mod.set_role(conn, user, role, actor=actor)

    def deactivate(self, user: UserRef, *, actor: Actor | None = None) -> User:
        """Deactivate a user: no login, no permissions; data is kept."""
        actor = self._who(actor)
        with self._guard("deactivate", actor) as conn:
            return user_mod.set_active(conn, user, False, actor=actor)

    def activate(self, user: UserRef, *, actor: Actor | None = None) -> User:
        """Reactivate a deactivated user."""
        actor = self._who(actor)
        with self._guard("activate", actor) as conn:
            return user_mod.set_active(conn, user, True, actor=actor)

    def rename_user(
        self,
        user: UserRef,
        *,
        username: str | None = None,
        email: str | None = None,
        actor: Actor | None = None,
    ) -> User:
        """Change username and/or email; the user's posts show the new username."""
        actor = self._who(actor)
        with self._guard("rename_user", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            return user_mod.rename_user(conn, user, username=username, email=email, actor=actor)

    def update_user_settings(
        self,
        user: UserRef,
        settings: Mapping[str, Any],
        *,
        replace: bool = False,
        actor: Actor | None = None,
    ) -> User:
        """Merge (or with ``replace=True`` replace) the user's settings JSON."""
        actor = self._who(actor)
        with self._guard("update_user_settings", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            return user_mod.update_settings(conn, user, settings, replace=replace, actor=actor)

    def delete_user(self, user: UserRef, *, actor: Actor | None = None) -> dict[str, Any]:
        """Delete a user with their posts, secrets, credentials and subscriptions."""
        actor = self._who(actor)
        with self._guard("delete_user", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            return user_mod.delete_user(conn, user, actor=actor)

    # ------------------------------------------------------ roles/permissions
    def authorize(self, user: UserRef, resource: str, action: str) -> bool:
        """May ``user`` do ``action`` on ``resource``? Reads the tables every time."""
        with self._read() as conn:
            return perm_mod.authorize(conn, user, resource, action)

    def require(self, user: UserRef, resource: str, action: str) -> None:
        """Raise PermissionDenied unless :meth:`authorize` allows it."""
        with self._read() as conn:
            perm_mod.require(conn, user, resource, action)

    def list_permissions(self, role: str | None = None) -> list[perm_mod.Permission]:
        """What ``role`` (or every role) may do."""
        with self._read() as conn:
            return perm_mod.list_permissions(conn, role)

    def list_roles(self) -> list[perm_mod.Role]:
        """All roles."""
        with self._read() as conn:
            return perm_mod.list_roles(conn)

    def create_role(
        self, name: str, description: str | None = None, *, actor: Actor | None = None
    ) -> perm_mod.Role:
        """Create a role (grant it permissions with :meth:`grant`)."""
        actor = self._who(actor)
        with self._guard("create_role", actor) as conn:
            return perm_mod.create_role(conn, name, description, actor=actor)

    def delete_role(self, name: str, *, actor: Actor | None = None) -> None:
        """Delete a role no user holds, with its permissions."""
        actor = self._who(actor)
        with self._guard("delete_role", actor) as conn:
            perm_mod.delete_role(conn, name, actor=actor)

    def grant(self, role: str, resource: str, action: str, *, actor: Actor | None = None) -> bool:
        """Allow ``role`` to do ``action`` on ``resource`` ('*' = any). False if already allowed."""
        actor = self._who(actor)
        with self._guard("grant", actor) as conn:
            return perm_mod.grant(conn, role, resource, action, actor=actor)

    def revoke(self, role: str, resource: str, action: str, *, actor: Actor | None = None) -> bool:
        """Remove one grant. False if it did not exist."""
        actor = self._who(actor)
        with self._guard("revoke", actor) as conn:
            return perm_mod.revoke(conn, role, resource, action, actor=actor)

    # ---------------------------------------------------------------- secrets
    def set_secret(
        self,
        user: UserRef,
        key_name: str,
        value: str | bytes | SecretValue,
        *,
        actor: Actor | None = None,
    ) -> vault.SecretInfo:
        """Seal and store (or replace) the user's secret ``key_name``."""
        actor = self._who(actor)
        with self._guard("set_secret", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            return vault.set_secret(conn, self.keyring, user, key_name, value, actor=actor)

    def get_secret(self, user: UserRef, key_name: str) -> SecretValue:
        """Open the user's secret (redacted until ``.reveal()``/``.reveal_text()``)."""
        with self._guard("get_secret", self.actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            return vault.get_secret(conn, self.keyring, user, key_name)

    def list_secrets(self, user: UserRef) -> list[vault.SecretInfo]:
        """Names and key ids of the user's secrets (never values)."""
        with self._read() as conn:
            return vault.list_secrets(conn, user)

    def delete_secret(self, user: UserRef, key_name: str, *, actor: Actor | None = None) -> None:
        """Delete the user's secret ``key_name``."""
        actor = self._who(actor)
        with self._guard("delete_secret", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            vault.delete_secret(conn, user, key_name, actor=actor)

    def set_broker_credential(
        self,
        broker_name: str,
        api_key: str | bytes | SecretValue,
        secret: str | bytes | SecretValue,
        *,
        user: UserRef | None = None,
        label: str = "default",
        config: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> vault.BrokerCredentialInfo:
        """Seal and store (or replace) a broker API key and secret."""
        actor = self._who(actor)
        with self._guard(
            "set_broker_credential",
            actor,
            None if user is None else (lambda c: user_mod.resolve_user(c, user)),
        ) as conn:
            return vault.set_broker_credential(
                conn,
                self.keyring,
                broker_name=broker_name,
                api_key=api_key,
                secret=secret,
                user=user,
                label=label,
                config=config,
                actor=actor,
            )

    def get_broker_credential(self, credential_id: int) -> vault.BrokerCredential:
        """Open a broker credential (values redacted until revealed)."""
        with self._guard(
            "get_broker_credential", self.actor, lambda c: _owner_of(c, t.broker_credentials, credential_id)
        ) as conn:
            return vault.get_broker_credential(conn, self.keyring, credential_id)

    def list_broker_credentials(
        self, user: UserRef | None = None, *, shared: bool = False
    ) -> list[vault.BrokerCredentialInfo]:
        """Broker credentials without their values."""
        with self._read() as conn:
            return vault.list_broker_credentials(conn, user, shared=shared)

    def delete_broker_credential(self, credential_id: int, *, actor: Actor | None = None) -> None:
        """Delete a broker credential."""
        actor = self._who(actor)
        with self._guard(
            "delete_broker_credential", actor, lambda c: _owner_of(c, t.broker_credentials, credential_id)
        ) as conn:
            vault.delete_broker_credential(conn, credential_id, actor=actor)

    # ------------------------------------------------------------------- keys
    def key_status(self) -> list[vault.KeyStatus]:
        """Configured and used master key ids, with row counts and fingerprints."""
        with self._read() as conn:
            return vault.key_status(conn, self.keyring)

    def rotate(
        self,
        to_key_id: str | None = None,
        *,
        batch_size: int = 100,
        max_passes: int = 5,
        actor: Actor | None = None,
    ) -> vault.RotationReport:
        """Re-wrap every secret's data key under ``to_key_id`` (default: the primary key).

        No downtime: rows are re-wrapped in small transactions of ``batch_size``
        rows, so readers and writers only ever wait for one short batch; rows a
        concurrent writer holds are skipped and retried in a later pass (up to
        ``max_passes``). Only the data keys change, never the ciphertexts. Rows
        whose key is missing or that fail authentication are reported, not
        fatal. Keep the old master key configured until the report says
        ``complete``; then it can be retired.
        """
        actor = self._who(actor)
        with self._guard("rotate", actor):
            pass  # who may rotate is checked up front; the batches run as that actor
        keyring = self.keyring
        target = keyring.primary_key_id if to_key_id is None else to_key_id
        if not keyring.has_key(target):
            raise ConfigurationError(
                f"cannot rotate to master key {target!r}: it is not configured",
                hint="add it to MARKETDB_MASTER_KEYS or the key file, then run again",
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        report = vault.RotationReport(target)
        skip: dict[str, set[Any]] = {name: set() for name in vault.ROTATION_TABLES}
        for _ in range(max_passes):
            for name in vault.ROTATION_TABLES:
                after: Any = None
                while True:
                    with self._db.transaction() as conn:
                        n, failures, last = vault.rotate_batch(
                            conn,
                            keyring,
                            name,
                            target,
                            after=after,
                            skip=skip[name],
                            batch_size=batch_size,
                            actor=actor,
                        )
                    report.rewrapped[name] += n
                    report.failed.extend(failures)
                    if last is None:
                        break
                    after = last
            with self._db.transaction() as conn:
                left = vault.count_not_under(conn, target, skip=skip)
            if not any(left.values()):
                break
        with self._db.transaction() as conn:
            report.remaining = vault.count_not_under(conn, target)
            audit_as(
                conn,
                actor,
                "keys.rotate",
                "master_key",
                target,
                None,
                {
                    "rewrapped": counts(report.rewrapped),
                    "failed_count": len(report.failed),
                    "remaining": counts(report.remaining),
                },
            )
        log.info(
            "key rotation to %s: %d re-wrapped, %d failed, %s remaining",
            target,
            report.total,
            len(report.failed),
            report.remaining,
        )
        return report

    # ------------------------------------------------------------------ audit
    def audit_log(
        self,
        *,
        user: UserRef | None = None,
        resource_type: str | None = None,
        resource_id: object | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit rows by acting user, resource and time window, newest first."""
        with self._read() as conn:
            user_id = None if user is None else user_mod.resolve_user(conn, user)
            return query_audit(
                conn,
                user_id=user_id,
                resource_type=resource_type,
                resource_id=resource_id,
                action=action,
                since=since,
                until=until,
                limit=limit,
            )

    # ------------------------------------------------------------------ posts
    def create_post(
        self,
        user: UserRef,
        text: str,
        *,
        strategy_id: str | None = None,
        actor: Actor | None = None,
    ) -> post_mod.Post:
        """Publish a post as ``user``."""
        actor = self._who(actor)
        with self._guard("create_post", actor, lambda c: user_mod.resolve_user(c, user)) as conn:
            return post_mod.create_post(conn, user, text, strategy_id=strategy_id, actor=actor)

    def get_post(self, post_id: uuid.UUID | str) -> post_mod.Post:
        """One post."""
        with self._read() as conn:
            return post_mod.get_post(conn, post_id)

    def list_posts(
        self, user: UserRef, *, limit: int = 50, before: dt.datetime | None = None
    ) -> list[post_mod.Post]:
        """The user's posts, newest first."""
        with self._read() as conn:
            return post_mod.list_posts(conn, user, limit=limit, before=before)

    def feed(self, *, limit: int = 50, before: dt.datetime | None = None) -> list[post_mod.Post]:
        """Everyone's posts, newest first."""
        with self._read() as conn:
            return post_mod.feed(conn, limit=limit, before=before)

    def delete_post(self, post_id: uuid.UUID | str, *, actor: Actor | None = None) -> None:
        """Delete a post."""
        actor = self._who(actor)
        with self._guard("delete_post", actor, lambda c: _owner_of(c, t.posts, post_id)) as conn:
            post_mod.delete_post(conn, post_id, actor=actor)

    # ---------------------------------------------------------- subscriptions
    def create_subscription(
        self,
        user: UserRef,
        plan: str,
        start_date: dt.date,
        end_date: dt.date | None = None,
        *,
        status: str = "active",
        actor: Actor | None = None,
    ) -> sub_mod.Subscription:
        """Add a subscription (``end_date`` inclusive, None = open-ended)."""
        actor = self._who(actor)
        with self._guard("create_subscription", actor) as conn:
            return sub_mod.create_subscription(
                conn, user, plan, start_date, end_date, status=status, actor=actor
            )

    def set_subscription_status(
        self,
        subscription_id: uuid.UUID | str,
        status: str,
        *,
        end_date: dt.date | None = None,
        actor: Actor | None = None,
    ) -> sub_mod.Subscription:
        """Change a subscription's status (and optionally its end date)."""
        actor = self._who(actor)
        with self._guard("set_subscription_status", actor) as conn:
            return sub_mod.set_status(conn, subscription_id, status, end_date=end_date, actor=actor)

    def cancel_subscription(
        self,
        subscription_id: uuid.UUID | str,
        *,
        last_day: dt.date | None = None,
        actor: Actor | None = None,
    ) -> sub_mod.Subscription:
        """Cancel with access until ``last_day`` (default today, UTC)."""
        actor = self._who(actor)
        with self._guard(
            "cancel_subscription", actor, lambda c: _owner_of(c, t.subscriptions, subscription_id)
        ) as conn:
            return sub_mod.cancel_subscription(conn, subscription_id, last_day=last_day, actor=actor)

    def list_subscriptions(self, user: UserRef) -> list[sub_mod.Subscription]:
        """The user's subscriptions."""
        with self._read() as conn:
            return sub_mod.list_subscriptions(conn, user)

    def is_subscription_active(self, user: UserRef, on: dt.date | None = None) -> bool:
        """Is this user's subscription active on ``on`` (default today, UTC)?"""
        with self._read() as conn:
            return sub_mod.is_active(conn, user, on)

    # --------------------------------------------------------- configurations
    def set_config(
        self,
        key: str,
        value: Any,
        *,
        description: str | None = None,
        actor: Actor | None = None,
    ) -> cfg_mod.Configuration:
        """Create or replace a configuration entry."""
        actor = self._who(actor)
        with self._guard("set_config", actor) as conn:
            return cfg_mod.set_config(conn, key, value, description=description, actor=actor)

    def get_config(self, key: str, default: Any = ...) -> Any:
        """A configuration value (``default`` if absent and given, else NotFound)."""
        with self._read() as conn:
            return cfg_mod.get_config(conn, key, default)

    def list_configs(self, prefix: str | None = None) -> list[cfg_mod.Configuration]:
        """Configuration entries by key."""
        with self._read() as conn:
            return cfg_mod.list_configs(conn, prefix)

    def delete_config(self, key: str, *, actor: Actor | None = None) -> None:
        """Delete a configuration entry."""
        actor = self._who(actor)
        with self._guard("delete_config", actor) as conn:
            cfg_mod.delete_config(conn, key, actor=actor)


def _owner_of(conn: sa.Connection, table: sa.Table, row_id: object) -> uuid.UUID | None:
    """The ``user_id`` of a post, broker credential or subscription (None if absent or shared)."""
    key: object
    try:
        if table is t.broker_credentials:
            if isinstance(row_id, bool):
                return None
            key = int(str(row_id))
        else:
            key = row_id if isinstance(row_id, uuid.UUID) else uuid.UUID(str(row_id))
    except ValueError:
        return None  # a malformed id: the call itself reports it
    found = conn.execute(sa.select(table.c.user_id).where(table.c.id == key)).first()
    return None if found is None else found.user_id
