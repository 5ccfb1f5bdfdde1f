"""Rename and cast an input batch to the canonical schema of its writer.

Values that cannot be read become null and are reported per row
(``bad_value``), so one bad cell never hides the rest of the batch. Problems
with a whole column (required column absent, a type that cannot hold the
field, times without a zone) raise :class:`~marketdb.errors.InvalidInput` at
once: they are mistakes about the input, not about rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from marketdb.errors import InvalidInput
from marketdb.services.instruments.symbols import normalize_symbol
from marketdb.store.intervals import normalize_interval, split_interval

from ._schemas import TS_TYPE, Field, Kind, resolve_columns, snake
from ._sources import ReadPlan
from ._timestamps import TimeParser, check_zone
from ._validate import Report, mask

__all__ = [
    "Normalized",
    "Normalizer",
    "interval_is_daily",
    "normalize_interval",
    "normalize_symbol",
    "normalize_symbols",
]


# ------------------------------------------------------------------- symbols
def normalize_symbols(arr: pa.Array) -> pa.Array:
    """Vectorised :func:`normalize_symbol`; empty strings become null."""
    s = _text(arr, "symbol")
    s = pc.utf8_upper(pc.utf8_trim_whitespace(pc.utf8_normalize(s, form="NFKC")))
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


# ----------------------------------------------------------------- intervals
def interval_is_daily(interval: str) -> bool:
    """True for day-or-longer intervals, whose bars are dated by trading day."""
    try:
        _, unit = split_interval(interval)
    except InvalidInput:
        return False
    return unit in _DAILY_UNITS


_DAILY_UNITS = frozenset({"d", "w", "mo", "q", "y"})


# -------------------------------------------------------------------- casts
_FLOAT_RE = r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[Nn]a[Nn]|[Ii]nf(inity)?)$"
_SIDE_BUY = ("1", "+1", "b", "buy", "buyer", "bought", "long")
_SIDE_SELL = ("-1", "s", "sell", "seller", "sold", "short", "a")  # a: Databento ask-side aggressor
_SIDE_NONE = ("0", "n", "none", "unknown", "u", "?", "no_aggressor", "na")
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "0")


class _Problems:
    """Row problems found while casting one batch (positions are batch positions)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, np.ndarray, Any, str | None]] = []

    def add(self, rule: str, field: str, where: np.ndarray, values: Any,
            message: str | None = None) -> None:
        if where.any() if where.dtype == bool else len(where):
            self.items.append((rule, field, where, values, message))


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def _mistyped(name: str, t: pa.DataType, want: str) -> InvalidInput:
    return InvalidInput(
        f"column {name!r} has type {t}, which cannot hold {want}",
        hint=f"give {name!r} as {want}, or map another column to it with columns={{...}}",
        details={"rule": "mistyped_column", "field": name, "type": str(t)},
    )


def _float(arr: pa.Array, name: str, problems: _Problems) -> pa.Array:
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.float64())
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return arr.cast(pa.float64(), safe=False)
    if _is_text(t):
        s = pc.utf8_trim_whitespace(arr)
        s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
        try:
            return s.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = mask(pc.match_substring_regex(s, _FLOAT_RE))
            bad = ~ok & mask(s.is_valid())
            problems.add("bad_value", name, bad, arr, "cannot be read as a number")
            return pc.if_else(pa.array(ok), s, pa.scalar(None, pa.string())).cast(pa.float64())
    raise _mistyped(name, t, "numbers")


def _int(arr: pa.Array, name: str, problems: _Problems, target: pa.DataType) -> pa.Array:
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), target)
    if pa.types.is_integer(t):
        ints = arr.cast(pa.int64())
    elif pa.types.is_floating(t) or pa.types.is_decimal(t) or _is_text(t):
        f = _float(arr, name, problems)
        integral = mask(pc.equal(pc.floor(f), f)) & mask(pc.less(pc.abs(f), 9.2e18))
        bad = ~integral & mask(f.is_valid())
        problems.add("bad_value", name, bad, arr, "must be a whole number")
        ints = pc.if_else(pa.array(integral), f, pa.scalar(None, pa.float64())).cast(pa.int64())
    else:
        raise _mistyped(name, t, "whole numbers")
    if target == pa.int64():
        return ints
    info = np.iinfo(target.to_pandas_dtype())
    over = mask(pc.or_(pc.less(ints, int(info.min)), pc.greater(ints, int(info.max))))
    if over.any():
        problems.add("bad_value", name, over, arr, f"is outside the range of {target}")
        ints = pc.if_else(pa.array(over), pa.scalar(None, pa.int64()), ints)
    return ints.cast(target)


def _text(arr: pa.Array, name: str) -> pa.Array:
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_string(t):
        return arr
    if pa.types.is_floating(t):
        f = arr.cast(pa.float64())
        whole = pc.all(pc.or_kleene(pc.equal(pc.floor(f), f), pc.is_null(f))).as_py()
        if whole and pc.max(pc.abs(f)).as_py() is not None and pc.max(pc.abs(f)).as_py() < 2**53:
            return f.cast(pa.int64()).cast(pa.string())
        return f.cast(pa.string())
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return arr.cast(pa.string())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = pc.list_flatten(arr)
        as_text = _text(inner, name)
        rebuilt = pa.ListArray.from_arrays(arr.offsets, as_text, mask=arr.is_null())
        return pc.binary_join(rebuilt, ",")
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return arr.cast(pa.string())
    raise _mistyped(name, t, "text")


def _bool(arr: pa.Array, name: str, problems: _Problems) -> pa.Array:
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.bool_())
    if pa.types.is_boolean(t):
        return arr
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        bad = mask(pc.invert(pc.is_in(arr.cast(pa.float64()), pa.array([0.0, 1.0]))))
        bad &= mask(arr.is_valid())
        problems.add("bad_value", name, bad, arr, "must be true or false")
        return pc.if_else(pa.array(bad), pa.scalar(None, pa.bool_()),
                          pc.not_equal(arr.cast(pa.float64()), 0.0))
    if _is_text(t):
        s = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        yes = mask(pc.is_in(s, pa.array(_TRUE)))
        no = mask(pc.is_in(s, pa.array(_FALSE)))
        empty = mask(pc.equal(s, "")) | mask(s.is_null())
        problems.add("bad_value", name, ~(yes | no | empty), arr, "must be true or false")
        return pc.if_else(pa.array(yes | no), pa.array(yes), pa.scalar(None, pa.bool_()))
    raise _mistyped(name, t, "true/false")


def _side(arr: pa.Array, name: str, problems: _Problems, *, inverted_bool: bool) -> pa.Array:
    """Aggressor side -> int8: 1 buyer, -1 seller, null unknown."""
    arr = _plain(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.int8())
    if pa.types.is_boolean(t) or (inverted_bool and _is_text(t)):
        b = _bool(arr, name, problems)
        buy = pc.invert(b) if inverted_bool else b
        return pc.if_else(buy, pa.scalar(1, pa.int8()), pa.scalar(-1, pa.int8()))
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        f = arr.cast(pa.float64())
        buy, sell, zero = (mask(pc.equal(f, v)) for v in (1.0, -1.0, 0.0))
        bad = ~(buy | sell | zero) & mask(arr.is_valid())
        problems.add("bad_value", name, bad, arr, "side must be 1 (buyer), -1 (seller) or empty")
        return _side_from(buy, sell, n)
    if _is_text(t):
        s = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        buy = mask(pc.is_in(s, pa.array(_SIDE_BUY)))
        sell = mask(pc.is_in(s, pa.array(_SIDE_SELL)))
        none = mask(pc.is_in(s, pa.array(_SIDE_NONE))) | mask(pc.equal(s, "")) | mask(s.is_null())
        problems.add("bad_value", name, ~(buy | sell | none), arr,
                     "side must be buy/b/1, sell/s/-1 or empty")
        return _side_from(buy, sell, n)
    raise _mistyped(name, t, "an aggressor side")


def _side_from(buy: np.ndarray, sell: np.ndarray, n: int) -> pa.Array:
    out = np.zeros(n, dtype=np.int8)
    out[buy] = 1
    out[sell] = -1
    return pa.array(out, pa.int8(), mask=~(buy | sell))


def _float_list(arr: pa.Array, name: str, problems: _Problems) -> pa.Array:
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.list_(pa.float64()))
    if _is_text(t):  # JSON text such as "[1.5, 2.0]"
        import json

        parsed: list[Any] = []
        bad = np.zeros(len(arr), dtype=bool)
        for i, v in enumerate(arr.to_pylist()):
            try:
                x = json.loads(v) if v is not None else None
                parsed.append(None if x is None else [float(e) for e in x])
            except (ValueError, TypeError):
                bad[i] = True
                parsed.append(None)
        problems.add("bad_value", name, bad, arr, "must be a list of numbers")
        return pa.array(parsed, pa.list_(pa.float64()))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
            arr = arr.cast(pa.list_(t.value_type))
        inner = pc.list_flatten(arr)
        sub = _Problems()
        values = _float(inner, name, sub)
        if sub.items:
            parents = np.asarray(pc.list_parent_indices(arr).to_numpy(zero_copy_only=False))
            rows = np.zeros(len(arr), dtype=bool)
            for _, _, where, _, _ in sub.items:
                rows[parents[where]] = True
            problems.add("bad_value", name, rows, arr, "must be a list of numbers")
        return pa.ListArray.from_arrays(arr.offsets, values, mask=arr.is_null())
    raise _mistyped(name, t, "lists of numbers")


_OPTION_TYPES = {"c": "call", "call": "call", "calls": "call", "p": "put", "put": "put",
                 "puts": "put"}  # fmt: skip
_ACTION_TYPES = {
    "split": "split", "splits": "split", "stock_split": "split", "forward_split": "split",
    "reverse_split": "split", "consolidation": "split",
    "dividend": "cash_dividend", "dividends": "cash_dividend", "cash_dividend": "cash_dividend",
    "div": "cash_dividend", "cash": "cash_dividend", "cd": "cash_dividend",
    "sc": "cash_dividend", "special_dividend": "cash_dividend", "lt": "cash_dividend",
    "st": "cash_dividend",
}  # fmt: skip


def _vocab(arr: pa.Array, name: str, problems: _Problems, vocab: Mapping[str, str],
           what: str) -> pa.Array:
    s = pc.utf8_lower(pc.utf8_trim_whitespace(_text(arr, name)))
    s = pc.replace_substring(s, " ", "_")
    keys = pa.array(list(vocab.keys()))
    vals = pa.array(list(vocab.values()))
    idx = pc.index_in(s, value_set=keys)
    out = pc.take(vals, idx)
    bad = mask(idx.is_null()) & mask(s.is_valid()) & ~mask(pc.equal(s, ""))
    problems.add("bad_value", name, bad, arr, f"must be one of: {what}")
    return out


# ------------------------------------------------------------- the normaliser
@dataclass
class Normalized:
    """One batch in canonical form, with the problems found so far."""

    table: pa.Table
    report: Report


class Normalizer:
    """Turns the input batches of one writer call into canonical batches.

    Keyword options mirror the writer's: ``tz`` (zone of naive times),
    ``ts_format`` (strptime layout of text times), ``ts_unit`` (epoch unit),
    ``symbol`` (for inputs without a symbol column), ``source`` (fills empty
    sources), ``interval`` (candles), ``columns`` (explicit ``{input: canonical}``
    renames, winning over the built-in aliases).
    """

    def __init__(
        self,
        kind: Kind,
        *,
        tz: str | None = None,
        ts_format: str | None = None,
        ts_unit: str | None = None,
        symbol: str | None = None,
        source: str | None = None,
        interval: str | None = None,
        columns: Mapping[str, str] | None = None,
        default_source: str | None = None,
    ) -> None:
        self.kind = kind
        self.tz = check_zone(tz)
        if ts_unit is not None and ts_unit not in ("s", "ms", "us", "ns"):
            raise InvalidInput(f"unknown ts_unit {ts_unit!r}", hint="use s, ms, us or ns")
        self.symbol = normalize_symbol(symbol) if symbol is not None else None
        self.source = source if source is not None else default_source
        self.interval = normalize_interval(interval) if interval is not None else None
        self.rename = dict(columns or {})
        unknown = set(self.rename.values()) - set(kind.names)
        if unknown:
            raise InvalidInput(
                f"columns= maps to unknown field(s) {sorted(unknown)} for {kind.name}",
                hint=f"fields are: {', '.join(kind.names)}",
            )
        self._parsers = {
            f.name: TimeParser(f.name, tz=self.tz, fmt=ts_format, unit=ts_unit)
            for f in kind.fields if f.role in ("ts", "date")
        }
        self._mapping: dict[str, str] | None = None
        self._mapped_names: list[str] | None = None
        self._extra: dict[str, str] = {}

    # ------------------------------------------------------------------ mapping
    def mapping(self, names: list[str]) -> dict[str, str]:
        """Canonical field -> input column, checked for required columns (cached per schema)."""
        if self._mapping is not None and self._mapped_names == names:
            return self._mapping
        found = resolve_columns(self.kind, names, self.rename)
        snaked = {snake(n): n for n in reversed(names)}
        extra: dict[str, str] = {}
        if "side" in self.kind.names and "side" not in found:
            for alias in ("buyer_maker", "is_buyer_maker", "buyer_is_maker"):
                if alias in snaked:
                    extra["buyer_maker"] = snaked[alias]
                    break
        if self.kind.name == "actions":
            for a in ("split_from", "split_to"):
                if a in snaked:
                    extra[a] = snaked[a]
        self._check_required(found, extra, names)
        self._mapping, self._mapped_names, self._extra = found, names, extra
        return found

    def _check_required(self, found: dict[str, str], extra: dict[str, str],
                        names: list[str]) -> None:
        k = self.kind
        missing: list[str] = []
        if "instrument_id" not in found and "symbol" not in found and self.symbol is None:
            missing.append("symbol (or instrument_id, or pass symbol=...)")
        if "symbol" in found and self.symbol is not None:
            raise InvalidInput(
                f"the input has a symbol column ({found['symbol']!r}) and symbol= was also given",
                hint="drop symbol= (CLI: --symbol) or the column",
            )
        for f in k.fields:
            if not f.not_null or f.name in found or f.role in ("instrument", "symbol"):
                continue
            if k.name == "ticks" and f.name in ("price", "size"):
                continue  # a tick row is a trade, a quote or both: checked below
            if f.name == "interval" and self.interval is not None:
                continue
            if f.name == "action_type" and ("split_from" in extra or "ratio" in found
                                            or "amount" in found):
                continue
            missing.append(f.name)
        if k.name == "ticks":
            if not {"price", "bid", "ask"} & found.keys():
                missing.append("price (trades) or bid/ask (quotes)")
            if "price" in found and "size" not in found:
                missing.append("size (needed with price)")
        if missing:
            accepted = {
                f.name: ", ".join((f.name, *f.aliases)) for f in k.fields if f.name in
                {m.split(" ")[0] for m in missing}
            }
            raise InvalidInput(
                f"{k.name}: missing required column(s): {', '.join(missing)}; "
                f"the input has: {', '.join(names) or '(no columns)'}",
                hint="rename the columns, pass columns={'input name': 'field'} "
                "(accepted names: " + "; ".join(f"{a}" for a in accepted.values()) + ")",
                details={"rule": "missing_column", "missing": missing, "columns": names},
            )

    def plan(self, schema: pa.Schema) -> ReadPlan:
        """Which input columns to read and which CSV types to force (see ReadPlan)."""
        found = self.mapping(list(schema.names))
        keep = [*found.values(), *self._extra.values()]
        types: dict[str, pa.DataType] = {}
        for fname, src in found.items():
            role = self.kind.field(fname).role
            if role in ("price", "quote_price", "size", "float"):
                types[src] = pa.float64()
            elif role in ("text", "symbol", "side"):
                types[src] = pa.string()
            elif role in ("date",) or (role == "ts" and self.kind.name == "candles"):
                # Keep the text: the date as written (with its offset) is the trading day.
                types[src] = pa.string()
        return ReadPlan(columns=keep, csv_types=types)

    # ------------------------------------------------------------------ batches
    def __call__(self, batch: pa.RecordBatch | pa.Table, row0: int) -> Normalized:
        """Normalise one input batch whose first row is input row ``row0``."""
        n = batch.num_rows
        found = self.mapping(list(batch.schema.names))
        problems = _Problems()
        cols: dict[str, pa.Array] = {}
        for f in self.kind.fields:
            src = found.get(f.name)
            if src is None:
                continue
            cols[f.name] = self._cast(f, batch.column(src), problems)
        self._fill_derived(cols, batch, n, problems)
        if self.kind.name == "candles":
            self._candle_times(cols, batch, found, problems)
        for f in self.kind.fields:
            if f.name not in cols and f.role != "symbol":
                cols[f.name] = pa.nulls(n, f.type)
        if "symbol" in self.kind.names and "symbol" in cols:
            pass
        elif self.symbol is not None and "instrument_id" not in found:
            cols["symbol"] = pa.array(np.full(n, self.symbol, dtype=object), pa.string())
        names = [f.name for f in self.kind.fields if f.name in cols]
        table = pa.Table.from_arrays([cols[k] for k in names], names=names)
        report = Report(self.kind.name, np.arange(row0, row0 + n, dtype=np.int64))
        for rule, field_name, where, values, message in problems.items:
            report.add(rule, field_name, where, values, message)
        return Normalized(table, report)

    def _cast(self, f: Field, col: pa.Array, problems: _Problems) -> pa.Array:
        role = f.role
        if role in ("price", "quote_price", "size", "float"):
            return _float(col, f.name, problems)
        if role == "count":
            return _int(col, f.name, problems, pa.int64())
        if role in ("seq", "instrument"):
            return _int(col, f.name, problems, pa.int32())
        if role == "symbol":
            return normalize_symbols(col)
        if role == "text":
            if f.name == "option_right":
                return _vocab(col, f.name, problems, _OPTION_TYPES, "call, put (or C, P)")
            if f.name == "action_type":
                return _vocab(col, f.name, problems, _ACTION_TYPES, "split, cash_dividend (or dividend)")
            if f.name == "interval":
                return self._intervals(col, problems)
            return _text(col, f.name)
        if role == "side":
            return _side(col, f.name, problems, inverted_bool=False)
        if role == "bool":
            return _bool(col, f.name, problems)
        if role in ("price_list", "size_list"):
            return _float_list(col, f.name, problems)
        if role == "ts":
            if self.kind.name == "candles" and f.name == "ts":
                return _plain(col)  # resolved with the interval in _candle_times
            parser = self._parsers[f.name]
            out = parser.instants(col)
            self._report_time(parser, f.name, col, problems)
            return out
        if role == "date":
            parser = self._parsers[f.name]
            out = parser.dates(col)
            self._report_time(parser, f.name, col, problems)
            return out
        if role == "json":
            return _text(col, f.name)
        raise AssertionError(f"unhandled role {role}")  # pragma: no cover

    @staticmethod
    def _report_time(parser: TimeParser, name: str, col: pa.Array, problems: _Problems) -> None:
        for p in parser.problems:
            problems.add(p.rule, name, p.positions, _AtPositions(p.positions, p.values),
                         f"{p.message}")

    def _intervals(self, col: pa.Array, problems: _Problems) -> pa.Array:
        text = _text(col, "interval")
        uniq = pc.unique(text).to_pylist()
        table: dict[str, str | None] = {}
        for u in uniq:
            if u is None:
                continue
            try:
                table[u] = normalize_interval(u)
            except InvalidInput:
                table[u] = None
        keys = pa.array(list(table.keys()), pa.string())
        vals = pa.array(list(table.values()), pa.string())
        out = pc.take(vals, pc.index_in(text, value_set=keys))
        bad = mask(out.is_null()) & mask(text.is_valid())
        problems.add("bad_value", "interval", bad, col, "cannot be read as an interval (1m, 1d...)")
        return out

    def _fill_derived(self, cols: dict[str, pa.Array], batch: pa.RecordBatch | pa.Table, n: int,
                      problems: _Problems) -> None:
        """Columns filled from call options or computed from other input columns."""
        if "buyer_maker" in self._extra:
            cols["side"] = _side(batch.column(self._extra["buyer_maker"]), "side", problems,
                                 inverted_bool=True)
        if self.source is not None and "source" in self.kind.names:
            given = cols.get("source")
            const = pa.array(np.full(n, self.source, dtype=object), pa.string())
            cols["source"] = const if given is None else pc.coalesce(given, const)
        if self.interval is not None and "interval" in self.kind.names:
            given = cols.get("interval")
            const = pa.array(np.full(n, self.interval, dtype=object), pa.string())
            cols["interval"] = const if given is None else pc.coalesce(given, const)
        if self.kind.name == "candles" and "split_factor" in cols:
            # Yahoo writes 0.0 for "no split"; no split has ratio 1.
            sf = cols["split_factor"]
            cols["split_factor"] = pc.if_else(pc.equal(sf, 0.0), pa.scalar(1.0), sf)
        if self.kind.name == "actions":
            if "split_from" in self._extra and "split_to" in self._extra and "ratio" not in cols:
                a = _float(batch.column(self._extra["split_from"]), "split_from", problems)
                b = _float(batch.column(self._extra["split_to"]), "split_to", problems)
                cols["ratio"] = pc.divide(b, pc.if_else(pc.equal(a, 0.0),
                                                        pa.scalar(None, pa.float64()), a))
            if "action_type" not in cols:
                if "ratio" in cols:
                    kind = pc.if_else(cols["ratio"].is_valid(), pa.scalar("split"),
                                      pa.scalar(None, pa.string()))
                    if "amount" in cols:
                        kind = pc.coalesce(kind, pc.if_else(cols["amount"].is_valid(),
                                                            pa.scalar("cash_dividend"),
                                                            pa.scalar(None, pa.string())))
                else:
                    kind = pa.array(np.full(n, "cash_dividend", dtype=object), pa.string())
                cols["action_type"] = kind

    def _candle_times(self, cols: dict[str, pa.Array], batch: pa.RecordBatch | pa.Table,
                      found: dict[str, str], problems: _Problems) -> None:
        """Intraday bars keep their instant; daily and longer bars are stamped at the
        trading date 00:00 UTC (the date as written, or in ``tz``)."""
        raw = cols.get("ts")
        if raw is None:
            return
        parser = self._parsers["ts"]
        interval = cols.get("interval")
        daily = np.zeros(len(raw), dtype=bool)
        if interval is not None:
            uniq = [u for u in pc.unique(interval).to_pylist() if u is not None]
            daily_vals = [u for u in uniq if interval_is_daily(u)]
            if daily_vals:
                daily = mask(pc.is_in(interval, pa.array(daily_vals)))
        out_ns = np.zeros(len(raw), dtype=np.int64)
        valid = np.zeros(len(raw), dtype=bool)
        for subset, is_daily in ((np.flatnonzero(daily), True), (np.flatnonzero(~daily), False)):
            if len(subset) == 0:
                continue
            part = raw if len(subset) == len(raw) else raw.take(pa.array(subset))
            if is_daily:
                d = parser.dates(part)
                ts = d.cast(pa.timestamp("s")).cast(pa.timestamp("ns")).cast(TS_TYPE)
            else:
                ts = parser.instants(part)
            for p in parser.problems:
                pos = subset[p.positions]
                problems.add(p.rule, "ts", pos, _AtPositions(pos, p.values), p.message)
            got = mask(ts.is_valid())
            ints = np.asarray(pc.fill_null(ts.cast(pa.int64()), 0).to_numpy(), dtype=np.int64)
            out_ns[subset[got]] = ints[got]
            valid[subset[got]] = True
        cols["ts"] = pa.array(out_ns, pa.int64(), mask=~valid).cast(TS_TYPE)
        del found


class _AtPositions:
    """Values known only at some positions of a batch, indexable by batch position."""

    def __init__(self, positions: np.ndarray, values: list[object]) -> None:
        self.map = {int(p): v for p, v in zip(positions, values, strict=True)}

    def __getitem__(self, i: int) -> object:
        return self.map.get(int(i))

    def __len__(self) -> int:
        return len(self.map)
