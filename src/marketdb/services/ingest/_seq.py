"""Deterministic tie-break sequence for ticks that share an instrument and a timestamp.

``seq`` of a row is its ordinal among the rows of the same
``(instrument_id, ts in ns)`` in input order, counted over the whole writer
call, not per batch. So a re-run of the same input maps every row to the same
key (and is deduplicated), distinct trades printed in the same nanosecond are
all kept, and a group that straddles a batch boundary continues its count in
the next batch instead of restarting at 0 (which would collide with, and
silently drop, the second half of the group).

To stay exact for inputs that are not sorted by time, the assigner remembers,
per instrument, the sorted distinct timestamps it has seen in earlier batches
of the call with their counts (8 bytes per distinct timestamp, plus 4 per
timestamp seen more than once; about 80 MB for 10 million ticks). A batch only
looks up history whose time range overlaps its own, so time-sorted input costs
one binary search per instrument at each batch boundary.

Every row with a usable key counts, including rows that fail another
validation rule: fixing a rejected row and re-running then does not shift the
sequence of the rows that were already stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SeqAssigner"]


@dataclass
class _Chunk:
    lo: int
    hi: int
    ts: np.ndarray  # sorted distinct timestamps (int64 ns)
    counts: np.ndarray | None  # rows per timestamp; None when all are 1


@dataclass
class SeqAssigner:
    """Assigns ``seq`` across the batches of one writer call (see the module docstring)."""

    _history: dict[int, list[_Chunk]] = field(default_factory=dict)

    def assign(self, instrument: np.ndarray, ts: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Return int32 ``seq`` for each row; rows where ``usable`` is False get 0 and don't count.

        ``instrument`` (int) and ``ts`` (int64 ns) are aligned arrays; ``usable``
        marks rows whose instrument and timestamp are known.
        """
        n = len(ts)
        seq = np.zeros(n, dtype=np.int32)
        rows = np.flatnonzero(usable) if not usable.all() else None
        inst = instrument if rows is None else instrument[rows]
        t = ts if rows is None else ts[rows]
        if len(t) == 0:
            return seq
        inst = inst.astype(np.int64, copy=False)
        t = t.astype(np.int64, copy=False)
        order = _group_order(inst, t)
        s_inst = inst[order]
        s_ts = t[order]
        new_group = np.empty(len(order), dtype=bool)
        new_group[0] = True
        np.not_equal(s_ts[1:], s_ts[:-1], out=new_group[1:])
        new_group[1:] |= s_inst[1:] != s_inst[:-1]
        starts = np.flatnonzero(new_group)
        sizes = np.diff(np.append(starts, len(order)))
        rank = np.arange(len(order), dtype=np.int64) - np.repeat(starts, sizes)
        g_inst = s_inst[starts]
        g_ts = s_ts[starts]
        prior = self._prior_counts(g_inst, g_ts)
        rank += np.repeat(prior, sizes)
        out = np.empty(len(order), dtype=np.int32)
        out[order] = rank
        self._remember(g_inst, g_ts, sizes)
        if rows is None:
            return out
        seq[rows] = out
        return seq

    def _prior_counts(self, g_inst: np.ndarray, g_ts: np.ndarray) -> np.ndarray:
        """For each distinct (instrument, ts) of this batch, how many rows earlier batches had."""
        prior = np.zeros(len(g_ts), dtype=np.int64)
        if not self._history:
            return prior
        for i, (a, b) in _runs(g_inst):
            chunks = self._history.get(i)
            if not chunks:
                continue
            ts_i = g_ts[a:b]
            lo, hi = int(ts_i[0]), int(ts_i[-1])
            for c in chunks:
                if c.hi < lo or c.lo > hi:
                    continue
                pos = np.searchsorted(c.ts, ts_i)
                pos_c = np.minimum(pos, len(c.ts) - 1)
                hit = c.ts[pos_c] == ts_i
                if not hit.any():
                    continue
                if c.counts is None:
                    prior[a:b] += hit
                else:
                    prior[a:b] += np.where(hit, c.counts[pos_c], 0)
        return prior

    def _remember(self, g_inst: np.ndarray, g_ts: np.ndarray, sizes: np.ndarray) -> None:
        for i, (a, b) in _runs(g_inst):
            ts_i = g_ts[a:b].copy()
            counts = sizes[a:b]
            kept = None if (counts == 1).all() else counts.astype(np.int32)
            self._history.setdefault(i, []).append(
                _Chunk(int(ts_i[0]), int(ts_i[-1]), ts_i, kept)
            )


def _group_order(inst: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """A stable order by (instrument, ts), with fast paths for already-sorted input."""
    sorted_ts = len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all())
    if sorted_ts:
        if len(inst) < 2 or bool((inst == inst[0]).all()):
            return np.arange(len(ts))
        return np.argsort(inst, kind="stable")
    return np.lexsort((ts, inst))


def _runs(sorted_values: np.ndarray) -> list[tuple[int, tuple[int, int]]]:
    """(value, (start, end)) for each run of equal values in a sorted array."""
    if len(sorted_values) == 0:
        return []
    cut = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(sorted_values)]))
    return [(int(sorted_values[s]), (int(s), int(e))) for s, e in zip(starts, ends, strict=True)]
