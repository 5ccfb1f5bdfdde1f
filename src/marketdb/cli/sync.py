"""`marketdb sync PROVIDER SYMBOLS...` and `marketdb quality SYMBOL`.

Sync fetches only what the sync state does not mark complete (docs/providers.md);
quality runs the data-quality checks. The services do the work.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from marketdb.cli._common import connect_db, console, err_console, print_table

__all__ = ["quality", "sync"]

UrlOpt = Annotated[str | None, typer.Option(
    "--url", help="PostgreSQL URL (default: DATABASE_URL or the embedded server).")]


def sync(
    provider: Annotated[str, typer.Argument(help="tiingo, polygon, binance or kraken.")],
    symbols: Annotated[list[str], typer.Argument(help="Symbols as the provider writes them.")],
    kind: Annotated[str, typer.Option(
        "--kind", help="bars, trades, quotes, actions or reference.")] = "bars",
    interval: Annotated[str | None, typer.Option(
        "--interval", help="Bar interval (1m, 5m, 1h, 1d...; default 1d).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Start (ISO date/time, UTC). Default: a year of daily bars, a week of "
        "intraday bars, a day of ticks.")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="End, exclusive (ISO date/time, UTC). Default: now.")] = None,
    user: Annotated[str | None, typer.Option(
        "--user", help="Read the API key from this user's sealed secrets "
        "(e.g. tiingo_api_key).")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Provider base URL (default: the vendor's; env "
        "MARKETDB_<PROVIDER>_URL).")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries per request.", min=0)] = 5,
    url: UrlOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Fetch market data from a provider: only what is missing, resumable, rate-limit aware."""
    db = connect_db(url)
    try:
        def progress(symbol: str, rows: int, until_ts: Any) -> None:
            if not json_out:
                err_console.print(f"  {symbol}: {rows:,} records, complete to {until_ts:%Y-%m-%d %H:%M}",
                                  highlight=False)

        report = db.providers.sync(provider, symbols, kind=kind, interval=interval, since=since,
                                   until=until, user=user, base_url=base_url,
                                   max_retries=retries, progress=progress)
    finally:
        db.close()
    rows = [{k: v for k, v in i.as_dict().items() if k != "error"} for i in report.items]
    if json_out:
        console.print_json(json.dumps({"provider": report.provider, "requests": report.requests,
                                       "fetched": report.fetched,
                                       "items": [i.as_dict() for i in report.items]}))
    else:
        print_table(rows, title=f"sync {report.provider} {kind}")
        err_console.print(f"fetched {report.fetched:,} records in {report.requests} requests; "
                          f"{len(report.skipped)} symbol(s) already complete, "
                          f"{len(report.failed)} failed")
    for item in report.failed:
        err_console.print(f"[red]failed[/red] {item.symbol}: {item.error} "
                          "(run the same sync again to resume)")
    if report.failed:
        raise typer.Exit(6)


def quality(
    symbol: Annotated[str, typer.Argument(help="Instrument symbol.")],
    since: Annotated[str | None, typer.Option("--since", help="Start (ISO, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End, exclusive (ISO, UTC).")] = None,
    interval: Annotated[str, typer.Option(
        "--interval", help="Bars checked for gaps against the calendar.")] = "1d",
    source: Annotated[str | None, typer.Option(
        "--source", help="Only bars of this source for the gap check (default: any).")] = None,
    z: Annotated[float, typer.Option("--z", help="Robust z-score of an outlier tick.")] = 8.0,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="Relative difference allowed between vendor and derived bars.")
    ] = 1e-6,
    url: UrlOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Data quality of one instrument: gaps, duplicates, outliers, vendor vs derived, staleness."""
    db = connect_db(url)
    try:
        rep = db.quality.check(symbol, since=since, until=until, interval=interval,
                               source=source, z=z, tolerance=tolerance)
    finally:
        db.close()
    if json_out:
        console.print_json(json.dumps(rep.as_dict(), default=str))
        return
    print_table([{"check": c.name, "status": c.status, "count": c.count, "detail": c.detail}
                 for c in rep.checks], title=f"quality {rep.symbol}")
    for c in rep.checks:
        for ex in c.examples[:5]:
            err_console.print(f"  {c.name}: {ex}", highlight=False)
