"""Issue 10 item 4: the rules around the matrix: self-service, no self-promotion,
reads by deactivated users, the system actor, roles changed mid-session."""

from __future__ import annotations

import os
import uuid

import pytest

import marketdb
from marketdb.errors import NotFound, PermissionDenied
from marketdb.services.accounts import Accounts, KeyRing
from marketdb.services.trading import Trading

PW = "correct horse battery staple 1"


@pytest.fixture
def accounts(db: marketdb.MarketDB) -> Accounts:
    return Accounts(db, keyring=KeyRing({"k1": os.urandom(32)}))


def test_viewer_cannot_promote_itself_but_manages_its_own_account(accounts: Accounts) -> None:
    viewer = accounts.create_user("vera", "vera@example.org", PW, role="viewer")
    as_vera = accounts.as_user(viewer.id)
    with pytest.raises(PermissionDenied, match="not allowed to set_role users"):
        as_vera.set_role(viewer.id, "admin")
    assert accounts.get_user(viewer.id).role == "viewer"
    # Own password, settings, secrets and posts need no permission, only an active account.
    as_vera.change_password(viewer.id, PW + "!", current_password=PW)
    assert as_vera.update_user_settings(viewer.id, {"theme": "dark"}).settings == {"theme": "dark"}
    as_vera.set_secret(viewer.id, "exchange", "s3cret")
    assert as_vera.get_secret(viewer.id, "exchange").reveal_text() == "s3cret"
    post = as_vera.create_post(viewer.id, "hello")
    as_vera.delete_post(post.id)
    # ... but not another user's.
    other = accounts.create_user("otto", "otto@example.org", PW)
    accounts.set_secret(other.id, "exchange", "not yours")
    with pytest.raises(PermissionDenied):
        as_vera.get_secret(other.id, "exchange")
    with pytest.raises(PermissionDenied):
        as_vera.update_user_settings(other.id, {"x": 1})


def test_deactivated_user_can_do_nothing_not_even_read_or_self_service(
    db: marketdb.MarketDB, accounts: Accounts
) -> None:
    user = accounts.create_user("dora", "dora@example.org", PW, role="admin")
    as_dora = accounts.as_user(user.id)
    trading = db.trading.as_user(user.id)
    accounts.deactivate(user.id)
    for attempt in (
        lambda: as_dora.update_user_settings(user.id, {"x": 1}),
        lambda: as_dora.list_users(),
        lambda: trading.orders(),
        lambda: trading.seed_examples(),
        lambda: as_dora.activate(user.id),
    ):
        with pytest.raises(PermissionDenied, match="deactivated"):
            attempt()
    accounts.activate(user.id)  # the system actor may
    assert trading.orders() == []


def test_role_change_applies_to_the_next_call_of_a_bound_service(
    db: marketdb.MarketDB, accounts: Accounts
) -> None:
    db.trading.seed_examples()
    user = accounts.create_user("tom", "tom@example.org", PW, role="viewer")
    trading = db.trading.as_user(user.id)
    with pytest.raises(PermissionDenied, match="role 'viewer'"):
        trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    accounts.set_role(user.id, "trader")
    order = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
    assert order["status"] == "pending"
    accounts.revoke("trader", "orders", "*")
    with pytest.raises(PermissionDenied):
        trading.cancel_order(order["id"])
    assert db.trading.order(order["id"])["status"] == "pending"


def test_system_actor_bypasses_and_says_so(db: marketdb.MarketDB) -> None:
    assert db.trading.is_system
    assert "system" in repr(db.trading)
    db.trading.seed_examples()  # no user, no check
    assert not db.trading.as_user(_admin(db)).is_system


def _admin(db: marketdb.MarketDB) -> uuid.UUID:
    return db.accounts.create_user("root2", "root2@example.org", PW, role="admin").id


def test_as_user_names_an_existing_user(db: marketdb.MarketDB) -> None:
    with pytest.raises(NotFound):
        db.trading.as_user("nobody-here")
    with pytest.raises(NotFound):
        db.accounts.as_user(uuid.uuid4())
    # An Actor naming a user that does not exist (e.g. deleted since) is refused, not treated as system.
    ghost = Trading(db).as_actor(uuid.uuid4())
    with pytest.raises(PermissionDenied, match="does not exist"):
        ghost.seed_examples()


def test_as_user_accepts_a_username(db: marketdb.MarketDB) -> None:
    db.trading.seed_examples()
    user = db.accounts.create_user("Tina", "tina@example.org", PW, role="trader")
    trading = db.trading.as_user("tina")
    assert trading.actor.user_id == user.id
    order = trading.submit_order("ema_crossover", "NIFTY", "sell", 3)
    audit = db.accounts.audit_log(resource_type="order", resource_id=order["id"])
    assert [a.user_id for a in audit] == [user.id]


def test_check_and_change_commit_together_with_a_concurrent_deactivation(db: marketdb.MarketDB) -> None:
    """A deactivation in flight makes the order wait, then refuses it: no order slips through."""
    import threading
    import time

    import sqlalchemy as sa

    from marketdb.store.schema import tables as t

    db.trading.seed_examples()
    user = db.accounts.create_user("race", "race@example.org", PW, role="trader")
    trading = db.trading.as_user(user.id)
    outcome: dict[str, object] = {}

    def submit() -> None:
        try:
            outcome["order"] = trading.submit_order("ema_crossover", "NIFTY", "buy", 1)
        except Exception as exc:  # recorded for the assertion below
            outcome["error"] = exc

    with db.transaction() as conn:
        conn.execute(sa.update(t.users).where(t.users.c.id == user.id).values(is_active=False))
        worker = threading.Thread(target=submit)
        worker.start()
        with db.engine.connect() as probe:
            for _ in range(600):  # until the order's permission check waits on the user's row lock
                waiting = probe.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                probe.commit()
                if waiting or not worker.is_alive():
                    break
                time.sleep(0.05)
        assert worker.is_alive(), outcome  # it must be waiting for this transaction
    worker.join()
    assert isinstance(outcome.get("error"), PermissionDenied), outcome
    assert "deactivated" in str(outcome["error"])
    assert db.trading.orders() == []
