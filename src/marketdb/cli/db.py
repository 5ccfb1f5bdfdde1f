"""`marketdb db ...`: server status, migrations, the embedded server."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from marketdb.cli._common import connect_db, console, print_table

app = typer.Typer(
    help="Database server, schema migrations and the embedded PostgreSQL.", no_args_is_help=True
)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
]


@app.command()
def status(url: UrlOpt = None) -> None:
    """Say which server, version, extensions, schema revision and where the data lives."""
    t0 = time.perf_counter()
    db = connect_db(url, check_schema=False)
    connect_ms = (time.perf_counter() - t0) * 1000
    st = db.status()
    st["connect_ms"] = round(connect_ms, 1)
    st["database_size_bytes"] = f"{st['database_size_bytes'] / 1e6:.1f} MB"
    st["extensions"] = ", ".join(st["extensions"])
    print_table([{"setting": k, "value": v} for k, v in st.items()], title="marketdb")
    from marketdb.store.migrate import history

    rows = [
        {
            "revision": h["revision"],
            "description": h["description"].splitlines()[0] if h["description"] else "",
            "applied": (
                "no"
                if not h["applied"]
                else h["applied_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
                if h["applied_at"]
                else "yes (before the log)"
            ),
        }
        for h in history(db.engine, db.settings)
    ]
    db.close()
    print_table(rows, title="migrations")


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOpt = None,
) -> None:
    """Apply schema migrations (default: to the newest revision); creates the embedded database if needed."""
    db = connect_db(url, create=True, check_schema=False)
    db.upgrade(revision)
    console.print(f"schema at revision [bold]{db.status()['schema_revision']}[/bold]")
    db.close()


@app.command()
def downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision: -1 for one step, base for nothing.")
    ] = "-1",
    url: UrlOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm; downgrading can drop tables and data.")
    ] = False,
) -> None:
    """Revert schema migrations. Dropped tables lose their data, so it asks first."""
    if not yes:
        typer.confirm(f"Downgrade the schema to {revision}? Tables it removes lose their data", abort=True)
    db = connect_db(url, check_schema=False)
    db.downgrade(revision)
    console.print(f"schema at revision [bold]{db.status()['schema_revision'] or 'base (empty)'}[/bold]")
    db.close()


@app.command()
def check(url: UrlOpt = None) -> None:
    """Compare the live schema with marketdb's model; exit 1 on drift."""
    from marketdb.store.migrate import check_drift

    db = connect_db(url, check_schema=False)
    diffs = check_drift(db.engine)
    db.close()
    if diffs:
        for d in diffs:
            console.print(f"[red]drift:[/red] {d}")
        raise typer.Exit(1)
    console.print("[green]schema matches the model (no drift)[/green]")


@app.command()
def stop() -> None:
    """Stop the embedded server (it otherwise keeps running for the next process)."""
    from marketdb.settings import Settings
    from marketdb.store.embedded import EmbeddedServer

    settings = Settings.from_env()
    stopped = EmbeddedServer(settings.home).stop()
    console.print("stopped" if stopped else "the embedded server was not running")
