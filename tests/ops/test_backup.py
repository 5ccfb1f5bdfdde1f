"""Backup -> verify -> restore with pg_dump/pg_restore on the test server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from marketdb.services.ops import Ops
from marketdb.services.ops.backup import _conninfo, find_tool, manifest_path
from marketdb.store import timeseries
from marketdb.store.schema import tables as t
from tests import fix_db

UTC = dt.UTC


@pytest.fixture
def tools(pg_server: fix_db.TestServer, db: marketdb.MarketDB) -> None:
    """Skip unless a pg_dump new enough for the server is at hand."""
    with db.engine.connect() as conn:
        major = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    try:
        find_tool("pg_dump", min_major=major, prefer_wheel=True)
        find_tool("pg_restore", min_major=major, prefer_wheel=True)
    except ConfigurationError as exc:
        pytest.skip(f"no pg_dump/pg_restore for PostgreSQL {major}: {exc.message}")


@pytest.fixture
def restored(pg_server: fix_db.TestServer) -> Iterator[str]:
    name = "marketdb_restored_test"
    pg_server.drop_database(name)
    yield name
    pg_server.drop_database(name)


def _with_data(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="AAPL").returning(t.instruments.c.id)
        ).scalar_one()
        timeseries.ensure_partitions(conn, "trades", dt.date(2024, 1, 2), dt.date(2024, 1, 3))
        conn.execute(
            sa.insert(t.trades),
            [
                {
                    "instrument_id": iid,
                    "ts": dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC) + dt.timedelta(minutes=i),
                    "price": 100.0 + i,
                    "size": 1.0,
                }
                for i in range(25)
            ],
        )
        conn.execute(
            sa.insert(t.audit_logs).values(action="test.backup", resource_type="test", actor="tester")
        )


@pytest.mark.usefixtures("tools")
def test_backup_verify_restore_round_trip(
    db: marketdb.MarketDB, pg_server: fix_db.TestServer, tmp_path: Path, restored: str
) -> None:
    _with_data(db)
    ops = Ops(db)
    archive = tmp_path / "mdb.dump"
    result = ops.backup(archive, verify=True)
    assert archive.is_file()
    assert not archive.with_name("mdb.dump.partial").exists()
    assert result.verification is not None
    assert result.verification.ok
    assert result.verification.compared_with == "manifest"
    assert result.row_counts is not None
    assert result.row_counts["trades"] == 25
    assert result.row_counts["instruments"] == 1
    manifest = json.loads(manifest_path(archive).read_text())
    assert manifest["sha256"] == result.sha256
    assert manifest["schema_revision"] == db.status()["schema_head"]
    assert "password" not in json.dumps(manifest)
    # The scratch database is gone again.
    with db.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'marketdb_verify_%'"))
        assert left.all() == []

    out = ops.restore(archive, restored)
    assert out.schema_revision == db.status()["schema_head"]
    copy = marketdb.connect(pg_server.url_for(restored), home=pg_server.home)
    try:
        with copy.transaction() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(t.trades)).scalar_one()
            prices = conn.execute(sa.select(sa.func.sum(t.trades.c.price))).scalar_one()
        assert n == 25
        assert prices == sum(100.0 + i for i in range(25))
        # The restored audit log is still append-only.
        with pytest.raises(sa.exc.IntegrityError, match="append-only"), copy.transaction() as conn:
            conn.execute(sa.delete(t.audit_logs))
    finally:
        copy.close()
    with pytest.raises(Conflict, match="already exists"):
        ops.restore(archive, restored)


@pytest.mark.usefixtures("tools")
def test_verify_detects_a_mismatch_and_a_damaged_archive(db: marketdb.MarketDB, tmp_path: Path) -> None:
    _with_data(db)
    ops = Ops(db)
    archive = tmp_path / "mdb.dump"
    ops.backup(archive, count_rows=True)
    mpath = manifest_path(archive)
    manifest = json.loads(mpath.read_text())
    manifest["row_counts"]["trades"] = 26
    mpath.write_text(json.dumps(manifest))
    check = ops.verify_backup(archive)
    assert not check.ok
    bad = [tc for tc in check.tables if not tc.ok]
    assert [(tc.table, tc.expected, tc.restored) for tc in bad] == [("trades", 26, 25)]

    manifest["sha256"] = "0" * 64
    mpath.write_text(json.dumps(manifest))
    damaged = ops.verify_backup(archive)
    assert not damaged.ok
    assert "SHA-256" in damaged.problems[0]


@pytest.mark.usefixtures("tools")
def test_verify_without_manifest_compares_with_the_live_database(
    db: marketdb.MarketDB, tmp_path: Path
) -> None:
    _with_data(db)
    ops = Ops(db)
    archive = tmp_path / "plain.dump"
    ops.backup(archive)
    manifest_path(archive).unlink()
    check = ops.verify_backup(archive)
    assert check.ok
    assert check.compared_with == "live database"
    assert {tc.table for tc in check.tables} >= {"trades", "audit_logs", "alembic_version"}


@pytest.mark.usefixtures("tools")
def test_backup_refuses_to_overwrite_and_restore_checks_its_input(
    db: marketdb.MarketDB, tmp_path: Path
) -> None:
    ops = Ops(db)
    archive = tmp_path / "x.dump"
    archive.write_text("not an archive")
    with pytest.raises(Conflict, match="already exists"):
        ops.backup(archive)
    assert archive.read_text() == "not an archive"
    with pytest.raises(InvalidInput, match="not a readable pg_dump archive"):
        ops.restore(archive, "marketdb_never_created")
    with pytest.raises(NotFound):
        ops.restore(tmp_path / "missing.dump", "marketdb_never_created")
    with pytest.raises(InvalidInput, match="directory"):
        ops.backup(tmp_path / "no" / "such" / "dir.dump")


def test_the_password_travels_in_the_environment_not_in_argv() -> None:
    url, env = _conninfo("postgresql://trader:s3cret@db.example.org:5433/mdb?sslmode=require")
    assert "s3cret" not in url
    assert url == "host=db.example.org port=5433 user=trader dbname=mdb sslmode=require"
    assert env["PGPASSWORD"] == "s3cret"


def test_missing_tools_say_what_to_install() -> None:
    with pytest.raises(ConfigurationError, match="no pg_dump of PostgreSQL 99") as info:
        find_tool("pg_dump", min_major=99, prefer_wheel=False)
    assert "postgresql-client-99" in (info.value.hint or "")
