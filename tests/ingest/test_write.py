"""The write path against real PostgreSQL: idempotence, seq, conflicts, hooks, every writer."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import InvalidInput
from marketdb.services.ingest import Ingest
from marketdb.store.schema import tables as t

UTC = dt.UTC


def digest(db: marketdb.MarketDB, table: str) -> tuple[int, str]:
    """Row count and an order-independent hash of every stored row of ``table``."""
    with db.raw() as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT t::text FROM {} t").format(psycopg.sql.Identifier(table))
        ).fetchall()
    h = hashlib.sha256()
    for (r,) in sorted(rows):
        h.update(r.encode())
    return len(rows), h.hexdigest()


def register(db: marketdb.MarketDB, *symbols: str, **fields: Any) -> None:
    db.ingest.write_instruments([{"symbol": s, **fields} for s in symbols])


def ticks_frame(n: int = 6, symbol: str = "AAPL") -> pd.DataFrame:
    base = pd.Timestamp("2024-01-02T14:30:00Z")
    ts = [base + pd.Timedelta(nanoseconds=1)] * 2 + [base + pd.Timedelta(seconds=i)
                                                     for i in range(1, n - 1)]
    return pd.DataFrame({"symbol": [symbol] * n, "ts": ts[:n],
                         "price": [100.0 + i for i in range(n)], "size": [1.0 + i for i in range(n)],
                         "side": [1, -1] * (n // 2) + [1] * (n % 2), "exchange": ["XNAS"] * n})


# ------------------------------------------------------------------- ticks
def test_ticks_round_trip_with_nanoseconds_and_same_timestamp_trades(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")
    res = db.ingest.write_ticks(ticks_frame(), source="test")
    assert (res.received, res.inserted, res.duplicates, res.rejected) == (6, 6, 0, 0)
    assert res.rows_per_second > 0
    assert res.seconds > 0
    with db.raw() as conn:
        rows = conn.execute(
            "SELECT ts_nanos, price, side, source FROM trades ORDER BY ts, ts_nanos, price"
        ).fetchall()
        keys = conn.execute("SELECT count(DISTINCT (ts, ts_nanos, seq)) FROM trades").fetchone()
    assert rows[:2] == [(1, 100.0, 1, "test"), (1, 101.0, -1, "test")]
    assert len(rows) == 6
    assert keys == (6,)


def test_reingesting_the_same_data_changes_nothing(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")
    db.ingest.write_ticks(ticks_frame())
    before = digest(db, "trades")
    again = db.ingest.write_ticks(ticks_frame())
    assert (again.inserted, again.duplicates) == (0, 6)
    assert digest(db, "trades") == before


def test_overlapping_files_store_each_trade_once(db: marketdb.MarketDB, tmp_path: Path) -> None:
    register(db, "AAA", "BBB")
    dg = _datagen()
    table = dg.ticks_table(3000, symbols=2, days=1, seed=5)
    whole = tmp_path / "whole.parquet"
    pq.write_table(table, whole)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(table.slice(0, 2000), first)
    pq.write_table(table.slice(0, 3000), second)  # overlaps all of the first file
    db.ingest.write_ticks(first)
    res = db.ingest.write_ticks(second)
    assert (res.inserted, res.duplicates) == (1000, 2000)
    after_overlap = digest(db, "trades")
    assert after_overlap[0] == 3000
    db.ingest.write_ticks(whole, batch_size=700)
    assert digest(db, "trades") == after_overlap


def test_a_same_timestamp_group_split_across_batches_keeps_every_trade(
    db: marketdb.MarketDB,
) -> None:
    register(db, "AAPL")
    ts = pd.Timestamp("2024-01-02T15:00:00.123456789Z")
    df = pd.DataFrame({"symbol": "AAPL", "ts": [ts] * 5, "price": [1.0, 2.0, 3.0, 4.0, 5.0],
                       "size": 1.0})
    res = db.ingest.write_ticks(df, batch_size=2)  # batches [0,1] [2,3] [4]: the group straddles
    assert (res.batches, res.inserted) == (3, 5)
    with db.raw() as conn:
        seqs = conn.execute("SELECT seq, price FROM trades ORDER BY price").fetchall()
    assert [p for _, p in seqs] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len({q for q, _ in seqs}) == 5
    again = db.ingest.write_ticks(df, batch_size=3)  # other cut, same keys
    assert (again.inserted, again.duplicates) == (0, 5)


def test_trades_and_quotes_are_split_from_one_tick_frame(db: marketdb.MarketDB) -> None:
    register(db, "EURUSD")
    df = pl.DataFrame({
        "ts": ["2024-01-02T10:00:00Z", "2024-01-02T10:00:01Z", "2024-01-02T10:00:02Z"],
        "price": [1.1, None, 1.2], "size": [5.0, None, 1.0],
        "bid": [None, 1.09, 1.19], "ask": [None, 1.11, 1.21],
    })
    res = db.ingest.write_ticks(df, symbol="eurusd")
    assert res.by_table["trades"]["inserted"] == 2
    assert res.by_table["quotes"]["inserted"] == 2
    with db.raw() as conn:
        assert conn.execute("SELECT count(*) FROM quotes WHERE bid < ask").fetchone() == (2,)


def test_on_conflict_update_applies_corrections_and_counts_them(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")
    # corrections need the provider's trade id: without one, a different price is another trade
    df = ticks_frame().assign(trade_id=[f"t{i}" for i in range(6)])
    db.ingest.write_ticks(df)
    fixed = df.copy()
    fixed.loc[3, "price"] = 999.0
    res = db.ingest.write_ticks(fixed, on_conflict="update")
    assert (res.inserted, res.updated, res.duplicates) == (0, 1, 5)
    with db.raw() as conn:
        assert conn.execute("SELECT count(*) FROM trades WHERE price = 999").fetchone() == (1,)


def test_skip_writes_valid_rows_and_returns_every_rejected_row(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")
    df = ticks_frame()
    df.loc[1, "price"] = -5.0
    df.loc[4, "size"] = -1.0
    res = db.ingest.write_ticks(df, on_invalid="skip")
    assert (res.received, res.inserted, res.rejected) == (6, 4, 2)
    assert [(r.row, r.rule, r.field, r.value) for r in res.rejections] == [
        (1, "non_positive_price", "price", -5.0), (4, "negative_size", "size", -1.0)]
    assert digest(db, "trades")[0] == 4


def test_unknown_symbols_are_listed_or_registered_on_request(db: marketdb.MarketDB) -> None:
    df = pd.concat([ticks_frame(2, "ZZZ"), ticks_frame(2, "yyy")])
    with pytest.raises(InvalidInput, match="unknown symbols: YYY, ZZZ") as e:
        db.ingest.write_ticks(df)
    assert e.value.details["unknown_symbols"] == ["YYY", "ZZZ"]
    assert digest(db, "trades")[0] == 0
    res = db.ingest.write_ticks(df, auto_register=True)
    assert res.inserted == 4
    assert sorted(res.registered_symbols) == ["YYY", "ZZZ"]
    with db.transaction() as conn:
        cls = conn.execute(sa.select(t.instruments.c.asset_class, t.instruments.c.metadata)
                           .where(t.instruments.c.symbol == "ZZZ")).one()
    assert cls.asset_class == "other"
    assert cls.metadata["auto_registered"] is True


def test_rows_can_name_instrument_ids_directly(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")
    with db.transaction() as conn:
        iid = conn.execute(sa.select(t.instruments.c.id)).scalar_one()
    df = ticks_frame(2).drop(columns=["symbol"]).assign(instrument_id=iid)
    assert db.ingest.write_ticks(df).inserted == 2
    with pytest.raises(InvalidInput, match="no instrument has this id"):
        db.ingest.write_ticks(df.assign(instrument_id=iid + 1000))


def test_a_write_bumps_data_version_and_notifies(db: marketdb.MarketDB, db_url: str) -> None:
    register(db, "AAPL")
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN marketdb_data")
        db.ingest.write_ticks(ticks_frame())
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert notes
    assert '"trades"' in notes[0].payload
    with db.transaction() as conn:
        assert conn.execute(sa.select(t.instruments.c.data_version)).scalar_one() == 1
    db.ingest.write_ticks(ticks_frame())  # all duplicates: nothing changed, no bump
    with db.transaction() as conn:
        assert conn.execute(sa.select(t.instruments.c.data_version)).scalar_one() == 1


def test_trade_hooks_see_exactly_the_inserted_rows_inside_the_transaction(
    db: marketdb.MarketDB,
) -> None:
    register(db, "AAPL")
    calls: list[tuple[int, int, int, bool, list[float]]] = []

    def hook(conn: psycopg.Connection[Any], rows: pa.Table, *, inserted: int, received: int,
             replaced: bool) -> None:
        in_tx = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        calls.append((inserted, received, in_tx, replaced, rows.column("price").to_pylist()))

    ing = Ingest(db, on_trades_inserted=[hook])
    df = ticks_frame()
    ing.write_ticks(df.iloc[:3])
    ing.write_ticks(df)  # overlaps: only rows 3..5 are new (staged path)
    assert calls[0][:4] == (3, 3, 3, False)
    assert calls[0][4] == [100.0, 101.0, 102.0]
    assert calls[1][:4] == (3, 6, 6, False)
    assert calls[1][4] == [103.0, 104.0, 105.0]


def test_a_failing_hook_rolls_the_whole_batch_back(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("bars failed")

    with pytest.raises(RuntimeError, match="bars failed"):
        Ingest(db, on_trades_inserted=[boom]).write_ticks(ticks_frame())
    assert digest(db, "trades")[0] == 0


def test_renamed_symbols_resolve_by_the_time_of_each_row(db: marketdb.MarketDB) -> None:
    register(db, "FB", listed_at=dt.date(2012, 5, 18))
    iid = db.ingest.rename_symbol("FB", "META", effective=dt.date(2022, 6, 9))
    old = pd.DataFrame({"symbol": "FB", "ts": [pd.Timestamp("2020-03-02T15:00Z")],
                        "price": [200.0], "size": [1.0]})
    new = pd.DataFrame({"symbol": "META", "ts": [pd.Timestamp("2023-03-02T15:00Z")],
                        "price": [180.0], "size": [1.0]})
    db.ingest.write_ticks(old)
    db.ingest.write_ticks(new)
    with db.raw() as conn:
        assert conn.execute("SELECT DISTINCT instrument_id FROM trades").fetchall() == [(iid,)]
        hist = conn.execute("SELECT symbol, reason, valid_to IS NULL FROM symbol_history "
                            "ORDER BY valid_from").fetchall()
    assert hist == [("FB", "listing", False), ("META", "rename", True)]
    late_fb = old.assign(ts=pd.Timestamp("2023-03-02T15:00Z"))
    with pytest.raises(InvalidInput, match="unknown symbols: FB"):
        db.ingest.write_ticks(late_fb)


# ------------------------------------------------------------- instruments
def test_instrument_upsert_merges_metadata_and_keeps_unsent_fields(db: marketdb.MarketDB) -> None:
    r1 = db.ingest.write_instruments([{"symbol": " aapl ", "name": "Apple", "type": "CS",
                                       "market": "stocks", "sector": "tech",
                                       "metadata": {"a": 1}}])
    assert (r1.inserted, r1.updated) == (1, 0)
    r2 = db.ingest.write_instruments([{"symbol": "AAPL", "currency_name": "usd",
                                       "metadata": {"b": 2}}])
    assert (r2.inserted, r2.updated) == (0, 1)
    r3 = db.ingest.write_instruments([{"symbol": "AAPL", "currency_name": "usd"}])
    assert (r3.updated, r3.duplicates) == (0, 1)
    with db.transaction() as conn:
        row = conn.execute(sa.select(t.instruments).where(t.instruments.c.symbol == "AAPL")).one()
    assert (row.name, row.asset_class, row.security_type, row.currency) == ("Apple", "stock",
                                                                            "CS", "usd")
    assert row.metadata == {"a": 1, "b": 2, "sector": "tech"}
    db.ingest.write_instruments([{"symbol": "AAPL", "metadata": {"c": 3}}], replace_metadata=True)
    with db.transaction() as conn:
        meta = conn.execute(sa.select(t.instruments.c.metadata)).scalar_one()
    assert meta == {"c": 3}


def test_delisting_is_recorded_and_old_data_stays_reachable(db: marketdb.MarketDB) -> None:
    register(db, "OLD", listed_at=dt.date(2000, 1, 3))
    db.ingest.write_instruments([{"symbol": "OLD", "active": False, "delisted_utc": "2021-06-30"}])
    with db.transaction() as conn:
        inst = conn.execute(sa.select(t.instruments.c.is_active, t.instruments.c.delisted_at)).one()
        hist = conn.execute(sa.select(t.symbol_history.c.reason)
                            .order_by(t.symbol_history.c.valid_from)).scalars().all()
    assert inst == (False, dt.date(2021, 6, 30))
    assert hist == ["listing", "delisting"]
    res = db.ingest.write_ticks(pd.DataFrame({"symbol": "OLD", "ts": [pd.Timestamp("2020-01-02T15:00Z")],
                                              "price": [1.0], "size": [1.0]}))
    assert res.inserted == 1


# -------------------------------------------------------------- other kinds
def test_candles_any_interval_with_adjusted_columns(db: marketdb.MarketDB) -> None:
    register(db, "KO")
    df = pd.DataFrame({
        "date": ["2012-08-10", "2012-08-13"], "open": [76.0, 38.0], "high": [77.0, 38.5],
        "low": [75.5, 37.8], "close": [76.5, 38.2], "volume": [1e6, 2e6],
        "adjClose": [38.25, 38.2], "divCash": [0.0, 0.0], "splitFactor": [1.0, 2.0],
    })
    res = db.ingest.write_candles(df, symbol="ko", interval="daily", source="tiingo")
    assert res.inserted == 2
    with db.raw() as conn:
        rows = conn.execute("SELECT interval, ts, source, adj_close, split_factor FROM candles "
                            "WHERE rolled_from IS NULL ORDER BY ts").fetchall()  # not the 1w/1mo roll-ups
    assert rows[1] == ("1d", dt.datetime(2012, 8, 13, tzinfo=UTC), "tiingo", 38.2, 2.0)
    assert db.ingest.write_candles(df, symbol="KO", interval="1d", source="tiingo").duplicates == 2
    with pytest.raises(InvalidInput, match="reserved"):
        db.ingest.write_candles(df, symbol="KO", interval="1d", source="trades")


def test_order_book_snapshots(db: marketdb.MarketDB) -> None:
    register(db, "BTCUSDT")
    books = [{"symbol": "BTCUSDT", "ts": "2022-11-01T23:49:39.146Z",
              "bid_prices": [20377.0, 20376.9], "bid_sizes": [1.77, 0.001],
              "ask_prices": [20377.1, 20378.0, 20379.0], "ask_sizes": [0.5, 1.0, 2.0]}]
    assert db.ingest.write_order_books(books, source="binance").inserted == 1
    with db.raw() as conn:
        row = conn.execute("SELECT bid_prices, ask_sizes, source FROM order_book_snapshots").fetchone()
    assert row == ([20377.0, 20376.9], [0.5, 1.0, 2.0], "binance")


def test_options_chain(db: marketdb.MarketDB) -> None:
    register(db, "SPXW")
    df = pd.DataFrame({
        "underlying": ["SPXW", "SPXW"], "quotedate": ["01/02/2018", "01/02/2018"],
        "expiration": ["01/31/2018", "01/31/2018"], "strike": [1200.0, 1200.0],
        "type": ["call", "put"], "bid": [1483.6, 0.0], "ask": [1503.2, 0.05], "last": [1395.46, 0.05],
        "volume": [0, 10], "openinterest": [6007, 3], "impliedvol": [0.0908, 0.5],
        "delta": [1.0, -0.001], "gamma": [0.0, 0.0], "theta": [-15.75, -0.01], "vega": [0.0, 0.0],
        "underlying_last": [2695.79, 2695.79],
    })
    res = db.ingest.write_options_chain(df, ts_format="%m/%d/%Y", tz="America/New_York")
    assert res.inserted == 2
    with db.raw() as conn:
        row = conn.execute("SELECT option_right, expiration, open_interest, implied_vol, "
                           "underlying_price FROM options_chains ORDER BY option_right").fetchall()
    assert row[0] == ("call", dt.date(2018, 1, 31), 6007, 0.0908, 2695.79)


def test_corporate_actions_splits_and_dividends(db: marketdb.MarketDB) -> None:
    register(db, "GOOGL", "AAPL")
    splits = [{"ticker": "GOOGL", "execution_date": "2022-07-18", "split_from": 1, "split_to": 20}]
    divs = [{"ticker": "AAPL", "cash_amount": 0.24, "ex_dividend_date": "2023-05-12",
             "record_date": "2023-05-15", "pay_date": "2023-05-18", "declaration_date": "2023-05-04",
             "dividend_type": "CD"}]
    assert db.ingest.write_corporate_actions(splits, source="polygon").inserted == 1
    assert db.ingest.write_corporate_actions(divs, source="polygon").inserted == 1
    with db.raw() as conn:
        rows = conn.execute("SELECT action_type, ex_date, ratio, amount::float8, pay_date "
                            "FROM corporate_actions ORDER BY ex_date").fetchall()
    assert rows == [("split", dt.date(2022, 7, 18), 20.0, None, None),
                    ("cash_dividend", dt.date(2023, 5, 12), None, 0.24, dt.date(2023, 5, 18))]
    again = db.ingest.write_corporate_actions(divs, source="polygon")
    assert again.duplicates == 1


def test_dry_run_validates_and_writes_nothing(db: marketdb.MarketDB) -> None:
    register(db, "AAPL")
    res = db.ingest.write_ticks(ticks_frame(), dry_run=True)
    assert (res.received, res.inserted) == (6, 0)
    assert digest(db, "trades")[0] == 0


def _datagen() -> Any:
    import sys

    bench = Path(__file__).resolve().parents[2] / "bench"
    sys.path.insert(0, str(bench))
    try:
        import datagen
    finally:
        sys.path.remove(str(bench))
    return datagen


def test_datagen_file_ingests_with_ties_kept(db: marketdb.MarketDB, tmp_path: Path) -> None:
    register(db, "AAA", "BBB", "CCC")
    dg = _datagen()
    path = dg.generate(5000, symbols=3, days=2, seed=11, path=tmp_path / "d.parquet")
    res = db.ingest.write_ticks(path, batch_size=1500)
    assert (res.received, res.inserted, res.rejected) == (5000, 5000, 0)
    with db.raw() as conn:
        assert conn.execute("SELECT max(seq) > 0 FROM trades").fetchone() == (True,)
    assert np.isclose(res.rows_per_second, res.received / res.seconds)


def test_a_concurrent_writer_of_the_same_key_is_deduplicated_not_duplicated(
    db: marketdb.MarketDB, db_url: str
) -> None:
    """The append fast path COPies rows that looked new; if another writer stores one of them
    first, the unique violation falls back to the staged, deduplicating path."""
    import threading
    import time

    register(db, "AAPL")
    df = ticks_frame()
    with db.transaction() as conn:
        iid = conn.execute(sa.select(t.instruments.c.id)).scalar_one()
    ts = df["ts"].iloc[4].to_pydatetime()
    other = psycopg.connect(db_url)
    db.ingest.write_ticks(df.iloc[:1])  # partitions exist; row 4 is later than anything stored
    from marketdb.store.tick_identity import content_hash, finish_seq

    row4 = pa.Table.from_pandas(df.iloc[4:5][["price", "size", "exchange"]].assign(
        side=pa.array(df["side"].iloc[4:5], pa.int8())), preserve_index=False)
    seq4 = int(finish_seq(content_hash(row4, "trades")[0], np.zeros(1, np.int64))[0])
    other.execute("INSERT INTO trades (instrument_id, ts, ts_nanos, seq, price, size) "
                  "VALUES (%s, %s, 0, %s, 555.0, 1.0)", [iid, ts, seq4])  # not committed yet
    result: dict[str, Any] = {}

    def write() -> None:
        try:
            result["res"] = db.ingest.write_ticks(df)
        except Exception as exc:  # pragma: no cover - reported below
            result["err"] = exc

    th = threading.Thread(target=write)
    th.start()
    deadline = time.monotonic() + 30
    with psycopg.connect(db_url, autocommit=True) as watch:
        while time.monotonic() < deadline:  # wait until our COPY waits on the other writer
            blocked = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE 'COPY%%'").fetchone()[0]
            if blocked:
                break
            time.sleep(0.02)
    other.commit()
    other.close()
    th.join(timeout=60)
    assert "err" not in result, result.get("err")
    res = result["res"]
    assert (res.inserted, res.duplicates) == (4, 2)  # row 0 stored before, row 4 by the other
    with db.raw() as conn:
        rows = conn.execute("SELECT count(*), count(*) FILTER (WHERE price = 555) FROM trades")
        assert rows.fetchone() == (6, 1)
