"""HTTP API authentication state: login sessions and API keys.

Neither table stores a usable credential: tokens and keys are 256-bit random
strings handed to the client once; only their SHA-256 digest is kept (a fast
hash is right here because the inputs are high-entropy, unlike passwords).
"""

from __future__ import annotations

import sqlalchemy as sa

from marketdb.store.schema._base import created_at, metadata, uuid_pk

TS = sa.DateTime(timezone=True)

api_sessions = sa.Table(
    "api_sessions",
    metadata,
    sa.Column("token_hash", sa.LargeBinary(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    created_at(),
    sa.Column("last_used_at", TS, nullable=False, server_default=sa.text("now()")),
    sa.Column("idle_seconds", sa.Integer(), nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
    sa.Column("ip_address", sa.Text()),
    sa.Column("user_agent", sa.Text()),
    sa.CheckConstraint("idle_seconds > 0", name="idle_seconds_positive"),
    sa.CheckConstraint("octet_length(token_hash) = 32", name="token_hash_sha256"),
)
sa.Index("ix_api_sessions_user_id", api_sessions.c.user_id)

api_keys = sa.Table(
    "api_keys",
    metadata,
    uuid_pk(),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("prefix", sa.Text(), nullable=False),
    sa.Column("key_hash", sa.LargeBinary(), nullable=False),
    sa.Column("role", sa.Text(), sa.ForeignKey("roles.name", ondelete="CASCADE"), nullable=False),
    created_at(),
    sa.Column("last_used_at", TS),
    sa.Column("expires_at", TS),
    sa.Column("revoked_at", TS),
    sa.UniqueConstraint("key_hash"),
    sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
    sa.CheckConstraint("octet_length(key_hash) = 32", name="key_hash_sha256"),
)
sa.Index("ix_api_keys_user_id", api_keys.c.user_id)
