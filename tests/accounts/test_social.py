"""Posts, subscriptions and configurations; SQL injection strings stored literally."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts import Accounts, Actor, KeyRing
from marketdb.services.accounts.passwords import PasswordHasher
from marketdb.store.schema import tables as t

PASSWORD = "correct horse battery staple"
D = dt.date


@pytest.fixture(scope="module")
def password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)  # once: these tests are not about hashing


def add_users(db: marketdb.MarketDB, password_hash: str, *names: str) -> None:
    with db.transaction() as conn:
        conn.execute(
            sa.insert(t.users),
            [{"username": n, "email": f"{n}@example.com", "password_hash": password_hash} for n in names],
        )


@pytest.fixture
def accounts(db: marketdb.MarketDB, password_hash: str) -> Accounts:
    add_users(db, password_hash, "alice", "bob")
    return Accounts(db, keyring=KeyRing({"k1": b"\x01" * 32}))


# -- posts --------------------------------------------------------------------------------


def test_posts_by_user_and_feed(accounts: Accounts) -> None:
    for i in range(3):
        accounts.create_post("alice", f"alice {i}")
        accounts.create_post("bob", f"bob {i}")
    assert [p.text for p in accounts.list_posts("alice")] == ["alice 2", "alice 1", "alice 0"]
    feed = accounts.feed(limit=4)
    assert len(feed) == 4
    assert all(a.created_at >= b.created_at for a, b in itertools.pairwise(feed))
    assert {p.text for p in accounts.feed()} == {f"{u} {i}" for u in ("alice", "bob") for i in range(3)}
    post = accounts.feed(limit=1)[0]
    assert accounts.get_post(post.id) == post
    assert accounts.feed(before=accounts.feed()[-1].created_at) == []


def test_post_validation_and_strategy_link(db: marketdb.MarketDB, accounts: Accounts) -> None:
    with pytest.raises(InvalidInput, match="must not be empty"):
        accounts.create_post("alice", "   ")
    with pytest.raises(InvalidInput, match="too long"):
        accounts.create_post("alice", "x" * 20_001)
    with pytest.raises(InvalidInput, match="NUL"):
        accounts.create_post("alice", "nul\x00inside")
    with pytest.raises(InvalidInput, match="no strategy 'ghost'"):
        accounts.create_post("alice", "text", strategy_id="ghost")
    with pytest.raises(NotFound):
        accounts.create_post("ghost", "text")
    with db.transaction() as conn:
        conn.execute(sa.insert(t.strategies).values(id="ema_cross", name="EMA crossover"))
    post = accounts.create_post("alice", "multi\nline\ttext", strategy_id="ema_cross")
    assert (post.text, post.strategy_id) == ("multi\nline\ttext", "ema_cross")


def test_delete_post(accounts: Accounts) -> None:
    post = accounts.create_post("alice", "to be removed")
    accounts.delete_post(post.id, actor=Actor(name="moderator"))
    with pytest.raises(NotFound):
        accounts.get_post(post.id)
    with pytest.raises(NotFound):
        accounts.delete_post(post.id)
    with pytest.raises(InvalidInput, match="not a UUID"):
        accounts.delete_post("42")
    entry = accounts.audit_log(action="post.delete")[0]
    assert (entry.actor, entry.old_value["text"]) == ("moderator", "to be removed")


# -- subscriptions ------------------------------------------------------------------------


SUBSCRIPTION_CASES = [
    # status, start, end (inclusive), day asked, active?
    ("active", D(2024, 1, 1), None, D(2024, 6, 1), True),
    ("active", D(2024, 1, 1), None, D(2023, 12, 31), False),  # before the start
    ("active", D(2024, 1, 1), D(2024, 1, 31), D(2024, 1, 31), True),  # end is inclusive
    ("active", D(2024, 1, 1), D(2024, 1, 31), D(2024, 2, 1), False),
    ("trialing", D(2024, 1, 1), D(2024, 1, 14), D(2024, 1, 10), True),
    ("past_due", D(2024, 1, 1), None, D(2024, 3, 1), True),  # grace period
    ("cancelled", D(2024, 1, 1), D(2024, 3, 31), D(2024, 3, 15), True),  # paid until then
    ("cancelled", D(2024, 1, 1), D(2024, 3, 31), D(2024, 4, 1), False),
    ("cancelled", D(2024, 1, 1), None, D(2024, 3, 15), False),  # no end date: never
    ("expired", D(2023, 1, 1), D(2023, 12, 31), D(2023, 6, 1), True),
    ("expired", D(2023, 1, 1), D(2023, 12, 31), D(2024, 1, 1), False),
]


def test_is_subscription_active_on_a_date(
    db: marketdb.MarketDB, accounts: Accounts, password_hash: str
) -> None:
    names = [f"sub{i}" for i in range(len(SUBSCRIPTION_CASES))]
    add_users(db, password_hash, *names)
    for name, (status, start, end, _, _) in zip(names, SUBSCRIPTION_CASES, strict=True):
        accounts.create_subscription(name, "pro", start, end, status=status)
    for name, (status, _, end, day, active) in zip(names, SUBSCRIPTION_CASES, strict=True):
        assert accounts.is_subscription_active(name, day) is active, (status, end, day)
        (sub,) = accounts.list_subscriptions(name)
        assert sub.active_on(day) is active  # the Python rule agrees with the SQL one
    assert accounts.is_subscription_active("bob", D(2024, 6, 1)) is False


def test_subscription_lifecycle(accounts: Accounts) -> None:
    sub = accounts.create_subscription("alice", "basic", D(2024, 1, 1))
    accounts.create_subscription("alice", "pro", D(2024, 6, 1), D(2024, 6, 30), status="trialing")
    assert [s.plan for s in accounts.list_subscriptions("alice")] == ["pro", "basic"]
    cancelled = accounts.cancel_subscription(sub.id, last_day=D(2024, 3, 31))
    assert (cancelled.status, cancelled.end_date) == ("cancelled", D(2024, 3, 31))
    assert accounts.is_subscription_active("alice", D(2024, 3, 31))
    assert not accounts.is_subscription_active("alice", D(2024, 4, 15))
    assert accounts.is_subscription_active("alice", D(2024, 6, 15))  # the trial
    past_due = accounts.set_subscription_status(sub.id, "past_due", end_date=D(2024, 4, 30))
    assert accounts.is_subscription_active("alice", D(2024, 4, 15))
    assert past_due.status == "past_due"
    with pytest.raises(InvalidInput, match="unknown subscription status"):
        accounts.set_subscription_status(sub.id, "paused")
    with pytest.raises(InvalidInput, match="before start_date"):
        accounts.create_subscription("alice", "x", D(2024, 2, 1), D(2024, 1, 1))
    with pytest.raises(InvalidInput, match="before start_date"):
        accounts.cancel_subscription(sub.id, last_day=D(2023, 1, 1))
    entry = accounts.audit_log(action="subscription.cancel")[0]
    assert entry.old_value == {"status": "active", "end_date": None}
    assert entry.new_value == {"status": "cancelled", "end_date": "2024-03-31"}


# -- configurations -----------------------------------------------------------------------


def test_configurations(accounts: Accounts) -> None:
    alice = accounts.set_role("alice", "admin")  # changing configuration needs configurations:update
    first = accounts.set_config(
        "risk.max_position", {"usd": 10_000}, description="per instrument", actor=Actor(user_id=alice.id)
    )
    assert (first.value, first.description, first.updated_by) == (
        {"usd": 10_000},
        "per instrument",
        "alice",
    )
    second = accounts.set_config("risk.max_position", {"usd": 20_000}, actor=Actor(name="ops"))
    assert second.description == "per instrument"  # kept when not given
    assert second.updated_by == "ops"
    assert second.updated_at >= first.updated_at
    assert accounts.get_config("risk.max_position") == {"usd": 20_000}
    assert accounts.get_config("missing", None) is None
    with pytest.raises(NotFound):
        accounts.get_config("missing")
    accounts.set_config("risk%wild", 1)
    assert [c.key for c in accounts.list_configs("risk.")] == ["risk.max_position"]
    assert [c.key for c in accounts.list_configs("risk%")] == ["risk%wild"]  # % is literal
    with pytest.raises(InvalidInput, match="not JSON"):
        accounts.set_config("bad", {1, 2})
    with pytest.raises(InvalidInput, match="not JSON"):
        accounts.set_config("bad", float("nan"))
    accounts.delete_config("risk%wild")
    with pytest.raises(NotFound):
        accounts.delete_config("risk%wild")
    update = accounts.audit_log(action="configuration.update")[0]
    assert update.old_value["risk.max_position"] == {"usd": 10_000}
    assert update.new_value["risk.max_position"] == {"usd": 20_000}


def test_secret_looking_configuration_values_are_redacted_in_audit(accounts: Accounts) -> None:
    accounts.set_config("smtp_password", "SMTP-PLAIN-VALUE")
    entry = accounts.audit_log(resource_type="configuration")[0]
    assert entry.new_value["smtp_password"] == "[REDACTED]"
    assert "SMTP-PLAIN-VALUE" not in str(entry.new_value)


# -- SQL injection ------------------------------------------------------------------------

INJECTIONS = [
    "robert'); DROP TABLE users;--",
    "' OR '1'='1",
    "x'; DELETE FROM user_secrets WHERE ''='",
    '"; TRUNCATE audit_logs; --',
    "$$; DROP TABLE posts; $$",
    "%s %(name)s {0} \\ ' \"",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_strings_are_stored_literally(db: marketdb.MarketDB, accounts: Accounts, evil: str) -> None:
    user = accounts.create_user(evil, "evil@example.com", PASSWORD)
    assert accounts.get_user(evil).id == user.id
    assert accounts.authenticate(evil.upper(), PASSWORD).username == evil
    accounts.set_secret(evil, evil, evil + "-value")
    assert accounts.get_secret(user, evil).reveal_text() == evil + "-value"
    assert [s.key_name for s in accounts.list_secrets(user)] == [evil]
    post = accounts.create_post(user, evil)
    assert accounts.get_post(post.id).text == evil
    accounts.set_config(evil, evil, description=evil)
    assert accounts.get_config(evil) == evil
    cred = accounts.set_broker_credential(evil, "k", "s", user=user, label=evil)
    assert accounts.get_broker_credential(cred.id).info.broker_name == evil
    accounts.create_subscription(user, evil, D(2024, 1, 1))
    accounts.create_role(evil, evil)
    accounts.grant(evil, evil, evil)
    accounts.set_role(user, evil)
    assert accounts.authorize(user, evil, evil)
    assert not accounts.authorize(user, "' OR '1'='1", "*")
    assert not accounts.authorize("' OR '1'='1", "orders", "read")
    # Nothing else was touched: every table is still there, with exactly our rows.
    with db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.users)).scalar_one() == 3
        assert conn.execute(sa.select(sa.func.count()).select_from(t.user_secrets)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(t.posts)).scalar_one() == 1
        assert conn.execute(sa.select(t.users.c.username).where(t.users.c.id == user.id)).scalar_one() == evil
    assert accounts.audit_log(limit=1000)  # audit_logs is intact too
    removed = accounts.delete_user(user)
    assert removed["secret_key_names"] == [evil]
