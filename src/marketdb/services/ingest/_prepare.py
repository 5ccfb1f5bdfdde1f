"""From a normalised batch to the rows each physical table receives.

Steps, all vectorised: resolve symbols to instrument ids (time-aware, so a
renamed symbol maps to the instrument that carried it at the time of each
row), run the validation rules, derive ``seq`` for trades and quotes, find
in-batch duplicates, and cut the result into per-table Arrow tables. Nothing
here touches the database: symbol lookup goes through a resolver callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from marketdb.errors import InternalError
from marketdb.services.instruments.lookup import SymbolSpan
from marketdb.store.tick_identity import SeqAssigner, content_hash

from ._normalize import Normalized
from ._schemas import QUOTE_COLUMNS, TRADE_COLUMNS, Kind
from ._validate import Report, ValidationPolicy, find_duplicates, mask, validate

__all__ = ["Prepared", "Preparer", "Resolver", "SymbolSpan"]


#: symbols -> spans of the instruments that carried them; unknown symbols are absent.
Resolver = Callable[[Sequence[str]], Mapping[str, Sequence[SymbolSpan]]]


@dataclass
class Prepared:
    """Rows ready to stage, per physical table, plus the batch's report.

    ``tables`` maps a physical table name to the valid rows it receives;
    ``repeats`` counts exact in-batch repeats dropped per table (they count as
    duplicates in the result).
    """

    report: Report
    tables: dict[str, pa.Table] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    unknown_symbols: list[str] = field(default_factory=list)


_TABLE_OF = {"candles": "candles", "books": "order_book_snapshots", "options": "options_chains",
             "actions": "corporate_actions", "trades": "trades", "quotes": "quotes"}  # fmt: skip


class Preparer:
    """Per-call state (seq carry-over, policy) for preparing the batches of one input."""

    def __init__(
        self,
        kind: Kind,
        *,
        policy: ValidationPolicy,
        resolver: Resolver | None = None,
        date_window: tuple[np.datetime64, np.datetime64] | None = None,
        known_ids: Callable[[Sequence[int]], set[int]] | None = None,
    ) -> None:
        self.kind = kind
        self.known_ids = known_ids
        self.policy = policy
        self.resolver = resolver
        self.date_window = date_window
        self._seq = {"trades": SeqAssigner(), "quotes": SeqAssigner()}

    def close(self) -> None:
        """Release per-call state (the occurrence counters' spill files)."""
        for assigner in self._seq.values():
            assigner.close()

    def __call__(self, batch: Normalized) -> Prepared:
        """Resolve, validate and split one normalised batch."""
        table, report = batch.table, batch.report
        table, allow_np, unknown = self._resolve(table, report)
        validate(self.kind, table, report, self.policy, price_may_be_non_positive=allow_np,
                 date_window=self.date_window)
        out = Prepared(report=report, unknown_symbols=unknown)
        if self.kind.name in ("ticks", "trades", "quotes"):
            self._ticks(table, report, out)
        else:
            keep = report.ok
            repeats = find_duplicates(table, self.kind.key, report, consider=keep)
            rows = report.ok & ~repeats
            name = _TABLE_OF[self.kind.name]
            cols = [c for c in table.column_names if c != "symbol"]
            out.tables[name] = _take(table.select(cols), rows)
            out.repeats[name] = int(repeats.sum())
        return out

    # ------------------------------------------------------------ resolution
    def _resolve(self, table: pa.Table, report: Report
                 ) -> tuple[pa.Table, np.ndarray | None, list[str]]:
        """Fill ``instrument_id`` from ``symbol``; report unknown symbols; asset-class mask."""
        n = table.num_rows
        if "symbol" not in table.column_names:
            if "instrument_id" in table.column_names:
                self._check_ids(table.column("instrument_id").combine_chunks(),
                                np.ones(n, dtype=bool), report)
            return table, None, []
        if self.resolver is None:  # pragma: no cover - the service always passes one
            raise InternalError("symbols need a resolver")
        sym = table.column("symbol").combine_chunks()
        sym_d = pc.dictionary_encode(sym) if not isinstance(sym, pa.DictionaryArray) else sym
        uniq = list(sym_d.dictionary.to_pylist())
        # a NUL cannot reach PostgreSQL; validation reports it (nul_character)
        spans = self.resolver([s for s in uniq if s is not None and "\x00" not in s])
        codes = np.asarray(pc.fill_null(sym_d.indices, -1).to_numpy(zero_copy_only=False))
        ts = _ts_ns(table)
        inst = np.full(n, -1, dtype=np.int64)
        allow = np.zeros(n, dtype=bool)
        unknown: list[str] = []
        for code, s in enumerate(uniq):
            rows = np.flatnonzero(codes == code)
            if s is None or not len(rows):
                continue
            cands = spans.get(s)
            if not cands:
                continue
            # Spans are tried in order (dated history first, then the current holder of
            # the symbol); the first span that covers a row's time wins.
            for span in cands:
                hit = inst[rows] < 0
                if ts is not None and (span.valid_from is not None or span.valid_to is not None):
                    t = ts[rows]
                    if span.valid_from is not None:
                        hit &= t >= span.valid_from
                    if span.valid_to is not None:
                        hit &= t < span.valid_to
                take = rows[hit]
                inst[take] = span.instrument_id
                if span.asset_class in self.policy.non_positive_price_classes:
                    allow[take] = True
        no_symbol = codes < 0
        given_ids = table.column("instrument_id").combine_chunks() \
            if "instrument_id" in table.column_names else None
        if given_ids is not None and given_ids.null_count < n:
            # An instrument_id column never overrides a symbol (it may be a provider's own
            # id, e.g. Databento's): where both are given they must name the same instrument.
            g = np.asarray(pc.fill_null(given_ids, -1).to_numpy(zero_copy_only=False))
            mismatch = (g >= 0) & (inst >= 0) & (g != inst)
            if mismatch.any():
                report.add(
                    "instrument_mismatch", "instrument_id", mismatch, given_ids,
                    "is not the id of the instrument that carried the row's symbol at that time "
                    "(if this column is the provider's own id, drop it: marketdb resolves "
                    "symbols itself)")
            only_id = (g >= 0) & no_symbol
            if only_id.any():
                self._check_ids(given_ids, only_id, report)
                inst = np.where(only_id, g, inst)
        missing = (inst < 0) & ~no_symbol
        if missing.any():
            unknown = sorted({uniq[c] for c in np.unique(codes[missing]) if c >= 0})
            report.add("unknown_symbol", "symbol", missing, sym,
                       "no registered instrument has this symbol at this time (register it, or "
                       "pass auto_register=True)")
        if no_symbol.any():
            report.add("missing_value", "symbol", no_symbol & (inst < 0), sym, "is required")
        ids = pa.array(np.where(inst >= 0, inst, 0).astype(np.int32), pa.int32(), mask=inst < 0)
        idx = table.column_names.index("instrument_id")
        table = table.set_column(idx, "instrument_id", ids)
        return table, (allow if allow.any() else None), unknown

    def _check_ids(self, ids: pa.Array, rows: np.ndarray, report: Report) -> None:
        """Report ``rows`` whose instrument id is not registered (``unknown_symbol``)."""
        if self.known_ids is None:
            return
        sel = ids.filter(pa.array(rows)) if not rows.all() else ids
        given = [i for i in pc.unique(sel).to_pylist() if i is not None]
        known = self.known_ids(given)
        bad = [i for i in given if i not in known]
        if bad:
            hit = mask(pc.is_in(ids, pa.array(bad, ids.type))) & rows
            report.add("unknown_symbol", "instrument_id", hit, ids,
                       "no instrument has this id (instrument ids are marketdb's own; a "
                       "provider's instrument id is not one: pass symbols instead)")

    # ----------------------------------------------------------------- ticks
    def _ticks(self, table: pa.Table, report: Report, out: Prepared) -> None:
        n = table.num_rows
        inst = table.column("instrument_id").combine_chunks()
        ts = table.column("ts").combine_chunks()
        usable = mask(inst.is_valid()) & mask(ts.is_valid())
        inst_np = np.asarray(pc.fill_null(inst, 0).to_numpy(zero_copy_only=False))
        ts_np = np.asarray(pc.fill_null(ts.cast(pa.int64()), 0).to_numpy(zero_copy_only=False))
        names = set(table.column_names)
        given_seq = table.column("seq").combine_chunks() if "seq" in names else None
        supplied = given_seq is not None and given_seq.null_count < n
        parts: list[tuple[str, tuple[str, ...], np.ndarray]] = []
        if self.kind.name in ("ticks", "trades"):
            is_trade = mask(table.column("price").combine_chunks().is_valid()) \
                if "price" in names else np.zeros(n, bool)
            parts.append(("trades", TRADE_COLUMNS, is_trade))
        if self.kind.name in ("ticks", "quotes"):
            is_quote = np.zeros(n, bool)
            for c in ("bid", "ask"):
                if c in names:
                    is_quote |= mask(table.column(c).combine_chunks().is_valid())
            parts.append(("quotes", QUOTE_COLUMNS, is_quote))
        pending: list[tuple[str, pa.Table, np.ndarray]] = []
        for name, columns, member in parts:
            base = table.select([c for c in columns if c in names and c != "seq"])
            by_id = np.zeros(n, dtype=bool)
            if supplied and given_seq is not None:
                seq = given_seq.cast(pa.int64())
            elif not member.any():
                # no row of this table (e.g. the quotes of a trades-only file): every seq
                # would be 0 (rows outside the table get 0), so skip hashing them
                seq = pa.array(np.zeros(n, dtype=np.int64), pa.int64())
            else:
                h, counted = content_hash(base, name)
                by_id = ~counted & member
                seq = pa.array(self._seq[name].assign(inst_np, ts_np, h, counted, usable & member),
                               pa.int64())
            sub = base.append_column("seq", seq)
            sub = sub.select([c for c in columns if c in sub.column_names])
            repeats = np.zeros(n, dtype=bool)
            if supplied or by_id.any():
                # caller-supplied seq, or rows keyed by a trade id: the same key twice in one
                # batch is a repeat (same values) or a conflict (different values)
                repeats = find_duplicates(sub, ("instrument_id", "ts", "seq"), report,
                                          consider=(member if supplied else by_id) & report.ok)
            out.repeats[name] = int((repeats & member).sum())
            pending.append((name, sub, member & ~repeats))
        # Filter only once every rule (including the duplicate checks) has run.
        for name, sub, keep in pending:
            out.tables[name] = _take(sub, keep & report.ok)


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    if rows.all():
        return table
    return table.filter(pa.array(rows))


def _ts_ns(table: pa.Table) -> np.ndarray | None:
    for name in ("ts", "ex_date"):
        if name in table.column_names:
            col = table.column(name).combine_chunks()
            if pa.types.is_date(col.type):
                col = col.cast(pa.timestamp("s")).cast(pa.timestamp("ns"))
            return np.asarray(pc.fill_null(col.cast(pa.int64()), 0).to_numpy(
                zero_copy_only=False))
    return None
