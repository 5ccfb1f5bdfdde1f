"""Continuous bars in PostgreSQL: the ingest hook, verify/repair/rebuild, bars on demand."""

from __future__ import annotations

import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketdb
from marketdb.services.bars import BarUpdate, compute_bars, parse_interval, trades_frame
from marketdb.services.bars._store import fetch_bars
from marketdb.services.bars.testing import bar_differences, reference_bars
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

UTC = dt.UTC
NS = 1_000_000_000
STORED = ("1m", "5m", "15m", "1h", "1d")


def ns(text: str) -> int:
    return pd.Timestamp(text).value


# ------------------------------------------------------------------ helpers


def add_instrument(db: marketdb.MarketDB, symbol: str, calendar: str | None) -> int:
    with db.transaction() as conn:
        return int(
            conn.execute(
                sa.insert(t.instruments)
                .values(symbol=symbol, asset_class="stock", calendar=calendar)
                .returning(t.instruments.c.id)
            ).scalar_one()
        )


def batch_table(rows: list[tuple[int, int, int, float, float, int | None]]) -> pa.Table:
    """Canonical trade batch from (instrument_id, ts_ns, seq, price, size, side) rows."""
    return pa.table(
        {
            "instrument_id": pa.array([r[0] for r in rows], pa.int32()),
            "ts": pa.array([r[1] for r in rows], pa.timestamp("ns", tz="UTC")),
            "seq": pa.array([r[2] for r in rows], pa.int32()),
            "price": pa.array([r[3] for r in rows], pa.float64()),
            "size": pa.array([r[4] for r in rows], pa.float64()),
            "side": pa.array([r[5] for r in rows], pa.int8()),
        }
    )


def write_batch(db: marketdb.MarketDB, batch: pa.Table) -> BarUpdate:
    """What the ingest writer does: COPY, INSERT .. ON CONFLICT DO NOTHING, then the hook."""
    df = trades_frame(batch)
    ts = df.get_column("ts").to_numpy()
    with db.raw() as conn:
        epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
        lo = epoch + dt.timedelta(microseconds=int(ts.min()) // 1000)
        hi = epoch + dt.timedelta(microseconds=int(ts.max()) // 1000)
        ensure_partitions(conn, "trades", lo, hi)
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS test_trade_stage (instrument_id int4, ts timestamptz, "
            "ts_nanos int2, seq int4, price float8, size float8, side int2) ON COMMIT DELETE ROWS"
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY test_trade_stage (instrument_id, ts, ts_nanos, seq, price, size, side) FROM STDIN"
            ) as cp,
        ):
            for r in df.iter_rows():
                inst, t_ns, seq, price, size, side = r
                when = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=t_ns // 1000)
                cp.write_row((inst, when, t_ns % 1000, seq, price, size, side))
        inserted = conn.execute(
            "INSERT INTO trades (instrument_id, ts, ts_nanos, seq, price, size, side) "
            "SELECT instrument_id, ts, ts_nanos, seq, price, size, side FROM test_trade_stage "
            "ON CONFLICT DO NOTHING"
        ).rowcount
        result = db.bars.update(conn, batch, inserted=inserted, received=batch.num_rows)
        conn.execute("DELETE FROM test_trade_stage")
    return result


def write_through_ingest(db: marketdb.MarketDB, rows: list[Any], symbols: dict[int, str]) -> None:
    """The real writer: ``Ingest.write_ticks`` with the bars hook, one call per batch."""
    from marketdb.services.ingest import Ingest

    frame = pd.DataFrame(
        {
            "symbol": [symbols[r[0]] for r in rows],
            "ts": pd.to_datetime([r[1] for r in rows], unit="ns", utc=True),
            "seq": [r[2] for r in rows],
            "price": [r[3] for r in rows],
            "size": [r[4] for r in rows],
            "side": pd.array([r[5] for r in rows], dtype="Int8"),
        }
    )
    Ingest(db, on_trades_inserted=[db.bars.update]).write_ticks(frame)


def stored_bars(db: marketdb.MarketDB, instrument_id: int, interval: str) -> pl.DataFrame:
    with db.raw() as conn:
        return fetch_bars(conn, instrument_id, parse_interval(interval), None, None)


def as_pandas(rows: list[tuple[int, int, int, float, float, int | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instrument_id": [r[0] for r in rows],
            "ts": pd.to_datetime([r[1] for r in rows], unit="ns", utc=True),
            "seq": [r[2] for r in rows],
            "price": [r[3] for r in rows],
            "size": [r[4] for r in rows],
            "side": pd.array([r[5] for r in rows], dtype="Int8"),
        }
    )


def assert_matches_reference(
    db: marketdb.MarketDB,
    ids: dict[int, str | None],
    rows: list[tuple[int, int, int, float, float, int | None]],
    intervals: tuple[str, ...] = STORED,
) -> None:
    ref_input = as_pandas(rows)
    for iv in intervals:
        want = reference_bars(ref_input, iv, calendar_of=ids)
        got = pl.concat([stored_bars(db, i, iv) for i in ids])
        assert bar_differences(got, want) == [], iv


# -------------------------------------------- the acceptance property test

_EDGES = [
    ns(x)
    for x in (
        "2024-03-08T14:30:00Z",
        "2024-03-08T21:00:00Z",
        "2024-03-11T13:30:00Z",
        "2024-03-11T20:00:00Z",
        "2024-03-11T00:00:00Z",
    )
]
_ts = st.one_of(
    st.sampled_from(_EDGES),
    st.builds(lambda e, d: e + d, st.sampled_from(_EDGES), st.integers(-150 * NS, 150 * NS)),
    st.integers(ns("2024-03-07T12:00Z"), ns("2024-03-12T12:00Z")),
)
_trade = st.tuples(
    st.integers(0, 1),  # index into the test's instruments
    _ts,
    st.integers(0, 2),
    st.sampled_from([99.5, 100.0, 100.25]) | st.floats(1.0, 500.0),
    st.sampled_from([1.0, 100.0]) | st.floats(0.001, 1e4),
    st.sampled_from([1, -1, None]),
)


@pytest.fixture
def two_instruments(db: marketdb.MarketDB) -> dict[int, str | None]:
    return {add_instrument(db, "AAA", "XNYS"): "XNYS", add_instrument(db, "BTCUSD", None): None}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    trades=st.lists(_trade, min_size=1, max_size=50, unique_by=lambda r: (r[0], r[1], r[2])),
    n_batches=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
@pytest.mark.parametrize("writer", ["hook", "ingest"])
def test_batches_in_any_order_with_duplicates_give_the_bars_of_a_full_recomputation(
    db: marketdb.MarketDB,
    two_instruments: dict[int, str | None],
    writer: str,
    trades: list[tuple[int, int, int, float, float, int | None]],
    n_batches: int,
    seed: int,
) -> None:
    with db.raw() as conn:  # hypothesis reuses the database between examples
        conn.execute("DELETE FROM candles")
        conn.execute("DELETE FROM trades")
    ids = list(two_instruments)
    rows = [(ids[r[0]], *r[1:]) for r in trades]
    rng = random.Random(seed)
    batches: list[list[Any]] = [[] for _ in range(n_batches)]
    for r in rows:
        batches[rng.randrange(n_batches)].append(r)
        if rng.random() < 0.15:  # re-delivered: a duplicate in another (or the same) batch
            batches[rng.randrange(n_batches)].append(r)
    rng.shuffle(batches)  # late and out-of-order data
    symbols = dict(zip(ids, ["AAA", "BTCUSD"], strict=True))
    for b in batches:
        if b:
            rng.shuffle(b)
            if writer == "hook":
                write_batch(db, batch_table(b))
            else:
                write_through_ingest(db, b, symbols)
    assert_matches_reference(db, two_instruments, rows)
    assert db.bars.verify().ok


def test_fold_and_recompute_paths_are_both_taken(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    t0 = ns("2024-03-08T15:00:00Z")
    first = [(iid, t0 + i * 7 * NS, 0, 100.0 + i, 10.0, 1) for i in range(20)]
    assert write_batch(db, batch_table(first)).mode == "fold"
    again = [*first[5:10], (iid, t0 + 3 * NS, 0, 99.0, 5.0, -1)]
    res = write_batch(db, batch_table(again))
    assert res.mode == "recompute"
    assert write_batch(db, batch_table(first[:3])).mode == "skip"  # all duplicates
    assert_matches_reference(db, {iid: "XNYS"}, [*first, again[-1]])


# --------------------------------------------------- daily bars and calendars


def test_daily_bars_follow_the_xnys_calendar(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    prints = {
        # Friday before DST (EST): regular session 14:30-21:00 UTC.
        "2024-03-08T14:29:59Z": 1.0,  # pre-market: in no daily bar
        "2024-03-08T14:30:00Z": 10.0,
        "2024-03-08T20:59:59.999999999Z": 11.0,
        "2024-03-08T21:00:00Z": 2.0,  # post-market
        # Monday after DST (EDT): 13:30-20:00 UTC.
        "2024-03-11T13:30:00.000000001Z": 20.0,
        "2024-03-11T19:59:00Z": 21.0,
        "2024-03-11T20:30:00Z": 3.0,
        # Independence Day: a holiday, no session.
        "2024-07-04T15:00:00Z": 4.0,
        # Day after Thanksgiving: closes 13:00 EST = 18:00 UTC.
        "2024-11-29T14:30:00Z": 30.0,
        "2024-11-29T17:59:59Z": 31.0,
        "2024-11-29T18:00:00Z": 5.0,
    }
    rows = [(iid, ns(k), 0, v, 1.0, None) for k, v in prints.items()]
    write_batch(db, batch_table(rows[::2]))
    write_batch(db, batch_table(rows[1::2]))
    daily = stored_bars(db, iid, "1d").sort("ts")
    assert daily.get_column("ts").to_list() == [ns("2024-03-08"), ns("2024-03-11"), ns("2024-11-29")]
    assert daily.get_column("open").to_list() == [10.0, 20.0, 30.0]
    assert daily.get_column("close").to_list() == [11.0, 21.0, 31.0]
    assert daily.get_column("trade_count").to_list() == [2, 2, 2]
    # Every print is in the intraday bars, inside or outside the session.
    assert stored_bars(db, iid, "1m").get_column("trade_count").sum() == len(prints)
    assert_matches_reference(db, {iid: "XNYS"}, rows)


def test_extended_session_mode_keeps_pre_and_post_market(db: marketdb.MarketDB) -> None:
    from marketdb.services.bars import Bars

    iid = add_instrument(db, "AAA", "XNYS")
    rows = [
        (iid, ns("2024-11-29T09:00:00Z"), 0, 1.0, 1.0, 1),  # 04:00 EST
        (iid, ns("2024-11-29T15:00:00Z"), 0, 2.0, 1.0, 1),
        (iid, ns("2024-11-29T20:00:00Z"), 0, 3.0, 1.0, 1),  # after the 13:00 early close
    ]
    db.__dict__["bars"] = Bars(db, session="extended")
    write_batch(db, batch_table(rows))
    daily = stored_bars(db, iid, "1d").row(0, named=True)
    assert (daily["open"], daily["close"], daily["trade_count"]) == (1.0, 3.0, 3)


# -------------------------------------------------- verify, repair, rebuild


def _sample_rows(
    iid: int, n: int = 400, seed: int = 7
) -> list[tuple[int, int, int, float, float, int | None]]:
    rng = np.random.default_rng(seed)
    start = ns("2024-03-08T14:30:00Z")
    ts = np.sort(start + rng.integers(0, 3 * 86_400 * NS, n))
    return [
        (
            iid,
            int(x),
            0,
            float(round(100 + rng.normal(), 2)),
            float(rng.integers(1, 50)),
            int(rng.choice([1, -1])),
        )
        for x in ts
    ]


def test_verify_reports_and_repair_fixes_every_difference(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    rows = _sample_rows(iid)
    write_batch(db, batch_table(rows))
    assert db.bars.verify("AAA").ok
    with db.raw() as conn:
        conn.execute(
            "UPDATE candles SET high = high + 1, volume = volume + 1 WHERE interval = '5m' AND ts = "
            "(SELECT min(ts) FROM candles WHERE interval = '5m')"
        )
        conn.execute("DELETE FROM candles WHERE interval = '1d' AND ts = '2024-03-11'")
        conn.execute(
            "INSERT INTO candles (instrument_id, interval, ts, source, open, high, low, close, volume,"
            " trade_count, notional, first_ns, first_seq, last_ns, last_seq)"
            " VALUES (%s, '1h', '2024-03-15 12:00+00', 'trades', 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)",
            [iid],
        )
        # A provider candle is not a derived bar: verify leaves it alone.
        conn.execute(
            "INSERT INTO candles (instrument_id, interval, ts, source, open, high, low, close, volume)"
            " VALUES (%s, '1d', '2024-03-08', 'polygon', 1, 1, 1, 1, 1)",
            [iid],
        )
    report = db.bars.verify(["AAA"])
    kinds = sorted((d.interval, d.kind) for d in report.differences)
    assert kinds == [("1d", "missing"), ("1h", "extra"), ("5m", "different")]
    changed = next(d for d in report.differences if d.kind == "different")
    assert set(changed.fields) == {"high", "volume"}
    frame = report.to_pandas()
    assert set(frame["kind"]) == {"missing", "extra", "different"}
    fixed = db.bars.verify(["AAA"], repair=True)
    assert fixed.repaired == 3
    assert db.bars.verify().ok
    assert_matches_reference(db, {iid: "XNYS"}, rows)


def test_verify_since_until_checks_only_overlapping_buckets(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    write_batch(db, batch_table(_sample_rows(iid)))
    with db.raw() as conn:
        conn.execute("UPDATE candles SET volume = volume + 1 WHERE interval = '1m' AND ts < '2024-03-09'")
    assert db.bars.verify(since="2024-03-11").ok
    # The range overlaps the 2024-03-08 session: its daily bucket is checked whole, and so
    # are the finer buckets inside it.
    late = db.bars.verify(since="2024-03-08T20:00Z", until="2024-03-08T20:10Z")
    session = (pl.col("ts") >= ns("2024-03-08T14:30Z")) & (pl.col("ts") < ns("2024-03-08T21:00Z"))
    broken = stored_bars(db, iid, "1m").filter(session).get_column("ts").to_list()
    assert {d.interval for d in late.differences} == {"1m"}
    assert sorted(d.ts for d in late.differences) == [
        pd.Timestamp(x, unit="ns", tz="UTC").to_pydatetime() for x in sorted(broken)
    ]


def test_rebuild_recomputes_everything_from_trades(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    other = add_instrument(db, "BTCUSD", None)
    rows = _sample_rows(iid) + _sample_rows(other, seed=3)
    write_batch(db, batch_table(rows))
    with db.raw() as conn:
        conn.execute("DELETE FROM candles")
        conn.execute(
            "INSERT INTO candles (instrument_id, interval, ts, source, open, high, low, close, volume,"
            " trade_count, notional, first_ns, first_seq, last_ns, last_seq)"
            " VALUES (%s, '1m', '2024-03-15 12:00+00', 'trades', 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)",
            [iid],
        )
    report = db.bars.rebuild()
    assert report.trades_read == len(rows)
    assert report.bars_deleted == 1
    assert_matches_reference(db, {iid: "XNYS", other: None}, rows)
    again = db.bars.rebuild(["AAA"], since="2024-03-11")
    assert 0 < again.trades_read < len(rows) // 2
    assert_matches_reference(db, {iid: "XNYS", other: None}, rows)


def test_unknown_symbol_is_not_found(db: marketdb.MarketDB) -> None:
    with pytest.raises(marketdb.NotFound, match="NOPE"):
        db.bars.verify(["NOPE"])


# ------------------------------------------------------------ on demand


@pytest.mark.parametrize("interval", ["3m", "10m", "2h", "30s", "90s", "1w", "1mo"])
def test_on_demand_intervals_equal_a_full_recomputation(db: marketdb.MarketDB, interval: str) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    rows = _sample_rows(iid, n=600)
    write_batch(db, batch_table(rows))
    got = db.bars.rollup(iid, interval)
    want = reference_bars(as_pandas(rows), interval, calendar_of={iid: "XNYS"})
    got_pl = pl.from_arrow(got)
    assert isinstance(got_pl, pl.DataFrame)
    got_pl = got_pl.with_columns(pl.col("ts").dt.cast_time_unit("ns").cast(pl.Int64))
    assert bar_differences(got_pl, want) == []
    assert got.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_on_demand_range_and_daily_from_trades_without_stored_daily(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    rows = _sample_rows(iid, n=300)
    write_batch(db, batch_table(rows))
    start = dt.datetime(2024, 3, 8, 16, 1, tzinfo=UTC)
    end = dt.datetime(2024, 3, 8, 17, 0, tzinfo=UTC)
    got = pl.from_arrow(db.bars.rollup(iid, "3m", start, end))
    want = reference_bars(as_pandas(rows), "3m")
    # Labels in [start, end): 16:01 is inside the 16:00 bucket, which starts before start.
    want = want[(want["ts"] >= ns("2024-03-08T16:03Z")) & (want["ts"] < ns("2024-03-08T17:00Z"))]
    assert len(want) > 0
    got = got.with_columns(pl.col("ts").dt.cast_time_unit("ns").cast(pl.Int64))  # type: ignore[union-attr]
    assert bar_differences(got, want) == []
    weeks = db.bars.rollup(iid, "1w", dt.datetime(2024, 3, 6, tzinfo=UTC)).to_pylist()
    assert [w["ts"] for w in weeks] == [dt.datetime(2024, 3, 11, tzinfo=UTC)]
    months = db.bars.rollup(iid, "1mo", None, dt.datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC))
    assert months.to_pylist()[0]["ts"] == dt.datetime(2024, 3, 1, tzinfo=UTC)
    with db.raw() as conn:
        daily = compute_bars(conn, iid, "1d", stored=(parse_interval("1m"),))
    want = reference_bars(as_pandas(rows), "1d", calendar_of={iid: "XNYS"})
    got_pl = pl.from_arrow(daily).with_columns(pl.col("ts").dt.cast_time_unit("ns").cast(pl.Int64))  # type: ignore[union-attr]
    assert bar_differences(got_pl, want) == []


def test_provider_candles_roll_up_by_their_own_source(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    with db.raw() as conn:
        ensure_partitions(conn, "candles", dt.date(2024, 3, 4), dt.date(2024, 3, 15))
        for day, (o, h, lo, c, v) in {
            "2024-03-04": (10, 12, 9, 11, 100),
            "2024-03-05": (11, 15, 10, 14, 200),
            "2024-03-08": (14, 14, 8, 9, 300),
            "2024-03-11": (9, 10, 9, 10, 50),
        }.items():
            conn.execute(
                "INSERT INTO candles (instrument_id, interval, ts, source, open, high, low, close,"
                " volume, vwap) VALUES (%s, '1d', %s, 'polygon', %s, %s, %s, %s, %s, %s)",
                [iid, f"{day} 00:00+00", o, h, lo, c, v, (h + lo) / 2],
            )
    weekly = db.bars.rollup(iid, "1w", source="polygon").to_pylist()
    assert [w["ts"].date() for w in weekly] == [dt.date(2024, 3, 4), dt.date(2024, 3, 11)]
    assert [(w["open"], w["high"], w["low"], w["close"], w["volume"]) for w in weekly[:1]] == [
        (10, 15, 8, 9, 600)
    ]
    assert weekly[0]["vwap"] == pytest.approx((10.5 * 100 + 12.5 * 200 + 11 * 300) / 600)
    assert {w["source"] for w in weekly} == {"polygon"}
    assert db.bars.rollup(iid, "30s", source="polygon").num_rows == 0


def test_tick_volume_and_dollar_bars(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", "XNYS")
    rows = _sample_rows(iid, n=250)
    write_batch(db, batch_table(rows))
    ticks = db.bars.rollup(iid, "tick:100").to_pandas()
    assert ticks["trade_count"].tolist() == [100, 100, 50]
    assert ticks["open"].tolist() == [rows[0][3], rows[100][3], rows[200][3]]
    assert ticks["close"].tolist() == [rows[99][3], rows[199][3], rows[249][3]]
    sizes = np.array([r[4] for r in rows])
    vol = db.bars.rollup(iid, "volume:1000").to_pandas()
    assert vol["volume"].sum() == sizes.sum()
    assert (vol["volume"].iloc[:-1] >= 1000).all()
    # A bar closes with the trade that reaches the threshold: without it, it is below.
    expected, cum = [], 0.0
    for r in rows:
        cum += r[4]
        if cum >= 1000:
            expected.append(cum)
            cum = 0.0
    if cum:
        expected.append(cum)
    assert vol["volume"].tolist() == expected
    dollars = db.bars.rollup(iid, "dollar:50000").to_pandas()
    assert dollars["notional"].sum() == pytest.approx(sum(r[3] * r[4] for r in rows))
    assert (dollars["notional"].iloc[:-1] >= 50000).all()
    start = dt.datetime(2024, 3, 11, tzinfo=UTC)
    part = db.bars.rollup(iid, "tick:10", start=start).to_pandas()
    assert part["trade_count"].sum() == sum(1 for r in rows if r[1] >= ns("2024-03-11"))


def test_compute_several_symbols_long_format(db: marketdb.MarketDB) -> None:
    a = add_instrument(db, "AAA", "XNYS")
    b = add_instrument(db, "BBB", "XNYS")
    write_batch(db, batch_table(_sample_rows(a, n=50) + _sample_rows(b, n=60, seed=2)))
    table = db.bars.compute(["AAA", "BBB"], "2h")
    df = table.to_pandas()
    assert set(df["symbol"]) == {"AAA", "BBB"}
    assert df.groupby("symbol")["trade_count"].sum().to_dict() == {"AAA": 50, "BBB": 60}


def test_hook_rejects_inconsistent_counts(db: marketdb.MarketDB) -> None:
    iid = add_instrument(db, "AAA", None)
    batch = batch_table([(iid, ns("2024-03-08T15:00Z"), 0, 1.0, 1.0, None)])
    with pytest.raises(marketdb.InvalidInput), db.raw() as conn:
        db.bars.update(conn, batch, inserted=2, received=2)
    with pytest.raises(marketdb.InvalidInput, match="unknown instrument"), db.raw() as conn:
        db.bars.update(
            conn, batch_table([(iid + 99, ns("2024-03-08T15:00Z"), 0, 1.0, 1.0, None)]), inserted=1
        )


def test_concurrent_folds_into_the_same_bars(db: marketdb.MarketDB) -> None:
    """Two transactions fold into the same buckets; the row locks order them, nothing is lost."""
    iid = add_instrument(db, "AAA", None)
    t0 = ns("2024-03-08T15:00:00Z")
    a = [(iid, t0 + i * NS, 0, 100.0 + i, 1.0, 1) for i in range(0, 60, 2)]
    b = [(iid, t0 + i * NS, 0, 200.0 - i, 2.0, -1) for i in range(1, 60, 2)]
    url = db.url
    with psycopg.connect(url) as c1, psycopg.connect(url) as c2:
        ensure_partitions(c1, "trades", dt.date(2024, 3, 8), dt.date(2024, 3, 8))
        # On TimescaleDB the chunk appears with its first row: make it now, or c2's COPY would
        # wait for c1's uncommitted chunk and the test would hang.
        c1.execute("INSERT INTO trades (instrument_id, ts, price) VALUES (%s, '2024-03-08 15:00Z', 1)", [iid])
        c1.execute("DELETE FROM trades WHERE instrument_id = %s", [iid])
        c1.commit()
        for conn, rows in ((c1, a), (c2, b)):
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY trades (instrument_id, ts, ts_nanos, seq, price, size, side) FROM STDIN"
                ) as cp,
            ):
                for r in rows:
                    when = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=r[1] // 1000)
                    cp.write_row((r[0], when, r[1] % 1000, r[2], r[3], r[4], r[5]))
        db.bars.update(c1, batch_table(a), inserted=len(a))
        # c2 folds into the rows c1 has just written: it waits for c1's commit.
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(db.bars.update, c2, batch_table(b), inserted=len(b))
            c1.commit()
            pending.result(timeout=60)
        c2.commit()
    assert_matches_reference(db, {iid: None}, a + b)


def test_bars_older_than_the_stored_trades_are_left_alone(db_url: str, pg_server: Any) -> None:
    """Tick retention drops whole days of trades and keeps their bars: verify must not call
    them extra, rebuild must not delete them, and a week straddling the cut keeps its bar."""
    db = marketdb.connect(db_url, home=pg_server.home, bar_intervals=("1m", "1h", "1d", "1w"))
    try:
        iid = add_instrument(db, "AAA", "XNYS")
        rows = [
            (iid, ns(f"2024-03-0{d}T15:00:00Z") + k * 90 * NS, 0, 100.0 + d + k, 10.0, 1)
            for d in range(4, 9)
            for k in range(20)
        ]
        write_batch(db, batch_table(rows))
        before = {iv: stored_bars(db, iid, iv) for iv in ("1m", "1d", "1w")}
        with db.raw() as conn:  # what retention does to the two oldest days
            conn.execute("DELETE FROM trades WHERE ts < '2024-03-06'")
        assert db.bars.verify().ok
        report = db.bars.rebuild()
        assert report.trades_read == 60
        for iv, old in before.items():
            assert stored_bars(db, iid, iv).equals(old), iv
        kept = stored_bars(db, iid, "1d").get_column("ts").to_list()
        assert kept[:2] == [ns("2024-03-04"), ns("2024-03-05")]
    finally:
        db.close()


def test_corrections_through_ingest_recompute_the_touched_bars(db: marketdb.MarketDB) -> None:
    """``on_conflict="update"`` replaces stored trades: their bars are recomputed, not folded."""
    from marketdb.services.ingest import Ingest

    iid = add_instrument(db, "AAA", "XNYS")
    rows = _sample_rows(iid, n=120)
    ingest = Ingest(db, on_trades_inserted=[db.bars.update])

    def frame(rs: list[Any]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "symbol": "AAA",
                "ts": pd.to_datetime([r[1] for r in rs], unit="ns", utc=True),
                "seq": [r[2] for r in rs],
                "price": [r[3] for r in rs],
                "size": [r[4] for r in rs],
                "side": pd.array([r[5] for r in rs], dtype="Int8"),
            }
        )

    ingest.write_ticks(frame(rows))
    fixed = [(r[0], r[1], r[2], r[3] + 0.5, r[4] * 2, r[5]) for r in rows[40:60]]
    res = ingest.write_ticks(frame(fixed), on_conflict="update")
    assert res.updated == 20
    final = rows[:40] + fixed + rows[60:]
    assert_matches_reference(db, {iid: "XNYS"}, final)
    assert db.bars.verify().ok


def test_maintenance_hook_repairs_recent_bars_and_honours_dry_run(db: marketdb.MarketDB) -> None:
    from types import SimpleNamespace

    from marketdb.services.bars import maintenance_hook

    iid = add_instrument(db, "AAA", "XNYS")
    write_batch(db, batch_table(_sample_rows(iid, n=100)))
    with db.raw() as conn:
        conn.execute("UPDATE candles SET volume = volume + 1 WHERE interval = '1h'")
    hook = maintenance_hook(lookback=dt.timedelta(days=30))
    now = dt.datetime(2024, 3, 12, tzinfo=UTC)
    summary = hook(SimpleNamespace(db=db, now=now, dry_run=True))
    assert summary is not None
    assert "0 repaired" in summary
    assert not db.bars.verify().ok
    hook(SimpleNamespace(db=db, now=now, dry_run=False))
    assert db.bars.verify().ok
