"""Migration 0004 re-keys stored ticks so that re-sending them is still a duplicate."""

from __future__ import annotations

import pandas as pd

import marketdb

T = pd.Timestamp("2024-01-02T14:30:00.000000007Z")


def test_upgrade_rekeys_old_ticks_and_downgrade_restores_ordinals(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAPL"}])
    df = pd.DataFrame({
        "symbol": "AAPL", "ts": [T, T, T, T + pd.Timedelta(seconds=1)],
        "price": [10.0, 11.0, 10.0, 12.0], "size": [1.0, 2.0, 1.0, 3.0],
        "trade_id": [None, None, None, "X1"],
    })
    quotes = pd.DataFrame({"symbol": "AAPL", "ts": [T, T], "bid": [9.0, 9.5], "ask": [10.0, 10.0]})
    db.ingest.write_ticks(df)
    db.ingest.write_ticks(quotes)
    db.downgrade("0003")  # back to per-timestamp ordinals, as 0003-era ingest stored them
    with db.raw() as conn:
        rows = conn.execute("SELECT seq FROM trades ORDER BY ts, seq").fetchall()
        assert conn.execute("SELECT array_agg(seq ORDER BY seq) FROM quotes").fetchone() == (
            [0, 1],)
    assert [s for (s,) in rows] == [0, 1, 2, 0]
    db.upgrade()
    with db.raw() as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM trades").fetchall()]
    assert len(set(seqs)) == 4
    assert max(seqs) > 2**31  # re-keyed, not the old ordinals
    again = db.ingest.write_ticks(df)  # the same trades sent again: all duplicates
    assert (again.inserted, again.duplicates) == (0, 4)
    assert db.ingest.write_ticks(quotes).duplicates == 2
    new = db.ingest.write_ticks(df.iloc[:1].assign(price=10.25))
    assert new.inserted == 1
    db.downgrade("0003")
    with db.raw() as conn:
        n = conn.execute("SELECT count(*), max(seq) FROM trades").fetchone()
    assert n == (5, 3)
    db.upgrade()
