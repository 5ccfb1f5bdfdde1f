"""`marketdb demo`: the main job, end to end on the embedded default."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer

from marketdb.cli._common import connect_db, console, print_table

DEMO_INSTRUMENTS = [
    {
        "symbol": "AAPL",
        "name": "Apple Inc.",
        "asset_class": "stock",
        "exchange": "XNAS",
        "calendar": "XNYS",
        "currency": "USD",
    },
    {
        "symbol": "MSFT",
        "name": "Microsoft Corp.",
        "asset_class": "stock",
        "exchange": "XNAS",
        "calendar": "XNYS",
        "currency": "USD",
    },
    {
        "symbol": "BTC-USD",
        "name": "Bitcoin / US Dollar",
        "asset_class": "crypto",
        "exchange": "COINBASE",
        "calendar": "24/7",
        "currency": "USD",
    },
]


def demo(
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
    ] = None,
) -> None:
    """Run the tour: start the database, migrate, register instruments, show status."""
    db = connect_db(url, migrate_schema=True)
    st = db.status()
    console.rule("[bold]marketdb demo")
    console.print(f"PostgreSQL {st['server_version']} ({st['mode']}), data in {st['data_directory']}")
    console.print(f"schema revision {st['schema_revision']}, time-series backend {st['timeseries_backend']}")
    from sqlalchemy.dialects.postgresql import insert

    from marketdb.store.schema import tables as t

    with db.transaction() as conn:
        stmt = insert(t.instruments).values(DEMO_INSTRUMENTS)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["symbol"]))
        rows = (
            conn.execute(
                sa.select(
                    t.instruments.c.id,
                    t.instruments.c.symbol,
                    t.instruments.c.asset_class,
                    t.instruments.c.calendar,
                ).order_by(t.instruments.c.id)
            )
            .mappings()
            .all()
        )
    print_table([dict(r) for r in rows], title="instruments")
    db.close()
