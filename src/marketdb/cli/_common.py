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


class StepProgress:
    """Elapsed time, done/total and ETA of a long command on stderr.

    On a terminal a Rich progress bar; otherwise (cron, a pipe) one plain line
    ``what: done/total unit, elapsed, ETA`` at most every ``every`` seconds, and always
    the last one, so logs show how far a run got. Call :meth:`update` with
    ``(done, total)`` (and optionally what comes next); use it as a context manager.
    """

    def __init__(self, what: str, unit: str, *, every: float = 10.0) -> None:
        import time

        self.what, self.unit, self.every = what, unit, every
        self._clock = time.monotonic
        self._t0 = self._clock()
        self._last_line = float("-inf")
        self._state: tuple[int, int, str] | None = None
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> StepProgress:
        if err_console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._state is not None and exc[0] is None:
            self._line(final=True)

    def update(self, done: int, total: int, doing: str = "") -> None:
        """Record ``done`` of ``total`` (``doing``: what runs next, shown beside the bar)."""
        self._state = (done, total, doing)
        if self._bar is not None:
            label = f"{self.what}: {doing}" if doing and done < total else self.what
            self._bar.update(self._task, completed=done, total=total, description=label)
        elif self._clock() - self._last_line >= self.every:
            self._line()

    def eta(self) -> float | None:
        """Seconds left at the average pace so far (None before the first unit is done)."""
        if self._state is None:
            return None
        done, total, _ = self._state
        if done <= 0:
            return None
        return (self._clock() - self._t0) / done * max(total - done, 0)

    def _line(self, final: bool = False) -> None:
        assert self._state is not None
        done, total, doing = self._state
        self._last_line = self._clock()
        elapsed = self._last_line - self._t0
        eta = self.eta()
        tail = "" if final or eta is None else f", ETA {eta:,.1f} s"
        nxt = f" (next: {doing})" if doing and not final and done < total else ""
        err_console.print(
            f"{self.what}: {done:,}/{total:,} {self.unit}, {elapsed:,.1f} s elapsed{tail}{nxt}",
            highlight=False,
            soft_wrap=True,
        )
