"""Identity of ticks that share an instrument and a timestamp: the ``seq`` key.

A trade's (or quote's) stored key is ``(instrument_id, ts, ts_nanos, seq)``.
``seq`` must not depend on how the input was split into calls or batches,
otherwise two distinct trades of the same nanosecond sent in different calls
collide (one is lost, or overwrites the other under ``on_conflict="update"``).
So ``seq`` is derived from the row itself (a 63-bit non-negative int64):

* **with a provider trade id** (``trade_id`` not null and not empty):
  ``seq = H("id", trade_id, exchange)``. The same trade id at the same time
  on the same exchange is the same trade: re-sending it is a duplicate, and
  ``on_conflict="update"`` corrects its price, size, side, conditions, source.
* **otherwise** (and for every quote): ``seq = H(content, occurrence)``, the
  content being price, size, side, exchange, conditions (quotes: bid, ask,
  bid_size, ask_size, exchange) and ``occurrence`` the row's ordinal among
  the *identical* rows of the same instrument and nanosecond within one call
  (over all its batches). Distinct trades never share a key whichever call
  brought them; identical trades follow multiset semantics: a call that
  carries ``k`` identical trades stores ``k`` of them, and storing the union
  of several calls keeps, for each trade, the largest number of copies that
  any single call carried (re-sending is idempotent; two identical prints
  sent in two different calls count as one).

``source`` is not part of the identity (the same print from two feeds is one
trade). Ties at the same ``(ts, ts_nanos)`` sort by ``seq``: a fixed,
deterministic order (first/last of continuous bars use it), not arrival order.

``H`` is a fixed 64-bit hash (text by a multilinear hash of its UTF-8 bytes
with fixed per-position keys, floats by their IEEE bits, every field mixed
with SplitMix64). It is part
of the stored data's identity: changing it would make re-sent data look new,
so it must never change (``tests/ingest/test_identity.py`` pins values).

Occurrence counting across the batches of one call remembers, per batch, a
sorted 64-bit fingerprint of each distinct ``(instrument, ts, content)`` seen
(8 bytes per row, plus 4 per row that was seen more than once) and, per
instrument, the batch's time range; a batch only looks up history whose
instrument time range overlaps its own, so time-sorted input costs almost
nothing at batch boundaries. Rows keyed by a trade id are not counted.

Memory does not grow with the input (issue 10 item 5): at most
``memory_budget`` bytes of fingerprints (default 32 MiB, the latest batches)
stay in memory; older batches' fingerprints move to an anonymous temporary
file (deleted when the call ends) and are read back, one batch at a time,
only when a later batch goes back into their instrument's time range
(out-of-order input). What stays in memory per batch is its per-instrument
time range. Counting stays exact, so ``seq`` does not depend on the budget.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

__all__ = ["SeqAssigner", "content_hash", "finish_seq"]

#: Bytes of fingerprints a :class:`SeqAssigner` keeps in memory before spilling.
DEFAULT_MEMORY_BUDGET = 32 << 20

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_NULL = _U64(0x6A09E667F3BCC908)  # stands for a null field
_TAG_ID = 0x7472616465696400  # "tradeid\0"
_TAG_TRADE = 0x7472616465000000  # "trade"
_TAG_QUOTE = 0x71756F7465000000  # "quote"

#: Content fields per table (the identity of a row without a trade id).
TRADE_CONTENT = ("price", "size", "side", "exchange", "conditions")
QUOTE_CONTENT = ("bid", "ask", "bid_size", "ask_size", "exchange")


def _mix(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """SplitMix64 finaliser (uint64 arrays, wrapping arithmetic)."""
    x = x if inplace else x.astype(_U64, copy=True)
    t = np.empty_like(x)
    np.right_shift(x, _U64(30), out=t)
    np.bitwise_xor(x, t, out=x)
    np.multiply(x, _U64(0xBF58476D1CE4E5B9), out=x)
    np.right_shift(x, _U64(27), out=t)
    np.bitwise_xor(x, t, out=x)
    np.multiply(x, _U64(0x94D049BB133111EB), out=x)
    np.right_shift(x, _U64(31), out=t)
    np.bitwise_xor(x, t, out=x)
    return x


def _step(acc: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Fold one uint64 value per row into the running hash (order sensitive; callers
    finish with :func:`_mix`)."""
    out = _mix(value)
    np.add(out, acc * _GOLDEN, out=out)
    return out


def _position_keys(n: int) -> np.ndarray:
    """Fixed per-byte-position multipliers: SplitMix64 of the position (odd)."""
    cached = _KEYS.get(0)
    if cached is not None and len(cached) >= n:
        return cached[:n]
    keys = _mix(np.arange(max(n, 64), dtype=_U64) + _GOLDEN) | _U64(1)
    _KEYS[0] = keys
    return keys[:n]


_KEYS: dict[int, np.ndarray] = {}


def _bytes_hash(words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(length, h) of each value of a string array; ``h`` is a multilinear hash of the
    UTF-8 bytes: sum of (byte + 1) times a fixed 64-bit key per position, mod 2**64."""
    if not pa.types.is_large_string(words.type):
        words = pc.cast(words, pa.large_string())
    m = len(words)
    bufs = words.buffers()
    if bufs[1] is None or m == 0:
        return np.zeros(m, np.int64), np.zeros(m, _U64)
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[words.offset: words.offset + m + 1]
    length = np.diff(offsets)
    h = np.zeros(m, dtype=_U64)
    total = int(offsets[-1] - offsets[0])
    if total and bufs[2] is not None:
        # the values' bytes are contiguous: one pass over them, no gather
        data = np.frombuffer(bufs[2], dtype=np.uint8)[int(offsets[0]): int(offsets[-1])]
        firsts = offsets[:-1] - offsets[0]
        pos = np.arange(total, dtype=np.int64)
        pos -= np.repeat(firsts, length)
        term = _position_keys(int(length.max()))[pos]
        term *= data.astype(_U64) + _U64(1)
        rows = np.flatnonzero(length > 0)
        h[rows] = np.add.reduceat(term, firsts[rows])
    return length, h


def _string_parts(arr: pa.Array | pa.ChunkedArray, *, few_values: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, length, h) per row of a string column (null rows: length 0, h 0).

    With ``few_values`` (exchange, conditions) distinct values are hashed once
    (dictionary encoding); otherwise (trade ids) every value is hashed in place.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr, pa.DictionaryArray) or few_values:
        enc = arr if isinstance(arr, pa.DictionaryArray) else pc.dictionary_encode(arr)
        assert isinstance(enc, pa.DictionaryArray)
        w_len, w_h = _bytes_hash(enc.dictionary)
        idx = enc.indices
        valid = np.asarray(idx.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if len(w_len) == 0:
            return valid, np.zeros(len(idx), np.int64), np.zeros(len(idx), _U64)
        codes = np.asarray(pc.fill_null(idx, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        return valid, np.where(valid, w_len[codes], 0), np.where(valid, w_h[codes], _U64(0))
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    length, h = _bytes_hash(arr)
    return valid, np.where(valid, length, 0), np.where(valid, h, _U64(0))


def _numeric_parts(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray | None, np.ndarray]:
    """(valid or None when no nulls, uint64 bits) of a numeric column (floats by IEEE bits,
    -0.0 as 0.0)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    valid = None
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(arr.type):
        f = arr.cast(pa.float64()) if not pa.types.is_float64(arr.type) else arr
        if f.null_count:
            f = pc.fill_null(f, 0.0)
        x = np.asarray(f.to_numpy(zero_copy_only=False), dtype=np.float64)
        x = np.where(x == 0.0, 0.0, x)  # a new array: -0.0 as 0.0, every other bit kept
        return valid, x.view(_U64)
    i = arr.cast(pa.int64()) if not pa.types.is_int64(arr.type) else arr
    if i.null_count:
        i = pc.fill_null(i, 0)
    x = np.asarray(i.to_numpy(zero_copy_only=False), dtype=np.int64)
    return valid, x.view(_U64)


def _fold(acc: np.ndarray, table: pa.Table, name: str) -> np.ndarray:
    """``_step(acc, value)`` for one field of every row (a null field stands as ``_NULL``).

    Fields with few distinct values (strings, small integers) are mixed once per
    distinct value and gathered; others are mixed per row, in place. The result
    is the same as folding row by row (the pinned values do not change).
    """
    scaled = acc * _GOLDEN
    if name not in table.column_names:
        scaled += _mixed_null()
        return scaled
    col = table.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) \
            or pa.types.is_dictionary(col.type):
        enc = col if isinstance(col, pa.DictionaryArray) else pc.dictionary_encode(col)
        assert isinstance(enc, pa.DictionaryArray)
        w_len, w_h = _bytes_hash(enc.dictionary)
        table_ = np.append(_mix(_step(_mix(w_len.view(_U64)), w_h), inplace=True), _mixed_null())
        codes = _codes(enc.indices, len(w_len))
    elif pa.types.is_integer(col.type) and col.type.bit_width <= 16:
        lo = -(1 << (col.type.bit_width - 1)) if pa.types.is_signed_integer(col.type) else 0
        span = 1 << col.type.bit_width
        table_ = np.append(_mix(np.arange(lo, lo + span, dtype=np.int64).view(_U64),
                                inplace=True), _mixed_null())
        codes = _codes(col.cast(pa.int32()), span, offset=-lo)
    else:
        valid, v = _numeric_parts(col)
        if valid is not None:
            v = np.where(valid, v, _NULL)
        elif not v.flags.writeable:  # a read-only view of the Arrow buffer
            v = v.copy()
        mixed = _mix(v, inplace=True)
        mixed += scaled
        return mixed
    out: np.ndarray = table_[codes]
    out += scaled
    return out


def _codes(idx: pa.Array, null_code: int, offset: int = 0) -> np.ndarray:
    """int64 codes of an integer array (``+ offset``); nulls get ``null_code``."""
    if idx.null_count:
        idx = pc.fill_null(idx, null_code - offset)
    codes = np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes + offset if offset else codes


def _mixed_null() -> np.uint64:
    """``_mix(_NULL)``: the folded value of a null field."""
    return _MIXED_NULL


_MIXED_NULL: np.uint64 = _U64(_mix(np.array([_NULL], dtype=_U64))[0])


def content_hash(table: pa.Table, table_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (uint64 identity hash, bool "counted") for ``trades`` or ``quotes`` rows.

    ``counted`` is False for trades keyed by their provider trade id (their
    hash covers trade_id and exchange only); True for content-keyed rows,
    which still need their occurrence number (:class:`SeqAssigner`).
    """
    n = table.num_rows
    fields: Sequence[str] = TRADE_CONTENT if table_name == "trades" else QUOTE_CONTENT
    tag = _TAG_TRADE if table_name == "trades" else _TAG_QUOTE
    acc = np.full(n, _U64(tag), dtype=_U64)
    for name in fields:
        acc = _fold(acc, table, name)
    acc = _mix(acc, inplace=True)
    counted = np.ones(n, dtype=bool)
    if table_name == "trades" and "trade_id" in table.column_names:
        tid = table.column("trade_id")
        if tid.null_count < n:
            valid, length, hs = _string_parts(tid, few_values=False)
            has_id = valid & (length > 0)
            if has_id.any():
                by_id = np.full(n, _U64(_TAG_ID), dtype=_U64)
                by_id = _step(_step(by_id, length.view(_U64)), hs)
                by_id = _mix(_fold(by_id, table, "exchange"), inplace=True)
                acc = np.where(has_id, by_id, acc)
                counted = ~has_id
    return acc, counted


def finish_seq(h: np.ndarray, occurrence: np.ndarray) -> np.ndarray:
    """The stored ``seq`` (int64 in [0, 2**63)) from a row's hash and occurrence number."""
    key = h.astype(_U64, copy=True)
    again = np.flatnonzero(occurrence != 0)
    if len(again):
        key[again] = _mix(_step(h[again], occurrence[again].astype(np.int64).view(_U64)),
                          inplace=True)
    key >>= _U64(1)
    return key.view(np.int64)


def _fingerprint(inst: np.ndarray, ts: np.ndarray, h: np.ndarray) -> np.ndarray:
    """64-bit fingerprint of (instrument, ts, content): ``h`` is already well mixed."""
    acc = ts.astype(np.int64).view(_U64) * _GOLDEN
    acc += inst.astype(np.int64).view(_U64) * _U64(0xC2B2AE3D27D4EB4F)
    acc += h
    return _mix(acc, inplace=True)


@dataclass
class _Chunk:
    """What one earlier batch saw: per instrument its time range, and its fingerprints."""

    lo: int  # min ts of the batch
    hi: int  # max ts of the batch
    ids: np.ndarray  # sorted distinct instruments
    ids_lo: np.ndarray  # per instrument: min ts
    ids_hi: np.ndarray  # per instrument: max ts
    fp: np.ndarray | None  # sorted distinct fingerprints (uint64); None once spilled
    counts: np.ndarray | None  # rows per fingerprint (int32); None when all are 1
    size: int = 0  # number of fingerprints
    has_counts: bool = False
    offset: int = -1  # where the spilled fingerprints (then counts) start in the spill file

    @property
    def nbytes(self) -> int:
        return self.size * (12 if self.has_counts else 8)


@dataclass
class SeqAssigner:
    """Occurrence numbers of identical rows across the batches of one call (module docstring).

    ``memory_budget`` bounds the bytes of fingerprints kept in memory; older
    ones spill to a temporary file. Call :meth:`close` when the call ends
    (the file is anonymous: it also goes away with the process).
    """

    memory_budget: int | None = None  # None: DEFAULT_MEMORY_BUDGET at the time of use
    _history: list[_Chunk] = field(default_factory=list)
    _resident: int = 0  # bytes of fingerprints in memory
    _oldest_resident: int = 0  # index of the oldest chunk still in memory
    _spill: IO[bytes] | None = None
    _spill_end: int = 0

    def assign(self, instrument: np.ndarray, ts: np.ndarray, h: np.ndarray,
               counted: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Return int64 ``seq`` per row; rows where ``usable`` is False get 0 and don't count.

        ``instrument`` (int), ``ts`` (int64 ns), ``h`` (uint64, from
        :func:`content_hash`) and the masks are aligned arrays; rows where
        ``counted`` is False (keyed by a trade id) all have occurrence 0.
        """
        n = len(ts)
        occ = np.zeros(n, dtype=np.int64)
        take = usable & counted
        rows = None if take.all() else np.flatnonzero(take)
        if rows is None or len(rows):
            inst = (instrument if rows is None else instrument[rows]).astype(np.int64)
            t = (ts if rows is None else ts[rows]).astype(np.int64)
            fp = _fingerprint(inst, t, h if rows is None else h[rows])
            sorted_fp = np.sort(fp)
            local, uniq, counts = _local_occurrences(fp, sorted_fp)
            local += self._prior_counts(inst, t, fp)
            if rows is None:
                occ = local
            else:
                occ[rows] = local
            self._remember(inst, t, uniq, counts)
        seq = finish_seq(h, occ)
        seq[~usable] = 0
        return seq

    def close(self) -> None:
        """Drop the history and delete the spill file (the assigner starts afresh)."""
        if self._spill is not None:
            self._spill.close()
        self._spill = None
        self._spill_end = 0
        self._history.clear()
        self._resident = 0
        self._oldest_resident = 0

    @property
    def resident_bytes(self) -> int:
        """Bytes of fingerprints currently held in memory."""
        return self._resident

    @property
    def spilled_bytes(self) -> int:
        """Bytes of fingerprints written to the spill file so far."""
        return self._spill_end

    def _prior_counts(self, inst: np.ndarray, t: np.ndarray, fp: np.ndarray) -> np.ndarray:
        """Per row: rows with its fingerprint in earlier batches (checked only where an
        earlier batch covered the row's instrument and time)."""
        prior = np.zeros(len(fp), dtype=np.int64)
        if not self._history:
            return prior
        lo, hi = int(t.min()), int(t.max())
        for c in self._history:
            if c.hi < lo or c.lo > hi:
                continue
            p = np.minimum(np.searchsorted(c.ids, inst), len(c.ids) - 1)
            near = np.flatnonzero((c.ids[p] == inst) & (t >= c.ids_lo[p]) & (t <= c.ids_hi[p]))
            if not len(near):
                continue
            c_fp, c_counts = self._load(c)
            q = fp[near]
            pos = np.minimum(np.searchsorted(c_fp, q), len(c_fp) - 1)
            hit = c_fp[pos] == q
            if hit.any():
                prior[near] += hit if c_counts is None else np.where(hit, c_counts[pos], 0)
        return prior

    def _load(self, c: _Chunk) -> tuple[np.ndarray, np.ndarray | None]:
        """A chunk's fingerprints (and counts), read back from the spill file if needed."""
        if c.fp is not None:
            return c.fp, c.counts
        assert self._spill is not None
        assert c.offset >= 0
        fd = self._spill.fileno()
        fp = np.frombuffer(_pread(fd, c.size * 8, c.offset), dtype=_U64)
        counts = None
        if c.has_counts:
            counts = np.frombuffer(_pread(fd, c.size * 4, c.offset + c.size * 8), dtype=np.int32)
        return fp, counts

    def _remember(self, inst: np.ndarray, t: np.ndarray, uniq: np.ndarray,
                  counts: np.ndarray | None) -> None:
        if len(inst) and bool((inst == inst[0]).all()):
            ids = inst[:1].copy()
            ids_lo, ids_hi = np.array([t.min()]), np.array([t.max()])
        else:
            g = pa.table({"i": inst, "t": t}).group_by("i").aggregate(
                [("t", "min"), ("t", "max")]).sort_by("i")
            ids = g.column("i").to_numpy()
            ids_lo, ids_hi = g.column("t_min").to_numpy(), g.column("t_max").to_numpy()
        chunk = _Chunk(int(ids_lo.min()), int(ids_hi.max()), ids, ids_lo, ids_hi, uniq, counts,
                       size=len(uniq), has_counts=counts is not None)
        self._history.append(chunk)
        self._resident += chunk.nbytes
        # Keep the newest batch in memory whatever its size; spill the oldest ones first.
        budget = DEFAULT_MEMORY_BUDGET if self.memory_budget is None else self.memory_budget
        while self._resident > budget \
                and self._oldest_resident < len(self._history) - 1:
            self._spill_chunk(self._history[self._oldest_resident])
            self._oldest_resident += 1

    def _spill_chunk(self, c: _Chunk) -> None:
        if c.fp is None:  # pragma: no cover - chunks spill once, oldest first
            return
        if self._spill is None:  # closed by close() (anonymous: gone with the process too)
            self._spill = tempfile.TemporaryFile(prefix="marketdb-seq-")  # noqa: SIM115
        self._spill.seek(self._spill_end)
        self._spill.write(np.ascontiguousarray(c.fp).tobytes())
        if c.counts is not None:
            self._spill.write(np.ascontiguousarray(c.counts, dtype=np.int32).tobytes())
        self._spill.flush()
        c.offset = self._spill_end
        self._spill_end += c.nbytes
        self._resident -= c.nbytes
        c.fp = None
        c.counts = None


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Exactly ``size`` bytes of ``fd`` from ``offset``."""
    parts: list[bytes] = []
    while size:
        part = os.pread(fd, size, offset)
        if not part:  # pragma: no cover - the file holds what was written
            raise OSError("marketdb: the occurrence spill file is shorter than written")
        parts.append(part)
        size -= len(part)
        offset += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _local_occurrences(fp: np.ndarray, sorted_fp: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(occurrence of each row among equal fingerprints in input order, distinct sorted
    fingerprints, their counts or None when all are 1)."""
    occ = np.zeros(len(fp), dtype=np.int64)
    same = sorted_fp[1:] == sorted_fp[:-1]
    if not same.any():
        return occ, sorted_fp, None
    keep = np.ones(len(sorted_fp), dtype=bool)
    keep[1:] = ~same
    starts = np.flatnonzero(keep)
    uniq = sorted_fp[starts]
    counts = np.diff(np.append(starts, len(sorted_fp))).astype(np.int32)
    repeated = uniq[counts > 1]
    pos = np.minimum(np.searchsorted(repeated, fp), len(repeated) - 1)
    sel = np.flatnonzero(repeated[pos] == fp)
    sub = fp[sel]
    order = np.argsort(sub, kind="stable")
    s = sub[order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = s[1:] != s[:-1]
    g_start = np.flatnonzero(first)
    sizes = np.diff(np.append(g_start, len(s)))
    rank = np.arange(len(s), dtype=np.int64) - np.repeat(g_start, sizes)
    occ[sel[order]] = rank
    return occ, uniq, counts
