"""`marketdb users|secrets|keys|posts`: prompts, stdin, no secrets on screen, rotation."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner, Result

import marketdb
from marketdb.cli.accounts import keys_app, posts_app, secrets_app, users_app
from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts import Accounts, KeyRing
from marketdb.store.schema import tables as t

PASSWORD = "correct horse battery staple"
SECRET = "CLI-SECRET-9f8e7d6c"
K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(32)).decode()

Run = Callable[..., Result]

app = typer.Typer()
app.add_typer(users_app, name="users")
app.add_typer(secrets_app, name="secrets")
app.add_typer(keys_app, name="keys")
app.add_typer(posts_app, name="posts")


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k1:{K1}")
    monkeypatch.delenv("MARKETDB_MASTER_KEY_FILE", raising=False)
    monkeypatch.delenv("MARKETDB_PRIMARY_KEY_ID", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, ok: bool = True) -> Result:
        result = runner.invoke(app, [*args, "--url", db_url], input=input)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return run


@pytest.fixture
def db_for(db_url: str) -> Iterator[marketdb.MarketDB]:
    db = marketdb.connect(db_url, redis_url=None)
    yield db
    db.close()


def test_users_create_prompts_for_a_hidden_password(cli: Run, db_for: marketdb.MarketDB) -> None:
    result = cli(
        "users",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--role",
        "trader",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert "created user alice (trader)" in result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    with db_for.transaction() as conn:
        stored = conn.execute(sa.select(t.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    acc = Accounts(db_for, keyring=KeyRing({}))
    assert acc.authenticate("alice", PASSWORD).role == "trader"
    # Typed twice: a mismatch asks again, and end of input aborts without creating anything.
    bad = cli(
        "users",
        "create",
        "bob",
        "--email",
        "bob@example.com",
        input=f"{PASSWORD}\nsomething else\n",
        ok=False,
    )
    assert bad.exit_code != 0
    assert "do not match" in bad.output
    # Scripts pipe it on stdin.
    cli("users", "create", "carol", "--email", "carol@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    assert acc.authenticate("carol", PASSWORD).username == "carol"
    # The policy is checked before anything is stored.
    short = cli(
        "users", "create", "dave", "--email", "d@example.com", "--password-stdin", input="short\n", ok=False
    )
    assert isinstance(short.exception, InvalidInput)
    assert [u.username for u in acc.list_users()] == ["alice", "carol"]


def test_password_is_never_an_argument(cli: Run) -> None:
    result = cli("users", "create", "eve", "--email", "e@example.com", "--password", PASSWORD, ok=False)
    assert result.exit_code == 2  # usage error: no such option
    assert "No such option" in result.output


def test_users_list_set_role_deactivate_passwd_delete(cli: Run, db_for: marketdb.MarketDB) -> None:
    cli("users", "create", "alice", "--email", "alice@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    cli("users", "set-role", "alice", "admin")
    listed = [json.loads(line) for line in cli("users", "list", "--format", "json").stdout.splitlines()]
    assert [(u["username"], u["role"], u["active"]) for u in listed] == [("alice", "admin", True)]
    assert "password" not in json.dumps(listed)
    cli("users", "deactivate", "alice")
    assert cli("users", "list", "--active", "--format", "json").stdout.strip() == ""
    cli("users", "activate", "alice")
    cli("users", "passwd", "alice", input="a fresh new password\na fresh new password\n")
    acc = Accounts(db_for, keyring=KeyRing({}))
    assert acc.authenticate("alice", "a fresh new password").username == "alice"
    roles = cli("users", "roles", "--format", "json").stdout
    assert {"role": "admin", "resource": "*", "action": "*"} in [
        json.loads(line) for line in roles.splitlines()
    ]
    missing = cli("users", "set-role", "ghost", "admin", ok=False)
    assert isinstance(missing.exception, NotFound)
    cli("users", "delete", "alice", "--yes")
    assert acc.list_users() == []
    entry = acc.audit_log(action="user.delete")[0]
    assert str(entry.actor).startswith("cli:")
    assert str(entry.user_agent).startswith("marketdb-cli/")


def test_secrets_from_stdin_and_never_printed(cli: Run, db_for: marketdb.MarketDB) -> None:
    cli("users", "create", "alice", "--email", "alice@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    stored = cli("secrets", "set", "alice", "tiingo_api_key", input=f"{SECRET}\n")
    assert "stored secret 'tiingo_api_key' for alice (master key k1)" in stored.output
    assert SECRET not in stored.output
    cli("secrets", "set", "alice", "prompted", "--prompt", input=f"{SECRET}-2\n")
    listing = cli("secrets", "list", "alice", "--format", "json").stdout
    assert [json.loads(line)["key_name"] for line in listing.splitlines()] == [
        "prompted",
        "tiingo_api_key",
    ]
    assert SECRET not in listing
    acc = Accounts(db_for, keyring=KeyRing({"k1": base64.b64decode(K1)}))
    # One trailing newline from the pipe is not part of the value.
    assert acc.get_secret("alice", "tiingo_api_key").reveal_text() == SECRET
    assert acc.get_secret("alice", "prompted").reveal_text() == f"{SECRET}-2"
    cli("secrets", "delete", "alice", "prompted")
    assert [s.key_name for s in acc.list_secrets("alice")] == ["tiingo_api_key"]
    empty = cli("secrets", "set", "alice", "empty", "--stdin", input="", ok=False)
    assert isinstance(empty.exception, InvalidInput)


def test_keys_generate(cli: Run) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["keys", "generate"])
    assert result.exit_code == 0
    line = result.stdout.strip()
    assert re.fullmatch(r"k\d{8}:[A-Za-z0-9+/]{43}=", line)
    assert len(base64.b64decode(line.split(":", 1)[1])) == 32
    named = runner.invoke(app, ["keys", "generate", "--id", "prod-2025"])
    assert named.stdout.startswith("prod-2025:")
    bad = runner.invoke(app, ["keys", "generate", "--id", "bad id"])
    assert isinstance(bad.exception, InvalidInput)


def test_keys_status_and_rotate(
    cli: Run,
    db_for: marketdb.MarketDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli("users", "create", "alice", "--email", "alice@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    for name in ("a", "b", "c"):
        cli("secrets", "set", "alice", name, input=f"{SECRET}-{name}")
    status = [json.loads(x) for x in cli("keys", "status", "--format", "json").stdout.splitlines()]
    assert [(s["key_id"], s["primary"], s["user_secrets"]) for s in status] == [("k1", True, 3)]
    # Add k2 and make it primary: rotate re-wraps everything under it.
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k1:{K1},k2:{K2}")
    monkeypatch.setenv("MARKETDB_PRIMARY_KEY_ID", "k2")
    rotated = cli("keys", "rotate", "--batch-size", "2")
    assert "rotated to k2: 3 user secrets, 0 broker credentials re-wrapped" in rotated.output
    assert "older keys can be retired" in rotated.output
    status = [json.loads(x) for x in cli("keys", "status", "--format", "json").stdout.splitlines()]
    assert [(s["key_id"], s["user_secrets"]) for s in status] == [("k1", 0), ("k2", 3)]
    # Retire k1: everything still opens.
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k2:{K2}")
    monkeypatch.delenv("MARKETDB_PRIMARY_KEY_ID")
    acc = Accounts(db_for, keyring=KeyRing({"k2": base64.b64decode(K2)}))
    assert acc.get_secret("alice", "b").reveal_text() == f"{SECRET}-b"
    cli("keys", "status")
    # A row sealed with a key that is not configured makes status exit 1.
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k1:{K1}")
    cli("secrets", "set", "alice", "old", input="v")
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k2:{K2}")
    broken = cli("keys", "status", ok=False)
    assert broken.exit_code == 1
    assert "not configured: k1" in " ".join(broken.output.split())
    incomplete = cli("keys", "rotate", ok=False)
    assert incomplete.exit_code == 1
    assert "master key 'k1' is not configured" in " ".join(incomplete.output.split())


def test_posts(cli: Run) -> None:
    cli("users", "create", "alice", "--email", "alice@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    cli("posts", "create", "alice", "hello from the CLI")
    cli("posts", "create", "alice", input="from stdin\n")
    posts = [json.loads(x) for x in cli("posts", "list", "--format", "json").stdout.splitlines()]
    assert {p["text"] for p in posts} == {"hello from the CLI", "from stdin\n"}
    mine = cli("posts", "list", "--user", "alice", "-n", "1", "--format", "json").stdout
    assert len(mine.splitlines()) == 1
    cli("posts", "delete", posts[0]["id"])
    left = cli("posts", "list", "--format", "json").stdout.splitlines()
    assert len(left) == 1
