"""Migration 0002: audit_logs is append-only in the database; retention_policies exists."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.store.migrate import check_drift
from marketdb.store.schema import tables as t
from marketdb.store.schema.ops import retention_policies


def _user_with_audit_row(db: marketdb.MarketDB) -> tuple[uuid.UUID, int]:
    with db.transaction() as conn:
        uid = conn.execute(
            sa.insert(t.users)
            .values(username="alice", email="alice@example.org", password_hash="x")
            .returning(t.users.c.id)
        ).scalar_one()
        aid = conn.execute(
            sa.insert(t.audit_logs)
            .values(user_id=uid, actor="alice", action="user.create", resource_type="user")
            .returning(t.audit_logs.c.id)
        ).scalar_one()
    return uid, aid


@pytest.mark.parametrize(
    ("what", "stmt"),
    [
        ("UPDATE", sa.update(t.audit_logs).values(action="tampered")),
        ("DELETE", sa.delete(t.audit_logs)),
        ("TRUNCATE", sa.text("TRUNCATE audit_logs")),
    ],
)
def test_audit_rows_cannot_be_changed_or_removed(
    db: marketdb.MarketDB, what: str, stmt: sa.Executable
) -> None:
    _, aid = _user_with_audit_row(db)
    expected = f"audit_logs is append-only: {what} is not allowed"
    with pytest.raises(sa.exc.IntegrityError, match=expected), db.transaction() as conn:
        conn.execute(stmt)
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.audit_logs).where(t.audit_logs.c.id == aid)).one()
    assert row.action == "user.create"


def test_deleting_a_user_keeps_the_audit_row_with_user_id_null(db: marketdb.MarketDB) -> None:
    uid, aid = _user_with_audit_row(db)
    with db.transaction() as conn:
        conn.execute(sa.delete(t.users).where(t.users.c.id == uid))
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.audit_logs).where(t.audit_logs.c.id == aid)).one()
    assert row.user_id is None
    assert row.actor == "alice"
    assert row.action == "user.create"


def test_nulling_user_id_of_an_existing_user_is_rejected(db: marketdb.MarketDB) -> None:
    """Only the foreign key's SET NULL (the user is gone) may touch user_id."""
    _, aid = _user_with_audit_row(db)
    with pytest.raises(sa.exc.IntegrityError, match="append-only"), db.transaction() as conn:
        conn.execute(sa.update(t.audit_logs).where(t.audit_logs.c.id == aid).values(user_id=None))


def test_inserts_still_work(db: marketdb.MarketDB) -> None:
    from marketdb.services.accounts.audit import record_audit

    with db.transaction() as conn:
        record_audit(
            conn, actor_id=None, action="x.y", resource_type="z", resource_id=1, old=None, new={"a": 1}
        )
        n = conn.execute(sa.select(sa.func.count()).select_from(t.audit_logs)).scalar_one()
    assert n == 1


def test_downgrade_to_0001_removes_trigger_and_table_and_upgrade_restores(db: marketdb.MarketDB) -> None:
    _, aid = _user_with_audit_row(db)
    db.downgrade("0001")
    try:
        insp = sa.inspect(db.engine)
        assert "retention_policies" not in insp.get_table_names()
        with db.transaction() as conn:  # no trigger any more
            conn.execute(sa.update(t.audit_logs).where(t.audit_logs.c.id == aid).values(action="changed"))
    finally:
        db.upgrade()
    assert check_drift(db.engine) == []
    with pytest.raises(sa.exc.IntegrityError, match="append-only"), db.transaction() as conn:
        conn.execute(sa.delete(t.audit_logs))


def test_retention_policies_has_no_default_rows_and_checks_positive(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        assert conn.execute(sa.select(retention_policies)).all() == []
    with pytest.raises(sa.exc.IntegrityError, match="retain_for_positive"), db.transaction() as conn:
        conn.execute(
            sa.insert(retention_policies).values(
                table_name="signals", time_column="ts", retain_for=sa.text("interval '-1 day'")
            )
        )
