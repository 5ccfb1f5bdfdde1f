"""`marketdb demo`: the main job, end to end on the embedded default.

Starts (or reuses) the database, registers instruments, generates a realistic
multi-symbol tick data set with a 4-for-1 split and a cash dividend, ingests it
with a progress bar (bars at every stored interval are kept up to date as it
goes), shows bars, raw vs split-adjusted prices around the split, and writes a
candlestick chart. Running it twice writes nothing new: ingest is idempotent.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from marketdb.cli._common import connect_db, console, print_table

if TYPE_CHECKING:  # imported where used: `marketdb --help` must not load pandas
    import pandas as pd

DEMO_INSTRUMENTS = [
    {
        "symbol": "AAPL",
        "name": "Apple Inc. (synthetic)",
        "asset_class": "stock",
        "exchange": "XNAS",
        "calendar": "XNYS",
        "currency": "USD",
    },
    {
        "symbol": "MSFT",
        "name": "Microsoft Corp. (synthetic)",
        "asset_class": "stock",
        "exchange": "XNAS",
        "calendar": "XNYS",
        "currency": "USD",
    },
    {
        "symbol": "BTC-USD",
        "name": "Bitcoin / US Dollar (synthetic)",
        "asset_class": "crypto",
        "exchange": "COINBASE",
        "calendar": "24/7",
        "currency": "USD",
    },
]
START = dt.date(2024, 3, 4)  # crosses the US DST change of 2024-03-10
SPLIT_DAY = dt.date(2024, 3, 12)
DIVIDEND_DAY = dt.date(2024, 3, 14)


def _frame_rows(df: pd.DataFrame, cols: list[str], n: int | None = None) -> list[dict[str, object]]:
    import pandas as pd
    part = df if n is None else df.tail(n)
    out = part.reset_index()[cols].copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = out[c].dt.strftime("%Y-%m-%d %H:%M")
        elif pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(4)
    rows: list[dict[str, object]] = out.to_dict("records")
    return rows


def demo(
    days: Annotated[int, typer.Option(help="Trading sessions to generate.", min=2, max=60)] = 8,
    trades_per_day: Annotated[int, typer.Option(help="Trades per symbol per session.", min=100)] = 40_000,
    chart: Annotated[Path, typer.Option(help="Where to write the candlestick chart (.png or .html).")] = Path(
        "marketdb-demo.png"
    ),
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
    ] = None,
) -> None:
    """Run the tour: database, ingest with continuous bars, bars, adjusted prices, a chart."""
    import pandas as pd

    from marketdb.testing import SyntheticSplit, synthetic_trades
    t0 = time.perf_counter()
    db = connect_db(url, create=True, migrate_schema=True)
    try:
        st = db.status()
        console.rule("[bold]marketdb demo")
        console.print(f"PostgreSQL {st['server_version']} ({st['mode']}), data in {st['data_directory']}")
        console.print(
            f"schema {st['schema_revision']}, time-series backend: {st['timeseries_backend']}, "
            f"stored bar intervals: {', '.join(db.settings.bar_intervals)}"
        )

        console.rule("1. instruments")
        db.ingest.write_instruments(DEMO_INSTRUMENTS)
        print_table([{k: i[k] for k in ("symbol", "asset_class", "calendar")} for i in DEMO_INSTRUMENTS])

        console.rule("2. ticks -> trades, with bars kept up to date in the same transactions")
        trades = synthetic_trades(
            ["AAPL", "MSFT", "BTC-USD"],
            start=START,
            days=days,
            trades_per_day=trades_per_day,
            calendars={"AAPL": "XNYS", "MSFT": "XNYS", "BTC-USD": "24/7"},
            start_prices={"AAPL": 180.0, "MSFT": 400.0, "BTC-USD": 62000.0},
            splits={"AAPL": SyntheticSplit(SPLIT_DAY, 4.0)},
        )
        n = len(trades)
        with Progress(
            TextColumn("ingesting trades"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("ingest", total=n, rate="")
            started = time.perf_counter()

            def progress(done: int, total: int | None) -> None:
                rate = done / max(time.perf_counter() - started, 1e-9)
                bar.update(task, completed=done, rate=f"{rate:,.0f} rows/s")

            result = db.ingest.write_ticks(trades, batch_size=250_000, progress=progress)
        console.print(
            f"received {result.received:,}, inserted {result.inserted:,}, duplicates ignored "
            f"{result.duplicates:,}, rejected {result.rejected:,} in {result.seconds:.1f} s "
            f"({result.received / max(result.seconds, 1e-9):,.0f} rows/s)"
        )
        if result.inserted == 0:
            console.print(
                "[dim]nothing new: an earlier run ingested this data (ingest is idempotent)[/dim]"
            )

        console.rule("3. corporate actions (known when announced: adjustments are point-in-time)")
        actions = [
            {
                "symbol": "AAPL",
                "action_type": "split",
                "ex_date": SPLIT_DAY,
                "ratio": 4.0,
                "known_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
            },
            {
                "symbol": "MSFT",
                "action_type": "cash_dividend",
                "ex_date": DIVIDEND_DAY,
                "amount": 0.75,
                "known_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
            },
        ]
        db.ingest.write_corporate_actions(actions)
        print_table([{k: str(v) for k, v in a.items()} for a in actions])

        console.rule("4. bars at several intervals (derived from the trades as they were written)")
        first_day = pd.Timestamp(START, tz="UTC")
        for interval, n_rows in (("5m", 4), ("1h", 4)):
            df = db.query.bars("AAPL", interval, first_day, first_day + pd.Timedelta(days=1))
            console.print(f"[bold]AAPL {interval}[/bold] (first session, last {n_rows})")
            print_table(
                _frame_rows(
                    df, ["ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"], n_rows
                )
            )
        df = db.query.bars("AAPL", "3m", first_day, first_day + pd.Timedelta(days=1))
        console.print(f"[bold]AAPL 3m[/bold] is not stored: rolled up on demand from 1m ({len(df)} bars)")
        daily = db.query.bars(["AAPL", "MSFT", "BTC-USD"], "1d")
        console.print(
            "[bold]daily bars[/bold] (XNYS sessions across the DST change; UTC days for BTC)"
        )
        last3 = daily.reset_index().groupby("symbol", sort=True).tail(3).set_index("ts")
        print_table(_frame_rows(last3, ["ts", "symbol", "open", "close", "volume", "trade_count"]))

        console.rule("5. AAPL daily: raw vs split-adjusted (and as of before the split was known)")
        raw = db.query.bars("AAPL", "1d")
        adj = db.query.bars("AAPL", "1d", adjusted=True)
        before = db.query.bars("AAPL", "1d", adjusted=True, as_of=dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
        rows = []
        for ts in raw.index:
            rows.append(
                {
                    "session": ts.date(),
                    "raw close": round(float(raw.loc[ts, "close"]), 2),
                    "adjusted close": round(float(adj.loc[ts, "close"]), 2),
                    "adjusted as of 2024-02-01": round(float(before.loc[ts, "close"]), 2),
                }
            )
        print_table(rows)

        console.rule("6. chart")
        try:
            from marketdb.services.query import render_chart

            path = render_chart(
                db.query.bars("AAPL", "15m", adjusted=True), chart, title="AAPL 15m (adjusted)"
            )
            console.print(f"wrote {path}")
        except Exception as exc:  # charting is optional (matplotlib / plotly extras)
            console.print(f"[yellow]chart skipped:[/yellow] {exc}")

        console.rule("done")
        console.print(
            f"finished in {time.perf_counter() - t0:.1f} s. Try: "
            "[bold].venv/bin/marketdb bars AAPL --interval 1h[/bold], "
            "[bold].venv/bin/marketdb bars verify[/bold], [bold].venv/bin/marketdb latest AAPL MSFT[/bold]"
        )
    finally:
        db.close()
