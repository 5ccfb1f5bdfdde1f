"""The TimeseriesBackend contract, run against every backend available.

Native partitions always; TimescaleDB when a server with the extension is
named (see conftest.py). What a caller may rely on whatever the backend:

* a raw SQL ``INSERT`` into every time-series table lands, years in the past
  or the future of anything written before, and is readable;
* writing rows far apart in time makes partitions (or chunks) only for the
  periods that hold rows;
* ``maintain`` leaves every row where a query finds it, and in its own
  partition;
* policies apply; size and coverage report what was written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.services.ops import Ops
from marketdb.store import timeseries
from marketdb.store.schema import TIMESERIES_TABLES

UTC = dt.UTC
#: Far in the past, now-ish, far in the future: no partition exists for any of them.
WHEN = (
    dt.datetime(1996, 2, 29, 15, 30, tzinfo=UTC),
    dt.datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
    dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
)

#: One raw INSERT per time-series table (psql style: literal SQL, no marketdb code).
RAW_INSERTS: dict[str, str] = {
    "trades": "INSERT INTO trades (instrument_id, ts, price, size) VALUES (:iid, :ts, 101.5, 10)",
    "quotes": "INSERT INTO quotes (instrument_id, ts, bid, ask) VALUES (:iid, :ts, 101.0, 101.5)",
    "candles": "INSERT INTO candles (instrument_id, interval, ts, source, open, high, low, close, volume)"
    " VALUES (:iid, '1d', :ts, 'vendor', 100, 102, 99, 101.5, 1000)",
    "order_book_snapshots": "INSERT INTO order_book_snapshots (instrument_id, ts, bid_prices, bid_sizes,"
    " ask_prices, ask_sizes) VALUES (:iid, :ts, '{101.0}', '{5}', '{101.5}', '{7}')",
    "options_chains": "INSERT INTO options_chains (underlying_id, ts, expiration, strike, option_right)"
    " VALUES (:iid, :ts, DATE '2050-01-21', 101.5, 'call')",
}


def _instrument(db: marketdb.MarketDB, symbol: str = "AAPL") -> int:
    with db.transaction() as conn:
        return int(
            conn.execute(
                sa.text("INSERT INTO instruments (symbol, asset_class) VALUES (:s, 'stock') RETURNING id"),
                {"s": symbol},
            ).scalar_one()
        )


def _backend(db: marketdb.MarketDB) -> timeseries.TimeseriesBackend:
    with db.transaction() as conn:
        return timeseries.backend_for(conn)


def _stored(db: marketdb.MarketDB, table: str) -> list[tuple[Any, ...]]:
    with db.transaction() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY ts")).all()]


def _where(db: marketdb.MarketDB, table: str) -> dict[dt.datetime, str]:
    """ts -> the physical table (partition or chunk) holding the row (bars derived by maintain aside)."""
    only = " WHERE source = 'vendor'" if table == "candles" else ""
    with db.transaction() as conn:
        rows = conn.execute(sa.text(f"SELECT ts, tableoid::regclass::text FROM {table}{only}")).all()
    return {r[0]: r[1] for r in rows}


def test_backend_is_the_one_the_schema_was_made_with(backend_db: marketdb.MarketDB) -> None:
    backend = _backend(backend_db)
    assert isinstance(backend, timeseries.TimeseriesBackend)
    assert backend_db.status()["timeseries_backend"] == backend.name
    query = (
        "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = ANY(:t)"
        if backend.self_managed
        else "SELECT count(*) FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
        "WHERE c.relname = ANY(:t) AND pt.partdefid <> 0"  # range-partitioned, with a default partition
    )
    with backend_db.transaction() as conn:
        n = conn.execute(sa.text(query), {"t": list(TIMESERIES_TABLES)}).scalar_one()
    assert n == len(TIMESERIES_TABLES)


@pytest.mark.parametrize("table", TIMESERIES_TABLES)
def test_raw_sql_insert_lands_years_from_any_partition(backend_db: marketdb.MarketDB, table: str) -> None:
    iid = _instrument(backend_db)
    for ts in WHEN:
        with backend_db.transaction() as conn:  # one transaction per row, as psql autocommit does
            conn.execute(sa.text(RAW_INSERTS[table]), {"iid": iid, "ts": ts})
    before = _stored(backend_db, table)
    assert len(before) == 3
    assert sorted(_where(backend_db, table)) == list(WHEN)

    report = Ops(backend_db).maintain(now=WHEN[1])
    assert report.ok, report.errors
    assert _stored(backend_db, table) == before  # nothing lost, nothing changed
    holders = _where(backend_db, table)
    assert not any(name.endswith("_default") for name in holders.values()), holders
    assert len(set(holders.values())) == 3  # each row in the partition/chunk of its own period
    with backend_db.transaction() as conn:
        created, moved = _backend(backend_db).settle(conn, table)
    assert (created, moved) == ([], 0)  # settled: a second pass has nothing to do


def test_rows_nine_years_apart_make_two_partitions_not_thousands(backend_db: marketdb.MarketDB) -> None:
    backend_db.ingest.write_instruments([{"symbol": "AAPL"}])
    frame = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL"],
            "ts": [pd.Timestamp("2015-01-05T15:00:00Z"), pd.Timestamp("2024-01-05T15:00:00Z")],
            "price": [100.0, 200.0],
            "size": [1.0, 2.0],
        }
    )
    res = backend_db.ingest.write_ticks(frame)
    assert res.inserted == 2
    with backend_db.transaction() as conn:
        size = _backend(backend_db).size(conn, "trades")
        n = conn.execute(sa.text("SELECT count(*) FROM trades")).scalar_one()
    assert n == 2
    extra = 0 if _backend(backend_db).self_managed else 1  # native: plus the (empty) default partition
    assert size.partitions == 2 + extra
    assert size.oldest == dt.datetime(2015, 1, 5, 15, tzinfo=UTC)
    assert size.newest == dt.datetime(2024, 1, 5, 15, tzinfo=UTC)
    assert size.total_bytes > 0


def test_ensure_partitions_for_only_the_periods_with_rows(backend_db: marketdb.MarketDB) -> None:
    backend = _backend(backend_db)
    stamps = [dt.datetime(2001, 5, 5, 1, tzinfo=UTC), dt.datetime(2001, 5, 5, 23, tzinfo=UTC),
              dt.datetime(2030, 7, 1, tzinfo=UTC)]  # fmt: skip
    with backend_db.transaction() as conn:
        created = backend.ensure_partitions_for(conn, "trades", stamps)
        candles = backend.ensure_partitions_for(conn, "candles", stamps)
        again = backend.ensure_partitions_for(conn, "trades", stamps)
    if backend.self_managed:
        assert created == candles == again == []
    else:
        assert created == ["trades_p20010505", "trades_p20300701"]
        assert candles == ["candles_p20010501", "candles_p20300701"]
        assert again == []


def test_partitions_ahead_and_dry_run_agree(backend_db: marketdb.MarketDB) -> None:
    backend = _backend(backend_db)
    start, end = dt.date(2024, 3, 10), dt.date(2024, 3, 12)
    with backend_db.transaction() as conn:
        planned = backend.missing_partitions(conn, "quotes", start, end)
        made = backend.ensure_partitions(conn, "quotes", start, end)
        left = backend.missing_partitions(conn, "quotes", start, end)
    assert planned == made
    assert left == []
    assert made == (
        [] if backend.self_managed else ["quotes_p20240310", "quotes_p20240311", "quotes_p20240312"]
    )


def test_retention_by_partition(backend_db: marketdb.MarketDB) -> None:
    backend = _backend(backend_db)
    iid = _instrument(backend_db)
    with backend_db.transaction() as conn:
        for ts in WHEN[:2]:
            conn.execute(sa.text(RAW_INSERTS["trades"]), {"iid": iid, "ts": ts})
    Ops(backend_db).maintain(now=WHEN[1])
    cutoff = dt.datetime(2000, 1, 1, tzinfo=UTC)
    with backend_db.transaction() as conn:
        old = backend.expired_partitions(conn, "trades", cutoff)
        backend.drop_partitions(conn, "trades", old)
    if backend.self_managed:
        assert old == []  # TimescaleDB's retention job does it
        return
    assert old == ["trades_p19960229"]
    assert [r[1] for r in _stored(backend_db, "trades")] == [WHEN[1]]
    with pytest.raises(marketdb.InvalidInput), backend_db.transaction() as conn:
        backend.drop_partitions(conn, "trades", ["trades_default"])


def test_policies_apply_on_the_backend(backend_db: marketdb.MarketDB) -> None:
    backend = _backend(backend_db)
    ops = Ops(backend_db)
    ops.set_policy("trades", retain_for="30d", compress_after="14d")
    if backend.self_managed:
        with backend_db.transaction() as conn:
            jobs = set(
                conn.execute(
                    sa.text(
                        "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'"
                    )
                ).scalars()
            )
        assert jobs == {"policy_compression", "policy_retention"}
    iid = _instrument(backend_db)
    with backend_db.transaction() as conn:
        conn.execute(sa.text(RAW_INSERTS["quotes"]), {"iid": iid, "ts": WHEN[1]})
    Ops(backend_db).maintain(now=WHEN[1])
    if backend.self_managed:
        assert ops.set_policy("quotes", partition_interval="7 days") is not None
    else:
        with pytest.raises(marketdb.Conflict, match="overlap"):
            ops.set_policy("quotes", partition_interval="7 days")


def test_psql_inserts_into_every_time_series_table(backend_db: marketdb.MarketDB) -> None:
    """The acceptance of issue 13 item 3, literally: psql, a fresh database, years apart."""
    import subprocess

    from marketdb.services.ops.backup import find_tool

    psql = find_tool("psql", min_major=14, prefer_wheel=True)
    iid = _instrument(backend_db)
    script = []
    for stmt in RAW_INSERTS.values():
        for ts in WHEN:
            script.append(stmt.replace(":iid", str(iid)).replace(":ts", f"'{ts.isoformat()}'") + ";")
    proc = subprocess.run(
        [str(psql.path), "--no-password", "-v", "ON_ERROR_STOP=1", f"--dbname={backend_db.url}"],
        input="\n".join(script),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("INSERT 0 1") == len(RAW_INSERTS) * len(WHEN)
    assert Ops(backend_db).maintain(now=WHEN[1]).ok
    for table in TIMESERIES_TABLES:
        assert sorted(_where(backend_db, table)) == list(WHEN), table
