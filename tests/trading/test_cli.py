"""The trading CLI against a real PostgreSQL (sub-apps mounted on a local Typer app)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from marketdb.cli import trading as cli
from marketdb.errors import Conflict, InvalidInput, NotFound

app = typer.Typer()
for name, sub in (
    ("strategies", cli.strategies_app),
    ("signals", cli.signals_app),
    ("orders", cli.orders_app),
    ("fills", cli.fills_app),
    ("positions", cli.positions_app),
    ("portfolio", cli.portfolio_app),
    ("seed", cli.seed_app),
):
    app.add_typer(sub, name=name)


@pytest.fixture
def run(db_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, [*args, "--url", db_url])
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    invoke("seed", "examples")
    return invoke


def json_rows(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_seed_twice_reports_existing(run: Any) -> None:
    out = run("seed", "examples", "-f", "json").output
    rows = {r["what"]: r["items"] for r in json_rows(out)}
    assert rows["strategies_existing"] == "ema_crossover, support_resistance"
    assert rows["instruments_created"] == "-"


def test_order_fill_position_portfolio_flow(run: Any) -> None:
    order = json_rows(
        run(
            "orders",
            "submit",
            "ema_crossover",
            "NIFTY",
            "buy",
            "2",
            "--client-order-id",
            "cli-1",
            "-f",
            "json",
        ).output
    )[0]
    again = json_rows(
        run(
            "orders",
            "submit",
            "ema_crossover",
            "NIFTY",
            "buy",
            "2",
            "--client-order-id",
            "cli-1",
            "-f",
            "json",
        ).output
    )[0]
    assert again["id"] == order["id"]
    run("orders", "accept", order["id"], "--broker-order-id", "B1")
    run("fills", "record", order["id"], "1", "100.10", "--commission", "0.5", "--exec-id", "x1")
    dup = run("fills", "record", order["id"], "1", "100.10", "--exec-id", "x1")
    assert "duplicate execution" in dup.output
    run("fills", "record", order["id"], "1", "100.30", "--exec-id", "x2")
    shown = json_rows(run("orders", "show", order["id"], "-f", "json").output)
    assert shown[0]["status"] == "filled"
    assert Decimal(shown[0]["avg_fill_price"]) == Decimal("100.2")
    assert [h["status"] for h in shown[1:]] == ["pending", "open", "partially_filled", "filled"]
    positions = json_rows(run("positions", "list", "-f", "json").output)
    assert Decimal(positions[0]["quantity"]) == 2
    marked = json_rows(run("positions", "mark", "--price", "NIFTY=101", "-f", "json").output)
    assert Decimal(marked[0]["unrealized_pnl"]) == Decimal("1.6")
    stops = json_rows(
        run("positions", "stops", "ema_crossover", "NIFTY", "--stop-loss", "95", "-f", "json").output
    )
    assert Decimal(stops[0]["stop_loss_price"]) == 95
    snap = json_rows(
        run("portfolio", "snapshot", "--initial-cash", "1000", "--price", "NIFTY=101", "-f", "json").output
    )[0]
    assert Decimal(snap["total_pnl"]) == Decimal("1.1")
    assert Decimal(snap["total_value"]) == Decimal("1001.1")
    series = json_rows(run("portfolio", "series", "-f", "json").output)
    assert len(series) == 1
    fills = json_rows(run("fills", "list", "--order", order["id"], "-f", "json").output)
    assert [f["broker_exec_id"] for f in fills] == ["x1", "x2"]
    assert "fills" in run("fills", "list").output  # the table renders


def test_strategies_and_signals_commands(run: Any) -> None:
    run(
        "strategies",
        "create",
        "cli_strat",
        "CLI strategy",
        "--config",
        '{"a": 1}',
        "--symbol",
        "NIFTY",
        "--mode",
        "live",
    )
    run("strategies", "enable", "cli_strat")
    updated = json_rows(run("strategies", "update", "cli_strat", "--status", "running", "-f", "json").output)[
        0
    ]
    assert (updated["status"], updated["execution_mode"], updated["config"]) == ("running", "live", {"a": 1})
    enabled = json_rows(run("strategies", "list", "--enabled", "-f", "json").output)
    assert [s["id"] for s in enabled] == ["cli_strat"]
    sig = json_rows(
        run(
            "signals",
            "create",
            "NIFTY",
            "LONG",
            "--strategy",
            "cli_strat",
            "--strength",
            "0.7",
            "--confidence",
            "0.9",
            "-f",
            "json",
        ).output
    )[0]
    active = json_rows(run("signals", "list", "--status", "active", "-f", "json").output)
    assert [s["id"] for s in active] == [sig["id"]]
    run("signals", "execute", sig["id"])
    assert json_rows(run("signals", "list", "--status", "active", "-f", "json").output) == []
    assert "expired 0 signal(s)" in run("signals", "expire").output


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (
            (
                "signals",
                "create",
                "NIFTY",
                "LONG",
                "--strategy",
                "ema_crossover",
                "--strength",
                "1.5",
                "--confidence",
                "0.5",
            ),
            InvalidInput,
            "strength",
        ),
        (("orders", "submit", "ema_crossover", "NOPE", "buy", "1"), NotFound, "NOPE"),
        (("strategies", "create", "x", "X", "--config", "{bad"), InvalidInput, "valid JSON"),
        (("strategies", "create", "ema_crossover", "again"), Conflict, "already exists"),
        (("positions", "mark", "--price", "NIFTY"), InvalidInput, "SYMBOL=PRICE"),
        (("strategies", "list", "-f", "xml"), InvalidInput, "table or json"),
    ],
)
def test_errors_surface_as_marketdb_errors(
    run: Any, args: tuple[str, ...], error: type, message: str
) -> None:
    result = run(*args, ok=False)
    assert isinstance(result.exception, error)
    assert message in str(result.exception)
