"""`marketdb bars | ticks | latest | chart`: read market data and show, save or draw it.

Thin: parse the options, call :class:`marketdb.services.query.Query`, format.
The lead mounts these commands in ``marketdb.cli``; :class:`DefaultCommandGroup`
lets ``marketdb bars SYMBOL ...`` (read bars) live beside ``marketdb bars verify``.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from marketdb.cli._common import connect_db, console, err_console
from marketdb.errors import InvalidInput

if TYPE_CHECKING:  # imported where used: `marketdb --help` must not load pandas
    import pandas as pd

__all__ = ["DefaultCommandGroup", "Format", "bars", "chart", "latest", "ticks"]


class Format(StrEnum):
    """Output formats of the read commands."""

    table = "table"
    csv = "csv"
    parquet = "parquet"
    json = "json"


class DefaultCommandGroup(TyperGroup):
    """A command group that runs ``default_command`` when no subcommand is named.

    ``marketdb bars AAPL --interval 5m`` becomes ``marketdb bars show AAPL
    --interval 5m``, while ``marketdb bars verify`` still reaches ``verify``.
    """

    default_command = "show"

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help, then the default command's (its options are the group's too)."""
        super().format_help(ctx, formatter)
        cmd = self.commands.get(self.default_command)
        if cmd is not None:
            sub = cmd.make_context(self.default_command, [], parent=ctx, resilient_parsing=True)
            cmd.format_help(sub, formatter)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Insert the default command when the first word is not a subcommand."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
]
StartOpt = Annotated[
    str | None,
    typer.Option(
        "--start", help="First time, inclusive: 2024-03-01 or 2024-03-01T14:30Z (UTC if no offset)."
    ),
]
EndOpt = Annotated[
    str | None,
    typer.Option("--end", help="Last time, exclusive; a plain date includes that whole day."),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, csv, parquet or json (lines).")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of the terminal.")
]
MaxRowsOpt = Annotated[
    int, typer.Option("--max-rows", help="Rows shown by --format table (first and last half).")
]


def _iso(col: pd.Series, *, sep: str = "T", zulu: str = "Z") -> pd.Series:
    """UTC times as ISO 8601 text, with as many fraction digits as the data needs (up to ns)."""
    import numpy as np
    import pandas as pd
    ns = col.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    valid = ns.notna()
    out = pd.Series([None] * len(col), index=col.index, dtype=object)
    if not valid.any():
        return out
    ints = ns[valid].astype("int64").to_numpy()
    unit = "ns"
    for u, div in (("D", 86_400 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if (ints % div == 0).all():
            unit = u
            break
    values = np.asarray(ns[valid].to_numpy(), dtype="datetime64[ns]")
    if unit == "D" and sep != "T":
        text = np.datetime_as_string(values, unit="D")
    else:
        text = np.datetime_as_string(values, unit="s" if unit == "D" else unit)  # type: ignore[call-overload]
        text = np.char.add(np.char.replace(text, "T", sep), zulu)
    out[valid.to_numpy()] = text
    return out


def _text_times(df: pd.DataFrame, *, sep: str = "T", zulu: str = "Z") -> pd.DataFrame:
    import pandas as pd
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = _iso(out[c], sep=sep, zulu=zulu)
    return out


def _emit(df: pd.DataFrame, fmt: Format, output: Path | None, *, title: str, max_rows: int = 40) -> None:
    """Write ``df`` in ``fmt`` to ``output`` or stdout."""
    flat = df.reset_index() if df.index.name is not None else df
    if fmt == Format.parquet:
        if output is None:
            raise InvalidInput("parquet is binary and needs a file", hint="add --output FILE.parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(flat, preserve_index=False), output)
    elif fmt == Format.csv:
        text = _text_times(flat).to_csv(index=False)
        _write_text(text, output)
    elif fmt == Format.json:
        text = _text_times(flat).to_json(orient="records", lines=True)
        _write_text(text if text.endswith("\n") or not text else text + "\n", output)
    else:
        if output is not None:
            _write_text(_text_times(flat, sep=" ", zulu="").to_string(index=False) + "\n", output)
        else:
            _print_table(_text_times(flat, sep=" ", zulu=""), title=f"{title}, times in UTC",
                         max_rows=max_rows)
            return
    if output is not None:
        err_console.print(f"wrote {len(flat)} rows to {output}")


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _cell(value: Any) -> str:
    import pandas as pd
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, pd.Timestamp):
        return str(value.isoformat())
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _print_table(df: pd.DataFrame, *, title: str, max_rows: int) -> None:
    import pandas as pd
    from rich.table import Table

    if df.empty:
        console.print(f"[dim]{title}: no rows[/dim]")
        return
    table = Table(title=f"{title} ({len(df)} rows)")
    for col in df.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    half = max(1, max_rows // 2)
    rows = list(df.itertuples(index=False, name=None))
    shown = rows if len(rows) <= max_rows else [*rows[:half], None, *rows[-half:]]
    for r in shown:
        if r is None:
            table.add_row(*("…" for _ in df.columns))
        else:
            table.add_row(*(_cell(v) for v in r))
    console.print(table)


def bars(
    symbols: Annotated[list[str], typer.Argument(help="One or more symbols.", show_default=False)],
    interval: Annotated[
        str, typer.Option("--interval", "-i", help="1m, 5m, 15m, 1h, 1d, 1w, 1mo ...")
    ] = "1d",
    start: StartOpt = None,
    end: EndOpt = None,
    adjusted: Annotated[
        bool, typer.Option("--adjusted", help="Split- and dividend-adjusted (CRSP-style, point in time).")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Adjust with the corporate actions known then (default: now)."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Only this source: trades (from ticks) or a provider name."),
    ] = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    max_rows: MaxRowsOpt = 40,
    url: UrlOpt = None,
) -> None:
    """Show or save OHLCV bars (the source column says where each bar came from)."""
    if as_of is not None and not adjusted:
        raise InvalidInput("--as-of only matters with --adjusted", hint="add --adjusted")
    db = connect_db(url)
    try:
        df = db.query.bars(
            symbols if len(symbols) > 1 else symbols[0],
            interval,
            start,
            end,
            adjusted=adjusted,
            as_of=as_of,
            source=source,
        )
    finally:
        db.close()
    label = f"{', '.join(s.upper() for s in symbols)} {interval}{' adjusted' if adjusted else ''}"
    _emit(df, fmt, output, title=label, max_rows=max_rows)


def ticks(
    symbols: Annotated[list[str], typer.Argument(help="One or more symbols.", show_default=False)],
    start: Annotated[
        str, typer.Option("--start", help="First time, inclusive (UTC if no offset); required.")
    ],
    end: EndOpt = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Comma-separated: price,size,side,seq,exchange,conditions,trade_id,source.",
        ),
    ] = None,
    quotes: Annotated[bool, typer.Option("--quotes", help="Top-of-book quotes instead of trades.")] = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    max_rows: MaxRowsOpt = 40,
    url: UrlOpt = None,
) -> None:
    """Show or save trades (or --quotes) with exact nanosecond timestamps."""
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    db = connect_db(url)
    try:
        read = db.query.quotes if quotes else db.query.ticks
        df = read(symbols if len(symbols) > 1 else symbols[0], start, end, columns=cols)
    finally:
        db.close()
    what = "quotes" if quotes else "trades"
    _emit(df, fmt, output, title=f"{', '.join(s.upper() for s in symbols)} {what}", max_rows=max_rows)


def latest(
    symbols: Annotated[list[str], typer.Argument(help="One or more symbols.", show_default=False)],
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show the last trade, quote and bar of each symbol."""
    db = connect_db(url)
    try:
        df = db.query.latest(symbols)
    finally:
        db.close()
    if fmt == Format.table and output is None:
        # One column per symbol reads better than 18 narrow columns.
        flat = _text_times(df, sep=" ", zulu="")
        wide = flat.T.reset_index().rename(columns={"index": "field"})
        wide.columns = ["field", *(str(c) for c in flat.index)]
        _print_table(wide.astype(object).where(wide.notna(), None), title="latest, times in UTC",
                     max_rows=len(wide) + 1)
        return
    _emit(df, fmt, output, title="latest", max_rows=len(df) + 1)


def chart(
    symbol: Annotated[str, typer.Argument(help="The symbol.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="FILE.png / .svg / .pdf (matplotlib) or FILE.html (plotly)."),
    ],
    interval: Annotated[str, typer.Option("--interval", "-i", help="Bar interval.")] = "1d",
    start: StartOpt = None,
    end: EndOpt = None,
    adjusted: Annotated[
        bool | None,
        typer.Option(
            "--adjusted/--raw",
            help="Adjusted or raw prices (default: adjusted when the symbol has corporate actions).",
            show_default=False,
        ),
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Adjust as known then.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this bar source.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Chart title.")] = None,
    url: UrlOpt = None,
) -> None:
    """Draw candlesticks with volume to a PNG (matplotlib) or HTML (plotly) file.

    Prices are split- and dividend-adjusted when the symbol has corporate actions (a daily
    chart across a split has no cliff) unless --raw is given; the title says which."""
    from marketdb.services.query import render_chart

    db = connect_db(url)
    try:
        if adjusted is None:
            adjusted = not db.query.corporate_actions(symbol, as_of=as_of).empty
        df = db.query.bars(symbol, interval, start, end, adjusted=adjusted, as_of=as_of, source=source)
    finally:
        db.close()
    if df.empty:
        raise InvalidInput(
            f"no {interval} bars for {symbol.upper()} in that range",
            hint="check --start/--end and --interval (marketdb bars SYMBOL shows what is there)",
        )
    label = title or f"{symbol.upper()} {interval} ({'adjusted' if adjusted else 'raw, unadjusted'})"
    path = render_chart(df, output, title=label)
    console.print(f"wrote {len(df)} bars to {path}")
