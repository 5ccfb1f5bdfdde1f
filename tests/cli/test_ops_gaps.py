"""Issue 14's operations gaps (seeds 003 and 004) and issue 10 item 8's restore name."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.services.ops import Ops
from marketdb.store import timeseries
from marketdb.store.embedded import EmbeddedServer
from marketdb.store.migrate import check_drift, current_revision, head_revision
from marketdb.store.schema import tables as t
from tests import fix_db

UTC = dt.UTC


def _trades(db: marketdb.MarketDB, days: int = 3) -> int:
    """25 trades on each of ``days`` days: one partition per day."""
    with db.transaction() as conn:
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="TICK").returning(t.instruments.c.id)
        ).scalar_one()
        start = dt.date(2024, 1, 2)
        timeseries.ensure_partitions(conn, "trades", start, start + dt.timedelta(days=days - 1))
        rows = [
            {
                "instrument_id": iid,
                "ts": dt.datetime(2024, 1, 2 + d, 14, 30, tzinfo=UTC) + dt.timedelta(minutes=i),
                "price": 100.0 + i,
                "size": 1.0,
            }
            for d in range(days)
            for i in range(25)
        ]
        conn.execute(sa.insert(t.trades), rows)
    return len(rows)


@pytest.fixture
def scratch_db(pg_server: fix_db.TestServer) -> Iterator[str]:
    names: list[str] = []

    def make(name: str) -> str:
        pg_server.drop_database(name)
        names.append(name)
        return name

    yield make  # type: ignore[misc]
    for n in names:
        pg_server.drop_database(n)


def test_seed_003_timeseries_backup_includes_partitions(db: marketdb.MarketDB, tmp_path: Path) -> None:
    """Seed 003's `pg_dump -t tick_data -t ohlc_candles` as `marketdb backup --table`: rows come along."""
    n = _trades(db)
    ops = Ops(db)
    archive = tmp_path / "timeseries.dump"
    result = ops.backup(archive, tables=["trades", "candles"], count_rows=True)
    assert result.row_counts == {"trades": n, "candles": 0}
    from marketdb.services.ops.backup import find_tool

    listing = subprocess.run(
        [str(find_tool("pg_restore", min_major=0, prefer_wheel=True).path), "--list", str(archive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = [ln for ln in listing.splitlines() if "TABLE DATA public trades_p" in ln]
    assert len(data) == 3  # one per day partition: the rows are in the archive
    assert "TABLE DATA public orders" not in listing  # only what was asked for
    with pytest.raises(marketdb.NotFound, match="no table nope"):
        ops.backup(tmp_path / "x.dump", tables=["nope"])
    with pytest.raises(marketdb.InvalidInput, match="--data-only"):
        ops.backup(tmp_path / "y.dump", tables=["trades"], verify=True)


def test_plain_pg_dump_table_and_children_as_documented(
    db: marketdb.MarketDB, tmp_path: Path, pg_server: fix_db.TestServer
) -> None:
    """docs/operations.md: `pg_dump --table-and-children=trades` (PostgreSQL 16+) dumps the rows."""
    from marketdb.services.ops.backup import _conninfo, find_tool

    n = _trades(db, days=2)
    tool = find_tool("pg_dump", min_major=16, prefer_wheel=True)
    url, env = _conninfo(db.url)
    plain = subprocess.run(
        [str(tool.path), f"--dbname={url}", "-t", "trades"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    children = subprocess.run(
        [str(tool.path), f"--dbname={url}", "--table-and-children=trades"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    copy_lines = [ln for ln in children.splitlines() if ln.startswith("COPY public.trades_p")]
    assert len(copy_lines) == 2
    assert "COPY public.trades_p" not in plain  # the seed's literal command: no rows
    assert children.count("\n2024-01-0") >= n or children.count("2024-01-0") >= n


def test_restore_into_a_database_name_with_a_space(
    db: marketdb.MarketDB, tmp_path: Path, scratch_db: Any
) -> None:
    ops = Ops(db)
    archive = tmp_path / "all.dump"
    ops.backup(archive)
    result = ops.restore(archive, scratch_db("my restored db"), no_owner=True)
    assert result.schema_revision == current_revision(db.engine)


def test_seed_004_application_alembic_migrations_beside_marketdbs(db_url: str, tmp_path: Path) -> None:
    """Seed 004 keeps its own Alembic revisions; marketdb's drift check and doctor stay green."""
    app = tmp_path / "app_migrations"
    (app / "versions").mkdir(parents=True)
    (app / "env.py").write_text(
        textwrap.dedent("""
        import sqlalchemy as sa
        from alembic import context

        app_metadata = sa.MetaData()
        sa.Table("strategy_notes", app_metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("strategy_id", sa.Text, sa.ForeignKey("strategies.id")),
                 sa.Column("body", sa.Text))

        def include_object(obj, name, type_, reflected, compare_to):
            # Only the application's own tables: marketdb's are marketdb's business.
            return not (type_ == "table" and name not in app_metadata.tables)

        engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=app_metadata,
                              version_table="app_alembic_version", include_object=include_object)
            with context.begin_transaction():
                context.run_migrations()
    """)
    )
    (app / "versions" / "a001_notes.py").write_text(
        textwrap.dedent('''
        """strategy notes"""
        import sqlalchemy as sa
        from alembic import op

        revision = "a001"
        down_revision = None
        branch_labels = None
        depends_on = None

        def upgrade():
            op.create_table("strategy_notes", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("strategy_id", sa.Text, sa.ForeignKey("strategies.id")),
                            sa.Column("body", sa.Text))

        def downgrade():
            op.drop_table("strategy_notes")
    ''')
    )
    sa_url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {app}\nsqlalchemy.url = {sa_url.replace('%', '%%')}\n")
    alembic = [sys.executable, "-m", "alembic", "-c", str(ini)]
    subprocess.run([*alembic, "upgrade", "head"], check=True, capture_output=True, text=True)
    db = marketdb.connect(db_url)
    try:
        assert check_drift(db.engine) == []
        assert current_revision(db.engine) == head_revision(db.engine, db.settings)
        report = Ops(db).doctor()
        assert not [c for c in report.failures if c.name in ("schema", "drift")], report.failures
        with db.transaction() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM app_alembic_version")).scalar_one() == "a001"
        db.upgrade("head")  # marketdb's own upgrade leaves the application's table alone
        with db.transaction() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('strategy_notes')")).scalar() is not None
    finally:
        db.close()
    subprocess.run([*alembic, "downgrade", "base"], check=True, capture_output=True, text=True)


def test_point_in_time_recovery_from_a_base_backup_and_archived_wal() -> None:
    """docs/operations.md's recipe on the embedded server: base backup + WAL archive -> a chosen moment."""
    work = Path(tempfile.mkdtemp(prefix="marketdb-pitr-"))
    work.chmod(0o711)
    src = EmbeddedServer(work / "src")
    dst: EmbeddedServer | None = None
    try:
        archive = work / "wal"
        archive.mkdir()
        archive.chmod(0o777)  # the server's OS user writes here
        info = src.ensure_running()
        with psycopg.connect(info.libpq_uri("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET archive_mode = on")
            conn.execute(f"ALTER SYSTEM SET archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'")
        src.stop()
        info = src.ensure_running()
        db = marketdb.connect(info.libpq_uri(), check_schema=False, migrate_schema=False, redis_url=None)
        try:
            base = work / "base"
            Ops(db).base_backup(base)
            with db.transaction() as conn:
                conn.execute(sa.text("CREATE TABLE pitr_probe (n int)"))
                conn.execute(sa.text("INSERT INTO pitr_probe VALUES (1)"))
            with db.transaction() as conn:  # after the first commit, before the second
                conn.execute(sa.text("SELECT pg_sleep(0.2)"))
                target = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
                conn.execute(sa.text("SELECT pg_sleep(0.2)"))
            with db.transaction() as conn:
                conn.execute(sa.text("INSERT INTO pitr_probe VALUES (2)"))
            with db.transaction() as conn:
                conn.execute(sa.text("SELECT pg_switch_wal()"))
        finally:
            db.close()
        src.stop()  # a clean stop archives the last segment too
        # Recover: the base backup as a new home's data directory, replaying WAL up to `target`.
        home = work / "recovered"
        home.mkdir(mode=0o711)
        shutil.move(str(base), home / "pgdata")
        with (home / "pgdata" / "postgresql.auto.conf").open("a") as fh:
            fh.write(f"restore_command = 'cp {archive}/%f %p'\n")
            fh.write(f"recovery_target_time = '{target.isoformat()}'\nrecovery_target_action = 'promote'\n")
        (home / "pgdata" / "recovery.signal").touch()
        shutil.copy2(src.passfile, home / "server.pgpass")  # the copy has the same password
        if os.geteuid() == 0:  # the base backup was taken as root; the server runs as 'marketdb'
            chown = shutil.which("chown")
            assert chown is not None
            subprocess.run([chown, "-R", "marketdb:marketdb", str(home / "pgdata")], check=True)
        dst = EmbeddedServer(home)
        rinfo = dst.ensure_running()
        deadline = dt.datetime.now(UTC) + dt.timedelta(seconds=60)
        while True:
            with psycopg.connect(rinfo.libpq_uri()) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                    rows = [r[0] for r in conn.execute("SELECT n FROM pitr_probe ORDER BY n")]
                    break
            assert dt.datetime.now(UTC) < deadline, "recovery did not finish"
        assert rows == [1]  # the second insert came after the target time
    finally:
        for server in (src, dst):
            if server is not None:
                server.stop("immediate")
        log = work / "recovered" / "pgdata" / "server.log"
        if log.exists():
            sys.stderr.write(log.read_text()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
