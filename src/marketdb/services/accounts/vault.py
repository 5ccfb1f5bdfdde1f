"""Sealed secrets: ``user_secrets``, ``broker_credentials`` and master-key rotation.

Values are sealed with :class:`~.crypto.KeyRing` before they reach SQL and
opened only on request; only ciphertext, the wrapped data key and the master
key id are stored. Row bindings (associated data):

* ``user_secrets``: ``user_secret|<user_id>|<key_name>`` for the value and its data key.
* ``broker_credentials``: data key bound to ``broker_credential|<id>``; the two
  values to ``broker_credential|<id>|api_key`` and ``broker_credential|<id>|secret``.

Audit rows name the secret (owner, key name, broker, master key id), never its value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from marketdb.errors import ConfigurationError, InvalidInput, MarketdbError, NotFound
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.accounts.crypto import (
    KeyRing,
    Sealed,
    SealedFields,
    SecretValue,
    broker_credential_row_aad,
    user_secret_aad,
)
from marketdb.services.accounts.users import UserRef, resolve_user
from marketdb.store.schema import tables as t

__all__ = [
    "ROTATION_TABLES",
    "BrokerCredential",
    "BrokerCredentialInfo",
    "KeyStatus",
    "RotationReport",
    "SecretInfo",
    "count_not_under",
    "delete_broker_credential",
    "delete_secret",
    "get_broker_credential",
    "get_secret",
    "key_status",
    "list_broker_credentials",
    "list_secrets",
    "rotate_batch",
    "set_broker_credential",
    "set_secret",
]

us = t.user_secrets
bc = t.broker_credentials

#: The largest secret value accepted (bytes); secrets are tokens and keys, not files.
MAX_SECRET_BYTES: Final = 64 * 1024
BROKER_FIELDS: Final = ("api_key", "secret")


def _secret(what: str, value: object) -> SecretValue:
    if isinstance(value, SecretValue):
        secret = value
    elif isinstance(value, str | bytes):
        secret = SecretValue(value)
    else:
        raise InvalidInput(f"{what} must be text or bytes", hint=f"pass the {what} as str or bytes")
    if len(secret) == 0:
        raise InvalidInput(f"{what} is empty", hint=f"give a non-empty {what}")
    if len(secret) > MAX_SECRET_BYTES:
        raise InvalidInput(
            f"{what} is too large ({len(secret)} bytes; at most {MAX_SECRET_BYTES})",
            hint="store a reference to large material, not the material itself",
        )
    return secret


# ---------------------------------------------------------------- user secrets


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What is known about a stored user secret without opening it."""

    id: uuid.UUID
    user_id: uuid.UUID
    key_name: str
    encryption_key_id: str
    created_at: dt.datetime
    updated_at: dt.datetime


def _info(row: Any) -> SecretInfo:
    return SecretInfo(
        row.id, row.user_id, row.key_name, row.encryption_key_id, row.created_at, row.updated_at
    )


def set_secret(
    conn: sa.Connection,
    keyring: KeyRing,
    user: UserRef,
    key_name: str,
    value: str | bytes | SecretValue,
    *,
    actor: Actor | None = None,
) -> SecretInfo:
    """Store (or replace) the user's secret ``key_name``, sealed under the primary key."""
    user_id = resolve_user(conn, user)
    key_name = v.name_text("key name", key_name, max_len=v.KEY_NAME_MAX)
    secret = _secret("secret value", value)
    sealed = keyring.seal(secret, user_secret_aad(user_id, key_name))
    existing = conn.execute(
        sa.select(us.c.id, us.c.encryption_key_id)
        .where(us.c.user_id == user_id, us.c.key_name == key_name)
        .with_for_update()
    ).first()
    columns = {
        "encrypted_value": sealed.ciphertext,
        "wrapped_key": sealed.wrapped_key,
        "encryption_key_id": sealed.key_id,
    }
    if existing is None:
        row = conn.execute(
            sa.insert(us).values(user_id=user_id, key_name=key_name, **columns).returning(us)
        ).one()
        old = None
        action = "user_secret.create"
    else:
        row = conn.execute(
            sa.update(us)
            .where(us.c.id == existing.id)
            .values(**columns, updated_at=sa.func.now())
            .returning(us)
        ).one()
        old = {"encryption_key_id": existing.encryption_key_id}
        action = "user_secret.update"
    new = {"user_id": user_id, "key_name": key_name, "encryption_key_id": sealed.key_id}
    audit_as(conn, actor, action, "user_secret", row.id, old, new)
    return _info(row)


def get_secret(conn: sa.Connection, keyring: KeyRing, user: UserRef, key_name: str) -> SecretValue:
    """Open the user's secret ``key_name``.

    Raises:
        NotFound: the user has no secret by that name.
        ConfigurationError: its master key is not configured.
        SecretIntegrityError: the stored value does not authenticate.
    """
    user_id = resolve_user(conn, user)
    key_name = v.name_text("key name", key_name, max_len=v.KEY_NAME_MAX)
    row = conn.execute(
        sa.select(us.c.encrypted_value, us.c.wrapped_key, us.c.encryption_key_id).where(
            us.c.user_id == user_id, us.c.key_name == key_name
        )
    ).first()
    if row is None:
        raise NotFound(
            f"user {user_id} has no secret named {key_name!r}",
            hint="list the user's secrets with `marketdb secrets list`",
        )
    sealed = Sealed(bytes(row.encrypted_value), bytes(row.wrapped_key), row.encryption_key_id)
    return keyring.open_secret(sealed, user_secret_aad(user_id, key_name))


def list_secrets(conn: sa.Connection, user: UserRef) -> list[SecretInfo]:
    """The names (and master key ids) of the user's secrets, never their values."""
    user_id = resolve_user(conn, user)
    stmt = sa.select(us).where(us.c.user_id == user_id).order_by(us.c.key_name)
    return [_info(r) for r in conn.execute(stmt)]


def delete_secret(conn: sa.Connection, user: UserRef, key_name: str, *, actor: Actor | None = None) -> None:
    """Delete the user's secret ``key_name``.

    Raises:
        NotFound: there is no such secret.
    """
    user_id = resolve_user(conn, user)
    key_name = v.name_text("key name", key_name, max_len=v.KEY_NAME_MAX)
    row = conn.execute(
        sa.delete(us)
        .where(us.c.user_id == user_id, us.c.key_name == key_name)
        .returning(us.c.id, us.c.encryption_key_id)
    ).first()
    if row is None:
        raise NotFound(
            f"user {user_id} has no secret named {key_name!r}",
            hint="list the user's secrets with `marketdb secrets list`",
        )
    old = {"user_id": user_id, "key_name": key_name, "encryption_key_id": row.encryption_key_id}
    audit_as(conn, actor, "user_secret.delete", "user_secret", row.id, old, None)


# ---------------------------------------------------------- broker credentials


@dataclass(frozen=True, slots=True)
class BrokerCredentialInfo:
    """A broker credential row without its sealed values."""

    id: int
    user_id: uuid.UUID | None
    broker_name: str
    label: str
    encryption_key_id: str
    config: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class BrokerCredential:
    """An opened broker credential: ``api_key`` and ``secret`` stay redacted until revealed."""

    info: BrokerCredentialInfo
    api_key: SecretValue
    secret: SecretValue


def _bc_info(row: Any) -> BrokerCredentialInfo:
    return BrokerCredentialInfo(
        id=row.id,
        user_id=row.user_id,
        broker_name=row.broker_name,
        label=row.label,
        encryption_key_id=row.encryption_key_id,
        config=dict(row.config or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_BC_PUBLIC = (
    bc.c.id,
    bc.c.user_id,
    bc.c.broker_name,
    bc.c.label,
    bc.c.encryption_key_id,
    bc.c.config,
    bc.c.created_at,
    bc.c.updated_at,
)


def set_broker_credential(
    conn: sa.Connection,
    keyring: KeyRing,
    *,
    broker_name: str,
    api_key: str | bytes | SecretValue,
    secret: str | bytes | SecretValue,
    user: UserRef | None = None,
    label: str = "default",
    config: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
) -> BrokerCredentialInfo:
    """Store (or replace) the credential ``(user, broker_name, label)``; ``user=None`` is shared.

    ``config`` (broker options such as the base URL or account id) is stored as
    JSON in clear; put nothing secret in it.
    """
    user_id = None if user is None else resolve_user(conn, user)
    broker_name = v.name_text("broker name", broker_name)
    label = v.name_text("label", label)
    values = {"api_key": _secret("API key", api_key), "secret": _secret("API secret", secret)}
    if config is not None and not isinstance(config, Mapping):
        raise InvalidInput("config must be a mapping", hint="pass a dict of broker options")
    owner = bc.c.user_id.is_(None) if user_id is None else bc.c.user_id == user_id
    existing = conn.execute(
        sa.select(*_BC_PUBLIC)
        .where(owner, bc.c.broker_name == broker_name, bc.c.label == label)
        .with_for_update()
    ).first()
    if existing is None:
        # The row id is part of the binding, so draw it before sealing.
        cred_id = conn.execute(
            sa.select(sa.func.nextval(sa.func.pg_get_serial_sequence("broker_credentials", "id")))
        ).scalar_one()
    else:
        cred_id = existing.id
    sealed = keyring.seal_fields(values, broker_credential_row_aad(cred_id))
    columns = {
        "encrypted_api_key": sealed.ciphertexts["api_key"],
        "encrypted_secret": sealed.ciphertexts["secret"],
        "wrapped_key": sealed.wrapped_key,
        "encryption_key_id": sealed.key_id,
    }
    if existing is None:
        row = conn.execute(
            sa.insert(bc)
            .values(
                id=cred_id,
                user_id=user_id,
                broker_name=broker_name,
                label=label,
                config=dict(config or {}),
                **columns,
            )
            .returning(*_BC_PUBLIC)
        ).one()
        old = None
        action = "broker_credential.create"
    else:
        changes: dict[str, Any] = dict(columns)
        if config is not None:
            changes["config"] = dict(config)
        row = conn.execute(
            sa.update(bc)
            .where(bc.c.id == cred_id)
            .values(**changes, updated_at=sa.func.now())
            .returning(*_BC_PUBLIC)
        ).one()
        old = _bc_audit(_bc_info(existing))
        action = "broker_credential.update"
    info = _bc_info(row)
    audit_as(conn, actor, action, "broker_credential", info.id, old, _bc_audit(info))
    return info


def _bc_audit(info: BrokerCredentialInfo) -> dict[str, Any]:
    return {
        "user_id": info.user_id,
        "broker_name": info.broker_name,
        "label": info.label,
        "encryption_key_id": info.encryption_key_id,
        "config": info.config,
    }


def _cred_id(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput(
            f"broker credential id must be an integer, got {value!r}",
            hint="use the id shown by list_broker_credentials()",
        ) from None


def get_broker_credential(conn: sa.Connection, keyring: KeyRing, credential_id: int) -> BrokerCredential:
    """Open a broker credential by id."""
    row = conn.execute(sa.select(bc).where(bc.c.id == _cred_id(credential_id))).first()
    if row is None:
        raise NotFound(
            f"no broker credential with id {credential_id}",
            hint="list them with Accounts.list_broker_credentials()",
        )
    sealed = SealedFields(
        {"api_key": bytes(row.encrypted_api_key), "secret": bytes(row.encrypted_secret)},
        bytes(row.wrapped_key),
        row.encryption_key_id,
    )
    row_aad = broker_credential_row_aad(row.id)
    return BrokerCredential(
        _bc_info(row),
        keyring.open_field(sealed, row_aad, "api_key"),
        keyring.open_field(sealed, row_aad, "secret"),
    )


def list_broker_credentials(
    conn: sa.Connection, user: UserRef | None = None, *, shared: bool = False
) -> list[BrokerCredentialInfo]:
    """Broker credentials of ``user`` (all when None; only shared ones with ``shared=True``)."""
    stmt = sa.select(*_BC_PUBLIC).order_by(bc.c.broker_name, bc.c.label, bc.c.id)
    if shared:
        stmt = stmt.where(bc.c.user_id.is_(None))
    elif user is not None:
        stmt = stmt.where(bc.c.user_id == resolve_user(conn, user))
    return [_bc_info(r) for r in conn.execute(stmt)]


def delete_broker_credential(conn: sa.Connection, credential_id: int, *, actor: Actor | None = None) -> None:
    """Delete a broker credential by id."""
    row = conn.execute(sa.delete(bc).where(bc.c.id == _cred_id(credential_id)).returning(*_BC_PUBLIC)).first()
    if row is None:
        raise NotFound(f"no broker credential with id {credential_id}")
    info = _bc_info(row)
    audit_as(conn, actor, "broker_credential.delete", "broker_credential", info.id, _bc_audit(info), None)


# -------------------------------------------------------------------- rotation


@dataclass
class RotationReport:
    """What a rotation did: rows re-wrapped per table, rows that failed, keys still in use."""

    to_key_id: str
    rewrapped: dict[str, int] = field(default_factory=lambda: {"user_secrets": 0, "broker_credentials": 0})
    failed: list[dict[str, str]] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows re-wrapped in all tables."""
        return sum(self.rewrapped.values())

    @property
    def complete(self) -> bool:
        """True when no row uses any key other than ``to_key_id``."""
        return not self.failed and not any(self.remaining.values())


def _rotation_targets() -> Iterator[tuple[str, sa.Table, Any]]:
    yield "user_secrets", us, lambda row: user_secret_aad(row.user_id, row.key_name)
    yield "broker_credentials", bc, lambda row: broker_credential_row_aad(row.id)


def rotate_batch(
    conn: sa.Connection,
    keyring: KeyRing,
    table_name: str,
    to_key_id: str,
    *,
    after: Any,
    skip: set[Any],
    batch_size: int,
    actor: Actor | None = None,
) -> tuple[int, list[dict[str, str]], Any]:
    """Re-wrap up to ``batch_size`` rows of one table not yet under ``to_key_id``.

    Runs in the caller's (short) transaction. Rows locked by a concurrent
    writer are skipped (``SKIP LOCKED``) and picked up by a later pass. Ids of
    rows that cannot be re-wrapped are added to ``skip`` and reported.
    Returns ``(rewrapped, failures, last_id)``; ``last_id`` is None when the
    table has no more candidate rows after ``after``.
    """
    table, aad_of = next((tb, fn) for name, tb, fn in _rotation_targets() if name == table_name)
    cols = [table.c.id, table.c.wrapped_key, table.c.encryption_key_id]
    if table is us:
        cols += [us.c.user_id, us.c.key_name]
    stmt = (
        sa.select(*cols)
        .where(table.c.encryption_key_id != to_key_id)
        .order_by(table.c.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        stmt = stmt.where(table.c.id > after)
    if skip:
        stmt = stmt.where(table.c.id.not_in(skip))
    rows = conn.execute(stmt).all()
    if not rows:
        return 0, [], None
    done: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for row in rows:
        try:
            wrapped, key_id = keyring.rewrap_key(
                bytes(row.wrapped_key), row.encryption_key_id, aad_of(row), to_key_id
            )
        except MarketdbError as exc:  # missing key or failed authentication: report, go on
            failures.append({"table": table_name, "id": str(row.id), "error": exc.message})
            skip.add(row.id)
            continue
        conn.execute(
            sa.update(table).where(table.c.id == row.id).values(wrapped_key=wrapped, encryption_key_id=key_id)
        )
        done.append({"id": row.id, "from": row.encryption_key_id})
    if done:
        audit_as(
            conn,
            actor,
            "keys.rewrap",
            table_name,
            None,
            {"encryption_key_ids": sorted({d["from"] for d in done})},
            {"encryption_key_id": to_key_id, "ids": [d["id"] for d in done]},
        )
    return len(done), failures, rows[-1].id


def count_not_under(
    conn: sa.Connection, to_key_id: str, *, skip: Mapping[str, set[Any]] | None = None
) -> dict[str, int]:
    """Rows per table whose data key is not wrapped by ``to_key_id`` (minus ``skip`` ids)."""
    counts: dict[str, int] = {}
    for name, table, _ in _rotation_targets():
        stmt = sa.select(sa.func.count()).select_from(table).where(table.c.encryption_key_id != to_key_id)
        if skip and skip.get(name):
            stmt = stmt.where(table.c.id.not_in(skip[name]))
        counts[name] = int(conn.execute(stmt).scalar_one())
    return counts


#: The tables rotation walks, in order.
ROTATION_TABLES: Final = tuple(name for name, _, _ in _rotation_targets())


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """One master key id: configured here? primary? how many rows use it?"""

    key_id: str
    configured: bool
    primary: bool
    fingerprint: str | None
    user_secrets: int
    broker_credentials: int


def key_status(conn: sa.Connection, keyring: KeyRing) -> list[KeyStatus]:
    """Every master key id that is configured or used by a stored row."""
    used: dict[str, dict[str, int]] = {}
    for name, table, _ in _rotation_targets():
        stmt = sa.select(table.c.encryption_key_id, sa.func.count()).group_by(table.c.encryption_key_id)
        for key_id, n in conn.execute(stmt):
            used.setdefault(key_id, {})[name] = int(n)
    try:
        primary: str | None = keyring.primary_key_id
    except ConfigurationError:
        primary = None
    ids = sorted(set(used) | set(keyring.key_ids))
    return [
        KeyStatus(
            key_id=key_id,
            configured=keyring.has_key(key_id),
            primary=key_id == primary,
            fingerprint=keyring.fingerprint(key_id) if keyring.has_key(key_id) else None,
            user_secrets=used.get(key_id, {}).get("user_secrets", 0),
            broker_credentials=used.get(key_id, {}).get("broker_credentials", 0),
        )
        for key_id in ids
    ]
