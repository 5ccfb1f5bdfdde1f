"""`marketdb policies|maintain|backup|restore|doctor`: operations.

Parse, call :class:`marketdb.services.ops.Ops`, format. No SQL here.
``policies_app`` is mounted as ``marketdb policies``; ``maintain``, ``backup``,
``restore`` and ``doctor`` are top-level commands. The CLI acts as the
operator ``cli:<os user>`` in the audit log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from marketdb.cli._common import StepProgress, connect_db, console, err_console, fail, print_table
from marketdb.errors import InvalidInput, MarketdbError

if TYPE_CHECKING:
    from marketdb.services.ops import DoctorReport, MaintainReport, Ops, PolicyInfo

__all__ = ["backup", "doctor", "maintain", "policies_app", "restore"]

policies_app = typer.Typer(
    help="Partition size, compression and retention per table (time-series and ordinary tables).",
    no_args_is_help=True,
)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")]
_MIN_EVERY = dt.timedelta(minutes=1)


@contextmanager
def _ops(url: str | None, *, as_is: bool = False) -> Iterator[Ops]:
    """Ops on the database at ``url``; ``as_is`` neither checks nor migrates the schema
    (backup and restore must work on a database of any revision, e.g. before an upgrade)."""
    from marketdb import __version__
    from marketdb.services.accounts.audit import Actor
    from marketdb.services.ops import Ops

    try:
        who = getpass.getuser()
    except Exception:  # no login name in some containers
        who = "unknown"
    db = connect_db(url, check_schema=False, migrate_schema=False) if as_is else connect_db(url)
    try:
        yield Ops(db, actor=Actor(name=f"cli:{who}", user_agent=f"marketdb-cli/{__version__}"))
    finally:
        db.close()


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise InvalidInput(f"--format must be table or json, got {fmt!r}")


def _policy_row(p: PolicyInfo) -> dict[str, Any]:
    d = p.as_dict()
    return {
        "table": d["table"],
        "kind": d["kind"],
        "partition": d["partition_interval"] or "",
        "compress_after": d["compress_after"] or ("off" if p.kind == "timeseries" else ""),
        "retain_for": d["retain_for"] or "off",
        "time_column": d["time_column"] or ("ts" if p.kind == "timeseries" else ""),
        "backend": d["backend"] or "",
    }


# ------------------------------------------------------------------ policies
@policies_app.command("list")
def policies_list(url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """List the policies: time-series tables, then ordinary tables with row retention."""
    _check_format(fmt)
    with _ops(url) as ops:
        rows = [_policy_row(p) for p in ops.policies()]
    print_table(rows, title="policies", fmt=fmt)


@policies_app.command("set")
def policies_set(
    table: Annotated[str, typer.Argument(help="Table, e.g. trades, candles, order_history, signals.")],
    partition_interval: Annotated[
        str | None,
        typer.Option("--partition-interval", help="Time-series only: '1 day', '7 days' or '1 month'."),
    ] = None,
    compress_after: Annotated[
        str | None,
        typer.Option("--compress-after", help="Time-series only: e.g. 7d; 'off' to disable."),
    ] = None,
    retain_for: Annotated[
        str | None,
        typer.Option("--retain-for", help="Keep this long, e.g. 30d, 2y; 'off' keeps everything."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="Ordinary tables: the timestamp column retention reads."),
    ] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Change a table's policy; every change is written to the audit log."""
    from marketdb.services.ops import UNSET

    _check_format(fmt)
    with _ops(url) as ops:
        new = ops.set_policy(
            table,
            partition_interval=UNSET if partition_interval is None else partition_interval,
            compress_after=UNSET if compress_after is None else compress_after,
            retain_for=UNSET if retain_for is None else retain_for,
            time_column=time_column,
        )
    if new is None:
        console.print(f"row retention of [bold]{table}[/bold] removed: its rows are kept")
        return
    print_table([_policy_row(new)], title=f"policy of {table}", fmt=fmt)


# ------------------------------------------------------------------ maintain
def _parse_now(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--now must be an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _summary(report: MaintainReport) -> str:
    verb = "would " if report.dry_run else ""
    rows = sum(report.deleted_rows.values())
    hooks = sum(1 for s in report.steps if s.step == "hook" and s.status != "error")
    return (
        f"{report.now:%Y-%m-%d %H:%M:%S} UTC: {verb}create {len(report.created_partitions)} partition(s), "
        f"{verb}drop {len(report.dropped_partitions)}, {verb}delete {rows} row(s); "
        f"{hooks} hook(s); {len(report.errors)} error(s)"
    )


_STATUS_STYLE = {"done": "green", "planned": "cyan", "skipped": "dim", "error": "bold red"}


def _print_report(report: MaintainReport, fmt: str, *, brief: bool = False) -> None:
    if fmt == "json":
        for s in report.steps:
            row = {"now": report.now.isoformat(), "dry_run": report.dry_run, **dataclasses.asdict(s)}
            sys.stdout.write(json.dumps(row, default=str) + "\n")
        return
    steps = report.errors if brief else report.steps
    if steps:
        table = Table(title="maintain (dry run: nothing changed)" if report.dry_run else "maintain")
        for col in ("step", "table", "action", "detail", "rows", "status"):
            table.add_column(col)
        for s in steps:
            style = _STATUS_STYLE.get(s.status, "")
            table.add_row(
                s.step,
                s.table or "",
                s.action,
                s.detail,
                str(s.count) if s.action == "delete rows" else "",
                f"[{style}]{s.status}[/{style}]",
            )
        console.print(table)
    console.print(_summary(report))


def maintain(
    url: UrlOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; change nothing.")
    ] = False,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Run in a loop, e.g. 1h or 15min; Ctrl-C or SIGTERM stops it."),
    ] = None,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="Run as the scheduler: every --every (default 1h), one runner across processes, "
            "each run recorded (shown by `marketdb doctor`).",
        ),
    ] = False,
    days_ahead: Annotated[
        int, typer.Option("--days-ahead", help="Create day partitions this many days ahead.")
    ] = 7,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Pretend it is this time (ISO 8601, UTC if no offset), e.g. to preview."),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Create partitions ahead, apply retention, run the extra maintenance steps.

    Run it from cron (e.g. hourly) or as a loop with --every. Exits 1 when a step failed.
    """
    from marketdb.services.ops import parse_interval

    _check_format(fmt)
    at = _parse_now(now)
    period = None
    if every is not None:
        period = parse_interval(every, what="--every")
        if period < _MIN_EVERY:
            raise InvalidInput("--every must be at least 1 minute", hint="e.g. --every 1h")
    elif loop:
        period = dt.timedelta(hours=1)
    with _ops(url) as ops:
        if period is None:
            with StepProgress("maintain", "steps") as progress:
                report = ops.maintain(
                    now=at, dry_run=dry_run, days_ahead=days_ahead, progress=progress.update
                )
            _print_report(report, fmt)
            if not report.ok:
                raise typer.Exit(1)
            return
        _loop(ops, period, dry_run=dry_run, days_ahead=days_ahead, fmt=fmt)


def _loop(ops: Ops, period: dt.timedelta, *, dry_run: bool, days_ahead: int, fmt: str) -> None:
    """Run maintain every ``period`` until Ctrl-C or SIGTERM; a failed run does not stop the loop."""
    stop = threading.Event()

    def _on_term(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_term)
    from marketdb.services.ops import format_interval
    from marketdb.services.ops.scheduler import Scheduler

    err_console.print(f"maintain every {format_interval(period)}; Ctrl-C or SIGTERM stops it")
    scheduler = Scheduler(ops, every=period, days_ahead=days_ahead)
    try:
        while not stop.is_set():
            try:
                if dry_run:
                    _print_report(ops.maintain(dry_run=True, days_ahead=days_ahead), fmt, brief=True)
                else:
                    run = scheduler.run_once()
                    took = f"{run.seconds:.1f}s" if run.seconds is not None else "?"
                    console.print(
                        f"run {run.id} {run.status} in {took}" + (f": {run.error}" if run.error else "")
                    )
            except MarketdbError as exc:  # e.g. the server restarting: try again next period
                fail(exc)
            stop.wait(period.total_seconds())
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    err_console.print("maintain loop stopped")


# ------------------------------------------------------------ backup/restore
def backup(
    file: Annotated[
        Path,
        typer.Argument(
            help="Archive to write (pg_dump custom format), e.g. mdb.dump; a new directory with --base."
        ),
    ],
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Restore into a scratch database and compare row counts."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", "-t", help="Only this table, with its partitions (repeatable)."),
    ] = None,
    base: Annotated[
        bool,
        typer.Option("--base", help="A physical base backup of the whole server (pg_basebackup) into the "
                     "new directory FILE, for point-in-time recovery (docs/operations.md)."),
    ] = False,
    url: UrlOpt = None,
) -> None:
    """Back up the database with pg_dump (-Fc), plus FILE.manifest.json (size, SHA-256, row counts)."""
    if base and (table or verify):
        raise InvalidInput("--base copies the whole server: it takes neither --table nor --verify")
    with _ops(url, as_is=True) as ops, _progress(file, "base backup" if base else "backup"):
        if base:
            based = ops.base_backup(file)
        else:
            result = ops.backup(file, verify=verify, overwrite=force, tables=table or None)
    if base:
        console.print(
            f"[green]base backup written[/green] {based.path} ({based.size_bytes / 1e6:.1f} MB, "
            f"{based.seconds:.1f} s)"
        )
        console.print(f"  {based.pg_basebackup.version} ({based.pg_basebackup.path})")
        return
    console.print(f"[green]backup written[/green] {result.path} ({result.size_bytes / 1e6:.1f} MB)")
    console.print(f"  sha256 {result.sha256}")
    console.print(f"  manifest {result.manifest_path}")
    console.print(f"  {result.pg_dump.version} ({result.pg_dump.path})")
    if table:
        console.print(f"  tables {', '.join(table)} (with their partitions)")
    if result.verification is not None:
        v = result.verification
        console.print(
            f"[green]verified[/green]: restored into a scratch database, {len(v.tables)} tables "
            f"match the {v.compared_with} row counts"
        )


@contextmanager
def _progress(target: Path, what: str, measure: Any = None) -> Iterator[None]:
    """Elapsed time and bytes written so far on stderr while pg_dump/pg_basebackup/pg_restore run.

    ``measure`` returns the bytes done so far; by default the size of ``target``
    (``FILE.partial`` while pg_dump writes it, or the directory of a base backup).
    """
    import time

    stop = threading.Event()
    t0 = time.monotonic()
    partial = target.with_name(target.name + ".partial")

    def written() -> int:
        if measure is not None:
            return int(measure())
        if partial.is_file():
            return partial.stat().st_size
        if target.is_dir():
            return sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
        return 0

    with err_console.status(f"{what}...") as status:

        def tick() -> None:
            while not stop.wait(0.5):
                try:
                    size = written()
                except Exception:  # files appear and vanish, the database is being created  # noqa: S112
                    continue
                status.update(f"{what}: {size / 1e6:,.1f} MB written, {time.monotonic() - t0:,.0f} s elapsed")

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
    err_console.print(f"{what} took {time.monotonic() - t0:,.1f} s", highlight=False)


def restore(
    file: Annotated[Path, typer.Argument(help="Archive written by `marketdb backup` or pg_dump -Fc.")],
    database: Annotated[str, typer.Option("--database", "-d", help="New database to restore into.")],
    no_owner: Annotated[
        bool, typer.Option("--no-owner", help="Make the restoring user own everything (roles differ).")
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel restore jobs.")] = 1,
    url: UrlOpt = None,
) -> None:
    """Restore an archive into a NEW database on the same server (never over an existing one)."""
    with _ops(url, as_is=True) as ops:

        def restored_bytes() -> int:
            import psycopg

            with psycopg.connect(ops.db.url, connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT pg_database_size(datname) FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
            return int(row[0]) if row else 0

        with _progress(file, "restore", measure=restored_bytes):
            result = ops.restore(file, database, no_owner=no_owner, jobs=jobs)
    console.print(f"[green]restored[/green] into database [bold]{result.database}[/bold]")
    console.print(f"  url {result.url}")
    console.print(f"  schema revision {result.schema_revision or '(none: not a marketdb database)'}")
    console.print(
        "  use it: DATABASE_URL=<that url, with your password> marketdb doctor; "
        "`marketdb db upgrade` if the revision is old"
    )


# --------------------------------------------------------------------- doctor
_MARKS = {
    "ok": "[green]✓[/green]",
    "fail": "[bold red]✗[/bold red]",
    "warn": "[yellow]![/yellow]",
    "info": "[dim]·[/dim]",
}


def _print_doctor(report: DoctorReport) -> None:
    section = None
    for c in report.checks:
        if c.section != section:
            section = c.section
            console.print(f"\n[bold]{section}[/bold]")
        console.print(f" {_MARKS[c.status]} {c.name}: {c.detail}", highlight=False)
        if c.hint and c.status != "ok":
            label = "note" if c.status == "info" else "fix"
            console.print(f"     [dim]{label}:[/dim] {c.hint}", highlight=False)
    n_fail, n_warn = len(report.failures), sum(1 for c in report.checks if c.status == "warn")
    verdict = "[green]healthy[/green]" if report.ok else f"[bold red]{n_fail} problem(s)[/bold red]"
    console.print(f"\n{verdict}, {n_warn} warning(s)")


def doctor(url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Check what is configured, what is reachable and what is wrong; exit 1 if anything is wrong."""
    from marketdb.services.ops import diagnose
    from marketdb.settings import Settings

    _check_format(fmt)
    settings = Settings.from_env(database_url=url)
    report = diagnose(settings)
    if fmt == "json":
        print_table(report.as_dicts(), fmt="json")
    else:
        _print_doctor(report)
    if not report.ok:
        raise typer.Exit(1)
