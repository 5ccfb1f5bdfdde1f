"""The audit log: record_audit for every service, redaction, queries, insert-only."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from pathlib import Path

import pytest

import marketdb
from marketdb.errors import InvalidInput
from marketdb.services.accounts import Accounts, Actor, KeyRing, SecretValue, record_audit
from marketdb.services.accounts.audit import query_audit
from marketdb.services.accounts.redaction import REDACTED, is_secret_key, redact

PASSWORD = "correct horse battery staple"
SRC = Path(__file__).resolve().parents[2] / "src" / "marketdb"


@pytest.fixture
def accounts(db: marketdb.MarketDB) -> Accounts:
    return Accounts(db, keyring=KeyRing({}))


# -- redaction (no database) --------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "password_hash",
        "new_password",
        "secret",
        "client_secret",
        "api_key",
        "apiKey",
        "API-KEY",
        "token",
        "refresh_token",
        "private_key",
        "credentials",
        "encrypted_value",
        "wrapped_key",
        "authorization",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "username",
        "key_name",
        "encryption_key_id",
        "secret_key_names",
        "user_secrets_count",
        "token_type",
        "broker_name",
        "passenger",
        "keyboard",
    ],
)
def test_non_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_converts_and_hides() -> None:
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    value = {
        "id": uid,
        "when": when,
        "day": dt.date(2024, 5, 1),
        "price": decimal.Decimal("101.25"),
        "nan": float("nan"),
        "raw": b"\x00\x01\x02",
        "password": "hunter2hunter2",
        "nested": {"api_key": "AK", "list": [{"token": "T"}, SecretValue("S")], "ok": 1},
        "tags": ("a", "b"),
        "object": object(),
    }
    assert redact(value) == {
        "id": str(uid),
        "when": when.isoformat(),
        "day": "2024-05-01",
        "price": "101.25",
        "nan": "nan",
        "raw": "<3 bytes>",
        "password": REDACTED,
        "nested": {"api_key": REDACTED, "list": [{"token": REDACTED}, REDACTED], "ok": 1},
        "tags": ["a", "b"],
        "object": "<object>",
    }
    assert redact(SecretValue("x")) == REDACTED
    assert redact(None) is None


# -- recording ----------------------------------------------------------------------------


def test_record_audit_from_another_service(db: marketdb.MarketDB, accounts: Accounts) -> None:
    trader = accounts.create_user("tom", "tom@example.com", PASSWORD, role="trader")
    with db.transaction() as conn:
        log_id = record_audit(
            conn,
            actor_id=trader.id,
            action="order.cancel",
            resource_type="order",
            resource_id=uuid.UUID(int=7),
            old={"status": "open", "quantity": decimal.Decimal("10")},
            new={"status": "cancelled", "broker_secret": "BROKER-PLAIN"},
            ip="2001:db8::1",
            user_agent="api/1.0",
        )
    entry = accounts.audit_log(resource_type="order")[0]
    assert entry.id == log_id
    assert (entry.user_id, entry.actor, entry.action) == (trader.id, "tom", "order.cancel")
    assert entry.resource_id == str(uuid.UUID(int=7))
    assert entry.old_value == {"status": "open", "quantity": "10"}
    assert entry.new_value == {"status": "cancelled", "broker_secret": REDACTED}
    assert (entry.ip_address, entry.user_agent) == ("2001:db8::1", "api/1.0")
    assert entry.ts.tzinfo is not None


def test_record_audit_with_a_psycopg_connection(db: marketdb.MarketDB, accounts: Accounts) -> None:
    trader = accounts.create_user("tom", "tom@example.com", PASSWORD)
    with db.raw() as conn:
        record_audit(
            conn,
            actor_id=str(trader.id),
            action="fill.apply",
            resource_type="execution",
            resource_id=42,
            old=None,
            new={"price": decimal.Decimal("1.5"), "password": "nope-nope"},
            ip="192.0.2.10",
        )
        record_audit(
            conn,
            actor_id=None,
            action="maintenance.run",
            resource_type="system",
            resource_id=None,
            old=None,
            new=None,
            actor_name="system",
        )
    system, fill = accounts.audit_log(limit=2)
    assert (fill.actor, fill.user_id, fill.resource_id) == ("tom", trader.id, "42")
    assert fill.new_value == {"price": "1.5", "password": REDACTED}
    assert fill.old_value is None
    assert fill.ip_address == "192.0.2.10"
    assert (system.actor, system.user_id, system.new_value) == ("system", None, None)


def test_audit_row_rolls_back_with_its_transaction(db: marketdb.MarketDB, accounts: Accounts) -> None:
    class Boom(Exception):
        pass

    def change_then_fail() -> None:
        with db.transaction() as conn:
            record_audit(
                conn,
                actor_id=None,
                action="thing.change",
                resource_type="thing",
                resource_id=1,
                old=None,
                new={"x": 1},
            )
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()
    assert accounts.audit_log(resource_type="thing") == []


def test_a_failed_mutation_writes_no_audit_row(accounts: Accounts) -> None:
    accounts.create_user("alice", "alice@example.com", PASSWORD)
    before = len(accounts.audit_log(limit=1000))
    with pytest.raises(marketdb.Conflict):
        accounts.create_user("ALICE", "other@example.com", PASSWORD)
    with pytest.raises(InvalidInput):
        accounts.set_role("alice", "nope")
    assert len(accounts.audit_log(limit=1000)) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ip": "not-an-ip"}, "is not an IP address"),
        ({"action": ""}, "action must be non-empty"),
        ({"resource_type": "  "}, "resource_type must be non-empty"),
        ({"actor_id": "not-a-uuid"}, "is not a user id"),
    ],
)
def test_record_audit_checks_its_input(db: marketdb.MarketDB, kwargs: dict, message: str) -> None:
    args = {
        "actor_id": None,
        "action": "x.y",
        "resource_type": "x",
        "resource_id": None,
        "old": None,
        "new": None,
    }
    with pytest.raises(InvalidInput, match=message), db.transaction() as conn:
        record_audit(conn, **{**args, **kwargs})


def test_every_mutation_is_audited_once(accounts: Accounts) -> None:
    def count() -> int:
        return len(accounts.audit_log(limit=10_000))

    steps = [
        lambda: accounts.create_user("alice", "alice@example.com", PASSWORD),
        lambda: accounts.set_role("alice", "trader"),
        lambda: accounts.update_user_settings("alice", {"a": 1}),
        lambda: accounts.rename_user("alice", username="alice2"),
        lambda: accounts.deactivate("alice2"),
        lambda: accounts.activate("alice2"),
        lambda: accounts.change_password("alice2", "another password"),
        lambda: accounts.create_role("quant"),
        lambda: accounts.grant("quant", "models", "read"),
        lambda: accounts.revoke("quant", "models", "read"),
        lambda: accounts.delete_role("quant"),
        lambda: accounts.set_config("feature.x", True),
        lambda: accounts.delete_config("feature.x"),
        lambda: accounts.create_subscription("alice2", "pro", dt.date(2024, 1, 1)),
        lambda: accounts.create_post("alice2", "hi"),
        lambda: accounts.delete_user("alice2"),
    ]
    for step in steps:
        before = count()
        step()
        assert count() == before + 1


def test_query_by_user_resource_and_time(db: marketdb.MarketDB, accounts: Accounts) -> None:
    admin = accounts.create_user("root", "root@example.com", PASSWORD, role="admin")
    as_admin = Actor(user_id=admin.id)
    alice = accounts.create_user("alice", "alice@example.com", PASSWORD, actor=as_admin)
    accounts.set_role(alice, "trader", actor=as_admin)
    accounts.grant("trader", "configurations", "update")  # by the system actor: no user
    accounts.set_config("risk.max", 5, actor=Actor(user_id=alice.id))
    by_admin = accounts.audit_log(user="root")
    assert [e.action for e in by_admin] == ["user.set_role", "user.create"]
    assert [e.action for e in accounts.audit_log(user=alice.id)] == ["configuration.create"]
    about_alice = accounts.audit_log(resource_type="user", resource_id=alice.id)
    assert [e.action for e in about_alice] == ["user.set_role", "user.create"]
    # Time windows use the rows' own timestamps: since is inclusive, until exclusive.
    everything = accounts.audit_log()
    newest = everything[0].ts
    assert all(e.ts <= newest for e in everything)
    assert accounts.audit_log(since=newest) == [e for e in everything if e.ts >= newest]
    assert accounts.audit_log(until=newest) == [e for e in everything if e.ts < newest]
    with db.transaction() as conn:
        assert query_audit(conn, action="configuration.create", limit=1)[0].resource_id == "risk.max"
    with pytest.raises(InvalidInput, match="timezone-aware"):
        accounts.audit_log(since=dt.datetime(2024, 1, 1))
    with pytest.raises(InvalidInput, match="limit"):
        accounts.audit_log(limit=0)


_WRITES_TO_AUDIT = re.compile(
    r"(update|delete)\(\s*(t\.)?audit_logs"  # SQLAlchemy Core
    r"|(update|delete\s+from)\s+\"?audit_logs"  # SQL text
    r"|truncate\s+(table\s+)?\"?audit_logs",
    re.IGNORECASE,
)


def test_no_code_updates_or_deletes_audit_rows() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if "migrations" not in path.parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _WRITES_TO_AUDIT.search(line)
    ]
    assert offenders == []
    assert _WRITES_TO_AUDIT.search("sa.delete(t.audit_logs)")  # the check itself works
    assert _WRITES_TO_AUDIT.search("UPDATE audit_logs SET x = 1")


def test_an_unknown_actor_id_never_fails_the_mutation(db: marketdb.MarketDB, accounts: Accounts) -> None:
    ghost = uuid.UUID(int=99)
    with db.transaction() as conn:
        record_audit(conn, actor_id=ghost, action="a.b", resource_type="x", resource_id=1, old=None, new=None)
    with db.raw() as conn:
        record_audit(conn, actor_id=ghost, action="a.c", resource_type="x", resource_id=2, old=None, new=None)
    entries = accounts.audit_log(resource_type="x")
    assert [(e.action, e.user_id, e.actor) for e in entries] == [
        ("a.c", None, str(ghost)),
        ("a.b", None, str(ghost)),
    ]
