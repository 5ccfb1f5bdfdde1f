"""Tick identity does not depend on how the input was split into calls or batches (issue 10.2).

``seq`` is derived from the provider trade id, else from the trade's content plus an
occurrence number among identical trades of one call (``store/tick_identity.py``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketdb
from marketdb.store.tick_identity import SeqAssigner, content_hash, finish_seq

T0 = pd.Timestamp("2024-01-02T14:30:00.000000001Z")
_symbols = itertools.count()


def _register(db: marketdb.MarketDB, symbol: str) -> None:
    db.ingest.write_instruments([{"symbol": symbol}])


def _trades(db: marketdb.MarketDB, symbol: str) -> list[tuple[Any, ...]]:
    with db.raw() as conn:
        return conn.execute(
            "SELECT (EXTRACT(EPOCH FROM t.ts) * 1000000)::bigint * 1000 + t.ts_nanos, t.price, "
            "t.size, t.side, t.trade_id, t.exchange FROM trades t JOIN instruments i ON "
            "i.id = t.instrument_id WHERE i.symbol = %s ORDER BY 1, 2, 3",
            [symbol],
        ).fetchall()


def _frame(symbol: str, rows: list[tuple[int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "ts": [T0 + pd.Timedelta(nanoseconds=o) for o, _, _ in rows],
                         "price": [p for _, p, _ in rows], "size": [s for _, _, s in rows]})


@pytest.mark.parametrize("on_conflict", ["ignore", "update"])
def test_distinct_trades_of_one_nanosecond_in_two_calls_are_both_kept(
    db: marketdb.MarketDB, on_conflict: str
) -> None:
    _register(db, "AAPL")
    r1 = db.ingest.write_ticks(_frame("AAPL", [(0, 10.0, 100.0)]), on_conflict=on_conflict)
    r2 = db.ingest.write_ticks(_frame("AAPL", [(0, 11.0, 200.0)]), on_conflict=on_conflict)
    assert (r1.inserted, r2.inserted, r2.duplicates, r2.updated) == (1, 1, 0, 0)
    stored = _trades(db, "AAPL")
    assert [(p, s) for _, p, s, *_ in stored] == [(10.0, 100.0), (11.0, 200.0)]


def test_reverse_order_overlapping_loads_store_the_right_content(db: marketdb.MarketDB) -> None:
    _register(db, "AAPL")
    rows = [(0, 10.0, 1.0), (0, 11.0, 2.0), (0, 12.0, 3.0), (5, 13.0, 4.0)]
    db.ingest.write_ticks(_frame("AAPL", rows[2:]))
    db.ingest.write_ticks(_frame("AAPL", rows[::-1][1:]))  # overlaps, reversed
    db.ingest.write_ticks(_frame("AAPL", rows[:2]))
    assert sorted((p, s) for _, p, s, *_ in _trades(db, "AAPL")) == [(p, s) for _, p, s in rows]


def test_identical_trades_follow_multiset_semantics(db: marketdb.MarketDB) -> None:
    _register(db, "AAPL")
    two = _frame("AAPL", [(0, 10.0, 1.0), (0, 10.0, 1.0)])
    assert db.ingest.write_ticks(two).inserted == 2
    assert db.ingest.write_ticks(two).duplicates == 2  # re-sending is idempotent
    assert db.ingest.write_ticks(two.iloc[:1]).duplicates == 1  # fewer copies: nothing new
    three = _frame("AAPL", [(0, 10.0, 1.0)] * 3)
    assert db.ingest.write_ticks(three, batch_size=1).inserted == 1  # the largest call wins
    assert len(_trades(db, "AAPL")) == 3


def test_a_provider_trade_id_is_the_identity_and_update_corrects_it(db: marketdb.MarketDB) -> None:
    _register(db, "AAPL")
    df = _frame("AAPL", [(0, 10.0, 1.0), (0, 10.0, 1.0)]).assign(trade_id=["a", "b"],
                                                                   exchange="XNAS")
    assert db.ingest.write_ticks(df).inserted == 2  # same content, two trade ids: two trades
    fixed = df.iloc[:1].assign(price=10.5)
    assert db.ingest.write_ticks(fixed).duplicates == 1  # ignore keeps the stored trade
    res = db.ingest.write_ticks(fixed, on_conflict="update")
    assert (res.inserted, res.updated) == (0, 1)
    stored = _trades(db, "AAPL")
    assert sorted((tid, p) for _, p, _, _, tid, _ in stored) == [("a", 10.5), ("b", 10.0)]


def test_same_trade_id_twice_in_a_batch_with_different_values_is_rejected(
    db: marketdb.MarketDB,
) -> None:
    _register(db, "AAPL")
    df = _frame("AAPL", [(0, 10.0, 1.0), (0, 11.0, 1.0)]).assign(trade_id="a")
    with pytest.raises(marketdb.errors.InvalidInput, match="duplicate_key_conflict"):
        db.ingest.write_ticks(df)
    assert _trades(db, "AAPL") == []


def test_quotes_of_one_nanosecond_in_two_calls_are_both_kept(db: marketdb.MarketDB) -> None:
    _register(db, "AAPL")
    for bid in (10.0, 10.5):
        q = pd.DataFrame({"symbol": ["AAPL"], "ts": [T0], "bid": [bid], "ask": [11.0]})
        assert db.ingest.write_ticks(q, on_conflict="update").inserted == 1
    with db.raw() as conn:
        assert conn.execute("SELECT count(*) FROM quotes").fetchone() == (2,)


def test_seq_values_are_pinned() -> None:
    """The hash is part of stored identity: it must never change (see store/tick_identity.py)."""
    table = pa.table({
        "price": [10.0, 10.0, -0.0], "size": [1.0, 1.0, 2.0], "side": pa.array([1, 1, None], pa.int8()),
        "trade_id": [None, "T-1", ""], "exchange": ["XNAS", "XNAS", None],
        "conditions": ["@", None, "é"],
    })
    h, counted = content_hash(table, "trades")
    assert counted.tolist() == [True, False, True]
    seq = finish_seq(h, np.array([0, 0, 1]))
    assert seq.tolist() == PINNED
    q = pa.table({"bid": [1.0], "ask": [2.0], "bid_size": [3.0], "ask_size": [None],
                  "exchange": ["X"]})
    assert finish_seq(content_hash(q, "quotes")[0], np.array([0])).tolist() == PINNED_QUOTE
    assert (seq >= 0).all()


PINNED = [2925382767661891320, 5047367601850401389, 6879015941837366028]
PINNED_QUOTE = [3100386088515066044]


def test_occurrences_carry_across_batches_in_any_order() -> None:
    rng = np.random.default_rng(7)
    n = 400
    inst = rng.integers(1, 3, n)
    ts = rng.integers(0, 5, n)
    pool = rng.integers(1, 2**62, 3, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    h = pool[rng.integers(0, 3, n)]  # three distinct contents (as content_hash gives)
    ones = np.ones(n, bool)
    whole = SeqAssigner().assign(inst, ts, h, ones, ones)
    for _ in range(5):
        perm = rng.permutation(n)
        cuts = np.sort(rng.choice(np.arange(1, n), 6, replace=False))
        a = SeqAssigner()
        got = np.empty(n, np.int64)
        for part in np.split(perm, cuts):
            got[part] = a.assign(inst[part], ts[part], h[part], ones[part], ones[part])
        key = lambda s: Counter(zip(inst.tolist(), ts.tolist(), s.tolist(), strict=True))  # noqa: E731
        assert key(got) == key(whole)
        assert len(set(zip(inst.tolist(), ts.tolist(), got.tolist(), strict=True))) == n


# --------------------------------------------------------------- property test
_trade = st.tuples(st.integers(0, 2), st.sampled_from([10.0, 10.5, 11.0]),
                   st.sampled_from([1.0, 2.0]), st.sampled_from([None, "X", "Y"]))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    trades=st.lists(_trade, min_size=1, max_size=12),
    with_ids=st.booleans(),
    data=st.data(),
)
def test_any_split_order_and_overlap_stores_exactly_the_union(
    db: marketdb.MarketDB, trades: list[tuple[int, float, float, str | None]], with_ids: bool,
    data: st.DataObject,
) -> None:
    """Property: calls are any sub-multisets (splits, overlaps, re-sends) in any order and batch
    size; the store holds every distinct trade, each as many times as the call that carried
    it most often (multiset union); with trade ids, exactly the distinct ids."""
    symbol = f"P{next(_symbols)}"
    _register(db, symbol)
    rows = [(o, p, s, x, f"id{i}" if with_ids else None) for i, (o, p, s, x) in enumerate(trades)]
    n_calls = data.draw(st.integers(1, 4))
    calls = []
    for _ in range(n_calls):
        picked = data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=len(rows)))
        calls.append([rows[i] for i in picked])
    # every row is carried by at least one call (a split of the input)
    for i, r in enumerate(rows):
        calls[data.draw(st.integers(0, n_calls - 1), label=f"home{i}")].append(r)
    mode = data.draw(st.sampled_from(["ignore", "update"]))
    for call in calls:
        if not call:
            continue
        call = data.draw(st.permutations(call))
        df = pd.DataFrame({
            "symbol": symbol, "ts": [T0 + pd.Timedelta(nanoseconds=r[0]) for r in call],
            "price": [r[1] for r in call], "size": [r[2] for r in call],
            "exchange": [r[3] for r in call], "trade_id": [r[4] for r in call],
        })
        db.ingest.write_ticks(df, on_conflict=mode, batch_size=data.draw(st.integers(1, 5)))
    key = lambda r: (r[0], r[1], r[2], r[3], r[4])  # noqa: E731
    if with_ids:
        expected = Counter(key(r) for r in rows)
    else:
        expected = Counter()
        for call in calls:
            for k, v in Counter(key(r) for r in call).items():
                expected[k] = max(expected[k], v)
    t0 = int(T0.value)
    stored = Counter((ns - t0, p, s, x, tid) for ns, p, s, _, tid, x in _trades(db, symbol))
    assert stored == expected
    assert set(stored) == {key(r) for r in rows}
