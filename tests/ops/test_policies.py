"""Policies: list, set, validate, audit; TimescaleDB jobs when that backend runs."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput
from marketdb.services.ops import Ops, PolicyInfo, format_interval, parse_interval
from marketdb.services.ops.policies import UNSET
from marketdb.store import timeseries
from marketdb.store.schema import TIMESERIES_TABLES
from marketdb.store.schema import tables as t

DAY = dt.timedelta(days=1)


def _audit(db: marketdb.MarketDB) -> list[sa.Row[tuple[object, ...]]]:
    a = t.audit_logs
    with db.transaction() as conn:
        return list(conn.execute(sa.select(a).where(a.c.resource_type == "policy").order_by(a.c.id)))


def _policy(ops: Ops, table: str) -> PolicyInfo:
    return next(p for p in ops.policies() if p.table == table)


def test_defaults_list_the_timeseries_tables_and_no_row_retention(db: marketdb.MarketDB) -> None:
    pols = Ops(db).policies()
    assert [p.table for p in pols] == sorted(TIMESERIES_TABLES)
    assert all(p.kind == "timeseries" and p.retain_for is None for p in pols)
    assert _policy(Ops(db), "candles").partition_interval == "1 month"


def test_set_timeseries_retention_and_compression_round_trip_with_audit(db: marketdb.MarketDB) -> None:
    ops = Ops(db)
    new = ops.set_policy("trades", retain_for="30d", compress_after="off")
    assert new is not None
    assert new.retain_for == 30 * DAY
    assert new.compress_after is None
    assert _policy(ops, "trades") == new
    (row,) = _audit(db)
    assert (row.action, row.resource_id, row.actor) == ("policy.set", "trades", "system")
    assert row.old_value["retain_for"] is None
    assert row.old_value["compress_after"] == "7 days"
    assert row.new_value["retain_for"] == "30 days"
    assert row.new_value["compress_after"] is None
    # Unset arguments stay; None turns retention off again.
    again = ops.set_policy("trades", retain_for=None)
    assert again is not None
    assert again.retain_for is None
    assert again.compress_after is None


def test_setting_the_same_value_writes_no_audit_row(db: marketdb.MarketDB) -> None:
    ops = Ops(db)
    ops.set_policy("quotes", retain_for="1y")
    ops.set_policy("quotes", retain_for="365 days")
    assert len(_audit(db)) == 1


def test_row_retention_for_ordinary_tables(db: marketdb.MarketDB) -> None:
    ops = Ops(db)
    p = ops.set_policy("order_history", retain_for="5y")
    assert p is not None
    assert (p.kind, p.time_column, p.retain_for) == ("rows", "ts", 5 * 365 * DAY)
    q = ops.set_policy("portfolio_snapshots", retain_for="10 years")
    assert q is not None
    assert q.retain_for == 3650 * DAY
    r = ops.set_policy("orders", retain_for="5y", time_column="executed_at")
    assert r is not None
    assert r.time_column == "executed_at"
    rows = {p.table: p for p in ops.policies() if p.kind == "rows"}
    assert set(rows) == {"order_history", "portfolio_snapshots", "orders"}
    assert ops.set_policy("order_history", retain_for="off") is None
    assert {p.table for p in ops.policies() if p.kind == "rows"} == {"portfolio_snapshots", "orders"}
    actions = [(r.action, r.resource_id) for r in _audit(db)]
    assert actions == [
        ("policy.set", "order_history"),
        ("policy.set", "portfolio_snapshots"),
        ("policy.set", "orders"),
        ("policy.remove", "order_history"),
    ]


@pytest.mark.parametrize(
    ("table", "kwargs", "match"),
    [
        ("nope", {"retain_for": "1y"}, "unknown table"),
        ("audit_logs", {"retain_for": "1y"}, "append-only"),
        ("trades", {"retain_for": "10m"}, "cannot read"),
        ("trades", {"retain_for": "12h"}, "out of range"),
        ("trades", {"retain_for": "200y"}, "out of range"),
        ("trades", {"compress_after": "30min"}, "out of range"),
        ("trades", {"partition_interval": "2mo"}, "unsupported partition interval"),
        ("trades", {"partition_interval": "12 hours"}, "unsupported partition interval"),
        ("trades", {"time_column": "ts", "retain_for": "1y"}, "ordinary tables only"),
        ("trades", {}, "nothing to change"),
        ("signals", {"compress_after": "7d"}, "ordinary table"),
        ("signals", {"retain_for": "5y", "time_column": "strength"}, "not a timestamptz column"),
        ("signals", {"retain_for": "5y", "time_column": "nope"}, "not a timestamptz column"),
    ],
)
def test_validation(db: marketdb.MarketDB, table: str, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        Ops(db).set_policy(table, **kwargs)
    assert _audit(db) == []


def test_partition_interval_changes_only_before_partitions_exist(db: marketdb.MarketDB) -> None:
    ops = Ops(db)
    if _policy(ops, "quotes").backend != "native":
        pytest.skip("native partitioning only")
    p = ops.set_policy("quotes", partition_interval="7d")
    assert p is not None
    assert p.partition_interval == "7 days"
    with db.transaction() as conn:
        timeseries.ensure_partitions(conn, "quotes", dt.date(2024, 1, 3), dt.date(2024, 1, 3))
    with pytest.raises(Conflict, match="would overlap"):
        ops.set_policy("quotes", partition_interval="1 day")
    assert _policy(ops, "quotes").partition_interval == "7 days"


def test_intervals_parse_and_format() -> None:
    assert parse_interval("30d") == 30 * DAY
    assert parse_interval("2 weeks") == 14 * DAY
    assert parse_interval("6mo") == 180 * DAY
    assert parse_interval("12h") == dt.timedelta(hours=12)
    assert format_interval(5 * 365 * DAY) == "5 years"
    assert format_interval(DAY) == "1 day"
    assert format_interval(dt.timedelta(hours=12)) == "12 hours"
    with pytest.raises(InvalidInput, match="ambiguous"):
        parse_interval("5m")
    assert UNSET is not None


def test_timescaledb_jobs_follow_the_policy(db: marketdb.MarketDB) -> None:
    ops = Ops(db)
    if _policy(ops, "trades").backend != "timescaledb":
        pytest.skip("needs DATABASE_URL pointing at a server with the TimescaleDB extension")
    ops.set_policy("trades", retain_for="30d", compress_after="3d")

    def jobs() -> set[str]:
        with db.transaction() as conn:
            return {
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'"
                    )
                )
            }

    assert {"policy_retention", "policy_compression"} <= jobs()
    ops.set_policy("trades", retain_for="off", compress_after="off")
    assert not {"policy_retention", "policy_compression"} & jobs()
