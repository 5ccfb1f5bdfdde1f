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

``H`` is a fixed 64-bit hash (polynomial hashes of the UTF-8 bytes modulo two
31-bit primes, floats by their IEEE bits, mixed with SplitMix64). It is part
of the stored data's identity: changing it would make re-sent data look new,
so it must never change (``tests/ingest/test_identity.py`` pins values).

Occurrence counting across the batches of one call remembers, per instrument,
a sorted 64-bit fingerprint of each distinct ``(ts, content)`` seen (8 bytes
per row, plus 4 per row that was seen more than once); a batch only looks up
history whose time range overlaps its own, so time-sorted input costs almost
nothing at batch boundaries. Rows keyed by a trade id are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SeqAssigner", "content_hash", "finish_seq"]

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_NULL = _U64(0x6A09E667F3BCC908)  # stands for a null field
_M1, _P1 = 2_147_483_647, 911_382_323  # 2^31 - 1
_M2, _P2 = 2_147_483_629, 972_663_749  # 2^31 - 19
_TAG_ID = 0x7472616465696400  # "tradeid\0"
_TAG_TRADE = 0x7472616465000000  # "trade"
_TAG_QUOTE = 0x71756F7465000000  # "quote"

#: Content fields per table (the identity of a row without a trade id).
TRADE_CONTENT = ("price", "size", "side", "exchange", "conditions")
QUOTE_CONTENT = ("bid", "ask", "bid_size", "ask_size", "exchange")


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 arrays, wrapping arithmetic)."""
    x = x.astype(_U64, copy=True)
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _step(acc: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Fold one uint64 value per row into the running hash (order sensitive)."""
    return _mix(acc * _GOLDEN + _mix(value))


_POW_CACHE: dict[int, np.ndarray] = {}


def _powers(base: int, mod: int, n: int) -> np.ndarray:
    """base**k % mod for k < n (uint64), by doubling."""
    cached = _POW_CACHE.get(base)
    if cached is not None and len(cached) >= n:
        return cached[:n]
    p = np.ones(1, dtype=_U64)
    while len(p) < n:
        step = int(pow(base, len(p), mod))
        p = np.concatenate((p, (p * _U64(step)) % _U64(mod)))
    _POW_CACHE[base] = p
    return p[:n]


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(valid, length, h1, h2) per row of a string array (null rows: length 0, h 0)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr, pa.DictionaryArray):
        arr = arr.dictionary_decode()
    if not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.large_string())
    n = len(arr)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset: arr.offset + n + 1] \
        if bufs[1] is not None else np.zeros(n + 1, np.int64)
    start, end = offsets[:-1], offsets[1:]
    length = np.where(valid, end - start, 0).astype(np.int64)
    h1 = np.zeros(n, dtype=_U64)
    h2 = np.zeros(n, dtype=_U64)
    rows = np.flatnonzero(length > 0)
    if len(rows) and bufs[2] is not None:
        data = np.frombuffer(bufs[2], dtype=np.uint8)
        s, ln = start[rows], length[rows]
        total = int(ln.sum())
        base = np.repeat(s, ln)
        firsts = np.concatenate(([0], np.cumsum(ln)[:-1]))
        pos = np.arange(total, dtype=np.int64) - np.repeat(firsts, ln)
        byte = data[base + pos].astype(_U64) + _U64(1)
        for out, p, m in ((h1, _P1, _M1), (h2, _P2, _M2)):
            terms = (byte * _powers(p, m, int(ln.max()))[pos]) % _U64(m)
            out[rows] = np.add.reduceat(terms, firsts) % _U64(m)
    return valid, length, h1, h2


def _numeric_parts(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(valid, uint64 bits) of a numeric column (floats by IEEE bits, -0.0 as 0.0)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(arr.type):
        x = np.asarray(pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False),
                       dtype=np.float64)
        x = np.where(x == 0.0, 0.0, x)
        return valid, x.view(_U64)
    x = np.asarray(pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False),
                   dtype=np.int64)
    return valid, x.view(_U64)


def _fold(acc: np.ndarray, table: pa.Table, name: str) -> np.ndarray:
    n = table.num_rows
    if name not in table.column_names:
        return _step(acc, np.full(n, _NULL, dtype=_U64))
    col = table.column(name)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) \
            or pa.types.is_dictionary(col.type):
        valid, length, h1, h2 = _string_parts(col)
        v = _step(_step(_mix(length.view(_U64)), h1), h2)
    else:
        valid, v = _numeric_parts(col)
    return _step(acc, np.where(valid, v, _NULL))


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
    counted = np.ones(n, dtype=bool)
    if table_name == "trades" and "trade_id" in table.column_names:
        tid = table.column("trade_id")
        if tid.null_count < n:
            valid, length, h1, h2 = _string_parts(tid)
            has_id = valid & (length > 0)
            if has_id.any():
                by_id = np.full(n, _U64(_TAG_ID), dtype=_U64)
                by_id = _step(_step(_step(by_id, length.view(_U64)), h1), h2)
                by_id = _fold(by_id, table, "exchange")
                acc = np.where(has_id, by_id, acc)
                counted = ~has_id
    return acc, counted


def finish_seq(h: np.ndarray, occurrence: np.ndarray) -> np.ndarray:
    """The stored ``seq`` (int64 in [0, 2**63)) from a row's hash and occurrence number."""
    key = np.where(occurrence == 0, h, _step(h, occurrence.astype(np.int64).view(_U64)))
    return (key >> _U64(1)).view(np.int64)


def _fingerprint(inst: np.ndarray, ts: np.ndarray, h: np.ndarray) -> np.ndarray:
    acc = _mix(inst.astype(np.int64).view(_U64))
    return _step(_step(acc, ts.astype(np.int64).view(_U64)), h)


@dataclass
class _Chunk:
    lo: int
    hi: int
    fp: np.ndarray  # sorted distinct fingerprints (uint64)
    counts: np.ndarray | None  # rows per fingerprint; None when all are 1


@dataclass
class SeqAssigner:
    """Occurrence numbers of identical rows across the batches of one call (module docstring)."""

    _history: dict[int, list[_Chunk]] = field(default_factory=dict)

    def assign(self, instrument: np.ndarray, ts: np.ndarray, h: np.ndarray,
               counted: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Return int64 ``seq`` per row; rows where ``usable`` is False get 0 and don't count.

        ``instrument`` (int), ``ts`` (int64 ns), ``h`` (uint64, from
        :func:`content_hash`) and the masks are aligned arrays; rows where
        ``counted`` is False (keyed by a trade id) all have occurrence 0.
        """
        n = len(ts)
        occ = np.zeros(n, dtype=np.int64)
        rows = np.flatnonzero(usable & counted)
        if len(rows):
            inst = instrument[rows].astype(np.int64)
            t = ts[rows].astype(np.int64)
            fp = _fingerprint(inst, t, h[rows])
            order = np.argsort(fp, kind="stable")
            s = fp[order]
            new_group = np.empty(len(s), dtype=bool)
            new_group[0] = True
            np.not_equal(s[1:], s[:-1], out=new_group[1:])
            starts = np.flatnonzero(new_group)
            sizes = np.diff(np.append(starts, len(s)))
            rank = np.arange(len(s), dtype=np.int64) - np.repeat(starts, sizes)
            first = order[starts]
            g_inst, g_ts, g_fp = inst[first], t[first], s[starts]
            prior = self._prior_counts(g_inst, g_ts, g_fp)
            if prior.any():
                rank += np.repeat(prior, sizes)
            out = np.empty(len(s), dtype=np.int64)
            out[order] = rank
            occ[rows] = out
            self._remember(g_inst, g_ts, g_fp, sizes)
        seq = finish_seq(h, occ)
        seq[~usable] = 0
        return seq

    def _prior_counts(self, g_inst: np.ndarray, g_ts: np.ndarray, g_fp: np.ndarray
                      ) -> np.ndarray:
        """For each distinct (instrument, ts, content) of this batch, rows in earlier batches."""
        prior = np.zeros(len(g_fp), dtype=np.int64)
        if not self._history:
            return prior
        for i, idx in _by_instrument(g_inst):
            chunks = self._history.get(i)
            if not chunks:
                continue
            ts_i = g_ts[idx]
            lo, hi = int(ts_i.min()), int(ts_i.max())
            for c in chunks:
                if c.hi < lo or c.lo > hi:
                    continue
                near = idx[(ts_i >= c.lo) & (ts_i <= c.hi)]
                q = g_fp[near]
                pos = np.minimum(np.searchsorted(c.fp, q), len(c.fp) - 1)
                hit = c.fp[pos] == q
                if not hit.any():
                    continue
                prior[near] += hit if c.counts is None else np.where(hit, c.counts[pos], 0)
        return prior

    def _remember(self, g_inst: np.ndarray, g_ts: np.ndarray, g_fp: np.ndarray,
                  sizes: np.ndarray) -> None:
        for i, idx in _by_instrument(g_inst):
            counts = sizes[idx]
            kept = None if (counts == 1).all() else counts.astype(np.int32)
            ts_i = g_ts[idx]
            # idx is increasing, so the fingerprints stay sorted
            self._history.setdefault(i, []).append(
                _Chunk(int(ts_i.min()), int(ts_i.max()), g_fp[idx].copy(), kept)
            )


def _by_instrument(inst: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(instrument, increasing row indices) per distinct instrument."""
    if len(inst) == 0:
        return []
    if bool((inst == inst[0]).all()):
        return [(int(inst[0]), np.arange(len(inst)))]
    order = np.argsort(inst, kind="stable")
    s = inst[order]
    cut = np.flatnonzero(s[1:] != s[:-1]) + 1
    return [(int(s[a]), order[a:b]) for a, b in zip(np.concatenate(([0], cut)),
                                                     np.concatenate((cut, [len(s)])),
                                                     strict=True)]
