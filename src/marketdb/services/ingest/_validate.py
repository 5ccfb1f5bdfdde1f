"""Vectorised validation: every rule marks rows, every rejected row gets a reason.

Rules (the names appear in errors, in :class:`~.results.Rejection` and in the docs):

========================  ===================================================
``missing_column``        a required column is absent (raised for the input)
``mistyped_column``       a column's type cannot hold the field (raised)
``naive_timestamp``       times without a zone and no ``tz=`` (raised)
``bad_value``             a value cannot be read as the field's type
``missing_value``         a required value is empty
``timestamp_range``       a time/date outside the plausible window
``ambiguous_local_time``  a local time that DST makes ambiguous or skips
``not_finite``            NaN or +/-Infinity
``magnitude``             a number beyond +/-1e18 (no market quantity is that large)
``notional_overflow``     price x size beyond 1e30 (sums of it would overflow)
``nul_character``         a NUL (\\x00) character in a text field (PostgreSQL cannot store it)
``vwap_outside_range``    a candle's vwap outside [low, high]
``non_positive_price``    price <= 0 (unless the asset class allows it)
``negative_price``        an option bid/ask/last < 0
``negative_size``         size, volume, open interest... < 0
``negative_count``        a count < 0
``negative_seq``          a caller-supplied seq < 0
``empty_tick``            a tick row with neither a price nor a bid/ask
``high_below_low``        high < low
``high_below_open_close`` high < max(open, close)
``low_above_open_close``  low > min(open, close)
``crossed_quote``         bid > ask (policy ``crossed="reject"``, the default)
``crossed_book``          best bid > best ask in an order-book snapshot
``book_shape``            price and size arrays of a side differ in length
``book_order``            bids not strictly descending / asks not ascending
``expiration_before_ts``  an option quoted after it expired
``negative_iv``           implied volatility < 0
``non_positive_ratio``    a split ratio <= 0
``date_order``            pay date before ex-date
``duplicate_key_conflict`` rows with the same key but different values
``unknown_symbol``        a symbol (or instrument id) that is not registered
``instrument_mismatch``   an instrument_id that is not the instrument of the row's symbol
========================  ===================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from marketdb.errors import InvalidInput

from ._schemas import Kind
from .results import Rejection

__all__ = ["Report", "ValidationPolicy", "find_duplicates", "mask", "validate"]

#: Largest magnitude of any price, size or other number (larger values are input errors
#: and would overflow sums such as notional).
MAX_MAGNITUDE = 1e18
#: Largest price x size of one trade.
MAX_NOTIONAL = 1e30

#: How many example rows an error message shows per rule.
EXAMPLES_PER_RULE = 5

_MESSAGES: dict[str, str] = {
    "bad_value": "cannot be read as the field's type",
    "missing_value": "is required",
    "timestamp_range": "is outside the plausible time window",
    "not_finite": "must be a finite number (not NaN or Infinity)",
    "magnitude": "must be at most 1e18 in magnitude",
    "notional_overflow": "price x size must be at most 1e30",
    "nul_character": "must not contain a NUL (\\x00) character",
    "vwap_outside_range": "vwap must be between low and high",
    "non_positive_price": "must be > 0",
    "negative_price": "must be >= 0",
    "negative_size": "must be >= 0",
    "negative_count": "must be >= 0",
    "negative_seq": "must be >= 0",
    "empty_tick": "row has neither a trade price nor a bid/ask",
    "high_below_low": "high must be >= low",
    "high_below_open_close": "high must be >= max(open, close)",
    "low_above_open_close": "low must be <= min(open, close)",
    "crossed_quote": "bid must be <= ask (pass crossed='allow' to store crossed quotes)",
    "crossed_book": "best bid must be <= best ask (pass crossed='allow' to store it)",
    "book_shape": "price and size arrays of a side must have the same length",
    "book_order": "bid prices must strictly descend and ask prices strictly ascend",
    "expiration_before_ts": "the contract expired before the quote time",
    "negative_iv": "implied volatility must be >= 0",
    "non_positive_ratio": "a split ratio must be > 0",
    "date_order": "pay date must not be before the ex-date",
    "duplicate_key_conflict": "another row has the same key but different values",
    "unknown_symbol": "is not a registered symbol (register it, or pass auto_register=True)",
}


def mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array (nulls = False) as a numpy bool array."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class ValidationPolicy:
    """Knobs of validation for one writer call.

    ``min_ts``/``max_ts`` bound plausible times (``max_ts`` defaults to now +
    ``max_ahead``); ``crossed`` is ``"reject"`` or ``"allow"`` for bid > ask;
    ``non_positive_price_classes`` lists asset classes whose prices may be
    zero or negative (futures spreads, some futures, rates).
    """

    min_ts: np.datetime64 = field(default_factory=lambda: np.datetime64("1990-01-01", "ns"))
    max_ts: np.datetime64 | None = None
    max_ahead: np.timedelta64 = field(default_factory=lambda: np.timedelta64(2, "D"))
    crossed: str = "reject"
    non_positive_price_classes: frozenset[str] = frozenset({"spread", "future_spread"})

    def bounds_ns(self) -> tuple[int, int]:
        """The plausible time window as epoch nanoseconds (inclusive)."""
        lo = int(self.min_ts.astype("datetime64[ns]").astype(np.int64))
        if self.max_ts is not None:
            return lo, int(self.max_ts.astype("datetime64[ns]").astype(np.int64))
        now = int(np.datetime64("now", "ns").astype(np.int64))
        return lo, now + int(self.max_ahead.astype("timedelta64[ns]").astype(np.int64))


@dataclass
class _Hit:
    rule: str
    field: str
    positions: np.ndarray
    values: Any  # pa.Array / np.ndarray / list aligned with the batch, or per-position list
    per_position: bool
    message: str


class Report:
    """Rule violations of one batch, with the absolute input row of every position."""

    def __init__(self, kind: str, rows: np.ndarray) -> None:
        self.kind = kind
        self.rows = rows
        self.n = len(rows)
        self._hits: list[_Hit] = []
        self._bad = np.zeros(self.n, dtype=bool)

    # ---------------------------------------------------------------- collecting
    def add(
        self,
        rule: str,
        field: str,
        where: np.ndarray,
        values: Any,
        message: str | None = None,
        *,
        at_positions: bool = False,
    ) -> None:
        """Record ``rule`` broken at ``where`` (a bool mask or an array of positions).

        ``values`` is indexable by batch position (a column, or anything with
        ``__getitem__``), or, with ``at_positions=True``, a list aligned with
        the positions.
        """
        pos = np.flatnonzero(where) if where.dtype == bool else np.asarray(where, dtype=np.int64)
        if len(pos) == 0:
            return
        self._hits.append(
            _Hit(rule, field, pos, values, at_positions, message or _MESSAGES.get(rule, rule))
        )
        self._bad[pos] = True

    def extend(self, other: Report, positions: np.ndarray) -> None:
        """Fold in a report about a subset of rows (``positions`` maps its rows to ours)."""
        for h in other._hits:
            values = h.values
            if not h.per_position:
                values = [_value_at(h.values, int(p)) for p in h.positions]
            self._hits.append(_Hit(h.rule, h.field, positions[h.positions], values, True,
                                   h.message))
            self._bad[positions[h.positions]] = True

    # ----------------------------------------------------------------- reading
    @property
    def bad(self) -> np.ndarray:
        """Rows (positions) that broke at least one rule."""
        return self._bad

    @property
    def ok(self) -> np.ndarray:
        """Rows that broke no rule."""
        return ~self._bad

    @property
    def n_bad(self) -> int:
        """How many rows broke at least one rule."""
        return int(self._bad.sum())

    def __bool__(self) -> bool:
        return bool(self._hits)

    def rules(self) -> dict[str, int]:
        """Rule -> number of distinct rows breaking it, in order of first appearance."""
        out: dict[str, set[int]] = {}
        for h in self._hits:
            out.setdefault(h.rule, set()).update(int(p) for p in h.positions)
        return {k: len(v) for k, v in out.items()}

    def _iter(self) -> list[tuple[int, _Hit, int]]:
        items = []
        for h in self._hits:
            for i, p in enumerate(h.positions):
                items.append((int(self.rows[p]), h, i))
        items.sort(key=lambda x: x[0])
        return items

    def rejections(self) -> list[Rejection]:
        """Every (row, rule) pair, sorted by input row."""
        out = []
        for row, h, i in self._iter():
            out.append(Rejection(row, h.rule, h.field, self._value(h, i), h.message))
        return out

    def _value(self, h: _Hit, i: int) -> Any:
        if h.per_position:
            return _py(h.values[i])
        return _value_at(h.values, int(h.positions[i]))

    def error(self, *, written_rows: int = 0, note: str | None = None) -> InvalidInput:
        """An :class:`InvalidInput` naming each rule, its row count and the first rows."""
        rules = self.rules()
        lines = [
            f"{self.kind}: {self.n_bad} of {self.n} rows in this batch broke "
            f"{len(rules)} validation rule{'s' if len(rules) != 1 else ''}; "
            "the batch was not written:"
        ]
        for rule, count in rules.items():
            hits = [h for h in self._hits if h.rule == rule]
            examples: list[tuple[int, str]] = []
            for h in hits:
                for i, p in enumerate(h.positions[:EXAMPLES_PER_RULE]):
                    examples.append(
                        (int(self.rows[p]), f"row {int(self.rows[p])} {h.field}="
                         f"{_show(self._value(h, i))}")
                    )
            examples.sort(key=lambda e: e[0])
            shown = ", ".join(e[1] for e in examples[:EXAMPLES_PER_RULE])
            more = f" (+{count - min(count, EXAMPLES_PER_RULE)} more)" if count > EXAMPLES_PER_RULE \
                else ""
            lines.append(
                f"  - {rule}: {count} row{'s' if count != 1 else ''} "
                f"({hits[0].message}); first: {shown}{more}"
            )
        if note:
            lines.append(note)
        hint = (
            "fix these rows and re-run (stored rows are deduplicated), or pass "
            "on_invalid='skip' (CLI: --on-invalid skip) to write the valid rows and get "
            "the rejected ones back in WriteResult.rejections"
        )
        if "unknown_symbol" in rules:
            # Skipping would drop every row of the unknown symbols: registering them is the fix.
            hint = (
                "register the symbols first (`marketdb instruments add SYMBOL`, "
                "`marketdb ingest instruments FILE`, or db.instruments.add), or create them "
                "while writing with auto_register=True (CLI: --auto-register)"
            )
            if len(rules) > 1:
                hint += "; fix the other rows and re-run (stored rows are deduplicated)"
        if written_rows:
            hint += f"; {written_rows} rows of earlier batches of this input were already written"
        return InvalidInput(
            "\n".join(lines),
            hint=hint,
            details={
                "kind": self.kind,
                "rules": rules,
                "rejections": [r.as_dict() for r in self.rejections()],
                "written_rows": written_rows,
            },
        )


def _value_at(values: Any, p: int) -> Any:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values[p].as_py()
    return _py(values[p])


def _py(v: Any) -> Any:
    if isinstance(v, pa.Scalar):
        return v.as_py()
    if isinstance(v, np.generic):
        return v.item()
    return v


class _Plain(str):
    """Text shown as is in messages (not quoted)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(v)
    s = repr(v) if isinstance(v, str) else str(v)
    return s if len(s) <= 60 else s[:57] + "..."


# --------------------------------------------------------------------- rules
def _col(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def check_common(
    kind: Kind,
    table: pa.Table,
    report: Report,
    policy: ValidationPolicy,
    *,
    price_may_be_non_positive: np.ndarray | None = None,
    date_window: tuple[np.datetime64, np.datetime64] | None = None,
    skip_not_null: Sequence[str] = (),
) -> None:
    """Rules that follow from each field's role: required, finite, sign, time window."""
    lo, hi = policy.bounds_ns()
    for f in kind.fields:
        col = _col(table, f.name)
        if col is None:
            continue
        if f.not_null and f.name not in skip_not_null:
            missing = mask(col.is_null()) & ~report.bad
            report.add("missing_value", f.name, missing, col)
        if f.role in ("text", "symbol", "json") and (pa.types.is_string(col.type)
                                                     or pa.types.is_large_string(col.type)):
            report.add("nul_character", f.name, mask(pc.match_substring(col, "\x00")), col)
        if f.role in ("price", "quote_price", "size", "float"):
            nf = mask(pc.invert(pc.is_finite(col)))
            report.add("not_finite", f.name, nf, col)
            report.add("magnitude", f.name,
                       mask(pc.greater(pc.abs(col), MAX_MAGNITUDE)) & ~nf, col)
            if f.role == "quote_price":
                report.add("negative_price", f.name, mask(pc.less(col, 0.0)) & ~nf, col)
            elif f.role == "price":
                bad = mask(pc.less_equal(col, 0.0)) & ~nf
                if price_may_be_non_positive is not None:
                    bad &= ~price_may_be_non_positive
                report.add("non_positive_price", f.name, bad, col)
            elif f.role == "size":
                report.add("negative_size", f.name, mask(pc.less(col, 0.0)) & ~nf, col)
        elif f.role == "count":
            report.add("negative_count", f.name, mask(pc.less(col, 0)), col)
        elif f.role == "seq":
            report.add("negative_seq", f.name, mask(pc.less(col, 0)), col)
        elif f.role == "ts":
            ints = col.cast(pa.int64())
            out = mask(pc.or_(pc.less(ints, lo), pc.greater(ints, hi)))
            report.add("timestamp_range", f.name, out, col,
                       f"must be between {_day(lo)} and {_day(hi)}")
        elif f.role == "date" and date_window is not None:
            d = col.cast(pa.int32())
            dlo = int(date_window[0].astype("datetime64[D]").astype(np.int64))
            dhi = int(date_window[1].astype("datetime64[D]").astype(np.int64))
            out = mask(pc.or_(pc.less(d, dlo), pc.greater(d, dhi)))
            report.add("timestamp_range", f.name, out, col,
                       f"must be between {date_window[0]} and {date_window[1]}")
        elif f.role in ("price_list", "size_list"):
            flat = pc.list_flatten(col)
            parents = np.asarray(pc.list_parent_indices(col).to_numpy(zero_copy_only=False))
            nf = mask(pc.invert(pc.is_finite(flat))) | mask(pc.is_null(flat))
            if nf.any():
                rows = np.zeros(len(col), dtype=bool)
                rows[parents[nf]] = True
                report.add("not_finite", f.name, rows, col)
            big = mask(pc.greater(pc.abs(flat), MAX_MAGNITUDE)) & ~nf
            if big.any():
                rows = np.zeros(len(col), dtype=bool)
                rows[parents[big]] = True
                report.add("magnitude", f.name, rows, col)
            if f.role == "price_list":
                badp = mask(pc.less_equal(flat, 0.0))
                if price_may_be_non_positive is not None and badp.any():
                    badp &= ~price_may_be_non_positive[parents]
                rule = "non_positive_price"
            else:
                badp = mask(pc.less(flat, 0.0))
                rule = "negative_size"
            if badp.any():
                rows = np.zeros(len(col), dtype=bool)
                rows[parents[badp]] = True
                report.add(rule, f.name, rows, col)


def _day(ns: int) -> str:
    return str(np.datetime64(ns, "ns").astype("datetime64[D]"))


def check_ticks(table: pa.Table, report: Report, policy: ValidationPolicy) -> None:
    """Ticks: a row is a trade, a quote or both; trades need a size; quotes may not cross."""
    price, size = _col(table, "price"), _col(table, "size")
    bid, ask = _col(table, "bid"), _col(table, "ask")
    n = table.num_rows
    has_price = mask(price.is_valid()) if price is not None else np.zeros(n, bool)
    has_quote = np.zeros(n, bool)
    for c in (bid, ask):
        if c is not None:
            has_quote |= mask(c.is_valid())
    report.add("empty_tick", "price", ~has_price & ~has_quote, [None] * n,
               _MESSAGES["empty_tick"])
    if size is not None:
        report.add("missing_value", "size", has_price & mask(size.is_null()), size)
    check_notional(table, report)
    if bid is not None and ask is not None and policy.crossed != "allow":
        report.add("crossed_quote", "bid", mask(pc.greater(bid, ask)), _pairs(bid, ask))


def _pairs(bid: pa.Array, ask: pa.Array) -> list[str]:
    return _LazyPairs(bid, ask)  # type: ignore[return-value]


class _LazyPairs:
    """Index-able ``"bid>ask"`` text, computed only for the rows that are shown."""

    def __init__(self, bid: pa.Array, ask: pa.Array) -> None:
        self.bid, self.ask = bid, ask

    def __getitem__(self, i: int) -> str:
        return _Plain(f"{self.bid[i].as_py()} > ask={self.ask[i].as_py()}")

    def __len__(self) -> int:
        return len(self.bid)


def check_quotes_crossed(table: pa.Table, report: Report, policy: ValidationPolicy) -> None:
    """bid > ask is rejected unless the policy allows crossed quotes."""
    bid, ask = _col(table, "bid"), _col(table, "ask")
    if bid is not None and ask is not None and policy.crossed != "allow":
        report.add("crossed_quote", "bid", mask(pc.greater(bid, ask)), _pairs(bid, ask))


def check_notional(table: pa.Table, report: Report) -> None:
    """price x size of a trade must stay far from float overflow (``notional_overflow``)."""
    price, size = _col(table, "price"), _col(table, "size")
    if price is None or size is None:
        return
    notional = pc.abs(pc.multiply(price, size))
    report.add("notional_overflow", "size", mask(pc.greater(notional, MAX_NOTIONAL)),
               _Lazy2(size, "price", price))


def check_candles(table: pa.Table, report: Report) -> None:
    """OHLC consistency: high >= max(open, close), low <= min(open, close), high >= low;
    vwap within [low, high] (to a relative 1e-9, for rounding)."""
    o, h, lo, c = (_col(table, k) for k in ("open", "high", "low", "close"))
    if o is None or h is None or lo is None or c is None:
        return
    vwap = _col(table, "vwap")
    if vwap is not None:
        slack = pc.multiply(pc.abs(vwap), 1e-9)
        out = pc.or_(pc.less(pc.add(vwap, slack), lo), pc.greater(pc.subtract(vwap, slack), h))
        report.add("vwap_outside_range", "vwap", mask(out), _Lazy3v(vwap, lo, h))
    report.add("high_below_low", "high", mask(pc.less(h, lo)), _Lazy2(h, "low", lo))
    report.add("high_below_open_close", "high", mask(pc.less(h, pc.max_element_wise(o, c))),
               _Lazy3(h, o, c))
    report.add("low_above_open_close", "low", mask(pc.greater(lo, pc.min_element_wise(o, c))),
               _Lazy3(lo, o, c))
    sf = _col(table, "split_factor")
    if sf is not None:
        report.add("non_positive_ratio", "split_factor", mask(pc.less_equal(sf, 0.0)), sf)


class _Lazy2:
    def __init__(self, a: pa.Array, bname: str, b: pa.Array) -> None:
        self.a, self.bname, self.b = a, bname, b

    def __getitem__(self, i: int) -> str:
        return _Plain(f"{self.a[i].as_py()} ({self.bname}={self.b[i].as_py()})")

    def __len__(self) -> int:
        return len(self.a)


class _Lazy3:
    def __init__(self, a: pa.Array, o: pa.Array, c: pa.Array) -> None:
        self.a, self.o, self.c = a, o, c

    def __getitem__(self, i: int) -> str:
        return _Plain(f"{self.a[i].as_py()} (open={self.o[i].as_py()}, close={self.c[i].as_py()})")

    def __len__(self) -> int:
        return len(self.a)


class _Lazy3v:
    def __init__(self, v: pa.Array, lo: pa.Array, hi: pa.Array) -> None:
        self.v, self.lo, self.hi = v, lo, hi

    def __getitem__(self, i: int) -> str:
        return _Plain(f"{self.v[i].as_py()} (low={self.lo[i].as_py()}, "
                      f"high={self.hi[i].as_py()})")

    def __len__(self) -> int:
        return len(self.v)


def check_books(table: pa.Table, report: Report, policy: ValidationPolicy) -> None:
    """Order books: equal array lengths per side, sorted levels, not crossed."""
    for side in ("bid", "ask"):
        p, s = _col(table, f"{side}_prices"), _col(table, f"{side}_sizes")
        if p is None or s is None:
            continue
        lp, ls = pc.list_value_length(p), pc.list_value_length(s)
        report.add("book_shape", f"{side}_prices", mask(pc.not_equal(lp, ls)),
                   _Lazy2(lp, f"{side}_sizes length", ls))
        flat = np.asarray(pc.fill_null(pc.list_flatten(p), np.nan).to_numpy(zero_copy_only=False))
        if len(flat) > 1:
            step = np.diff(flat)
            wrong = step >= 0 if side == "bid" else step <= 0
            # a step only counts between two levels of the same snapshot
            parents = np.asarray(pc.list_parent_indices(p).to_numpy(zero_copy_only=False))
            same_row = parents[1:] == parents[:-1]
            rows = np.zeros(len(p), dtype=bool)
            rows[parents[1:][wrong & same_row]] = True
            report.add("book_order", f"{side}_prices", rows, p)
    bp, ap = _col(table, "bid_prices"), _col(table, "ask_prices")
    if bp is not None and ap is not None and policy.crossed != "allow":
        best_bid = pc.list_element(pc.if_else(pc.greater(pc.list_value_length(bp), 0), bp,
                                              pa.scalar(None, bp.type)), 0) \
            if len(bp) else pa.array([], pa.float64())
        best_ask = pc.list_element(pc.if_else(pc.greater(pc.list_value_length(ap), 0), ap,
                                              pa.scalar(None, ap.type)), 0) \
            if len(ap) else pa.array([], pa.float64())
        report.add("crossed_book", "bid_prices", mask(pc.greater(best_bid, best_ask)),
                   _pairs(best_bid, best_ask))


def check_options(table: pa.Table, report: Report, policy: ValidationPolicy) -> None:
    """Options: not crossed, IV >= 0, not quoted after expiry."""
    check_quotes_crossed(table, report, policy)
    iv = _col(table, "implied_vol")
    if iv is not None:
        report.add("negative_iv", "implied_vol", mask(pc.less(iv, 0.0)), iv)
    exp, ts = _col(table, "expiration"), _col(table, "ts")
    if exp is not None and ts is not None:
        day = ts.cast(pa.date32())
        report.add("expiration_before_ts", "expiration", mask(pc.less(exp, day)), exp)


def check_actions(table: pa.Table, report: Report) -> None:
    """Corporate actions: splits need a ratio > 0, dividends an amount; pay >= ex."""
    at = _col(table, "action_type")
    if at is None:
        return
    is_split = mask(pc.equal(at, "split"))
    is_div = mask(pc.equal(at, "cash_dividend"))
    ratio, amount = _col(table, "ratio"), _col(table, "amount")
    if ratio is not None:
        report.add("missing_value", "ratio", is_split & mask(ratio.is_null()), ratio,
                   "a split needs its ratio (new shares per old share)")
        report.add("non_positive_ratio", "ratio", is_split & mask(pc.less_equal(ratio, 0.0)),
                   ratio)
    else:
        report.add("missing_value", "ratio", is_split, [None] * table.num_rows,
                   "a split needs its ratio (new shares per old share)")
    if amount is not None:
        report.add("missing_value", "amount", is_div & mask(amount.is_null()), amount,
                   "a cash dividend needs its amount")
    else:
        report.add("missing_value", "amount", is_div, [None] * table.num_rows,
                   "a cash dividend needs its amount")
    ex, pay = _col(table, "ex_date"), _col(table, "pay_date")
    if ex is not None and pay is not None:
        report.add("date_order", "pay_date", mask(pc.less(pay, ex)), pay)


def find_duplicates(
    table: pa.Table, key: Sequence[str], report: Report, *, consider: np.ndarray
) -> np.ndarray:
    """Mark in-batch key conflicts in ``report``; return a mask of exact repeats to drop.

    Only rows where ``consider`` is True take part. Rows sharing a key with
    identical values keep their first occurrence (the others are dropped and
    counted as duplicates); rows sharing a key with different values all break
    ``duplicate_key_conflict``.
    """
    import polars as pl

    n = table.num_rows
    drop = np.zeros(n, dtype=bool)
    key = [k for k in key if k in table.column_names]
    if n < 2 or not key:
        return drop
    values = [c for c in table.column_names if c not in key and not c.startswith("_")]
    df = pl.from_arrow(table.select([*key, *values]))
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(pl.Series("_pos", np.arange(n)), pl.Series("_ok", consider))
    df = df.filter(pl.col("_ok"))
    dup = df.filter(pl.struct(key).is_duplicated())
    if dup.height == 0:
        return drop
    hashed = dup.with_columns(
        pl.struct(values).hash().alias("_vh") if values else pl.lit(0).alias("_vh")
    )
    groups = hashed.group_by(key, maintain_order=True).agg(
        pl.col("_vh").n_unique().alias("_nv"), pl.col("_pos")
    )
    conflict = groups.filter(pl.col("_nv") > 1)
    same = groups.filter(pl.col("_nv") == 1)
    if conflict.height:
        pos = np.sort(np.concatenate([np.asarray(p) for p in conflict["_pos"].to_list()]))
        shown = [
            _Plain("(" + ", ".join(f"{k}={_show(_value_at(table.column(k), int(p)))}"
                                   for k in key) + ")")
            for p in pos
        ]
        report.add("duplicate_key_conflict", "key", pos, shown, at_positions=True)
    for p in same["_pos"].to_list():
        drop[np.asarray(p)[1:]] = True
    return drop


def validate(
    kind: Kind,
    table: pa.Table,
    report: Report,
    policy: ValidationPolicy,
    *,
    price_may_be_non_positive: np.ndarray | None = None,
    date_window: tuple[np.datetime64, np.datetime64] | None = None,
) -> None:
    """Run the role rules and the kind's own rules on a canonical batch."""
    skip = ("price", "size") if kind.name == "ticks" else ()
    check_common(kind, table, report, policy, price_may_be_non_positive=price_may_be_non_positive,
                 date_window=date_window, skip_not_null=skip)
    if kind.name == "ticks":
        check_ticks(table, report, policy)
    elif kind.name == "quotes":
        check_quotes_crossed(table, report, policy)
    elif kind.name == "trades":
        check_notional(table, report)
    elif kind.name == "candles":
        check_candles(table, report)
        check_quotes_crossed(table, report, policy)
    elif kind.name == "books":
        check_books(table, report, policy)
    elif kind.name == "options":
        check_options(table, report, policy)
    elif kind.name == "actions":
        check_actions(table, report)
