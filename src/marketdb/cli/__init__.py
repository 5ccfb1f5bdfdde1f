"""The `marketdb` command line. Interfaces parse, authorize and format; services do the work.

Every command has ``--help``. Errors print what went wrong and what to do,
and exit with a code by kind (2 bad input, 3 not found, 4 conflict,
5 configuration, 6 unavailable, 7 permission denied, 8 a secret failed
authentication: tampered, swapped or wrong key).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from marketdb.cli import accounts as accounts_cmd
from marketdb.cli import bars as bars_cmd
from marketdb.cli import db as db_cmd
from marketdb.cli import demo as demo_cmd
from marketdb.cli import ops as ops_cmd
from marketdb.cli import query as query_cmd
from marketdb.cli import trading as trading_cmd
from marketdb.cli._common import fail
from marketdb.cli.clickhouse import clickhouse_app
from marketdb.cli.ingest import ingest_app
from marketdb.errors import MarketdbError

app = typer.Typer(
    name="marketdb",
    help=(
        "marketdb: the market-data and trading database for Python.\n\n"
        "With no DATABASE_URL it runs an embedded PostgreSQL under MARKETDB_HOME "
        "(started on first use, reused afterwards). Start with `marketdb demo`."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_cmd.app, name="db")
app.add_typer(ingest_app, name="ingest")
app.add_typer(bars_cmd.bars_app, name="bars")
app.command("ticks")(query_cmd.ticks)
app.command("latest")(query_cmd.latest)
app.command("chart")(query_cmd.chart)
app.add_typer(ops_cmd.policies_app, name="policies")
for _name in ("maintain", "backup", "restore", "doctor"):
    app.command(_name)(getattr(ops_cmd, _name))
app.add_typer(trading_cmd.strategies_app, name="strategies")
app.add_typer(trading_cmd.signals_app, name="signals")
app.add_typer(trading_cmd.orders_app, name="orders")
app.add_typer(trading_cmd.fills_app, name="fills")
app.add_typer(trading_cmd.positions_app, name="positions")
app.add_typer(trading_cmd.portfolio_app, name="portfolio")
app.add_typer(trading_cmd.seed_app, name="seed")
app.add_typer(accounts_cmd.users_app, name="users")
app.add_typer(accounts_cmd.secrets_app, name="secrets")
app.add_typer(accounts_cmd.keys_app, name="keys")
app.add_typer(accounts_cmd.posts_app, name="posts")
app.command("demo")(demo_cmd.demo)
app.add_typer(clickhouse_app, name="clickhouse")


def _version(value: bool) -> None:
    if value:
        from marketdb import __version__

        typer.echo(f"marketdb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what marketdb does.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `marketdb` script: runs the app, maps errors to exit codes."""
    try:
        app(args=argv, standalone_mode=False)
    except MarketdbError as exc:
        raise SystemExit(fail(exc).exit_code) from None
    except typer.Abort:
        sys.stderr.write("aborted\n")
        raise SystemExit(1) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # usage errors carry their own exit code
        import importlib
        import importlib.util

        # typer >= 0.20 vendors click as typer._click; older typer uses click itself.
        mod_name = "typer._click" if importlib.util.find_spec("typer._click") else "click"
        click_exception = importlib.import_module(mod_name).ClickException
        if isinstance(exc, click_exception):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
