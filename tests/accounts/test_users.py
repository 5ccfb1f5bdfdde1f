"""Users: creation, case-insensitive uniqueness, login (constant cost), rehash, roles, deletion."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

import argon2
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.accounts import Accounts, Actor, AuthenticationFailed, KeyRing
from marketdb.services.accounts.passwords import PasswordHasher
from marketdb.store.schema import tables as t

OWASP_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
PASSWORD = "correct horse battery staple"


class CountingArgon2:
    """Wraps argon2's PasswordHasher and counts verifications (each is one full hash)."""

    def __init__(self, inner: argon2.PasswordHasher) -> None:
        self.inner = inner
        self.verifies = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def verify(self, stored: str, password: str) -> bool:
        self.verifies += 1
        return self.inner.verify(stored, password)


@pytest.fixture
def counter() -> CountingArgon2:
    hasher = PasswordHasher()
    counting = CountingArgon2(hasher._ph)
    hasher._ph = counting  # type: ignore[assignment]
    counting.hasher = hasher  # type: ignore[attr-defined]
    return counting


@pytest.fixture
def accounts(db: marketdb.MarketDB, counter: CountingArgon2) -> Accounts:
    return Accounts(db, keyring=KeyRing({"k1": os.urandom(32)}), hasher=counter.hasher)  # type: ignore[attr-defined]


def stored_hash(db: marketdb.MarketDB, username: str) -> str:
    with db.transaction() as conn:
        return str(
            conn.execute(
                sa.select(t.users.c.password_hash).where(t.users.c.username == username)
            ).scalar_one()
        )


def test_create_user_stores_argon2id_hash_with_owasp_parameters(
    db: marketdb.MarketDB, accounts: Accounts
) -> None:
    user = accounts.create_user("Alice", "Alice@Example.com", PASSWORD, role="trader")
    assert (user.username, user.email, user.role, user.is_active) == (
        "Alice",
        "Alice@Example.com",
        "trader",
        True,
    )
    assert user.settings == {}
    assert user.last_login is None
    encoded = stored_hash(db, "Alice")
    assert encoded.startswith(OWASP_PREFIX)
    assert PASSWORD not in encoded
    assert "password" not in repr(user).lower()
    entry = accounts.audit_log(resource_type="user", resource_id=user.id)[0]
    assert entry.action == "user.create"
    assert entry.new_value["username"] == "Alice"
    assert "password_hash" not in entry.new_value


def test_username_and_email_are_unique_case_insensitively(accounts: Accounts) -> None:
    accounts.create_user("Alice", "alice@example.com", PASSWORD)
    with pytest.raises(Conflict, match="username 'ALICE' is already taken"):
        accounts.create_user("ALICE", "other@example.com", PASSWORD)
    with pytest.raises(Conflict, match=r"email 'ALICE@example\.COM' is already taken"):
        accounts.create_user("bob", "ALICE@example.COM", PASSWORD)
    assert accounts.get_user("aLiCe").username == "Alice"


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("", "must not be empty"),
        ("x" * 65, "too long"),
        (" padded", "whitespace"),
        ("tab\there", "control characters"),
        ("nul\x00byte", "control characters"),
        ("bob@example.com", "must not contain '@'"),
        ("6f1c1a52-2d39-4a4f-9f4e-6d5b7a3c9e10", "look like a UUID"),
    ],
)
def test_bad_usernames_are_rejected(accounts: Accounts, username: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        accounts.create_user(username, "someone@example.com", PASSWORD)


@pytest.mark.parametrize("email", ["no-at-sign", "@example.com", "alice@", "a b@example.com"])
def test_bad_emails_are_rejected(accounts: Accounts, email: str) -> None:
    with pytest.raises(InvalidInput, match="email"):
        accounts.create_user("alice", email, PASSWORD)


def test_password_policy_applies_at_creation(accounts: Accounts, counter: CountingArgon2) -> None:
    with pytest.raises(InvalidInput, match="too short"):
        accounts.create_user("alice", "a@example.com", "1234567")
    with pytest.raises(InvalidInput, match="too long"):
        accounts.create_user("alice", "a@example.com", "x" * 129)
    with pytest.raises(InvalidInput, match="same as the username"):
        accounts.create_user("alice.long", "a@example.com", "ALICE.LONG")
    with pytest.raises(InvalidInput, match="unknown role 'root'"):
        accounts.create_user("alice", "a@example.com", PASSWORD, role="root")
    assert accounts.list_users() == []
    # Exactly 8 and exactly 128 characters are fine; no composition rules.
    accounts.create_user("eight", "8@example.com", "aaaaaaaa")
    accounts.create_user("long", "l@example.com", "z" * 128)
    assert accounts.authenticate("long", "z" * 128).username == "long"


def test_authenticate_by_username_or_email_records_last_login(accounts: Accounts) -> None:
    created = accounts.create_user("alice", "alice@example.com", PASSWORD)
    user = accounts.authenticate("ALICE", PASSWORD, actor=Actor(ip="203.0.113.9", user_agent="ua/1"))
    assert user.id == created.id
    assert user.last_login is not None
    assert accounts.authenticate("Alice@Example.COM", PASSWORD).id == created.id
    logins = accounts.audit_log(action="user.login")
    assert len(logins) == 2
    oldest = logins[-1]
    assert (oldest.user_id, oldest.actor, oldest.resource_id) == (user.id, "alice", str(user.id))
    assert (oldest.ip_address, oldest.user_agent) == ("203.0.113.9", "ua/1")


def test_failed_logins_look_the_same_and_cost_one_hash_each(
    accounts: Accounts, counter: CountingArgon2
) -> None:
    accounts.create_user("alice", "alice@example.com", PASSWORD)
    accounts.create_user("carol", "carol@example.com", PASSWORD)
    accounts.deactivate("carol")
    messages = []
    for login, password in [
        ("nobody", PASSWORD),  # unknown user
        ("alice", "wrong password"),  # known user, wrong password
        ("carol", PASSWORD),  # right password, deactivated account
        ("", PASSWORD),  # empty login
        ("x" * 10_000, PASSWORD),  # absurd login
        ("nul\x00login", PASSWORD),  # text PostgreSQL cannot even hold
        ("alice", "bad\ud800surrogate"),  # a password that is not valid Unicode
    ]:
        before = counter.verifies
        with pytest.raises(AuthenticationFailed) as info:
            accounts.authenticate(login, password)
        assert counter.verifies - before == 1, login[:20]
        messages.append(str(info.value))
        assert info.value.http_status == 401
    assert len(set(messages)) == 1
    assert "invalid username or password" in messages[0]
    failures = accounts.audit_log(action="user.login_failed")
    assert sorted(f.new_value["reason"] for f in failures) == [
        "bad_password",
        "bad_password",
        "inactive",
        "unknown_user",
        "unknown_user",
        "unknown_user",
        "unknown_user",
    ]
    assert all("nobody" not in str(f.new_value) for f in failures)


def test_outdated_hash_is_upgraded_on_next_successful_login(
    db: marketdb.MarketDB, accounts: Accounts
) -> None:
    user = accounts.create_user("alice", "alice@example.com", PASSWORD)
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2).hash(PASSWORD)
    with db.transaction() as conn:
        conn.execute(sa.update(t.users).where(t.users.c.id == user.id).values(password_hash=weak))
    with pytest.raises(AuthenticationFailed):
        accounts.authenticate("alice", "not the password")
    assert stored_hash(db, "alice") == weak  # no upgrade on a failed login
    accounts.authenticate("alice", PASSWORD)
    upgraded = stored_hash(db, "alice")
    assert upgraded.startswith(OWASP_PREFIX)
    assert upgraded != weak
    assert accounts.authenticate("alice", PASSWORD).id == user.id
    assert stored_hash(db, "alice") == upgraded  # current hashes are left alone
    login = accounts.audit_log(action="user.login", limit=2)[-1]
    assert login.new_value["hash_upgraded"] is True


def test_change_password(db: marketdb.MarketDB, accounts: Accounts) -> None:
    accounts.create_user("alice", "alice@example.com", PASSWORD)
    with pytest.raises(AuthenticationFailed, match="current password is wrong"):
        accounts.change_password("alice", "a brand new password", current_password="nope nope")
    with pytest.raises(InvalidInput, match="too short"):
        accounts.change_password("alice", "short")
    accounts.change_password("alice", "a brand new password", current_password=PASSWORD)
    with pytest.raises(AuthenticationFailed):
        accounts.authenticate("alice", PASSWORD)
    assert accounts.authenticate("alice", "a brand new password").username == "alice"
    assert stored_hash(db, "alice").startswith(OWASP_PREFIX)
    change = accounts.audit_log(action="user.password_change")[0]
    assert "a brand new password" not in str(change.new_value)


def test_deactivate_and_reactivate(accounts: Accounts) -> None:
    accounts.create_user("alice", "alice@example.com", PASSWORD, role="admin")
    assert accounts.authorize("alice", "orders", "delete")
    user = accounts.deactivate("alice", actor=Actor(name="ops"))
    assert not user.is_active
    assert not accounts.authorize("alice", "orders", "delete")
    with pytest.raises(AuthenticationFailed):
        accounts.authenticate("alice", PASSWORD)
    assert [u.username for u in accounts.list_users(include_inactive=False)] == []
    accounts.activate("alice")
    assert accounts.authenticate("alice", PASSWORD).is_active
    entry = accounts.audit_log(action="user.deactivate")[0]
    assert (entry.actor, entry.old_value, entry.new_value) == (
        "ops",
        {"is_active": True},
        {"is_active": False},
    )


def test_set_role(accounts: Accounts) -> None:
    admin = accounts.create_user("root", "root@example.com", PASSWORD, role="admin")
    accounts.create_user("alice", "alice@example.com", PASSWORD)
    assert not accounts.authorize("alice", "orders", "create")
    user = accounts.set_role("alice", "trader", actor=Actor(user_id=admin.id))
    assert user.role == "trader"
    assert accounts.authorize("alice", "orders", "create")
    with pytest.raises(InvalidInput, match="unknown role 'superuser'"):
        accounts.set_role("alice", "superuser")
    entry = accounts.audit_log(user=admin, action="user.set_role")[0]
    assert (entry.actor, entry.old_value, entry.new_value) == (
        "root",
        {"role": "viewer"},
        {"role": "trader"},
    )


def test_settings_jsonb_merge_and_replace(accounts: Accounts) -> None:
    accounts.create_user("alice", "alice@example.com", PASSWORD, settings={"theme": "dark"})
    user = accounts.update_user_settings("alice", {"tz": "Europe/Paris", "charts": {"log": True}})
    assert user.settings == {"theme": "dark", "tz": "Europe/Paris", "charts": {"log": True}}
    user = accounts.update_user_settings("alice", {"tz": "UTC"}, replace=True)
    assert accounts.get_user("alice").settings == {"tz": "UTC"}


def test_rename_keeps_posts_username_in_step(accounts: Accounts) -> None:
    alice = accounts.create_user("alice", "alice@example.com", PASSWORD)
    accounts.create_user("bob", "bob@example.com", PASSWORD)
    accounts.create_post(alice, "first")
    accounts.create_post(alice, "second")
    accounts.rename_user(alice, username="alice_w", email="aw@example.com")
    assert {p.username for p in accounts.list_posts(alice)} == {"alice_w"}
    assert {p.username for p in accounts.feed()} == {"alice_w"}
    with pytest.raises(Conflict, match="username 'BOB'"):
        accounts.rename_user(alice, username="BOB")
    with pytest.raises(Conflict, match="email"):
        accounts.rename_user(alice, email="Bob@example.com")
    assert accounts.get_user(alice.id).username == "alice_w"
    # Changing only the case of one's own name is allowed.
    assert accounts.rename_user(alice, username="Alice_W").username == "Alice_W"


def test_delete_user_cascades_and_leaves_an_audit_row(db: marketdb.MarketDB, accounts: Accounts) -> None:
    admin = accounts.create_user("root", "root@example.com", PASSWORD, role="admin")
    alice = accounts.create_user("alice", "alice@example.com", PASSWORD)
    accounts.create_post(alice, "hello")
    accounts.create_post(alice, "again")
    accounts.set_secret(alice, "tiingo_api_key", "value-one")
    accounts.set_secret(alice, "polygon_api_key", "value-two")
    accounts.set_broker_credential("alpaca", "AK", "SK", user=alice)
    accounts.create_subscription(alice, "pro", dt.date(2024, 1, 1))
    bob = accounts.create_user("bob", "bob@example.com", PASSWORD)
    accounts.create_post(bob, "bob's post")

    removed = accounts.delete_user("alice", actor=Actor(user_id=admin.id, ip="198.51.100.7"))
    assert removed == {
        "posts": 2,
        "user_secrets": 2,
        "secret_key_names": ["polygon_api_key", "tiingo_api_key"],
        "broker_credentials": 1,
        "subscriptions": 1,
    }
    with db.transaction() as conn:
        for table in (t.posts, t.user_secrets, t.broker_credentials, t.subscriptions):
            left = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.user_id == alice.id)
            ).scalar_one()
            assert left == 0, table.name
    with pytest.raises(NotFound):
        accounts.get_user(alice.id)
    assert [p.text for p in accounts.feed()] == ["bob's post"]
    entry = accounts.audit_log(resource_type="user", resource_id=alice.id, action="user.delete")[0]
    assert (entry.user_id, entry.actor, entry.ip_address) == (admin.id, "root", "198.51.100.7")
    assert entry.old_value["username"] == "alice"
    assert entry.old_value["removed"] == {
        "posts_count": 2,
        "user_secrets_count": 2,
        "secret_key_names": ["polygon_api_key", "tiingo_api_key"],
        "broker_credentials_count": 1,
        "subscriptions_count": 1,
    }
    assert entry.new_value is None
    # Earlier audit rows about alice survive her deletion.
    assert len(accounts.audit_log(resource_type="user", resource_id=alice.id)) >= 2


def test_self_deletion_keeps_the_actor_name(accounts: Accounts) -> None:
    alice = accounts.create_user("alice", "alice@example.com", PASSWORD)
    accounts.delete_user(alice, actor=Actor(user_id=alice.id))
    entry = accounts.audit_log(action="user.delete")[0]
    assert entry.user_id is None  # the foreign key cleared it with the user
    assert entry.actor == "alice"


def test_unknown_users(accounts: Accounts) -> None:
    with pytest.raises(NotFound, match="no user 'ghost'"):
        accounts.get_user("ghost")
    with pytest.raises(NotFound):
        accounts.set_secret(uuid.UUID(int=5), "k", "v")  # ids are checked too
    with pytest.raises(InvalidInput, match="NUL"):
        accounts.get_user("gh\x00st")
    with pytest.raises(NotFound):
        accounts.deactivate("ghost")
    with pytest.raises(InvalidInput):
        accounts.get_user(42)  # type: ignore[arg-type]
