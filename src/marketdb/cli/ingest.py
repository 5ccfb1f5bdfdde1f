"""`marketdb ingest {ticks|candles|books|options|actions|instruments} PATH...`.

Parses options, shows a progress bar (rows, rows/s) and a summary table; the
ingest service does the work. Errors propagate to the one place that maps
them to exit codes (``marketdb.cli.main``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from marketdb.cli._common import connect_db, err_console, print_table

if TYPE_CHECKING:  # the ingest service is imported when a command runs, not at CLI start-up
    from marketdb.services.ingest.options import Crossed, IngestOptions, OnConflict, OnInvalid

__all__ = ["ingest_app"]

ingest_app = typer.Typer(
    help=(
        "Load market data from CSV, Parquet or JSON files: validated, deduplicated, "
        "all or nothing per batch. Re-running a file changes nothing."
    ),
    no_args_is_help=True,
)

Paths = Annotated[list[Path], typer.Argument(help="Input files (CSV, Parquet, JSON, JSON lines).",
                                            exists=True, dir_okay=False, readable=True)]
UrlOpt = Annotated[str | None, typer.Option(
    "--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server.")]
SourceOpt = Annotated[str | None, typer.Option(
    "--source", help="Provider name stored with the rows (candles default: the file format).")]
SymbolOpt = Annotated[str | None, typer.Option(
    "--symbol", help="Symbol of every row, for files without a symbol column.")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="csv, parquet, json or jsonl (default: from the file name).")]
OnInvalidOpt = Annotated[str, typer.Option(
    "--on-invalid", help="raise: a bad row stops the batch (nothing of it is written); "
    "skip: write the valid rows and report the others.")]
OnConflictOpt = Annotated[str, typer.Option(
    "--on-conflict", help="ignore: keep stored rows (duplicates); update: replace them.")]
TzOpt = Annotated[str | None, typer.Option(
    "--tz", help="Time zone of times written without one (e.g. UTC, America/New_York).")]
TsFormatOpt = Annotated[str | None, typer.Option(
    "--ts-format", help="strptime layout of non-ISO times, e.g. '%m/%d/%Y'.")]
TsUnitOpt = Annotated[str | None, typer.Option(
    "--ts-unit", help="Unit of epoch-number times: s, ms, us, ns (default: inferred).")]
AutoRegisterOpt = Annotated[bool, typer.Option(
    "--auto-register", help="Create instruments for unknown symbols instead of rejecting them.")]
#: The ingest service's DEFAULT_BATCH_SIZE, spelled out so `--help` need not import the service
#: (tests/cli/test_help.py keeps the two equal).
HELP_BATCH_SIZE = 250_000
BatchOpt = Annotated[int | None, typer.Option(
    "--batch-size", help=f"Rows per batch and transaction (default {HELP_BATCH_SIZE:,}).", min=1)]
RejectsOpt = Annotated[Path | None, typer.Option(
    "--rejects", help="Write every rejected row (row, rule, field, value, message) to this CSV.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON lines.")]
CrossedOpt = Annotated[str, typer.Option(
    "--crossed", help="reject (default) or allow quotes/books whose bid is above the ask.")]
ColumnOpt = Annotated[list[str] | None, typer.Option(
    "--column", help="Map an input column to a field: --column 'Adj Close=adj_close'. Repeatable.")]

PresetOpt = Annotated[str | None, typer.Option(
    "--preset", help="Vendor file format: polygon-aggs, binance-klines, binance-aggtrades, "
    "okx-trades, tiingo-crypto, kraken-trades, kraken-ohlc, histdata, databento-trades... "
    "(docs/providers.md).")]
NoHeaderOpt = Annotated[bool, typer.Option(
    "--no-header", help="The CSV has no header row: name its columns with --columns.")]
NamesOpt = Annotated[str | None, typer.Option(
    "--columns", help="Comma-separated names of headerless CSV columns or of JSON array "
    "slots, in order (empty name: skip the slot): --columns ts,bid,ask,")]
RecordPathOpt = Annotated[str | None, typer.Option(
    "--record-path", help="Dotted path to the records in nested JSON (priceData, result.*).")]
MetaOpt = Annotated[list[str] | None, typer.Option(
    "--meta", help="Field of the enclosing JSON object copied into each record (repeatable).")]


def _shape(preset: str | None, no_header: bool, names: str | None, record_path: str | None,
           meta: list[str] | None) -> dict[str, Any]:
    """Shape options of the writers (vendor presets, headerless CSV, nested JSON)."""
    if no_header and not names and not preset:
        raise typer.BadParameter("--no-header needs --columns a,b,c (or a --preset)")
    return {"preset": preset, "names": names.split(",") if names else None,
            "record_path": record_path, "meta": meta}


def _columns(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for p in pairs:
        if "=" not in p:
            raise typer.BadParameter(f"--column needs INPUT=FIELD, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class _Bar:
    """A rich progress bar that shows rows and rows/s per file."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.task = progress.add_task(label, total=None, rate="")
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int | None) -> None:
        secs = max(time.perf_counter() - self.t0, 1e-9)
        self.progress.update(self.task, completed=done, total=total,
                             rate=f"{done / secs:,.0f} rows/s")


def _run(kind: str, paths: list[Path], url: str | None, json_out: bool,
         rejects: Path | None, options: IngestOptions, interval: str | None = None) -> None:
    from marketdb.services.ingest import WriteResult

    db = connect_db(url, create=True)
    try:
        ingest = db.ingest
        writer = {
            "ticks": ingest.write_ticks, "candles": ingest.write_candles,
            "books": ingest.write_order_books, "options": ingest.write_options_chain,
            "actions": ingest.write_corporate_actions,
        }[kind]
        total = WriteResult(kind)
        rows: list[dict[str, Any]] = []
        all_rejections: list[tuple[str, Any]] = []
        with Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.completed:,} rows"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), console=err_console, transient=json_out,
            disable=not err_console.is_terminal and not sys.stderr.isatty(),
        ) as progress:
            for path in paths:
                bar = _Bar(progress, path.name)
                opts = dataclasses.replace(options, progress=bar)
                res = (ingest.write_candles(str(path), opts, interval=interval) if kind == "candles"
                       else writer(str(path), opts))
                total.merge(res)
                rows.append(_summary_row(path.name, res))
                all_rejections.extend((path.name, r) for r in res.rejections)
        if len(paths) > 1:
            rows.append(_summary_row("total", total, seconds=total.seconds))
        if json_out:
            print_table(rows, fmt="json")
        else:
            print_table(rows, title=f"ingest {kind}" + (" (dry run)" if options.dry_run
                                                          else ""))
        if total.registered_symbols:
            err_console.print(f"registered {len(total.registered_symbols)} new symbol(s): "
                          + ", ".join(total.registered_symbols[:20]))
        if all_rejections:
            _report_rejections(all_rejections, rejects)
    finally:
        db.close()


def _summary_row(name: str, res: Any, seconds: float | None = None) -> dict[str, Any]:
    secs = res.seconds if seconds is None else seconds
    return {
        "file": name, "received": res.received, "inserted": res.inserted,
        "duplicates": res.duplicates, "updated": res.updated, "rejected": res.rejected,
        "seconds": round(secs, 3),
        "rows/s": round(res.received / secs) if secs > 0 else 0,
    }


def _report_rejections(rejections: list[tuple[str, Any]], path: Path | None) -> None:
    by_rule: dict[str, int] = {}
    for _, r in rejections:
        by_rule[r.rule] = by_rule.get(r.rule, 0) + 1
    err_console.print(
        f"[yellow]{len(rejections)} rejection(s):[/yellow] "
        + ", ".join(f"{k} {v}" for k, v in by_rule.items())
    )
    if path is None:
        for name, r in rejections[:10]:
            err_console.print(f"  {name} row {r.row}: {r.rule} {r.field}={r.value!r} ({r.message})")
        if len(rejections) > 10:
            err_console.print("  ... (use --rejects FILE.csv to get all of them)")
        return
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "row", "rule", "field", "value", "message"])
        for name, r in rejections:
            w.writerow([name, r.row, r.rule, r.field, json.dumps(r.as_dict()["value"]), r.message])
    err_console.print(f"  all rejections written to {path}")


def _options(on_invalid: str, on_conflict: str, source: str | None, symbol: str | None,
             fmt: str | None, tz: str | None, ts_format: str | None, ts_unit: str | None,
             auto_register: bool, batch_size: int | None, dry_run: bool, crossed: str,
             column: list[str] | None) -> IngestOptions:
    # The service checks the choices (and names the allowed values); the CLI passes them on.
    from marketdb.services.ingest.options import IngestOptions

    return IngestOptions(
        on_invalid=cast("OnInvalid", on_invalid), on_conflict=cast("OnConflict", on_conflict),
        source=source, symbol=symbol, format=fmt, tz=tz, ts_format=ts_format, ts_unit=ts_unit,
        auto_register=auto_register, batch_size=batch_size, dry_run=dry_run,
        crossed=cast("Crossed", crossed), columns=_columns(column),
    )


@ingest_app.command("ticks")
def ticks(
    paths: Paths, url: UrlOpt = None, source: SourceOpt = None, symbol: SymbolOpt = None,
    fmt: FormatOpt = None, on_invalid: OnInvalidOpt = "raise",
    on_conflict: OnConflictOpt = "ignore", tz: TzOpt = None, ts_format: TsFormatOpt = None,
    ts_unit: TsUnitOpt = None, auto_register: AutoRegisterOpt = False,
    batch_size: BatchOpt = None, crossed: CrossedOpt = "reject", rejects: RejectsOpt = None,
    dry_run: DryRunOpt = False, json_out: JsonOpt = False, column: ColumnOpt = None,
    preset: PresetOpt = None, no_header: NoHeaderOpt = False, names: NamesOpt = None,
    record_path: RecordPathOpt = None, meta: MetaOpt = None,
) -> None:
    """Trades and quotes (rows with a price are trades, rows with a bid/ask are quotes)."""
    opts = _options(on_invalid, on_conflict, source, symbol, fmt, tz, ts_format, ts_unit,
                    auto_register, batch_size, dry_run, crossed, column)
    _run("ticks", paths, url, json_out, rejects,
         dataclasses.replace(opts, **_shape(preset, no_header, names, record_path, meta)))


@ingest_app.command("candles")
def candles(
    paths: Paths, url: UrlOpt = None, source: SourceOpt = None, symbol: SymbolOpt = None,
    interval: Annotated[str | None, typer.Option(
        "--interval", help="Bar interval of rows without one (1m, 5m, 1h, 1d, 1w, 1mo).")] = None,
    fmt: FormatOpt = None, on_invalid: OnInvalidOpt = "raise",
    on_conflict: OnConflictOpt = "ignore", tz: TzOpt = None, ts_format: TsFormatOpt = None,
    ts_unit: TsUnitOpt = None, auto_register: AutoRegisterOpt = False,
    batch_size: BatchOpt = None, rejects: RejectsOpt = None, dry_run: DryRunOpt = False,
    json_out: JsonOpt = False, column: ColumnOpt = None,
    preset: PresetOpt = None, no_header: NoHeaderOpt = False, names: NamesOpt = None,
    record_path: RecordPathOpt = None, meta: MetaOpt = None,
) -> None:
    """OHLCV bars of any interval, with adjusted columns, dividends and split factors."""
    opts = _options(on_invalid, on_conflict, source, symbol, fmt, tz, ts_format, ts_unit,
                    auto_register, batch_size, dry_run, "reject", column)
    _run("candles", paths, url, json_out, rejects,
         dataclasses.replace(opts, **_shape(preset, no_header, names, record_path, meta)),
         interval=interval)


@ingest_app.command("books")
def books(
    paths: Paths, url: UrlOpt = None, source: SourceOpt = None, symbol: SymbolOpt = None,
    fmt: FormatOpt = None, on_invalid: OnInvalidOpt = "raise",
    on_conflict: OnConflictOpt = "ignore", tz: TzOpt = None, ts_format: TsFormatOpt = None,
    ts_unit: TsUnitOpt = None, auto_register: AutoRegisterOpt = False,
    batch_size: BatchOpt = None, crossed: CrossedOpt = "reject", rejects: RejectsOpt = None,
    dry_run: DryRunOpt = False, json_out: JsonOpt = False, column: ColumnOpt = None,
    preset: PresetOpt = None, no_header: NoHeaderOpt = False, names: NamesOpt = None,
    record_path: RecordPathOpt = None, meta: MetaOpt = None,
) -> None:
    """Order-book snapshots (bid/ask price and size arrays, best level first)."""
    opts = _options(on_invalid, on_conflict, source, symbol, fmt, tz, ts_format, ts_unit,
                    auto_register, batch_size, dry_run, crossed, column)
    _run("books", paths, url, json_out, rejects,
         dataclasses.replace(opts, **_shape(preset, no_header, names, record_path, meta)))


@ingest_app.command("options")
def options(
    paths: Paths, url: UrlOpt = None, source: SourceOpt = None, symbol: SymbolOpt = None,
    fmt: FormatOpt = None, on_invalid: OnInvalidOpt = "raise",
    on_conflict: OnConflictOpt = "ignore", tz: TzOpt = None, ts_format: TsFormatOpt = None,
    ts_unit: TsUnitOpt = None, auto_register: AutoRegisterOpt = False,
    batch_size: BatchOpt = None, crossed: CrossedOpt = "reject", rejects: RejectsOpt = None,
    dry_run: DryRunOpt = False, json_out: JsonOpt = False, column: ColumnOpt = None,
    preset: PresetOpt = None, no_header: NoHeaderOpt = False, names: NamesOpt = None,
    record_path: RecordPathOpt = None, meta: MetaOpt = None,
) -> None:
    """Options chains: bid/ask/last, volume, open interest, implied volatility, Greeks."""
    opts = _options(on_invalid, on_conflict, source, symbol, fmt, tz, ts_format, ts_unit,
                    auto_register, batch_size, dry_run, crossed, column)
    _run("options", paths, url, json_out, rejects,
         dataclasses.replace(opts, **_shape(preset, no_header, names, record_path, meta)))


@ingest_app.command("actions")
def actions(
    paths: Paths, url: UrlOpt = None, source: SourceOpt = None, symbol: SymbolOpt = None,
    fmt: FormatOpt = None, on_invalid: OnInvalidOpt = "raise",
    on_conflict: OnConflictOpt = "ignore", tz: TzOpt = None, ts_format: TsFormatOpt = None,
    auto_register: AutoRegisterOpt = False, rejects: RejectsOpt = None,
    dry_run: DryRunOpt = False, json_out: JsonOpt = False, column: ColumnOpt = None,
    preset: PresetOpt = None, no_header: NoHeaderOpt = False, names: NamesOpt = None,
    record_path: RecordPathOpt = None, meta: MetaOpt = None,
) -> None:
    """Corporate actions: splits (ratio, or split_from/split_to) and cash dividends."""
    opts = _options(on_invalid, on_conflict, source, symbol, fmt, tz, ts_format, None,
                    auto_register, None, dry_run, "reject", column)
    _run("actions", paths, url, json_out, rejects,
         dataclasses.replace(opts, **_shape(preset, no_header, names, record_path, meta)))


@ingest_app.command("instruments")
def instruments(
    paths: Paths, url: UrlOpt = None, fmt: FormatOpt = None,
    on_invalid: OnInvalidOpt = "raise",
    replace_metadata: Annotated[bool, typer.Option(
        "--replace-metadata", help="Replace stored metadata instead of merging keys into it.")
    ] = False,
    json_out: JsonOpt = False, column: ColumnOpt = None,
) -> None:
    """The security master: upsert instruments by symbol (metadata merged)."""
    db = connect_db(url, create=True)
    try:
        rows = []
        for path in paths:
            res = db.ingest.write_instruments(str(path), replace_metadata=replace_metadata,
                                              columns=_columns(column), format=fmt,
                                              on_invalid=on_invalid)
            rows.append(_summary_row(path.name, res))
            if res.rejections:
                _report_rejections([(path.name, r) for r in res.rejections], None)
        print_table(rows, title="ingest instruments", fmt="json" if json_out else "table")
    finally:
        db.close()


@ingest_app.command("book-deltas")
def book_deltas(
    paths: Paths,
    feed: Annotated[str, typer.Option(
        "--feed", help="bybit (orderbook JSON lines) or binance (snapshot file, then diff "
        "files: CSV or JSON).")] = "bybit",
    every: Annotated[str | None, typer.Option(
        "--every", help="Snapshot cadence (100ms, 1s, 1m); default: after every update.")] = None,
    depth: Annotated[int, typer.Option("--depth", help="Levels kept per side.", min=1)] = 20,
    on_gap: Annotated[str, typer.Option(
        "--on-gap", help="raise (default) or resync: drop updates until the next snapshot.")
    ] = "raise",
    url: UrlOpt = None, source: SourceOpt = None, symbol: SymbolOpt = None,
    auto_register: AutoRegisterOpt = False, crossed: CrossedOpt = "reject",
    dry_run: DryRunOpt = False, json_out: JsonOpt = False,
) -> None:
    """L2 update streams rebuilt into order-book snapshots (sequence gaps detected)."""
    from marketdb.services.ingest import deltas

    if feed == "bybit":
        stream = (u for p in paths for u in deltas.read_bybit(p))
    elif feed == "binance":
        rest: list[Path | None] = list(paths[1:]) or [None]
        stream = (u for p in rest for u in deltas.read_binance_depth(paths[0], p))
    else:
        raise typer.BadParameter(f"--feed must be bybit or binance, got {feed!r}")
    rebuilt = deltas.rebuild_books(stream, symbol=symbol, every=every, depth=depth,
                                   on_gap=on_gap)
    db = connect_db(url, create=True)
    try:
        res = db.ingest.write_order_books(rebuilt.table, source=source or feed,
                                          auto_register=auto_register, crossed=crossed,
                                          dry_run=dry_run)
    finally:
        db.close()
    row = _summary_row(", ".join(p.name for p in paths), res)
    row.update(updates=rebuilt.updates, skipped=rebuilt.skipped, gaps=len(rebuilt.gaps))
    print_table([row], title="ingest book-deltas", fmt="json" if json_out else "table")
    for g in rebuilt.gaps[:10]:
        err_console.print(f"[yellow]gap[/yellow] at {g.ts_ns} ns: expected update {g.expected}, "
                          f"got {g.got}; resynced at the next snapshot")
