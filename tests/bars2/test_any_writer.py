"""Any writer gets the same bars: library ingest (in-transaction fold), plain SQL inserts of trades
and candles (refreshed afterwards from the touched ranges), late trades and corrected candles, in
any interleaving, give stored bars equal to a full recomputation once the refresher ran.

The touched ranges a raw statement reports are computed here from the statement's rows, in the
payload format of the change-capture triggers (``marketdb_changes``); :func:`parse_payload` reads
that format.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import insert as pg_insert

import marketdb
from marketdb.services.bars import Touched, parse_payload
from marketdb.services.bars._intervals import parse_interval
from marketdb.services.bars._vendor import vendor_rollup
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

UTC = dt.UTC
BASE = dt.datetime(2024, 5, 6, 0, 0, tzinfo=UTC)  # a Monday

_op = st.one_of(
    st.tuples(
        st.just("ingest"),
        st.lists(st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(1, 50)), min_size=1, max_size=8),
    ),
    st.tuples(
        st.just("sql"),
        st.lists(st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(1, 50)), min_size=1, max_size=8),
    ),
    st.tuples(
        st.just("candles"),
        st.lists(st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(1, 50)), min_size=1, max_size=8),
    ),
    st.tuples(
        st.just("correct"),
        st.lists(st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(1, 50)), min_size=1, max_size=4),
    ),
    st.tuples(
        st.just("sql_candles"),
        st.lists(st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(1, 50)), min_size=1, max_size=4),
    ),
)


def _payload_trades(rows: list[dict[str, object]]) -> str:
    by: dict[int, list[dt.datetime]] = {}
    for r in rows:
        by.setdefault(int(r["instrument_id"]), []).append(r["ts"])  # type: ignore[arg-type]
    us = lambda x: int((x - dt.datetime(1970, 1, 1, tzinfo=UTC)) / dt.timedelta(microseconds=1))  # noqa: E731
    body = [[i, us(min(v)), us(max(v)), len(v)] for i, v in by.items()]
    return json.dumps({"t": "trades", "op": "insert", "x": 1, "r": body})


def _rollups(db: marketdb.MarketDB, iid: int) -> list[tuple[object, ...]]:
    c = t.candles
    with db.transaction() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(c.c.interval, c.c.ts, c.c.open, c.c.high, c.c.low, c.c.close, c.c.volume)
                .where(c.c.instrument_id == iid, c.c.source == "acme", c.c.rolled_from.is_not(None))
                .order_by(c.c.interval, c.c.ts)
            )
        ]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_op, min_size=1, max_size=6))
def test_any_interleaving_gives_the_bars_of_a_full_recomputation(db: marketdb.MarketDB, ops: list) -> None:  # type: ignore[type-arg]
    with db.transaction() as conn:
        conn.execute(sa.delete(t.trades))
        conn.execute(sa.delete(t.candles))
        conn.execute(sa.delete(t.instruments).where(t.instruments.c.symbol == "ANY"))
        iid = int(
            conn.execute(
                sa.insert(t.instruments).values(symbol="ANY", calendar="24/7").returning(t.instruments.c.id)
            ).scalar_one()
        )
    with db.raw() as conn:
        ensure_partitions(conn, "trades", BASE - dt.timedelta(days=1), BASE + dt.timedelta(days=3))
        ensure_partitions(conn, "candles", BASE - dt.timedelta(days=40), BASE + dt.timedelta(days=40))
    touched: list[Touched] = []
    seq = 0
    for kind, items in ops:
        if kind in ("ingest", "sql"):
            rows = []
            for minute, size in items:
                seq += 1
                ts = BASE + dt.timedelta(minutes=minute, microseconds=seq)
                rows.append(
                    {
                        "instrument_id": iid,
                        "ts": ts,
                        "seq": 0,
                        "price": 100.0 + (minute % 37) / 4,
                        "size": float(size),
                    }
                )
            if kind == "ingest":
                db.ingest.write_ticks(pd.DataFrame(rows).drop(columns=["instrument_id"]), symbol="ANY")
            else:
                with db.transaction() as conn:
                    conn.execute(sa.insert(t.trades), rows)
                touched += parse_payload(_payload_trades(rows))
        else:
            frame = pd.DataFrame(
                [
                    {
                        "ts": BASE + dt.timedelta(minutes=m),
                        "open": 10.0 + v / 10,
                        "high": 12.0 + v / 10,
                        "low": 9.0,
                        "close": 11.0 if kind == "correct" else 10.5,
                        "volume": float(v),
                    }
                    for m, v in items
                ]
            ).drop_duplicates("ts", keep="last")
            if kind == "sql_candles":
                with db.transaction() as conn:
                    conn.execute(
                        pg_insert(t.candles)
                        .values(
                            [
                                {**r, "instrument_id": iid, "interval": "1m", "source": "acme"}
                                for r in frame.to_dict("records")
                            ]
                        )
                        .on_conflict_do_nothing()
                    )
                touched.append(
                    Touched(
                        "candles",
                        iid,
                        frame["ts"].min().to_pydatetime(),
                        frame["ts"].max().to_pydatetime(),
                        "1m",
                        "acme",
                    )
                )
            else:
                db.ingest.write_candles(
                    frame,
                    symbol="ANY",
                    interval="1m",
                    source="acme",
                    on_conflict="update" if kind == "correct" else "ignore",
                )
    report = db.bars.refresher().refresh(touched)
    assert report.errors == []
    # Trade bars: equal to a full recomputation from the trades.
    check = db.bars.verify(["ANY"])
    assert check.ok, check.differences[:5]
    # Provider roll-ups: equal to recomputing all of them from the written 1m candles.
    stored = _rollups(db, iid)
    with db.raw() as conn:
        conn.execute("DELETE FROM candles WHERE rolled_from IS NOT NULL")
        vendor_rollup(
            conn,
            iid,
            "acme",
            parse_interval("1m"),
            int((BASE - dt.timedelta(days=1) - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9,
            int((BASE + dt.timedelta(days=3) - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9,
            stored=db.bars.intervals,
            calendars=db.bars.calendars,
            calendar="24/7",
        )
    assert _rollups(db, iid) == stored


def test_the_refresher_listens_to_change_capture_notifications(db: marketdb.MarketDB) -> None:
    import threading

    with db.transaction() as conn:
        iid = int(
            conn.execute(
                sa.insert(t.instruments).values(symbol="LSN", calendar="24/7").returning(t.instruments.c.id)
            ).scalar_one()
        )
    with db.raw() as conn:
        ensure_partitions(conn, "trades", BASE, BASE + dt.timedelta(days=1))
        ensure_partitions(conn, "candles", BASE - dt.timedelta(days=40), BASE + dt.timedelta(days=40))
    rows = [
        {"instrument_id": iid, "ts": BASE + dt.timedelta(minutes=m), "seq": 0, "price": 10.0 + m, "size": 1.0}
        for m in range(3)
    ]
    refresher = db.bars.refresher(debounce=0.1)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", refresher.listen(timeout=120)))
    worker.start()
    try:
        for _ in range(200):  # until the listener has subscribed
            with db.transaction() as conn:
                active = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
                ).scalar_one()
            if active:
                break
            threading.Event().wait(0.05)
        with db.transaction() as conn:  # a plain SQL writer: migration 0011's capture trigger notifies
            conn.execute(sa.insert(t.trades), rows)
        for _ in range(600):
            with db.transaction() as conn:
                n = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.candles)
                    .where(t.candles.c.instrument_id == iid, t.candles.c.interval == "1d")
                ).scalar_one()
            if n:
                break
            threading.Event().wait(0.1)
    finally:
        refresher.stop()
        worker.join(120)
    assert result["r"].ranges >= 1  # one per captured statement (executemany: one per row)
    assert result["r"].bars_fixed > 0
    assert db.bars.verify(["LSN"]).ok
