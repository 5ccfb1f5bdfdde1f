"""Instruments, market-data reads (bars, ticks, quotes, latest, books, options, actions) and ingest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from marketdb.api.deps import Ctx, Db, State
from marketdb.api.formats import ARROW, json_response, negotiate, read_arrow, table_response, to_jsonable
from marketdb.api.pagination import decode_cursor, encode_cursor
from marketdb.errors import InvalidInput
from marketdb.services.instruments import paging as inst_read

router = APIRouter(tags=["market data"])

FormatQ = Annotated[str | None, Query(description="json (default), csv or arrow; overrides Accept")]
Limit = Annotated[int, Query(ge=1, le=1000)]
_KINDS = {
    "ticks": "write_ticks",
    "candles": "write_candles",
    "order_books": "write_order_books",
    "options_chain": "write_options_chain",
    "corporate_actions": "write_corporate_actions",
}
IngestKind = Literal["ticks", "candles", "order_books", "options_chain", "corporate_actions"]


# ------------------------------------------------------------------ instruments
@router.get("/v1/instruments")
def list_instruments(
    db: Db,
    search: str | None = None,
    asset_class: str | None = None,
    active: bool | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Instruments by id, filtered by symbol prefix / name substring; cursor-paginated."""
    after = decode_cursor(cursor).get("after")
    if after is not None and not isinstance(after, int):
        raise InvalidInput("cursor is not valid", hint="pass next_cursor from the previous page")
    rows = inst_read.list_instruments(
        db, search=search, asset_class=asset_class, active=active, after_id=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor({"after": rows[-1]["id"]}) if more and rows else None
    return json_response({"items": rows, "next_cursor": nxt})


class InstrumentsIn(BaseModel):
    """Instrument rows to upsert by symbol (columns as in `marketdb ingest instruments`)."""

    rows: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)
    replace_metadata: bool = False


@router.post("/v1/instruments")
def upsert_instruments(body: InstrumentsIn, db: Db, ctx: Ctx, state: State) -> JSONResponse:
    """Create or update instruments (same rules as the library)."""
    result = db.ingest.write_instruments(body.rows, replace_metadata=body.replace_metadata)
    state.auth.audit(
        ctx.actor,
        "instruments.upsert",
        "instrument",
        None,
        None,
        {"received": result.received, "inserted": result.inserted, "updated": result.updated},
    )
    return json_response(result)


@router.get("/v1/instruments/{ref}")
def get_instrument(ref: str, db: Db) -> JSONResponse:
    """One instrument by id or current symbol."""
    return json_response(inst_read.get_instrument(db, ref))


@router.get("/v1/instruments/{ref}/history")
def instrument_history(ref: str, db: Db) -> JSONResponse:
    """Every symbol the instrument has had."""
    return json_response({"items": inst_read.symbol_history(db, ref)})


class RenameIn(BaseModel):
    """A ticker change."""

    new_symbol: str = Field(min_length=1, max_length=64)
    effective: dt.date | dt.datetime


@router.post("/v1/instruments/{symbol}/rename")
def rename_instrument(symbol: str, body: RenameIn, db: Db, ctx: Ctx, state: State) -> JSONResponse:
    """Record a ticker change; the old symbol keeps naming its history."""
    iid = db.ingest.rename_symbol(symbol, body.new_symbol, effective=body.effective)
    state.auth.audit(
        ctx.actor, "instrument.rename", "instrument", iid, {"symbol": symbol}, {"symbol": body.new_symbol}
    )
    return json_response({"instrument_id": iid, "symbol": body.new_symbol.strip().upper()})


class DelistIn(BaseModel):
    """A delisting."""

    at: dt.date | dt.datetime


@router.post("/v1/instruments/{symbol}/delist")
def delist_instrument(symbol: str, body: DelistIn, db: Db, ctx: Ctx, state: State) -> JSONResponse:
    """Mark an instrument delisted from ``at``."""
    iid = db.ingest.delist(symbol, at=body.at)
    state.auth.audit(ctx.actor, "instrument.delist", "instrument", iid, None, {"delisted_at": body.at})
    return json_response({"instrument_id": iid})


# ------------------------------------------------------------------------ reads
def _cached_table(state: Any, db: Any, parts: list[Any], symbols: list[str], compute: Any) -> pa.Table:
    """Bars through the Redis cache keyed by the instruments' data versions."""
    if not state.cache.enabled:
        table: pa.Table = compute()
        return table
    versions = inst_read.data_versions(db, symbols)
    if versions is None:  # unknown symbol: let the query answer (404, old symbol, ...)
        table = compute()
        return table
    digest = hashlib.sha1(json.dumps(parts[2:]).encode(), usedforsecurity=False).hexdigest()[:16]
    vtag = ".".join(str(versions[s.strip().upper()]) for s in symbols)
    key = f"ohlcv:{parts[0]}:{parts[1]}:{digest}:v{vtag}"
    hit = state.cache.get(key)
    if hit is not None:
        try:
            return read_arrow(hit)
        except InvalidInput:
            state.cache.delete(key)
    table = compute()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    state.cache.set(key, sink.getvalue().to_pybytes(), state.settings.bars_ttl_seconds)
    return table


@router.get("/v1/bars/{symbol}")
def bars(
    request: Request,
    symbol: str,
    db: Db,
    state: State,
    interval: str = "1d",
    start: str | None = None,
    end: str | None = None,
    adjusted: bool = False,
    as_of: str | None = None,
    source: str | None = None,
    format: FormatQ = None,
) -> Response:
    """OHLCV bars at any interval in ``[start, end)``; ``adjusted`` as known at ``as_of``."""
    fmt = negotiate(request, format)
    syms = _symbols(symbol)
    params = [",".join(s.upper() for s in syms), interval, start, end, adjusted, as_of, source]

    def compute() -> pa.Table:
        table: pa.Table = db.query.bars(
            syms[0] if len(syms) == 1 else syms,
            interval,
            start,
            end,
            adjusted=adjusted,
            as_of=as_of,
            source=source,
            output="arrow",
        )
        return table

    return table_response(_cached_table(state, db, params, syms, compute), fmt)


def _symbols(text: str) -> list[str]:
    """``AAPL`` or ``AAPL,MSFT`` (several symbols: a ``symbol`` column is added)."""
    syms = [s.strip() for s in text.split(",") if s.strip()]
    if not syms:
        raise InvalidInput("no symbol given", hint="pass a symbol, or several separated by commas")
    return syms


@router.get("/v1/ticks/{symbol}")
def ticks(
    request: Request,
    symbol: str,
    db: Db,
    start: str | None = None,
    end: str | None = None,
    columns: str | None = None,
    format: FormatQ = None,
) -> Response:
    """Trades in ``[start, end)`` with nanosecond timestamps; Arrow streams in batches."""
    return _tick_read(db.query.ticks, request, symbol, start, end, columns, format)


@router.get("/v1/quotes/{symbol}")
def quotes(
    request: Request,
    symbol: str,
    db: Db,
    start: str | None = None,
    end: str | None = None,
    columns: str | None = None,
    format: FormatQ = None,
) -> Response:
    """Top-of-book quotes in ``[start, end)``."""
    return _tick_read(db.query.quotes, request, symbol, start, end, columns, format)


def _tick_read(
    read: Any, request: Request, symbol: str, start: str | None, end: str | None,
    columns: str | None, format: str | None,
) -> Response:
    """One tick read (``db.query.ticks`` or ``.quotes``) of one or several symbols, negotiated."""
    fmt = negotiate(request, format)
    cols = [c.strip() for c in columns.split(",")] if columns else None
    syms = _symbols(symbol)
    table = read(syms[0] if len(syms) == 1 else syms, start, end, columns=cols, output="arrow")
    return table_response(table, fmt)


@router.get("/v1/latest")
def latest(
    request: Request, db: Db, symbols: Annotated[str, Query(min_length=1)], format: FormatQ = None
) -> Response:
    """Last trade, quote and bar per symbol (``symbols=AAPL,MSFT``)."""
    fmt = negotiate(request, format)
    syms = [s.strip() for s in symbols.split(",") if s.strip()]
    if not syms:
        raise InvalidInput("symbols is empty", hint="pass symbols=AAPL,MSFT")
    return table_response(db.query.latest(syms, output="arrow"), fmt)


@router.get("/v1/order-books/{symbol}")
def order_books(
    request: Request,
    symbol: str,
    db: Db,
    start: str | None = None,
    end: str | None = None,
    depth: Annotated[int | None, Query(ge=1, le=1000)] = None,
    format: FormatQ = None,
) -> Response:
    """Order-book snapshots in ``[start, end)``, best level first."""
    fmt = negotiate(request, format)
    return table_response(db.query.order_books(symbol, start, end, depth=depth, output="arrow"), fmt)


@router.get("/v1/options/{underlying}")
def options_chain(
    request: Request,
    underlying: str,
    db: Db,
    at: str | None = None,
    expiration: str | None = None,
    format: FormatQ = None,
) -> Response:
    """The options chain as it stood at ``at`` (default now)."""
    fmt = negotiate(request, format)
    exps: list[str] | None = [e.strip() for e in expiration.split(",")] if expiration else None
    return table_response(db.query.options_chain(underlying, at, exps, output="arrow"), fmt)


@router.get("/v1/corporate-actions/{symbol}")
def corporate_actions(
    request: Request, symbol: str, db: Db, as_of: str | None = None, format: FormatQ = None
) -> Response:
    """Splits and dividends known at ``as_of`` that have gone ex."""
    fmt = negotiate(request, format)
    return table_response(db.query.corporate_actions(symbol, as_of=as_of, output="arrow"), fmt)


# ----------------------------------------------------------------------- ingest
_FILE_SUFFIX = {
    "text/csv": ".csv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/x-ndjson": ".jsonl",
}


@router.post("/v1/ingest/{kind}")
async def ingest(
    request: Request,
    kind: IngestKind,
    db: Db,
    ctx: Ctx,
    state: State,
    symbol: str | None = None,
    source: str | None = None,
    interval: str | None = None,
    on_invalid: Literal["raise", "skip"] = "raise",
    on_conflict: Literal["ignore", "update"] = "ignore",
    auto_register: bool = False,
    tz: str | None = None,
) -> JSONResponse:
    """Write market data: JSON rows (``{"rows": [...]}`` or a list) for live feeds, or a CSV,
    Parquet, NDJSON or Arrow IPC stream file body. Same validation, idempotency and
    ``WriteResult`` as the library; with ``on_invalid=raise`` a bad row writes nothing (422)."""
    from starlette.concurrency import run_in_threadpool

    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        raise InvalidInput("empty request body", hint="send JSON rows or a file")
    options: dict[str, Any] = {
        "on_invalid": on_invalid,
        "on_conflict": on_conflict,
        "auto_register": auto_register,
    }
    for name, value in (("symbol", symbol), ("source", source), ("tz", tz)):
        if value is not None:
            options[name] = value
    if kind == "candles" and interval is not None:
        options["interval"] = interval
    writer = getattr(db.ingest, _KINDS[kind])

    def run() -> Any:
        if ctype == ARROW:
            return writer(read_arrow(body), **options)
        if ctype in _FILE_SUFFIX:
            with tempfile.TemporaryDirectory(prefix="marketdb-upload-") as tmp:
                path = Path(tmp) / ("upload" + _FILE_SUFFIX[ctype])
                path.write_bytes(body)
                return writer(str(path), **options)
        if ctype != "application/json":
            raise InvalidInput(
                f"unsupported content type {ctype!r}",
                hint="send application/json, text/csv, Parquet, NDJSON or Arrow IPC stream",
            )
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"body is not JSON: {exc}", hint='send {"rows": [...]}') from None
        rows = payload.get("rows") if isinstance(payload, dict) else payload
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise InvalidInput("rows must be a non-empty list of objects", hint='send {"rows": [{...}]}')
        return writer(rows, **options)

    result = await run_in_threadpool(run)
    summary = {k: getattr(result, k) for k in ("received", "inserted", "updated", "duplicates", "rejected")}
    await run_in_threadpool(state.auth.audit, ctx.actor, f"ingest.{kind}", "market_data", None, None, summary)
    out = to_jsonable(result)
    out.pop("stage_seconds", None)
    return JSONResponse(out)


class VerifyIn(BaseModel):
    """Which bars to verify or repair."""

    symbols: list[str] | None = None
    since: str | None = None
    until: str | None = None


@router.post("/v1/bars/verify")
def bars_verify(body: VerifyIn, db: Db) -> JSONResponse:
    """Recompute stored bars from ticks and report differences (admin)."""
    return json_response(db.bars.verify(body.symbols, since=body.since, until=body.until))


@router.post("/v1/bars/repair")
def bars_repair(body: VerifyIn, db: Db, ctx: Ctx, state: State) -> JSONResponse:
    """Rewrite stored bars that differ from their ticks (admin)."""
    report = db.bars.repair(body.symbols, since=body.since, until=body.until)
    state.auth.audit(ctx.actor, "bars.repair", "bars", None, None, to_jsonable(report))
    return json_response(report)
