"""Vendor file shapes: presets, headerless CSV, JSON arrays of arrays, record paths.

Everything here turns a source that is *shaped* differently from "one record per
row with named fields" into one that is, before the ordinary reader sees it:

* headerless CSV: ``names=[...]`` (CLI ``--no-header --columns a,b,c``);
* JSON arrays of arrays (Binance/OKX/Kraken klines): ``names`` is the layout of
  each inner array;
* nested JSON: ``record_path="priceData"`` (dotted; ``*`` expands every key of an
  object whose value is a list and records the key in the ``key`` column) with
  ``meta=["ticker"]`` fields copied from the parent object;
* provider presets (:data:`PRESETS`) bundle all of the above with the column
  renames, epoch unit, time format, zone and side codes of one vendor format;
* Polygon's ``T`` (ticker) key is recognised without a preset when records also
  carry ``t`` (the time), instead of being read as a second time column.

The writers call :func:`apply_shape` once per call; it returns the source to
read and the writer options to use (options the caller gave always win).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketdb.errors import InvalidInput

__all__ = ["PRESETS", "Preset", "apply_shape", "extract_records", "preset"]


@dataclass(frozen=True)
class Preset:
    """One vendor file format: how to find its records and what its fields mean.

    ``kind``: the writer it feeds (ticks, candles, books, options, actions).
    ``names``: layout of headerless CSV rows or of JSON arrays (``""`` skips a slot).
    ``record_path`` / ``meta``: where records live in a JSON document.
    ``columns``: input name -> marketdb field. ``side_codes``: vendor side value ->
    buy/sell/none. ``numeric``: fields sent as JSON strings that hold numbers.
    """

    name: str
    kind: str
    source: str
    description: str
    format: str | None = None
    names: tuple[str, ...] | None = None
    record_path: str | None = None
    meta: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    ts_unit: str | None = None
    ts_format: str | None = None
    tz: str | None = None
    interval: str | None = None
    side_codes: Mapping[str, str] = field(default_factory=dict)
    numeric: tuple[str, ...] = ()
    delimiter: str | None = None


_BINANCE_KLINE = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                  "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "")
_KLINE_COLUMNS = {"open_time": "ts", "quote_volume": "notional", "trades": "trade_count"}

#: Every preset by name (CLI ``--preset NAME``; Python ``preset="NAME"``).
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("polygon-aggs", "candles", "polygon",
           "Polygon/Massive aggregates (range, grouped daily, previous close): results[] with "
           "T o h l c v vw n t (ms); daily bars dated in New York",
           format="json", record_path="results", meta=("ticker",),
           columns={"ticker": "symbol", "T": "symbol", "t": "ts", "o": "open", "h": "high",
                    "l": "low", "c": "close", "v": "volume", "vw": "vwap", "n": "trade_count"},
           ts_unit="ms", tz="America/New_York"),
    Preset("polygon-trades", "ticks", "polygon",
           "Polygon v3 trades: results[] with sip_timestamp (ns), price, size, exchange, id",
           format="json", record_path="results",
           columns={"sip_timestamp": "ts", "id": "trade_id"}, ts_unit="ns"),
    Preset("polygon-quotes", "ticks", "polygon",
           "Polygon v3 quotes: results[] with sip_timestamp (ns), bid/ask price and size",
           format="json", record_path="results",
           columns={"sip_timestamp": "ts", "bid_price": "bid", "ask_price": "ask",
                    "bid_exchange": "", "ask_exchange": ""}, ts_unit="ns"),
    Preset("binance-klines", "candles", "binance",
           "Binance klines: REST JSON arrays or data.binance.vision headerless CSV "
           "(12 columns, open time in ms)",
           names=_BINANCE_KLINE, columns=_KLINE_COLUMNS, ts_unit="ms"),
    Preset("binance-aggtrades", "ticks", "binance",
           "Binance aggTrades JSON (a p q f l T m M) or the headerless public-data CSV",
           names=("a", "p", "q", "f", "l", "T", "m", "M"),
           columns={"a": "trade_id", "p": "price", "q": "size", "T": "ts",
                    "m": "buyer_maker", "s": "symbol", "e": "", "E": "", "f": "", "l": "",
                    "M": ""}, ts_unit="ms"),
    Preset("binance-ws-trades", "ticks", "binance",
           "Binance trade stream messages ({stream, data: {e E s t p q T m M}})",
           format="json", record_path="data",
           columns={"t": "trade_id", "p": "price", "q": "size", "T": "ts", "m": "buyer_maker",
                    "s": "symbol", "e": "", "E": "", "b": "", "a": "", "M": ""}, ts_unit="ms"),
    Preset("binance-trades", "ticks", "binance",
           "Binance trades JSON (id price qty quoteQty time isBuyerMaker isBestMatch) or "
           "the headerless public-data CSV",
           names=("id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"),
           columns={"id": "trade_id", "qty": "size", "time": "ts",
                    "isBuyerMaker": "buyer_maker"}, ts_unit="ms"),
    Preset("okx-trades", "ticks", "okx",
           "OKX trades: data[] with instId side sz px tradeId ts (ms as text)",
           format="json", record_path="data",
           columns={"instId": "symbol", "sz": "size", "px": "price", "tradeId": "trade_id",
                    "ts": "ts"}, ts_unit="ms", numeric=("ts",)),
    Preset("okx-candles", "candles", "okx",
           "OKX candles: data[] arrays ts o h l c vol volCcy volCcyQuote confirm",
           format="json", record_path="data",
           names=("ts", "open", "high", "low", "close", "volume", "", "notional", ""),
           ts_unit="ms", numeric=("ts",)),
    Preset("tiingo-daily", "candles", "tiingo",
           "Tiingo end-of-day prices (JSON or CSV) with adjusted columns, divCash, splitFactor",
           interval="1d"),
    Preset("tiingo-crypto-top", "ticks", "tiingo",
           "Tiingo crypto top of book: [{ticker, topOfBookData: [{bidPrice, askPrice, "
           "quoteTimestamp...}]}] as quotes (the last sale has its own time: not a trade here)",
           format="json", record_path="topOfBookData", meta=("ticker",),
           columns={"ticker": "symbol", "quoteTimestamp": "ts", "lastPrice": "", "lastSize": "",
                    "lastSaleTimestamp": "", "lastSizeNotional": "", "lastExchange": "",
                    "bidExchange": "", "askExchange": ""}),
    Preset("tiingo-iex", "candles", "tiingo",
           "Tiingo IEX intraday prices (date = bar start, UTC)"),
    Preset("tiingo-crypto", "candles", "tiingo",
           "Tiingo crypto prices: [{ticker, priceData: [...]}], volumeNotional, tradesDone",
           format="json", record_path="priceData", meta=("ticker",),
           columns={"ticker": "symbol"}),
    Preset("kraken-trades", "ticks", "kraken",
           "Kraken public Trades: result.<PAIR> arrays price volume time side type misc id",
           format="json", record_path="result.*",
           names=("price", "size", "ts", "side", "order_type", "", "trade_id"),
           columns={"key": "symbol"}, ts_unit="s", numeric=("price", "size", "ts"),
           side_codes={"b": "buy", "s": "sell"}),
    Preset("kraken-ohlc", "candles", "kraken",
           "Kraken public OHLC: result.<PAIR> arrays time open high low close vwap volume count",
           format="json", record_path="result.*",
           names=("ts", "open", "high", "low", "close", "vwap", "volume", "trade_count"),
           columns={"key": "symbol"}, ts_unit="s",
           numeric=("open", "high", "low", "close", "vwap", "volume")),
    Preset("histdata", "ticks", "histdata",
           "HistData.com ASCII tick quotes: headerless 'YYYYMMDD HHMMSSmmm,bid,ask,volume', "
           "EST without DST",
           format="csv", names=("ts", "bid", "ask", ""), ts_format="%Y%m%d %H%M%S%f",
           tz="Etc/GMT+5"),
    Preset("histdata-bars", "candles", "histdata",
           "HistData.com ASCII 1-minute bars: headerless 'YYYYMMDD HHMMSS;o;h;l;c;v', EST",
           format="csv", names=("ts", "open", "high", "low", "close", "volume"),
           ts_format="%Y%m%d %H%M%S", tz="Etc/GMT+5", interval="1m", delimiter=";"),
    Preset("databento-trades", "ticks", "databento",
           "Databento trades/MBP CSV (ts_event, side A/B/N, price, size, sequence, symbol)",
           columns={"ts_event": "ts", "instrument_id": "vendor_instrument_id",
                    "sequence": "trade_id", "ts_recv": "", "publisher_id": ""},
           side_codes={"A": "sell", "B": "buy", "N": ""}),
    Preset("coinbase-candles", "candles", "coinbase",
           "Coinbase Advanced Trade candles: candles[] with start (epoch s as text)",
           format="json", record_path="candles", columns={"start": "ts"}, ts_unit="s",
           numeric=("start",)),
    Preset("deribit-trades", "ticks", "deribit",
           "Deribit get_last_trades: result.trades[] with timestamp (ms), direction, amount",
           format="json", record_path="result.trades",
           columns={"instrument_name": "symbol", "amount": "size", "timestamp": "ts",
                    "trade_seq": "", "index_price": "", "mark_price": ""}, ts_unit="ms"),
)}  # fmt: skip


def preset(name: str) -> Preset:
    """The preset called ``name``; an :class:`InvalidInput` listing them all otherwise."""
    p = PRESETS.get(name.strip().lower())
    if p is None:
        raise InvalidInput(f"unknown preset {name!r}",
                           hint="use one of: " + ", ".join(sorted(PRESETS)))
    return p


def _walk(node: Any, parts: Sequence[str], meta: Mapping[str, Any],
          meta_keys: Sequence[str]) -> Iterable[tuple[Any, dict[str, Any]]]:
    """Yield (record, meta values) at ``parts`` below ``node``."""
    if isinstance(node, list) and parts and not parts[0].isdigit():
        for item in node:
            yield from _walk(item, parts, meta, meta_keys)
        return
    if not parts:
        if isinstance(node, list):
            for item in node:
                yield item, dict(meta)
        elif node is not None:
            yield node, dict(meta)
        return
    head, rest = parts[0], parts[1:]
    here = dict(meta)
    if isinstance(node, dict):
        for k in meta_keys:
            if k in node and not isinstance(node[k], list | dict):
                here[k] = node[k]
        if head == "*":
            for key, value in node.items():
                if isinstance(value, list | dict):
                    yield from _walk(value, rest, {**here, "key": key}, meta_keys)
            return
        if head in node:
            yield from _walk(node[head], rest, here, meta_keys)
        return
    if isinstance(node, list) and head.isdigit() and int(head) < len(node):
        yield from _walk(node[int(head)], rest, here, meta_keys)


def extract_records(doc: Any, *, record_path: str | None = None,
                    meta: Sequence[str] = (), names: Sequence[str] | None = None,
                    numeric: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Records of a parsed JSON document as dicts.

    ``record_path`` (dotted, ``*`` = every key, recorded as ``key``) selects the
    records, ``meta`` copies fields of enclosing objects into each record,
    ``names`` names the slots of array records, ``numeric`` turns text fields
    holding numbers into numbers.
    """
    parts = [p for p in (record_path or "").split(".") if p]
    out: list[dict[str, Any]] = []
    for i, (rec, extra) in enumerate(_walk(doc, parts, {}, meta)):
        if isinstance(rec, list | tuple):
            if not names:
                raise InvalidInput(
                    f"record {i} is an array, not an object: its fields need names",
                    hint="pass names=[...] (CLI: --columns a,b,c) or a preset such as "
                    "binance-klines")
            row = {n: (rec[j] if j < len(rec) else None) for j, n in enumerate(names) if n}
        elif isinstance(rec, dict):
            row = dict(rec)
        else:
            raise InvalidInput(f"record {i} at {record_path or 'the top'} is "
                               f"{type(rec).__name__}, not an object or an array",
                               hint="check record_path (CLI: --record-path)")
        for k, v in extra.items():
            row.setdefault(k, v)
        for k in numeric:
            v = row.get(k)
            if isinstance(v, str) and v.strip():
                with contextlib.suppress(ValueError):  # left as text: validation names the row
                    row[k] = int(v) if v.strip().lstrip("-").isdigit() else float(v)
        out.append(row)
    return out


def _polygon_ticker_key(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Polygon's ``T`` is the ticker when a record also has ``t`` (the time)."""
    first = records[0] if records else None
    if first and isinstance(first.get("T"), str) and "t" in first and "symbol" not in first:
        return [{("symbol" if k == "T" else k): v for k, v in r.items()} for r in records]
    return records


def _map_sides(records: list[dict[str, Any]], column: str,
               codes: Mapping[str, str]) -> None:
    for r in records:
        v = r.get(column)
        if isinstance(v, str) and v in codes:
            r[column] = codes[v] or None


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{path.name!r} is not valid JSON: {e}",
                           hint="JSON-lines files need the .jsonl extension") from e


def apply_shape(
    kind: str,
    data: Any,
    options: dict[str, Any],
    *,
    preset_name: str | None = None,
    names: Sequence[str] | None = None,
    record_path: str | None = None,
    meta: Sequence[str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Return the source to read and the writer options for a shaped input.

    ``options`` are the writer's keyword options as the caller gave them (None
    meaning not given); preset values only fill what the caller left out.
    """
    p = preset(preset_name) if preset_name else None
    if p is not None and p.kind != kind:
        raise InvalidInput(f"preset {p.name!r} holds {p.kind}, not {kind}",
                           hint=f"use the {p.kind} writer (CLI: marketdb ingest {p.kind})")
    opts = dict(options)
    renames = dict(p.columns) if p else {}
    names = list(names) if names else (list(p.names) if p and p.names else None)
    record_path = record_path or (p.record_path if p else None)
    meta = list(meta or ()) + (list(p.meta) if p else [])
    numeric = tuple(renames.get(n, n) for n in p.numeric) if p else ()
    side_codes = dict(p.side_codes) if p else {}
    if p is not None:
        for key in ("ts_unit", "ts_format", "tz", "interval"):
            if key in opts and opts.get(key) is None and getattr(p, key) is not None:
                opts[key] = getattr(p, key)
    is_path = isinstance(data, str | Path)
    path = Path(data) if is_path else None
    fmt = (opts.get("format") or (p.format if p else None) or "").lower() or None
    if path is not None and fmt is None:
        low = path.name.lower()
        if low.endswith(".json"):
            fmt = "json"
        elif low.endswith((".csv", ".txt", ".tsv", ".csv.gz", ".csv.bz2", ".csv.zst")):
            fmt = "csv"
    if p is not None and opts.get("source") is None:
        opts["source"] = p.source
    if path is not None and fmt == "csv":
        if p is not None and p.delimiter:
            opts["csv"] = {"delimiter": p.delimiter, **(opts.get("csv") or {})}
        if names:
            csv_opts = dict(opts.get("csv") or {})
            cols = [renames.get(n, n) or f"_unused_{i}" if n else f"_unused_{i}"
                    for i, n in enumerate(names)]
            # Fewer names than columns: the trailing columns are not wanted.
            cols += [f"_unused_{i}" for i in range(len(cols), _csv_width(path, csv_opts))]
            csv_opts.setdefault("column_names", cols)
            opts["csv"] = csv_opts
            opts["format"] = "csv"
            if not side_codes:
                return data, opts
        elif not renames and not side_codes:
            return data, opts
        return _csv_table(path, opts, renames, side_codes)
    if path is not None and fmt == "json":
        if p is None and not record_path and not names:
            raw = path.read_bytes()
            if b'"T"' not in raw:
                return data, opts
            doc = json.loads(raw)
        else:
            doc = _load_json(path)
        records = _shape_records(doc, record_path, meta, names, numeric, shaped=p is not None)
        if records is None:
            return data, opts
        return _records_result(records, opts, renames, side_codes, "json")
    if isinstance(data, dict | list) and (record_path or names or p is not None):
        if isinstance(data, list) and data and isinstance(data[0], dict) and not record_path:
            records = _polygon_ticker_key([dict(r) for r in data])
        else:
            records = extract_records(data, record_path=record_path, meta=meta, names=names,
                                      numeric=numeric)
        return _records_result(records, opts, renames, side_codes, None)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return _polygon_ticker_key(data), opts
    return _frame_ticker_key(data), opts


def _csv_width(path: Path, csv_opts: Mapping[str, Any]) -> int:
    """Number of fields on the first line of a CSV file (0 when it cannot be told)."""
    import pyarrow as pa

    delimiter = csv_opts.get("delimiter") or ("\t" if ".tsv" in path.name.lower() else ",")
    try:
        with pa.input_stream(str(path), compression="detect") as fh:
            first = fh.read(1 << 16).split(b"\n", 1)[0]
    except (OSError, pa.ArrowException):
        return 0
    return first.count(delimiter.encode()) + 1 if first.strip() else 0


def _shape_records(doc: Any, record_path: str | None, meta: Sequence[str],
                   names: Sequence[str] | None, numeric: Sequence[str],
                   *, shaped: bool) -> list[dict[str, Any]] | None:
    if record_path or names or shaped:
        if not record_path and isinstance(doc, dict):
            for key in ("results", "data", "result"):
                if isinstance(doc.get(key), list | dict):
                    record_path = key
                    break
        return _polygon_ticker_key(extract_records(doc, record_path=record_path, meta=meta,
                                                   names=names, numeric=numeric))
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        records = extract_records(doc, record_path="results")
    elif isinstance(doc, list) and all(isinstance(r, dict) for r in doc):
        records = doc
    else:
        return None
    shaped_records = _polygon_ticker_key(records)
    return shaped_records if shaped_records is not records else None


def _rename_records(records: list[dict[str, Any]],
                    renames: Mapping[str, str]) -> list[dict[str, Any]]:
    if not renames:
        return records
    out = []
    for r in records:
        row: dict[str, Any] = {}
        for k, v in r.items():
            new = renames.get(k, k)
            if new:
                row[new] = v
        out.append(row)
    return out


def _records_result(records: list[dict[str, Any]], opts: dict[str, Any],
                    renames: Mapping[str, str], side_codes: Mapping[str, str],
                    file_source: str | None) -> tuple[Any, dict[str, Any]]:
    if not records:
        raise InvalidInput("the input holds no records at the given record path",
                           hint="check --record-path / record_path, or the preset")
    records = _rename_records(records, renames)
    if side_codes:
        _map_sides(records, "side", side_codes)
    if opts.get("source") is None and file_source:
        opts["source"] = file_source
    opts.pop("format", None)
    return records, opts


def _csv_table(path: Path, opts: dict[str, Any], renames: Mapping[str, str],
               codes: Mapping[str, str]) -> tuple[Any, dict[str, Any]]:
    """A CSV whose columns need renames or whose side column uses vendor codes."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    csv_opts = dict(opts.get("csv") or {})
    names = csv_opts.get("column_names")
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(names) if names else None,
                                       skip_rows=int(csv_opts.get("skip_rows", 0))),
        parse_options=pacsv.ParseOptions(delimiter=csv_opts.get("delimiter") or ","),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    keep = [(c, renames.get(c, c)) for c in table.column_names]
    table = table.select([c for c, new in keep if new]).rename_columns([n for _, n in keep if n])
    if codes and "side" in table.column_names:
        col = table.column("side").cast(pa.string())
        keys = pa.array(list(codes))
        vals = pa.array([v or None for v in codes.values()], pa.string())
        mapped = pc.take(vals, pc.index_in(col, value_set=keys))
        col = pc.if_else(pc.is_in(col, value_set=keys), mapped, col)
        table = table.set_column(table.column_names.index("side"), "side", col)
    if opts.get("source") is None:
        opts["source"] = "csv"
    opts.pop("csv", None)
    opts.pop("format", None)
    return table, opts


def _frame_ticker_key(data: Any) -> Any:
    """pandas DataFrames with Polygon's ``T`` ticker column next to ``t``."""
    cols = getattr(data, "columns", None)
    if cols is None or "T" not in cols or "t" not in cols or "symbol" in cols:
        return data
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - a dependency
        return data
    if isinstance(data, pd.DataFrame) and data["T"].map(lambda v: isinstance(v, str)).all():
        return data.rename(columns={"T": "symbol"})
    return data
