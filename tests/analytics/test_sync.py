"""Incremental sync to in-process ClickHouse: 1M ticks, a late batch, a correction, retention, deletes.

After each step ``verify`` (row counts and per-day digests against
PostgreSQL) must be clean, and only the days that changed are re-sent.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

import marketdb
from marketdb.services.analytics import Analytics
from marketdb.store import timeseries
from marketdb.testing import synthetic_trades

SYMBOLS = ["AAA", "BBB"]


def _pg_count(db: marketdb.MarketDB, table: str) -> int:
    with db.raw() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _ch_count(an: Analytics, table: str, where: str = "1") -> int:
    return int(an.ch.rows(f"SELECT count() FROM `{an.database}`.`{table}` FINAL WHERE {where}")[0][0])


def _assert_clean(an: Analytics) -> None:
    report = an.verify()
    assert report.ok, (report.summary(), report.diffs[:5])


def test_sync_million_ticks_late_batch_correction_retention(
    db: marketdb.MarketDB, analytics: Analytics
) -> None:
    trades = synthetic_trades(SYMBOLS, start="2024-03-04", days=5, trades_per_day=100_000, seed=7)
    assert len(trades) == 1_000_000
    db.ingest.write_ticks(trades, auto_register=True)
    assert _pg_count(db, "trades") == 1_000_000

    seen: list[int] = []
    first = analytics.sync(batch_rows=200_000, progress=lambda p: seen.append(p.rows_sent))
    assert first.tables["trades"] == 1_000_000
    assert seen
    assert max(seen) <= 500_000
    assert _ch_count(analytics, "trades") == 1_000_000
    assert _ch_count(analytics, "daily_ohlcv") == _pg_count(db, "candles WHERE interval = '1d'")
    _assert_clean(analytics)

    # Nothing changed: nothing is sent, and re-running after a "crash" is harmless.
    again = analytics.sync()
    assert again.rows_sent == 0
    assert again.instruments_checked == 0

    # Late data: a few trades inside an existing day, plus one more day.
    day3 = pd.Timestamp("2024-03-06 15:00", tz="UTC")
    late = pd.DataFrame(
        {
            "symbol": ["AAA"] * 3,
            "ts": [day3 + pd.Timedelta(nanoseconds=n * 7) for n in (1, 2, 3)],
            "price": [101.0, 101.5, 102.0],
            "size": [100.0, 200.0, 300.0],
            # Corrections replace a stored trade by its provider trade id (without one, a
            # different price is a different trade: docs/ingest.md, trade identity).
            "trade_id": ["L1", "L2", "L3"],
        }
    )
    extra = synthetic_trades(["AAA"], start="2024-03-11", days=1, trades_per_day=5_000, seed=9)
    db.ingest.write_ticks(pd.concat([late, extra], ignore_index=True), auto_register=True)
    report = analytics.sync()
    assert report.tables["trades"] == 5_000 + 100_003  # the new day and the whole touched day
    assert report.days_sent >= 2
    assert _ch_count(analytics, "trades") == 1_005_003
    _assert_clean(analytics)

    # A correction: stored trades replaced with another price.
    fixed = late.assign(price=[99.0, 99.5, 98.0])
    db.ingest.write_ticks(fixed, on_conflict="update")
    analytics.sync()
    got = analytics.ch.rows(
        f"SELECT price FROM `{analytics.database}`.trades FINAL "
        "WHERE toDate(ts) = '2024-03-06' AND toHour(ts) = 15 AND toMinute(ts) = 0 "
        "AND toUnixTimestamp64Nano(ts) % 1000000000 IN (7, 14, 21) ORDER BY ts"
    )
    assert [r[0] for r in got] == [99.0, 99.5, 98.0]
    assert _ch_count(analytics, "trades") == 1_005_003
    _assert_clean(analytics)

    # Retention: PostgreSQL drops the oldest day partitions; ClickHouse follows.
    with db.transaction() as conn:
        dropped = timeseries.drop_partitions_before(
            conn.connection.driver_connection, "trades", dt.datetime(2024, 3, 6, tzinfo=dt.UTC)
        )
    assert dropped
    left = _pg_count(db, "trades")
    assert left < 1_005_003
    report = analytics.sync()
    assert "trades" in report.retention_cutoffs
    assert _ch_count(analytics, "trades") == left
    _assert_clean(analytics)

    # A deleted instrument disappears from ClickHouse too.
    with db.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM instruments WHERE symbol = 'BBB'")
    report = analytics.sync()
    assert report.instruments_deleted >= 1
    assert _ch_count(analytics, "trades") == _pg_count(db, "trades")
    _assert_clean(analytics)


def test_verify_finds_damage_and_full_sync_repairs_it(db: marketdb.MarketDB, analytics: Analytics) -> None:
    db.ingest.write_ticks(
        synthetic_trades(["CCC"], start="2024-03-04", days=3, trades_per_day=2_000), auto_register=True
    )
    analytics.sync()
    _assert_clean(analytics)
    analytics.ch.command(
        f"DELETE FROM `{analytics.database}`.trades WHERE toDate(ts) = '2024-03-05'",
        settings={"lightweight_deletes_sync": 2},
    )
    analytics.ch.command(
        f"ALTER TABLE `{analytics.database}`.candles UPDATE close = close + 1 WHERE 1"
        " SETTINGS mutations_sync = 2"
    )
    report = analytics.verify()
    assert not report.ok
    assert {(d.table, d.day) for d in report.diffs} >= {("trades", dt.date(2024, 3, 5))}
    assert any(d.table == "candles" for d in report.diffs)
    assert analytics.sync().rows_sent == 0  # versions did not move: the plain sync trusts its watermark
    repaired = analytics.sync(full=True)
    assert repaired.tables["trades"] == 2_000  # exactly the damaged day
    _assert_clean(analytics)


def test_status_reports_how_far_the_tier_is(db: marketdb.MarketDB, analytics: Analytics) -> None:
    db.ingest.write_ticks(
        synthetic_trades(["DDD"], start="2024-03-04", days=2, trades_per_day=500), auto_register=True
    )
    before = {s.table: s for s in analytics.status()}
    assert before["trades"].instruments_behind == 1
    assert before["trades"].rows == 0
    analytics.sync()
    after = {s.table: s for s in analytics.status()}
    assert after["trades"].instruments_synced == 1
    assert after["trades"].instruments_behind == 0
    assert after["trades"].rows == 1_000
    assert after["trades"].last_ts is not None
    assert after["trades"].last_ts.date() == dt.date(2024, 3, 5)
    db.ingest.write_ticks(
        synthetic_trades(["DDD"], start="2024-03-06", days=1, trades_per_day=10, seed=3), auto_register=True
    )
    behind = {s.table: s for s in analytics.status()}
    assert behind["trades"].instruments_behind == 1
    assert not analytics.in_sync("trades", [1])


def test_maintain_hook_keeps_the_tier_fed(db: marketdb.MarketDB, analytics: Analytics) -> None:
    from marketdb.services.analytics import maintenance_hook
    from marketdb.services.ops import Ops

    db.__dict__["analytics"] = analytics
    db.ingest.write_ticks(
        synthetic_trades(["EEE"], start="2024-03-04", days=1, trades_per_day=300), auto_register=True
    )
    ops = Ops(db)
    planned = ops.maintain(dry_run=True, hooks=[maintenance_hook(lambda: analytics)])
    step = next(s for s in planned.steps if s.step == "hook")
    assert "trades 1 behind" in step.detail
    assert _ch_count(analytics, "trades") == 0
    done = ops.maintain(hooks=[maintenance_hook(lambda: analytics)])
    step = next(s for s in done.steps if s.step == "hook")
    assert step.status == "done"
    assert "trades 300" in step.detail
    assert _ch_count(analytics, "trades") == 300
    _assert_clean(analytics)
