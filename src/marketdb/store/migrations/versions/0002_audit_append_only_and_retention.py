"""audit_logs append-only; retention_policies for ordinary tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:10:00.000000

* ``audit_logs`` becomes append-only in the database itself: a row trigger
  rejects UPDATE and DELETE, a statement trigger rejects TRUNCATE. The one
  exception is the ``ON DELETE SET NULL`` of ``audit_logs.user_id`` when a user
  is deleted: an UPDATE that changes nothing but ``user_id``, from a value to
  NULL, for a user that no longer exists, passes. The row keeps ``actor``.
* ``retention_policies`` holds opt-in row retention for ordinary tables
  (seeds 003/004: 5 years of order_history and signals, 10 years of
  portfolio_snapshots); ``marketdb maintain`` applies it. No default rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen: this revision must keep creating exactly this function.
AUDIT_APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_logs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- The foreign key's ON DELETE SET NULL when a user is deleted: only
        -- user_id changes, from a value to NULL, and that user is gone.
        IF OLD.user_id IS NOT NULL AND NEW.user_id IS NULL
           AND (to_jsonb(NEW) - 'user_id') = (to_jsonb(OLD) - 'user_id')
           AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = OLD.user_id)
        THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation',
              DETAIL = 'Audit rows record who changed what; they are never changed or removed.',
              HINT = 'Insert a new audit row instead. To archive old rows, see "Audit log" in docs/operations.md.';
END
$fn$
"""

AUDIT_APPEND_ONLY_COMMENT = (
    "COMMENT ON FUNCTION audit_logs_append_only() IS "
    "'Keeps audit_logs append-only (migration 0002); allows only ON DELETE SET NULL of user_id.'"
)


def upgrade() -> None:
    op.execute(AUDIT_APPEND_ONLY_FUNCTION)
    op.execute(AUDIT_APPEND_ONLY_COMMENT)
    op.execute(
        "CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs "
        "FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()"
    )
    op.create_table(
        "retention_policies",
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("time_column", sa.Text(), nullable=False),
        sa.Column("retain_for", sa.Interval(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "retain_for > interval '0'",
            name=op.f("ck_retention_policies_retain_for_positive"),
        ),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_retention_policies")),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs")
    op.execute("DROP FUNCTION IF EXISTS audit_logs_append_only()")
