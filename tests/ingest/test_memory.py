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
        assert a.resident_bytes == 0
        assert a.spilled_bytes == 0
    assert spilled[0] == 0
    assert spilled[1] > 0
    assert spilled[2] > 0
    assert (results[0] == results[1]).all()
    assert (results[0] == results[2]).all()
    # and the same as a single batch: occurrences carried exactly through the spill file
    whole = SeqAssigner().assign(inst, ts, h, counted, ones)
    def key(s: np.ndarray) -> Counter[tuple[int, int, int]]:
        return Counter(zip(inst.tolist(), ts.tolist(), s.tolist(), strict=True))

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


def test_content_hash_is_the_same_for_every_arrow_layout() -> None:
    """The per-distinct-value fast path gives what row-by-row folding gives: dictionary,
    chunked, narrower integer and float32 layouts of the same values hash alike."""
    import pyarrow as pa

    from marketdb.store.tick_identity import content_hash

    plain = pa.table({
        "price": pa.array([10.0, -0.0, None, 10.0], pa.float64()),
        "size": pa.array([1.0, 2.0, 3.0, 1.0]),
        "side": pa.array([1, -1, None, 1], pa.int8()),
        "exchange": pa.array(["XNAS", None, "é", "XNAS"]),
        "conditions": pa.array([None, "@", "F T", None]),
    })
    h, _ = content_hash(plain, "trades")
    assert h[0] == h[3]
    assert len({int(x) for x in h}) == 3
    variants = [
        plain.set_column(3, "exchange", plain.column("exchange").combine_chunks()
                         .dictionary_encode()),
        pa.concat_tables([plain.slice(0, 1), plain.slice(1, 2), plain.slice(3)]),
        plain.set_column(2, "side", plain.column("side").cast(pa.int64())),
        plain.set_column(1, "size", plain.column("size").cast(pa.float32())),
        plain.set_column(4, "conditions", plain.column("conditions").cast(pa.large_string())),
    ]
    for v in variants:
        assert content_hash(v, "trades")[0].tolist() == h.tolist()
    # a missing column hashes as an all-null one
    no_cond = plain.drop_columns(["conditions"]).append_column(
        "conditions", pa.array([None] * 4, pa.string()))
    assert content_hash(plain.drop_columns(["conditions"]), "trades")[0].tolist() \
        == content_hash(no_cond, "trades")[0].tolist()


def test_csv_column_types_come_from_more_than_the_first_streaming_block(
    tmp_path: pytest.TempPathFactory,
) -> None:
    """CSV streams in 1 MiB blocks, but types are inferred from the first 8 MiB: a column
    that is whole in the first MiB and fractional later still reads (as a float)."""
    import pyarrow as pa

    from marketdb.services.ingest._sources import open_source

    n = 200_000  # about 2 MB of CSV
    path = tmp_path / "blocks.csv"  # type: ignore[operator]
    lines = ["a,x"] + [f"{i},{i % 7}" for i in range(n - 1)] + [f"{n},1.5"]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 1 << 20
    _, batches = open_source(str(path))
    got = pa.Table.from_batches(list(batches))
    assert got.num_rows == n
    assert got.schema.field("x").type == pa.float64()
    assert got.column("x")[n - 1].as_py() == 1.5
