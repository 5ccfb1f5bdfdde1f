"""Ingest memory does not grow with the input (issue 10 item 5).

The occurrence counter keeps at most a budget of fingerprints in memory and
spills older batches to a temporary file; the seq it assigns must not depend
on the budget (identity stays split-independent, tests/ingest/test_identity.py).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

import marketdb
from marketdb.store import tick_identity
from marketdb.store.tick_identity import SeqAssigner


def _data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    inst = rng.integers(1, 4, n)
    ts = rng.integers(0, 40, n)
    pool = rng.integers(1, 2**62, 4, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    h = pool[rng.integers(0, 4, n)]
    return inst, ts, h


@pytest.mark.parametrize("sort", [False, True])
def test_seq_does_not_depend_on_the_memory_budget(sort: bool) -> None:
    rng = np.random.default_rng(11)
    n = 3000
    inst, ts, h = _data(rng, n)
    if sort:
        order = np.argsort(ts, kind="stable")
        inst, ts, h = inst[order], ts[order], h[order]
    ones = np.ones(n, bool)
    counted = rng.random(n) > 0.1  # some rows keyed by a trade id: never counted
    cuts = np.arange(100, n, 100)
    results = []
    spilled = []
    for budget in (None, 0, 1000):
        a = SeqAssigner(memory_budget=budget)
        got = np.concatenate([a.assign(inst[p], ts[p], h[p], counted[p], ones[p])
                              for p in np.split(np.arange(n), cuts)])
        results.append(got)
        spilled.append(a.spilled_bytes)
        if budget == 0:
            # only the newest batch stays in memory
            assert a.resident_bytes <= 8 * 100 + 4 * 100
        a.close()
        assert a.resident_bytes == 0 and a.spilled_bytes == 0
    assert spilled[0] == 0 and spilled[1] > 0 and spilled[2] > 0
    assert (results[0] == results[1]).all() and (results[0] == results[2]).all()
    # and the same as a single batch: occurrences carried exactly through the spill file
    whole = SeqAssigner().assign(inst, ts, h, counted, ones)
    key = lambda s: Counter(zip(inst.tolist(), ts.tolist(), s.tolist(), strict=True))  # noqa: E731
    assert key(results[1]) == key(whole)


def test_spilled_history_is_read_back_for_out_of_order_batches() -> None:
    """A late batch that goes back in time finds its earlier twins in the spill file."""
    ones = np.ones(2, bool)
    h = np.array([2, 2], np.uint64) << np.uint64(10)
    a = SeqAssigner(memory_budget=0)
    first = a.assign(np.array([1, 1]), np.array([5, 5]), h, ones, ones)
    for t in range(10, 15):  # later batches push the first out of memory
        a.assign(np.array([1, 1]), np.array([t, t]), h, ones, ones)
    assert a.spilled_bytes > 0
    again = a.assign(np.array([1, 1]), np.array([5, 5]), h, ones, ones)
    a.close()
    assert len(set(first.tolist()) | set(again.tolist())) == 4  # occurrences 0..3


def test_ingest_with_a_zero_budget_stores_the_same_trades(
    db: marketdb.MarketDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through write_ticks: spilling every batch keeps identity exact."""
    db.ingest.write_instruments([{"symbol": "MEM"}])
    t0 = pd.Timestamp("2024-01-02T14:30:00Z")
    rng = np.random.default_rng(3)
    n = 200
    offs = rng.integers(0, 20, n)
    df = pd.DataFrame({"symbol": "MEM", "ts": [t0 + pd.Timedelta(nanoseconds=int(o)) for o in offs],
                       "price": rng.choice([10.0, 10.5], n), "size": rng.choice([1.0, 2.0], n)})
    monkeypatch.setattr(tick_identity, "DEFAULT_MEMORY_BUDGET", 0)
    r1 = db.ingest.write_ticks(df, batch_size=7)
    assert r1.inserted == n
    monkeypatch.undo()
    # re-sending in one batch at the default budget: every row is a duplicate
    r2 = db.ingest.write_ticks(df.sample(frac=1, random_state=1), batch_size=10_000)
    assert (r2.inserted, r2.duplicates) == (0, n)
