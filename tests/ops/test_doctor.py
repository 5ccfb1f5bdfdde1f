"""doctor: a healthy fresh database, and deliberately broken ones."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

import marketdb
from marketdb.services.ops import Check, DoctorReport, Ops, diagnose
from marketdb.store import timeseries
from tests import fix_db


def _only(report: DoctorReport, name: str) -> Check:
    (check,) = report.by_name(name)
    return check


def _native(db: marketdb.MarketDB) -> bool:
    with db.transaction() as conn:
        return timeseries.current_backend(conn) == "native"


def test_a_fresh_database_is_healthy(db: marketdb.MarketDB) -> None:
    report = Ops(db).doctor()
    assert report.ok, report.failures
    assert _only(report, "postgresql").status == "ok"
    assert _only(report, "schema").status == "ok"
    assert _only(report, "drift").status == "ok"
    assert _only(report, "audit log").status == "ok"
    assert [c.status for c in report.by_name("redis")] == ["info"]  # not configured: optional
    sections = [c.section for c in report.checks]
    assert sections == sorted(sections, key=["configured", "reachable", "health"].index)


def test_missing_partitions_for_today_warn_until_maintain_runs(db: marketdb.MarketDB) -> None:
    if not _native(db):
        pytest.skip("native partitioning only")
    now = dt.datetime.now(dt.UTC)
    before = _only(Ops(db).doctor(now=now), "partitions")
    assert before.status == "warn"
    assert "marketdb maintain" in (before.hint or "")
    assert Ops(db).maintain(now=now).ok
    assert _only(Ops(db).doctor(now=now), "partitions").status == "ok"


def test_a_downgraded_schema_is_flagged_with_the_fix(db: marketdb.MarketDB) -> None:
    db.downgrade("0001")
    report = Ops(db).doctor()
    assert not report.ok
    schema = _only(report, "schema")
    assert schema.status == "fail"
    assert "0001" in schema.detail
    assert "marketdb db upgrade" in (schema.hint or "")


def test_drift_a_default_partition_and_a_disabled_trigger_are_flagged(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        conn.execute(sa.text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
        conn.execute(sa.text("CREATE INDEX ix_by_hand ON instruments (name)"))
        if _native(db):  # a raw insert outside every partition waits in the default partition
            iid = conn.execute(
                sa.text("INSERT INTO instruments (symbol, asset_class) VALUES ('ZZZ', 'stock') RETURNING id")
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO trades (instrument_id, ts, price) VALUES (:i, '1999-01-04 10:00+00', 1)"
                ),
                {"i": iid},
            )
    report = Ops(db).doctor()
    assert not report.ok
    assert _only(report, "drift").status == "fail"
    assert "ix_by_hand" in _only(report, "drift").detail
    audit = _only(report, "audit log")
    assert audit.status == "fail"
    assert "audit_logs_append_only" in audit.detail
    if _native(db):
        default = _only(report, "default partitions")
        assert default.status == "warn"
        assert "1 in trades" in default.detail
        assert "marketdb maintain" in (default.hint or "")


def test_unreachable_redis_and_postgres_are_failures_not_exceptions(db: marketdb.MarketDB) -> None:
    settings = db.settings.model_copy(update={"redis_url": "redis://:hunter2@127.0.0.1:1/0"})
    report = diagnose(settings, db)
    configured, reachable = report.by_name("redis")
    assert configured.status == "ok"
    assert "127.0.0.1:1" in configured.detail
    assert reachable.status == "fail"
    assert "cannot reach Redis" in reachable.detail
    assert not report.ok
    assert all("hunter2" not in c.detail for c in report.checks)

    nowhere = marketdb.Settings.from_env(
        database_url="postgresql://u:pw-secret@127.0.0.1:1/none", home=db.settings.home
    )
    down = diagnose(nowhere)
    pg = _only(down, "postgresql")
    assert pg.status == "fail"
    assert "cannot reach" in pg.detail
    assert all("pw-secret" not in (c.detail + (c.hint or "")) for c in down.checks)


def test_master_keys_are_reported_by_id_never_by_value(db: marketdb.MarketDB) -> None:
    material = base64.b64encode(bytes(range(32))).decode()
    settings = db.settings.model_copy(update={"master_keys": SecretStr(f"k2024:{material}")})
    report = diagnose(settings, db)
    keys = _only(report, "master keys")
    assert keys.status == "ok"
    assert "k2024" in keys.detail
    assert all(material not in (c.detail + (c.hint or "")) for c in report.checks)


def test_leftover_verify_databases_are_a_warning(db: marketdb.MarketDB, pg_server: fix_db.TestServer) -> None:
    name = "marketdb_verify_leftover"
    pg_server.create_database(name)
    try:
        report = Ops(db).doctor()
    finally:
        pg_server.drop_database(name)
    check = _only(report, "scratch databases")
    assert check.status == "warn"
    assert name in check.detail
    assert report.ok
