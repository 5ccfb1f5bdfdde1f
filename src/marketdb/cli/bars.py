"""`marketdb bars ...`: read bars (the default), verify/repair and rebuild them."""

from __future__ import annotations

from typing import Annotated

import typer

from marketdb.cli import query as query_cmd
from marketdb.cli._common import StepProgress, connect_db, console, print_table

bars_app = typer.Typer(
    cls=query_cmd.DefaultCommandGroup,
    help=(
        "Read bars (`marketdb bars AAPL --interval 5m`), or check them against the trades "
        "(`marketdb bars verify`, `--repair` to fix) and recompute them (`marketdb bars rebuild`)."
    ),
)
bars_app.command("show")(query_cmd.bars)

SymbolsOpt = Annotated[
    list[str] | None, typer.Option("--symbol", "-s", help="Limit to these symbols (repeatable).")
]
SinceOpt = Annotated[str | None, typer.Option("--since", help="From this time (ISO date or timestamp, UTC).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Up to (excluding) this time.")]


@bars_app.command("verify")
def verify(
    symbol: SymbolsOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Fix every bar that differs.")] = False,
) -> None:
    """Recompute stored bars from the trades and report every difference (exit 1 if any, unless --repair)."""
    db = connect_db()
    try:
        with StepProgress("repair" if repair else "verify", "instruments") as progress:
            report = db.bars.verify(
                symbol or None, since=since, until=until, repair=repair, progress=progress.update
            )
    finally:
        db.close()
    console.print(
        f"checked {report.bars_checked:,} bars from {report.trades_read:,} trades: "
        f"{len(report.differences):,} difference(s), {report.repaired:,} repaired"
    )
    if report.differences:
        df = report.to_pandas()
        print_table(df.head(50).to_dict("records"), title="differences (first 50)")
        if not repair:
            raise typer.Exit(1)


@bars_app.command("rebuild")
def rebuild(symbol: SymbolsOpt = None, since: SinceOpt = None, until: UntilOpt = None) -> None:
    """Recompute stored bars from scratch (after changing bar intervals or the session mode)."""
    db = connect_db()
    try:
        with StepProgress("rebuild", "instruments") as progress:
            report = db.bars.rebuild(symbol or None, since=since, until=until, progress=progress.update)
    finally:
        db.close()
    console.print(f"rebuilt: {report}")
