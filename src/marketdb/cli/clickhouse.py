"""`marketdb clickhouse sync|verify|status|ddl`: the ClickHouse analytics tier.

Parse, call :class:`marketdb.services.analytics.Analytics`, format. No SQL here.
``CLICKHOUSE_URL`` (or ``--clickhouse``) names the tier: ``http://host:8123``
or ``chdb:///path`` for the in-process engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from marketdb.cli._common import connect_db, console, err_console, print_table
from marketdb.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from marketdb.services.analytics import Analytics, SyncProgress

__all__ = ["clickhouse_app"]

clickhouse_app = typer.Typer(
    help="The ClickHouse analytics tier: incremental sync from PostgreSQL, verify, status, DDL.",
    no_args_is_help=True,
)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
]
ChOpt = Annotated[
    str | None,
    typer.Option("--clickhouse", envvar="CLICKHOUSE_URL", help="ClickHouse URL (http://..., chdb:///path)."),
]
ClusterOpt = Annotated[
    str | None, typer.Option("--cluster", help="Cluster name: Replicated + Distributed tables ON CLUSTER.")
]
TablesOpt = Annotated[
    list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable); default: all.")
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")]


@contextmanager
def _analytics(url: str | None, ch_url: str | None, cluster: str | None) -> Iterator[Analytics]:
    from marketdb.services.analytics import Analytics

    db = connect_db(url)
    an = Analytics(db, ch_url, cluster=cluster)
    try:
        yield an
    finally:
        an.close()
        db.close()


def _tables(tables: list[str] | None) -> list[str] | None:
    from marketdb.services.analytics import TABLES

    if not tables:
        return None
    bad = [t for t in tables if t not in TABLES]
    if bad:
        raise InvalidInput(f"unknown ClickHouse table {', '.join(bad)}", hint=f"use {', '.join(TABLES)}")
    return tables


@clickhouse_app.command("sync")
def sync_cmd(
    url: UrlOpt = None,
    clickhouse: ChOpt = None,
    cluster: ClusterOpt = None,
    table: TablesOpt = None,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", help="Rows per insert (memory bound).")
    ] = 250_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Re-check every instrument, not only changed ones.")
    ] = False,
) -> None:
    """Send what changed in PostgreSQL since the last sync; safe to interrupt and re-run."""
    if batch_rows < 1:
        raise InvalidInput(f"--batch-rows must be >= 1, got {batch_rows}")

    def progress(p: SyncProgress) -> None:
        if not quiet:
            err_console.print(
                f"{p.table} instrument {p.instrument_id}: {p.rows_sent} rows in {p.days_sent} days",
                highlight=False,
            )

    with _analytics(url, clickhouse, cluster) as an:
        report = an.sync(_tables(table), batch_rows=batch_rows, progress=progress, full=full)
    console.print(f"clickhouse sync: {report.summary()}", highlight=False)


@clickhouse_app.command("verify")
def verify_cmd(
    url: UrlOpt = None,
    clickhouse: ChOpt = None,
    cluster: ClusterOpt = None,
    table: TablesOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Compare row counts and per-day digests with PostgreSQL; exit 4 when they differ."""
    with _analytics(url, clickhouse, cluster) as an:
        report = an.verify(_tables(table))
    rows = [
        {
            "table": t,
            "postgres_rows": p,
            "clickhouse_rows": c,
            "ok": p == c and not any(d.table == t for d in report.diffs),
        }
        for t, (p, c) in report.counts.items()
    ]
    print_table(rows, title="clickhouse verify", fmt=fmt)
    for d in report.diffs[:20]:
        err_console.print(
            f"{d.table} instrument {d.instrument_id} {d.day}: "
            f"postgres {d.postgres} clickhouse {d.clickhouse}",
            highlight=False,
        )
    if not report.ok:
        raise Conflict(
            f"ClickHouse differs from PostgreSQL on {len(report.diffs)} instrument-days",
            hint="run `marketdb clickhouse sync` (it re-sends exactly the days that differ)",
        )


@clickhouse_app.command("status")
def status_cmd(
    url: UrlOpt = None, clickhouse: ChOpt = None, cluster: ClusterOpt = None, fmt: FormatOpt = "table"
) -> None:
    """Per table: instruments in sync and behind, rows mirrored, synced up to when."""
    with _analytics(url, clickhouse, cluster) as an:
        rows = [
            {
                "table": s.table,
                "in_sync": s.instruments_synced,
                "behind": s.instruments_behind,
                "rows": s.rows,
                "data_up_to": s.last_ts.date() if s.last_ts else None,
                "last_sync": s.last_synced_at.isoformat(timespec="seconds") if s.last_synced_at else None,
            }
            for s in an.status()
        ]
    print_table(rows, title="clickhouse status", fmt=fmt)


@clickhouse_app.command("ddl")
def ddl_cmd(
    cluster: ClusterOpt = None,
    database: Annotated[str, typer.Option("--database", help="ClickHouse database.")] = "marketdb",
    unreplicated: Annotated[
        bool, typer.Option("--unreplicated", help="Cluster of plain shards (no Keeper).")
    ] = False,
) -> None:
    """Print the CREATE TABLE statements (single server, or a cluster with --cluster)."""
    from marketdb.services.analytics import create_statements

    for stmt in create_statements(database, cluster=cluster, replicated=not unreplicated):
        typer.echo(stmt + ";\n")
