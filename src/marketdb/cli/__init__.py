"""The `marketdb` command line. Interfaces parse, authorize and format; services do the work.

Every command has ``--help``. Errors print what went wrong and what to do,
and exit with a code by kind (2 bad input, 3 not found, 4 conflict,
5 configuration, 6 unavailable, 7 permission denied, 8 a secret failed
authentication: tampered, swapped or wrong key).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from marketdb.cli import accounts as accounts_cmd
from marketdb.cli import bars as bars_cmd
from marketdb.cli import db as db_cmd
from marketdb.cli import demo as demo_cmd
from marketdb.cli import instruments as instruments_cmd
from marketdb.cli import ops as ops_cmd
from marketdb.cli import query as query_cmd
from marketdb.cli import serve as serve_cmd
from marketdb.cli import sync as sync_cmd
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
app.add_typer(instruments_cmd.instruments_app, name="instruments")
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
app.command("sync")(sync_cmd.sync)
app.command("quality")(sync_cmd.quality)
app.command("serve")(serve_cmd.serve)
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
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the full traceback when a command fails.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


#: Exit codes of every command (docs/cli.md lists them too).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "the command ran and found a problem (doctor, bars verify, db check, maintain, keys), "
    "or an unexpected error",
    2: "bad input or bad usage (wrong option, invalid data)",
    3: "not found (unknown symbol, strategy, user, file)",
    4: "conflict with the current state (duplicate, illegal transition)",
    5: "configuration (URL, keys, missing tools, no database at MARKETDB_HOME)",
    6: "a dependency is unavailable (database unreachable, disk full); retry later",
    7: "permission denied",
    8: "a secret failed authentication (tampered, swapped or wrong key)",
    130: "interrupted (Ctrl-C)",
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `marketdb` script: the one error boundary of every command.

    marketdb errors and database-driver errors print ``error:`` and ``hint:``
    and exit with the code of their kind (:data:`EXIT_CODES`); anything else
    prints one line too. ``--debug`` (or ``MARKETDB_DEBUG=1``) adds the traceback.
    """
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MARKETDB_DEBUG", "") not in ("", "0")
    raise SystemExit(_run(args, debug))


def _run(args: list[str], debug: bool) -> int:
    try:
        rc = app(args=args, standalone_mode=False, prog_name="marketdb")
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BaseException as exc:  # the one place every failure turns into a message and a code
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else 1
        return _report(exc, debug)
    # Without standalone mode click returns the code of a typer.Exit instead of exiting.
    return rc if isinstance(rc, int) else 0


def _report(exc: BaseException, debug: bool) -> int:
    from marketdb.store.db import explain_driver_error

    click_exception = _click_exception_class()
    if isinstance(exc, click_exception):  # usage errors carry their own message and code
        usage: Any = exc
        usage.show()
        return int(usage.exit_code)
    if debug:
        import traceback

        traceback.print_exception(exc)
    err = exc if isinstance(exc, MarketdbError) else explain_driver_error(exc)
    if err is not None:
        return int(fail(err).exit_code)
    if isinstance(exc, OSError) and not debug:
        fail(MarketdbError(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
                           hint="check the path and its permissions; --debug shows where it happened"))
        return 1
    if not debug:
        fail(MarketdbError(f"unexpected {type(exc).__name__}: {exc}",
                           hint="re-run with --debug for the traceback, and please report it"))
    return 1


def _click_exception_class() -> type[Exception]:
    import importlib
    import importlib.util

    # typer >= 0.20 vendors click as typer._click; older typer uses click itself.
    mod_name = "typer._click" if importlib.util.find_spec("typer._click") else "click"
    cls: type[Exception] = importlib.import_module(mod_name).ClickException
    return cls
