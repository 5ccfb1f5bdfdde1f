"""Shared CLI plumbing: one console, one place that maps errors to exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from marketdb.errors import MarketdbError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def connect_db(url: str | None = None, *, create: bool = False, **kw: Any) -> Any:
    """Connect with a status spinner (the embedded server may need a second to start).

    Without a URL (embedded server), only ``create=True`` may initialise a new
    data directory: every other command refuses, naming the ``MARKETDB_HOME``
    it looked in, instead of silently starting an empty database.
    """
    import marketdb

    require_embedded_database(url, create=create)
    with err_console.status("connecting to PostgreSQL...", spinner="dots"):
        return marketdb.connect(url, **kw)


def require_embedded_database(url: str | None, *, create: bool = False) -> None:
    """Raise ConfigurationError when the embedded database at MARKETDB_HOME does not exist yet."""
    if url or create:
        return
    from marketdb.errors import ConfigurationError
    from marketdb.settings import Settings
    from marketdb.store.embedded import EmbeddedServer

    settings = Settings.from_env()
    if settings.database_url or EmbeddedServer(settings.home).exists():
        return
    raise ConfigurationError(
        f"no marketdb database exists at MARKETDB_HOME={settings.home}",
        hint="create one with `marketdb db upgrade` (empty) or `marketdb demo` (sample data), "
        "or point MARKETDB_HOME or DATABASE_URL at the database you meant",
    )


def print_table(
    rows: Sequence[dict[str, Any]] | Iterable[dict[str, Any]], title: str | None = None, fmt: str = "table"
) -> None:
    """Print rows as a rich table or as JSON lines."""
    rows = list(rows)
    if fmt == "json":
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    if not rows:
        console.print("[dim](no rows)[/dim]")
        return
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(str(col))
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    console.print(table)


#: Library spellings in service messages and their command-line equivalents.
_CLI_SYNTAX: tuple[tuple[str, str], ...] = (
    ("on_invalid='skip' (CLI: --on-invalid skip)", "--on-invalid skip"),
    ("on_invalid='skip'", "--on-invalid skip"),
    ('on_invalid="skip"', "--on-invalid skip"),
    ("auto_register=True; CLI: --auto-register", "--auto-register"),
    ("auto_register=True", "--auto-register"),
    ("columns={'input name': 'field'}", "--column 'input name=field'"),
    ("columns={...}", "--column INPUT=FIELD"),
    ("back in WriteResult.rejections", "listed (--rejects FILE saves them)"),
    ("register them with write_instruments", "register them with `marketdb ingest instruments FILE`"),
    (" (or connect(..., migrate_schema=True))", ""),
)


def cli_syntax(text: str) -> str:
    """``text`` with library spellings (``on_invalid='skip'``) in CLI syntax (``--on-invalid skip``)."""
    for lib, cli in _CLI_SYNTAX:
        text = text.replace(lib, cli)
    return text


def fail(exc: MarketdbError) -> typer.Exit:
    """Print a marketdb error for humans (in CLI syntax) and return the matching exit."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/bold red] {escape(cli_syntax(exc.message))}")
    hint = exc.hint
    details = exc.details
    if isinstance(details, dict) and details.get("unknown_symbols"):
        # Skipping rows of unknown symbols would write nothing of theirs: register them first.
        hint = (
            "register the symbols first (`marketdb ingest instruments FILE`) or re-run with "
            "--auto-register; --on-invalid skip would leave their rows out"
        )
    if hint:
        err_console.print(f"[yellow]hint:[/yellow] {escape(cli_syntax(hint))}")
    details = exc.details
    if isinstance(details, dict) and details.get("summary"):
        err_console.print(details["summary"])
    return typer.Exit(exc.exit_code)
