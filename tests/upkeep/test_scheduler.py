"""The scheduler without cron: one runner across schedulers, every run recorded and shown by doctor,
and retention that never drops trades whose bars are not stored and verified."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa

import marketdb
from marketdb.services.ops import MaintainContext, Ops
from marketdb.services.ops.scheduler import Scheduler, latest_runs
from marketdb.store import timeseries
from marketdb.store.schema import tables as t

UTC = dt.UTC


def test_two_schedulers_at_once_one_works_the_other_waits(db: marketdb.MarketDB) -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(ctx: MaintainContext) -> str:
        calls.append("slow")
        entered.set()
        assert release.wait(60)
        return "slow step done"

    first_ops, second_ops = Ops(db), Ops(db)
    first_ops.hooks = [slow]
    second_ops.hooks = [slow]
    first = Scheduler(first_ops, every=dt.timedelta(minutes=5), name="runner-a", days_ahead=1)
    second = Scheduler(second_ops, every=dt.timedelta(minutes=5), name="runner-b", days_ahead=1)
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("a", first.run_once()))
    worker.start()
    try:
        assert entered.wait(120)
        waiting = second.run_once()  # while runner-a holds the lock
    finally:
        release.set()
        worker.join(120)
    done = results["a"]
    assert calls == ["slow"]  # the work was done once
    assert (done.runner, done.status) == ("runner-a", "ok")
    assert (waiting.runner, waiting.status) == ("runner-b", "skipped")
    assert "another runner" in (waiting.error or "")
    assert any(s.get("action") == "slow" and s.get("detail") == "slow step done" for s in done.steps)
    assert done.seconds is not None
    assert done.seconds >= 0
    # Next tick, runner-b gets the lock and works.
    after = second.run_once()
    assert after.status == "ok"
    with db.transaction() as conn:
        log = latest_runs(conn, 10)
    assert [(r.runner, r.status) for r in log] == [
        ("runner-b", "ok"),
        ("runner-b", "skipped"),
        ("runner-a", "ok"),
    ]
    shown = [c for c in db.ops.doctor().checks if c.name == "maintenance runs"]
    assert len(shown) == 3
    assert "runner-b: skipped" in shown[1].detail
    assert all(c.status == "ok" for c in shown)


def test_a_failed_run_is_recorded_and_the_background_runner_goes_on(db: marketdb.MarketDB) -> None:
    ran = threading.Event()
    count = {"n": 0}

    def boom(ctx: MaintainContext) -> str:
        count["n"] += 1
        if count["n"] >= 2:
            ran.set()
        raise RuntimeError("disk on fire")

    ops = Ops(db)
    ops.hooks = [boom]
    sched = Scheduler(ops, every=dt.timedelta(milliseconds=50), name="bg", days_ahead=0)
    sched.start()
    try:
        assert ran.wait(120)
    finally:
        sched.stop(120)
    with db.transaction() as conn:
        runs = latest_runs(conn, 10)
    assert len(runs) >= 2
    assert {r.status for r in runs} == {"failed"}
    assert "disk on fire" in (runs[0].error or "")
    doctor = [c for c in db.ops.doctor().checks if c.name == "maintenance runs"]
    assert doctor[0].status == "fail"


def test_retention_stores_and_verifies_bars_before_dropping_trades(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        if timeseries.current_backend(conn) != "native":
            return  # TimescaleDB runs its own retention
        timeseries.ensure_partitions(conn, "trades", dt.date(2024, 1, 2), dt.date(2024, 1, 2))
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="RAW", calendar="24/7").returning(t.instruments.c.id)
        ).scalar_one()
        # written by plain SQL: no bars yet
        conn.execute(
            sa.insert(t.trades),
            [
                {
                    "instrument_id": iid,
                    "ts": dt.datetime(2024, 1, 2, 10, m, tzinfo=UTC),
                    "price": 10.0 + m,
                    "size": 2.0,
                }
                for m in range(3)
            ],
        )
    ops = Ops(db)
    ops.hooks = []
    ops.set_policy("trades", retain_for="30d")
    report = ops.maintain(now=dt.datetime(2024, 3, 1, tzinfo=UTC), days_ahead=0)
    assert report.ok, report.errors
    assert "trades_p20240102" in report.dropped_partitions
    c = t.candles
    with db.transaction() as conn:
        daily = conn.execute(
            sa.select(c.c.open, c.c.high, c.c.low, c.c.close, c.c.volume, c.c.trade_count).where(
                c.c.instrument_id == iid, c.c.interval == "1d", c.c.source == "trades"
            )
        ).one()
        left = conn.execute(sa.select(sa.func.count()).select_from(t.trades)).scalar_one()
    assert tuple(daily) == (10.0, 12.0, 10.0, 12.0, 6.0, 3)  # the bars were stored before the drop
    assert left == 0
