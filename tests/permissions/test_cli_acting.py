"""The CLI acts as a configured user (--as / MARKETDB_USER) or as the system actor, visibly."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import marketdb
from marketdb.cli import accounts as accounts_cli
from marketdb.cli import trading as trading_cli
from marketdb.errors import PermissionDenied

PW = "correct horse battery staple"

app = typer.Typer()
app.add_typer(trading_cli.orders_app, name="orders")
app.add_typer(trading_cli.seed_app, name="seed")
app.add_typer(accounts_cli.users_app, name="users")


@pytest.fixture
def run(db: marketdb.MarketDB, db_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(app, [*args, "--url", db_url], env=env)

    db.trading.seed_examples()
    db.accounts.create_user("vic", "vic@example.org", PW, role="viewer")
    db.accounts.create_user("tess", "tess@example.org", PW, role="trader")
    return invoke


def test_system_actor_by_default_and_says_so(run: Any, db: marketdb.MarketDB) -> None:
    result = run("orders", "submit", "ema_crossover", "NIFTY", "buy", "1")
    assert result.exit_code == 0, result.output
    assert "acting as the system actor" in result.output
    assert len(db.trading.orders()) == 1


def test_as_viewer_is_refused_and_nothing_written(run: Any, db: marketdb.MarketDB) -> None:
    # (The root app maps PermissionDenied to exit code 7; this test app lets it through.)
    result = run("orders", "--as", "vic", "submit", "ema_crossover", "NIFTY", "buy", "1")
    assert isinstance(result.exception, PermissionDenied), result.output
    assert "'vic' (role 'viewer') is not allowed to create orders" in str(result.exception)
    assert db.trading.orders() == []
    # A viewer cannot promote itself from the CLI either.
    result = run("users", "--as", "vic", "set-role", "vic", "admin")
    assert isinstance(result.exception, PermissionDenied), result.output
    assert db.accounts.get_user("vic").role == "viewer"


def test_marketdb_user_environment_variable(run: Any, db: marketdb.MarketDB) -> None:
    result = run("orders", "submit", "ema_crossover", "NIFTY", "buy", "1", env={"MARKETDB_USER": "tess"})
    assert result.exit_code == 0, result.output
    assert "acting as user tess" in result.output
    (order,) = db.trading.orders()
    (entry,) = db.accounts.audit_log(resource_type="order", resource_id=order["id"])
    assert entry.user_id == db.accounts.get_user("tess").id
    assert entry.user_agent is not None
    assert entry.user_agent.startswith("marketdb-cli/")
