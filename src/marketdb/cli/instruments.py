"""`marketdb instruments list|show|add|rename|delist|history`: the security master from the shell."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from marketdb.cli._common import connect_db, console, print_table
from marketdb.errors import InvalidInput

__all__ = ["instruments_app"]

instruments_app = typer.Typer(
    help=(
        "List, search and change instruments: `marketdb instruments list --prefix AA` shows "
        "what is stored for each (rows, first/last time, bar intervals, sources)."
    ),
    no_args_is_help=True,
)

UrlOpt = Annotated[str | None, typer.Option(
    "--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")]
SymbolArg = Annotated[str, typer.Argument(help="Symbol (current or former) or instrument id.")]


def _date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not a date", hint=f"use YYYY-MM-DD, e.g. {option} 2022-06-09"
        ) from None


def _ref(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


def _fmt(json_out: bool) -> str:
    return "json" if json_out else "table"


@instruments_app.command("list")
def list_(
    prefix: Annotated[str | None, typer.Option("--prefix", "-p", help="Symbols starting with this.")] = None,
    search: Annotated[str | None, typer.Option(
        "--search", help="Symbol or name containing this text (case-insensitive).")] = None,
    asset_class: Annotated[str | None, typer.Option(
        "--asset-class", help="stock, etf, fund, index, crypto, forex, future, option, bond, other.")
    ] = None,
    exchange: Annotated[str | None, typer.Option("--exchange", help="Exchange code, e.g. XNAS.")] = None,
    active: Annotated[bool | None, typer.Option(
        "--active/--inactive", help="Only active (or only delisted) instruments.", show_default=False)
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
    counts: Annotated[bool, typer.Option(
        "--counts/--no-counts", help="Count the data stored per instrument.")] = True,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Instruments sorted by symbol, with rows, first/last time, intervals and sources stored."""
    db = connect_db(url)
    try:
        found = db.instruments.list(prefix=prefix, search=search, asset_class=asset_class,
                                    exchange=exchange, active=active, limit=limit, counts=counts)
    finally:
        db.close()
    print_table([i.as_dict(counts=counts) for i in found], title="instruments", fmt=_fmt(json_out))


@instruments_app.command("show")
def show(
    symbol: SymbolArg,
    at: Annotated[str | None, typer.Option(
        "--at", help="Resolve a reused symbol as of this date (YYYY-MM-DD).")] = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One instrument: its fields, the data stored per table, and its symbol history."""
    db = connect_db(url)
    try:
        info = db.instruments.get(_ref(symbol), at=_date(at, "--at") if at else None)
        spans = db.instruments.history(info.id)
    finally:
        db.close()
    fields: dict[str, Any] = {
        **info.as_dict(counts=False),
        "currency": info.currency,
        "calendar": info.calendar,
        "listed_at": info.listed_at,
        "delisted_at": info.delisted_at,
    }
    data = [
        {"table": d.table, "rows": d.rows, "first_ts": d.first_ts, "last_ts": d.last_ts,
         "intervals": ",".join(d.intervals), "sources": ",".join(d.sources)}
        for d in info.data
    ]
    if json_out:
        print_table([{**fields, "data": data, "history": [s.as_dict() for s in spans]}], fmt="json")
        return
    print_table([{"field": k, "value": v} for k, v in fields.items()], title=info.symbol)
    print_table(data, title="stored data")
    print_table([s.as_dict() for s in spans], title="symbol history")


@instruments_app.command("add")
def add(
    symbol: Annotated[str, typer.Argument(help="The new instrument's symbol.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    asset_class: Annotated[str, typer.Option("--asset-class", help="stock (default), etf, crypto, ...")
                           ] = "stock",
    exchange: Annotated[str | None, typer.Option("--exchange", help="Exchange code, e.g. XNAS.")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="e.g. USD.")] = None,
    calendar: Annotated[str | None, typer.Option(
        "--calendar", help="exchange_calendars code for daily bars, e.g. XNYS.")] = None,
    listed: Annotated[str | None, typer.Option("--listed", help="Listing date (YYYY-MM-DD).")] = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create one instrument (error if the symbol exists; use `marketdb ingest instruments` to update)."""
    db = connect_db(url)
    try:
        info = db.instruments.add(symbol, name=name, asset_class=asset_class, exchange=exchange,
                                  currency=currency, calendar=calendar,
                                  listed_at=_date(listed, "--listed") if listed else None)
    finally:
        db.close()
    print_table([info.as_dict(counts=False)], title="added", fmt=_fmt(json_out))


@instruments_app.command("rename")
def rename(
    old: Annotated[str, typer.Argument(help="The current symbol.")],
    new: Annotated[str, typer.Argument(help="The new symbol.")],
    effective: Annotated[str, typer.Option("--effective", help="First day of the new symbol (YYYY-MM-DD).")],
    url: UrlOpt = None,
) -> None:
    """Record a ticker change; the old symbol keeps resolving for reads, ingest and trading."""
    db = connect_db(url)
    try:
        iid = db.instruments.rename(old, new, effective=_date(effective, "--effective"))
    finally:
        db.close()
    console.print(f"instrument {iid}: {old.strip().upper()} -> {new.strip().upper()} from {effective}")


@instruments_app.command("delist")
def delist(
    symbol: Annotated[str, typer.Argument(help="The symbol to delist.")],
    at: Annotated[str, typer.Option("--at", help="Delisting date (YYYY-MM-DD).")],
    url: UrlOpt = None,
) -> None:
    """Mark an instrument delisted from a date (its data and history are kept)."""
    db = connect_db(url)
    try:
        iid = db.instruments.delist(symbol, at=_date(at, "--at"))
    finally:
        db.close()
    console.print(f"instrument {iid}: {symbol.strip().upper()} delisted from {at}")


@instruments_app.command("history")
def history(symbol: SymbolArg, url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    """The symbols an instrument carried, with dates and reasons (listing, rename, delisting)."""
    db = connect_db(url)
    try:
        spans = db.instruments.history(_ref(symbol))
    finally:
        db.close()
    print_table([s.as_dict() for s in spans], title="symbol history", fmt=_fmt(json_out))
