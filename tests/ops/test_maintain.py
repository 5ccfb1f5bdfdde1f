"""maintain: partitions ahead, both kinds of retention, dry run, hooks, the run lock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput
from marketdb.services.ops import MaintainContext, Ops
from marketdb.services.ops.maintain import partition_range
from marketdb.store import timeseries
from marketdb.store.schema import TIMESERIES_TABLES
from marketdb.store.schema import tables as t

UTC = dt.UTC
NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def native(db: marketdb.MarketDB) -> marketdb.MarketDB:
    with db.transaction() as conn:
        if timeseries.current_backend(conn) != "native":
            pytest.skip("native partitioning only")
    return db


def _partitions(db: marketdb.MarketDB, table: str) -> list[str]:
    with db.transaction() as conn:
        return [n for n, _ in timeseries.list_partitions(conn, table)]


def _count(db: marketdb.MarketDB, table: sa.Table) -> int:
    with db.transaction() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _snapshot(ts: dt.datetime) -> dict[str, object]:
    zero = Decimal(0)
    return {
        "ts": ts,
        "total_value": zero,
        "cash": zero,
        "positions_value": zero,
        "total_pnl": zero,
        "unrealized_pnl": zero,
        "realized_pnl": zero,
        "gross_exposure": zero,
        "net_exposure": zero,
        "n_positions": 0,
    }


def test_creates_partitions_ahead_and_is_idempotent(native: marketdb.MarketDB) -> None:
    report = Ops(native).maintain(now=NOW)
    assert report.ok
    trades = [f"trades_p202403{d:02d}" for d in range(10, 18)]  # today .. today + 7 days
    assert _partitions(native, "trades") == trades
    assert _partitions(native, "quotes") == [n.replace("trades", "quotes") for n in trades]
    assert _partitions(native, "candles") == ["candles_p20240301", "candles_p20240401"]  # this + next month
    assert _partitions(native, "options_chains") == ["options_chains_p20240304", "options_chains_p20240311"]
    assert sorted(report.created_partitions) == sorted(
        n for tbl in TIMESERIES_TABLES for n in _partitions(native, tbl)
    )
    again = Ops(native).maintain(now=NOW)
    assert again.ok
    assert again.created_partitions == []


def test_days_ahead_is_configurable(native: marketdb.MarketDB) -> None:
    Ops(native).maintain(now=NOW, days_ahead=1)
    assert _partitions(native, "trades") == ["trades_p20240310", "trades_p20240311"]


def test_partition_retention_drops_whole_old_partitions(native: marketdb.MarketDB) -> None:
    ops = Ops(native)
    ops.set_policy("trades", retain_for="30d")
    with native.transaction() as conn:
        timeseries.ensure_partitions(conn, "trades", dt.date(2024, 1, 1), dt.date(2024, 1, 5))
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="AAPL").returning(t.instruments.c.id)
        ).scalar_one()
        for day in (2, 5):
            conn.execute(
                sa.insert(t.trades).values(
                    instrument_id=iid, ts=dt.datetime(2024, 1, day, 10, tzinfo=UTC), price=1.0, size=1.0
                )
            )
    now = dt.datetime(2024, 2, 3, 12, tzinfo=UTC)  # cutoff 2024-01-04 12:00
    report = ops.maintain(now=now, days_ahead=0)
    assert report.ok
    assert report.dropped_partitions == ["trades_p20240101", "trades_p20240102", "trades_p20240103"]
    assert _partitions(native, "trades") == ["trades_p20240104", "trades_p20240105", "trades_p20240203"]
    assert _count(native, t.trades) == 1
    a = t.audit_logs
    with native.transaction() as conn:
        row = conn.execute(sa.select(a).where(a.c.action == "maintain.retention")).one()
    assert row.resource_id == "trades"
    assert row.new_value["dropped_partitions"] == report.dropped_partitions


def test_row_retention_deletes_old_rows_in_batches(db: marketdb.MarketDB) -> None:
    ops = Ops(db)
    ops.set_policy("portfolio_snapshots", retain_for="365d")
    old = [dt.datetime(2022, 1, d, tzinfo=UTC) for d in range(1, 6)]
    new = [dt.datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2)]
    with db.transaction() as conn:
        conn.execute(sa.insert(t.portfolio_snapshots), [_snapshot(ts) for ts in old + new])
    report = ops.maintain(now=NOW, batch_size=2)
    assert report.ok
    assert report.deleted_rows == {"portfolio_snapshots": 5}
    with db.transaction() as conn:
        left = list(conn.execute(sa.select(t.portfolio_snapshots.c.ts).order_by(t.portfolio_snapshots.c.ts)))
    assert [r[0] for r in left] == new
    a = t.audit_logs
    with db.transaction() as conn:
        row = conn.execute(sa.select(a).where(a.c.action == "maintain.retention")).one()
    assert row.new_value["deleted_rows"] == 5


def test_row_retention_keeps_rows_still_referenced(db: marketdb.MarketDB) -> None:
    """An old order that still has a fill is kept; an old order without one goes."""
    ops = Ops(db)
    ops.set_policy("orders", retain_for="1y")
    long_ago = dt.datetime(2020, 5, 1, tzinfo=UTC)
    with db.transaction() as conn:
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="MSFT").returning(t.instruments.c.id)
        ).scalar_one()
        order = {"instrument_id": iid, "side": "buy", "order_type": "market", "quantity": Decimal(1)}
        filled, lone = (
            conn.execute(
                sa.insert(t.orders).values(**order, created_at=long_ago).returning(t.orders.c.id)
            ).scalar_one()
            for _ in range(2)
        )
        conn.execute(
            sa.insert(t.executions).values(
                order_id=filled, instrument_id=iid, ts=long_ago, side="buy", quantity=1, price=10
            )
        )
    report = ops.maintain(now=NOW)
    assert report.ok
    assert report.deleted_rows == {"orders": 1}
    with db.transaction() as conn:
        ids = set(conn.execute(sa.select(t.orders.c.id)).scalars())
    assert ids == {filled}
    assert lone not in ids


def test_dry_run_changes_nothing(native: marketdb.MarketDB) -> None:
    ops = Ops(native)
    ops.set_policy("trades", retain_for="30d")
    ops.set_policy("portfolio_snapshots", retain_for="365d")
    with native.transaction() as conn:
        timeseries.ensure_partitions(conn, "trades", dt.date(2024, 1, 1), dt.date(2024, 1, 2))
        conn.execute(sa.insert(t.portfolio_snapshots), [_snapshot(dt.datetime(2020, 1, 1, tzinfo=UTC))])
    audit_before = _count(native, t.audit_logs)
    report = ops.maintain(now=NOW, dry_run=True)
    assert report.dry_run
    assert report.ok
    assert {s.status for s in report.steps} == {"planned"}
    assert "trades_p20240310" in report.created_partitions
    assert report.dropped_partitions == ["trades_p20240101", "trades_p20240102"]
    assert report.deleted_rows == {"portfolio_snapshots": 1}
    # ... and nothing happened.
    assert _partitions(native, "trades") == ["trades_p20240101", "trades_p20240102"]
    assert _partitions(native, "quotes") == []
    assert _count(native, t.portfolio_snapshots) == 1
    assert _count(native, t.audit_logs) == audit_before


def test_hooks_run_in_order_and_a_failing_one_does_not_stop_the_others(db: marketdb.MarketDB) -> None:
    seen: list[tuple[str, bool, dt.datetime]] = []

    def verify_bars(ctx: MaintainContext) -> str:
        seen.append(("verify_bars", ctx.dry_run, ctx.now))
        return "3 buckets checked"

    def broken(ctx: MaintainContext) -> None:
        raise RuntimeError("clickhouse is down")

    def sync(ctx: MaintainContext) -> None:
        seen.append(("sync", ctx.dry_run, ctx.now))

    ops = Ops(db)
    ops.hooks[:] = [verify_bars, broken, sync]  # replace the default (bars verify) hook
    report = ops.maintain(now=NOW, dry_run=True)
    assert seen == [("verify_bars", True, NOW), ("sync", True, NOW)]
    hooks = [(s.action, s.detail, s.status) for s in report.steps if s.step == "hook"]
    assert hooks == [
        ("verify_bars", "3 buckets checked", "planned"),
        ("broken", "clickhouse is down", "error"),
        ("sync", "", "planned"),
    ]
    assert not report.ok


def test_a_second_concurrent_run_is_refused(db: marketdb.MarketDB) -> None:
    with db.engine.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_lock(hashtext('marketdb.maintain'))"))
        with pytest.raises(Conflict, match="another `marketdb maintain` is running"):
            Ops(db).maintain(now=NOW)
        assert Ops(db).maintain(now=NOW, dry_run=True).ok  # a dry run only reads
        other.execute(sa.text("SELECT pg_advisory_unlock(hashtext('marketdb.maintain'))"))
    assert Ops(db).maintain(now=NOW).ok


def test_naive_now_is_rejected(db: marketdb.MarketDB) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        Ops(db).maintain(now=dt.datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        (
            "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-01-02 00:00:00+00')",
            (dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)),
        ),
        (
            "FOR VALUES FROM (MINVALUE) TO ('2024-01-02 00:00:00+00')",
            (None, dt.datetime(2024, 1, 2, tzinfo=UTC)),
        ),
        ("DEFAULT", None),
    ],
)
def test_partition_range(bound: str, expected: object) -> None:
    assert partition_range(bound) == expected


def test_default_hooks_verify_the_bars(db: marketdb.MarketDB) -> None:
    report = Ops(db).maintain(now=NOW, dry_run=True)
    hooks = [s for s in report.steps if s.step == "hook"]
    assert len(hooks) == 1
    assert hooks[0].status != "error", hooks[0].detail
