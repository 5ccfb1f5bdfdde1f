"""The foundation: connections, embedded server, schema, migrations, partitions."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.store import timeseries
from marketdb.store.embedded import EmbeddedServer
from marketdb.store.migrate import check_drift
from marketdb.store.schema import TIMESERIES_TABLES, metadata
from marketdb.store.schema import tables as t

UTC = dt.UTC


def test_status_reports_server_schema_and_backend(db: marketdb.MarketDB) -> None:
    st = db.status()
    assert st["server_version"].split(".")[0].isdigit()
    assert int(st["server_version"].split(".")[0]) >= 14
    assert st["schema_revision"] == st["schema_head"]
    assert st["schema_head"] is not None
    assert st["timeseries_backend"] in ("native", "timescaledb")
    assert "plpgsql" in st["extensions"]


def test_every_table_of_the_metadata_exists(db: marketdb.MarketDB) -> None:
    insp = sa.inspect(db.engine)
    live = set(insp.get_table_names())
    assert set(metadata.tables) <= live
    assert "ticks" in insp.get_view_names()


def test_migrations_round_trip_without_drift(empty_db_url: str, settings: marketdb.Settings) -> None:
    db = marketdb.connect(empty_db_url, migrate_schema=False, check_schema=False, home=settings.home)
    try:
        db.upgrade()
        assert check_drift(db.engine) == []
        db.downgrade("base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.upgrade()
        assert check_drift(db.engine) == []
        st = db.status()
        assert st["schema_revision"] == st["schema_head"]
    finally:
        db.close()


def test_outdated_schema_on_own_server_says_what_to_do(
    empty_db_url: str, settings: marketdb.Settings
) -> None:
    with pytest.raises(marketdb.ConfigurationError, match="marketdb db upgrade"):
        marketdb.connect(empty_db_url, home=settings.home)


def test_bad_database_url_is_a_configuration_error() -> None:
    with pytest.raises(Exception, match="PostgreSQL URL"):
        marketdb.connect("mysql://localhost/x")


def test_default_roles_and_permissions_are_seeded(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        rows = set(
            conn.execute(
                sa.select(t.permissions.c.role, t.permissions.c.resource, t.permissions.c.action)
            ).all()
        )
    assert ("admin", "*", "*") in rows
    assert ("trader", "orders", "*") in rows
    assert ("viewer", "portfolio", "read") in rows
    assert set(t.DEFAULT_PERMISSIONS) == rows


def _instrument(conn: sa.Connection, symbol: str = "AAPL") -> int:
    return conn.execute(
        sa.insert(t.instruments).values(symbol=symbol, asset_class="stock").returning(t.instruments.c.id)
    ).scalar_one()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_checks_reject_nan_and_infinity(db: marketdb.MarketDB, bad: float) -> None:
    with db.transaction() as conn:
        iid = _instrument(conn)
        timeseries.ensure_partitions(conn, "trades", dt.date(2024, 1, 2), dt.date(2024, 1, 2))
    with pytest.raises(sa.exc.IntegrityError, match="ck_trades_price_finite"), db.transaction() as conn:
        conn.execute(
            sa.insert(t.trades).values(
                instrument_id=iid, ts=dt.datetime(2024, 1, 2, tzinfo=UTC), price=bad, size=1.0
            )
        )
    with db.transaction() as conn:
        conn.execute(sa.insert(t.strategies).values(id="s1", name="s"))
    with pytest.raises(sa.exc.IntegrityError, match="unit_interval"), db.transaction() as conn:
        conn.execute(
            sa.insert(t.signals).values(
                strategy_id="s1", instrument_id=iid, signal_type="LONG", strength=bad, confidence=0.5
            )
        )


def test_numeric_nan_is_rejected_for_money(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        iid = _instrument(conn)
    with pytest.raises(sa.exc.IntegrityError, match="quantity_positive"), db.transaction() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO orders (instrument_id, side, order_type, quantity) "
                "VALUES (:i, 'buy', 'market', 'NaN'::numeric)"
            ),
            {"i": iid},
        )


def test_one_open_position_per_strategy_and_instrument(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        iid = _instrument(conn)
        conn.execute(sa.insert(t.strategies).values(id="s1", name="s"))
        conn.execute(sa.insert(t.positions).values(strategy_id="s1", instrument_id=iid, quantity=1))
    with pytest.raises(sa.exc.IntegrityError, match="ix_positions_one_open"), db.transaction() as conn:
        conn.execute(sa.insert(t.positions).values(strategy_id="s1", instrument_id=iid, quantity=2))
    with db.transaction() as conn:  # a closed one may coexist with the open one
        conn.execute(
            sa.insert(t.positions).values(
                strategy_id="s1",
                instrument_id=iid,
                quantity=0,
                status="closed",
                closed_at=dt.datetime.now(UTC),
            )
        )


def test_heston_feller_and_ou_half_life_are_computed_by_the_database(db: marketdb.MarketDB) -> None:
    now = dt.datetime(2024, 1, 2, tzinfo=UTC)
    with db.transaction() as conn:
        a, b = _instrument(conn, "A"), _instrument(conn, "B")
        conn.execute(
            sa.insert(t.heston_parameters).values(
                instrument_id=a, ts=now, kappa=2.0, theta=0.04, sigma=0.5, rho=-0.7, v0=0.04
            )
        )
        conn.execute(
            sa.insert(t.ou_parameters).values(
                pair_id="A/B", ts=now, asset1_id=a, asset2_id=b, hedge_ratio=1.2, theta=0.5, mu=0.0, sigma=0.1
            )
        )
        feller = conn.execute(sa.select(t.heston_parameters.c.feller_satisfied)).scalar_one()
        half_life = conn.execute(sa.select(t.ou_parameters.c.half_life)).scalar_one()
    assert feller is False  # 2 * 2.0 * 0.04 = 0.16 < 0.25
    assert half_life == pytest.approx(math.log(2) / 0.5)


def test_same_timestamp_trades_are_distinct_rows(db: marketdb.MarketDB) -> None:
    ts = dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    with db.transaction() as conn:
        iid = _instrument(conn)
        timeseries.ensure_partitions(conn, "trades", ts, ts)
        conn.execute(
            sa.insert(t.trades),
            [
                {"instrument_id": iid, "ts": ts, "ts_nanos": 0, "seq": 0, "price": 1.0, "size": 1.0},
                {"instrument_id": iid, "ts": ts, "ts_nanos": 0, "seq": 1, "price": 1.0, "size": 1.0},
            ],
        )
        n = conn.execute(sa.text("SELECT count(*) FROM ticks WHERE symbol = 'AAPL'")).scalar_one()
    assert n == 2


# ----------------------------------------------------------------- partitions
def test_native_partitions_are_created_for_the_range_written(db: marketdb.MarketDB) -> None:
    if db.status()["timeseries_backend"] != "native":
        pytest.skip("native partitioning only")
    with db.transaction() as conn:
        created = timeseries.ensure_partitions(
            conn, "trades", dt.datetime(2024, 1, 30, 23, tzinfo=UTC), dt.datetime(2024, 2, 1, 1, tzinfo=UTC)
        )
        again = timeseries.ensure_partitions(
            conn, "trades", dt.datetime(2024, 1, 31, tzinfo=UTC), dt.datetime(2024, 1, 31, tzinfo=UTC)
        )
        candles = timeseries.ensure_partitions(conn, "candles", dt.date(2023, 12, 31), dt.date(2024, 1, 1))
        names = [n for n, _ in timeseries.list_partitions(conn, "trades")]
    assert created == ["trades_p20240130", "trades_p20240131", "trades_p20240201"]
    assert again == []
    assert candles == ["candles_p20231201", "candles_p20240101"]
    assert names == created


def test_rows_outside_every_partition_land_in_the_default_partition(db: marketdb.MarketDB) -> None:
    if db.status()["timeseries_backend"] != "native":
        pytest.skip("native partitioning only")
    with db.transaction() as conn:
        iid = _instrument(conn)
        conn.execute(
            sa.insert(t.trades).values(
                instrument_id=iid, ts=dt.datetime(2031, 5, 5, tzinfo=UTC), price=1.0, size=1.0
            )
        )
        where = conn.execute(sa.text("SELECT tableoid::regclass::text FROM trades")).scalar_one()
        # Creating the partition of that day moves the row into it, in the same transaction.
        created = timeseries.ensure_partitions(conn, "trades", dt.date(2031, 5, 5), dt.date(2031, 5, 5))
        moved = conn.execute(sa.text("SELECT tableoid::regclass::text, price FROM trades")).one()
    assert where == "trades_default"
    assert created == ["trades_p20310505"]
    assert tuple(moved) == ("trades_p20310505", 1.0)


def test_bogus_ranges_do_not_create_thousands_of_partitions(db: marketdb.MarketDB) -> None:
    if db.status()["timeseries_backend"] != "native":
        pytest.skip("native partitioning only")
    with pytest.raises(marketdb.InvalidInput, match="bogus date"), db.transaction() as conn:
        timeseries.ensure_partitions(conn, "trades", dt.date(2000, 1, 1), dt.date(2099, 1, 1))


def test_retention_drops_whole_old_partitions(db: marketdb.MarketDB) -> None:
    if db.status()["timeseries_backend"] != "native":
        pytest.skip("native partitioning only")
    with db.transaction() as conn:
        timeseries.ensure_partitions(conn, "trades", dt.date(2024, 1, 1), dt.date(2024, 1, 3))
        dropped = timeseries.drop_partitions_before(conn, "trades", dt.datetime(2024, 1, 2, 12, tzinfo=UTC))
        left = [n for n, _ in timeseries.list_partitions(conn, "trades")]
    assert dropped == ["trades_p20240101"]
    assert left == ["trades_p20240102", "trades_p20240103"]


@pytest.mark.parametrize(
    ("interval", "start", "end", "expected"),
    [
        (
            "1 day",
            dt.datetime(2024, 3, 10, 5, tzinfo=UTC),
            dt.datetime(2024, 3, 10, 6, tzinfo=UTC),
            [dt.datetime(2024, 3, 10, tzinfo=UTC)],
        ),
        (
            "7 days",
            dt.date(2024, 1, 3),
            dt.date(2024, 1, 9),
            [dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 8, tzinfo=UTC)],
        ),
        (
            "1 month",
            dt.date(2024, 11, 30),
            dt.date(2025, 1, 1),
            [
                dt.datetime(2024, 11, 1, tzinfo=UTC),
                dt.datetime(2024, 12, 1, tzinfo=UTC),
                dt.datetime(2025, 1, 1, tzinfo=UTC),
            ],
        ),
    ],
)
def test_partition_bounds_align(
    interval: str, start: dt.date, end: dt.date, expected: list[dt.datetime]
) -> None:
    assert [lo for lo, _ in timeseries.partition_bounds(interval, start, end)] == expected


def test_timescaledb_hypertables_when_available(db: marketdb.MarketDB) -> None:
    if db.status()["timeseries_backend"] != "timescaledb":
        pytest.skip("needs DATABASE_URL pointing at a server with the TimescaleDB extension")
    with db.transaction() as conn:
        hyper = {
            r[0]
            for r in conn.execute(sa.text("SELECT hypertable_name FROM timescaledb_information.hypertables"))
        }
    assert set(TIMESERIES_TABLES) <= hyper


# ------------------------------------------------------------ embedded server
@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A scratch directory the server's OS user may traverse (pytest's tmp_path is 0700 as root)."""
    path = Path(tempfile.mkdtemp(prefix="marketdb-fnd-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_server_is_reused_across_processes(open_tmp: Path) -> None:
    home = open_tmp / "home"
    code = "import marketdb,sys; db=marketdb.connect(); print(db.server.pid); db.close()"
    env = {"MARKETDB_HOME": str(home), "PATH": "/usr/bin:/bin"}
    pids = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        pids.append(proc.stdout.strip())
    try:
        assert pids[0].isdigit()
        assert pids[0] == pids[1]
    finally:
        EmbeddedServer(home).stop("immediate")


def test_interrupted_initialisation_leaves_no_half_initialised_directory(open_tmp: Path) -> None:
    home = open_tmp / "home"
    home.mkdir(mode=0o711)
    stale = home / "pgdata.init-999999"
    stale.mkdir()
    (stale / "PG_VERSION").write_text("18\n")  # what a killed initdb leaves behind
    server = EmbeddedServer(home)
    try:
        info = server.ensure_running()
        assert not stale.exists()
        assert (home / "pgdata" / "PG_VERSION").exists()
        with psycopg.connect(info.libpq_uri()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop("immediate")


def test_concurrent_first_starts_share_one_server(open_tmp: Path) -> None:
    home = open_tmp / "home"
    code = "import marketdb; db=marketdb.connect(); print(db.server.pid)"
    env = {"MARKETDB_HOME": str(home), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        outs = [p.communicate(timeout=120)[0].strip() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert len(set(outs)) == 1
    finally:
        EmbeddedServer(home).stop("immediate")
