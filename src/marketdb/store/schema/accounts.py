"""Accounts: users, roles and permissions, sealed secrets, posts,
subscriptions, configuration and the audit log.

Secrets are stored only as AES-256-GCM ciphertext plus the wrapped data key
and the id of the master key that wrapped it (see services/accounts/crypto.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.store.schema._base import (
    JSONB,
    created_at,
    metadata,
    now,
    one_of,
    updated_at,
    uuid_pk,
)

TS = sa.DateTime(timezone=True)

#: Roles and their default permissions (document 004; seed 002's ``user`` and
#: trader's ``positions`` from migration 0007). '*' is a wildcard.
DEFAULT_ROLES: dict[str, str] = {
    "admin": "full access",
    "trader": "runs strategies and trades",
    "viewer": "read-only access",
    "user": "signed-up user: reads market data, owns signals (seed 002)",
}
DEFAULT_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("admin", "*", "*"),
    ("trader", "strategies", "read"),
    ("trader", "strategies", "update"),
    ("trader", "signals", "read"),
    ("trader", "orders", "*"),
    ("trader", "portfolio", "read"),
    ("trader", "market_data", "read"),
    ("viewer", "strategies", "read"),
    ("viewer", "signals", "read"),
    ("viewer", "portfolio", "read"),
    ("viewer", "market_data", "read"),
    ("user", "market_data", "read"),
    ("user", "signals", "read"),
    ("user", "signals", "create"),
    ("user", "portfolio", "read"),
    ("trader", "positions", "update"),
)

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("description", sa.Text()),
    created_at(),
)

permissions = sa.Table(
    "permissions",
    metadata,
    sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
    sa.Column("role", sa.Text(), sa.ForeignKey("roles.name", ondelete="CASCADE"), nullable=False),
    sa.Column("resource", sa.Text(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.UniqueConstraint("role", "resource", "action"),
)

users = sa.Table(
    "users",
    metadata,
    uuid_pk(),
    sa.Column("username", sa.Text(), nullable=False),
    sa.Column("email", sa.Text(), nullable=False),
    sa.Column("password_hash", sa.Text(), nullable=False),
    sa.Column("role", sa.Text(), sa.ForeignKey("roles.name"), nullable=False, server_default="viewer"),
    sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("settings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    created_at(),
    updated_at(),
    sa.Column("last_login", TS),
    sa.CheckConstraint("length(username) BETWEEN 1 AND 64", name="username_length"),
    sa.CheckConstraint("position('@' in email) > 1", name="email_format"),
)
# Unique case-insensitively: 'Alice' and 'alice' are the same user.
sa.Index("uq_users_username_lower", sa.func.lower(users.c.username), unique=True)
sa.Index("uq_users_email_lower", sa.func.lower(users.c.email), unique=True)

user_secrets = sa.Table(
    "user_secrets",
    metadata,
    uuid_pk(),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key_name", sa.Text(), nullable=False),
    sa.Column("encrypted_value", sa.LargeBinary(), nullable=False, comment="nonce || AES-GCM ciphertext"),
    sa.Column("wrapped_key", sa.LargeBinary(), nullable=False, comment="data key sealed by the master key"),
    sa.Column("encryption_key_id", sa.Text(), nullable=False),
    created_at(),
    updated_at(),
    sa.UniqueConstraint("user_id", "key_name"),
)
sa.Index("ix_user_secrets_encryption_key_id", user_secrets.c.encryption_key_id)

broker_credentials = sa.Table(
    "broker_credentials",
    metadata,
    sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE")),
    sa.Column("broker_name", sa.Text(), nullable=False),
    sa.Column("label", sa.Text(), nullable=False, server_default="default"),
    sa.Column("encrypted_api_key", sa.LargeBinary(), nullable=False),
    sa.Column("encrypted_secret", sa.LargeBinary(), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
    sa.Column("encryption_key_id", sa.Text(), nullable=False),
    sa.Column("config", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    created_at(),
    updated_at(),
    sa.UniqueConstraint("user_id", "broker_name", "label"),
)
sa.Index("ix_broker_credentials_encryption_key_id", broker_credentials.c.encryption_key_id)

posts = sa.Table(
    "posts",
    metadata,
    uuid_pk(),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("username", sa.Text(), nullable=False, comment="denormalised; kept in step on rename"),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("strategy_id", sa.Text(), sa.ForeignKey("strategies.id", ondelete="SET NULL")),
    created_at(),
    sa.CheckConstraint("length(text) > 0", name="text_not_empty"),
)
sa.Index("ix_posts_user_id_created_at", posts.c.user_id, posts.c.created_at.desc())
sa.Index("ix_posts_created_at", posts.c.created_at.desc())

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    uuid_pk(),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("plan", sa.Text(), nullable=False),
    sa.Column("start_date", sa.Date(), nullable=False),
    sa.Column("end_date", sa.Date()),
    sa.Column("status", sa.Text(), nullable=False, server_default="active"),
    created_at(),
    updated_at(),
    one_of("status", ("active", "trialing", "past_due", "cancelled", "expired")),
    sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="date_range"),
)
sa.Index("ix_subscriptions_user_id", subscriptions.c.user_id)

configurations = sa.Table(
    "configurations",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("value", JSONB, nullable=False),
    sa.Column("description", sa.Text()),
    updated_at(),
    sa.Column("updated_by", sa.Text()),
)

audit_logs = sa.Table(
    "audit_logs",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column("ts", TS, nullable=False, server_default=now()),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
    sa.Column("actor", sa.Text(), comment="username at the time; survives user deletion"),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("resource_type", sa.Text(), nullable=False),
    sa.Column("resource_id", sa.Text()),
    sa.Column("old_value", JSONB),
    sa.Column("new_value", JSONB),
    sa.Column("ip_address", pg.INET()),
    sa.Column("user_agent", sa.Text()),
)
sa.Index("ix_audit_logs_ts", audit_logs.c.ts.desc())
sa.Index("ix_audit_logs_user_id_ts", audit_logs.c.user_id, audit_logs.c.ts.desc())
sa.Index("ix_audit_logs_resource", audit_logs.c.resource_type, audit_logs.c.resource_id)

__all__ = [
    "DEFAULT_PERMISSIONS",
    "DEFAULT_ROLES",
    "audit_logs",
    "broker_credentials",
    "configurations",
    "permissions",
    "posts",
    "roles",
    "subscriptions",
    "user_secrets",
    "users",
]
