"""Native partitions: the default partition (revision 0009) and partitions per period with rows."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.store import timeseries
from marketdb.store.migrate import check_drift

UTC = dt.UTC


@pytest.mark.parametrize(
    ("interval", "stamps", "expected"),
    [
        # two ticks nine years apart: two partitions, not 3,288
        ("1 day", ["2015-01-05T15:00", "2024-01-05T15:00"], ["2015-01-05", "2024-01-05"]),
        ("1 day", ["2024-01-05T00:00", "2024-01-05T23:59:59.999999"], ["2024-01-05"]),
        (
            "1 month",
            ["2015-01-31T23:00", "2024-12-01T00:00", "2024-12-31T00:00"],
            ["2015-01-01", "2024-12-01"],
        ),
        # 7-day partitions are aligned to Mondays (1970-01-05)
        ("7 days", ["2024-03-10T12:00", "2024-03-11T00:00"], ["2024-03-04", "2024-03-11"]),
        ("1 day", ["1969-12-31T23:00", "1970-01-01T00:00"], ["1969-12-31", "1970-01-01"]),
    ],
)
def test_period_bounds_are_only_the_periods_with_rows(
    interval: str, stamps: list[str], expected: list[str]
) -> None:
    values = pa.array(
        [dt.datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps], pa.timestamp("us", "UTC")
    )
    bounds = timeseries.period_bounds(interval, values)
    assert [lo.date().isoformat() for lo, _ in bounds] == expected
    # the same as partition_bounds would give for each row on its own
    for lo, hi in bounds:
        assert (lo, hi) == next(timeseries.partition_bounds(interval, lo, lo))


def test_period_bounds_accept_dates_and_skip_nulls() -> None:
    values = pa.array([dt.date(2024, 1, 2), None, dt.date(2024, 1, 2)], pa.date32())
    assert timeseries.period_bounds("1 day", values) == [
        (dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC))
    ]
    with pytest.raises(marketdb.InvalidInput, match="timezone-aware"):
        timeseries.period_bounds("1 day", pa.array([dt.datetime(2024, 1, 2)], pa.timestamp("us")))


def _native(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        if timeseries.backend_for(conn).self_managed:
            pytest.skip("native partitioning only")


def test_downgrade_moves_parked_rows_into_partitions_and_upgrade_restores(db: marketdb.MarketDB) -> None:
    _native(db)
    with db.transaction() as conn:
        iid = conn.execute(
            sa.text("INSERT INTO instruments (symbol, asset_class) VALUES ('AAPL', 'stock') RETURNING id")
        ).scalar_one()
        for ts in ("1990-06-01 10:00Z", "2077-06-01 10:00Z"):
            conn.execute(
                sa.text("INSERT INTO trades (instrument_id, ts, price) VALUES (:i, :ts, 1.5)"),
                {"i": iid, "ts": ts},
            )
        parked = conn.execute(sa.text("SELECT count(*) FROM trades_default")).scalar_one()
    assert parked == 2
    db.downgrade("0003")
    try:
        with db.transaction() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('trades_default')")).scalar() is None
            where = (
                conn.execute(sa.text("SELECT tableoid::regclass::text FROM trades ORDER BY ts"))
                .scalars()
                .all()
            )
        assert where == ["trades_p19900601", "trades_p20770601"]
    finally:
        db.upgrade()
    assert check_drift(db.engine) == []
    with db.transaction() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM trades")).scalar_one()
        default = conn.execute(sa.text("SELECT to_regclass('trades_default')::text")).scalar()
    assert (n, default) == (2, "trades_default")


def test_settle_keeps_every_row_and_every_value(db: marketdb.MarketDB) -> None:
    _native(db)
    with db.transaction() as conn:
        iid = conn.execute(
            sa.text("INSERT INTO instruments (symbol, asset_class) VALUES ('AAPL', 'stock') RETURNING id")
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO trades (instrument_id, ts, ts_nanos, seq, price, size, side, exchange) "
                "SELECT :i, TIMESTAMPTZ '2003-03-03 10:00Z' + g * INTERVAL '7 hours', g % 1000, g, "
                "g * 0.5, g, "
                "CASE WHEN g % 2 = 0 THEN 1 ELSE -1 END, 'XNAS' FROM generate_series(0, 199) g"
            ),
            {"i": iid},
        )
        before = conn.execute(sa.text("SELECT t::text FROM trades t ORDER BY ts, seq")).scalars().all()
        created, moved = timeseries.backend_for(conn).settle(conn, "trades")
        after = conn.execute(sa.text("SELECT t::text FROM trades t ORDER BY ts, seq")).scalars().all()
        left = conn.execute(sa.text("SELECT count(*) FROM trades_default")).scalar_one()
    assert moved == 200
    assert len(created) == len(
        {(dt.datetime(2003, 3, 3, 10) + k * dt.timedelta(hours=7)).date() for k in range(200)}
    )
    assert after == before
    assert left == 0
