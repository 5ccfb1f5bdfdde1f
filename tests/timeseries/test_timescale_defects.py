"""Issue 19: the defects found on a real TimescaleDB server.

Each test runs on every backend available (see conftest.py); the parts that
only exist on TimescaleDB (compressed chunks, background jobs) are done there
and the rest of the test still holds on native partitions.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

import marketdb
from marketdb.cli import ops as cli
from marketdb.services.ops import Ops
from marketdb.store import timeseries

UTC = dt.UTC


def _ticks(day: dt.datetime, seconds: list[int]) -> pd.DataFrame:
    ts = [pd.Timestamp(day + dt.timedelta(seconds=s)) for s in seconds]
    return pd.DataFrame(
        {
            "symbol": ["AAPL"] * len(ts),
            "ts": ts,
            "price": [100.0 + s / 100 for s in seconds],
            "size": [1.0 + s % 7 for s in seconds],
        }
    )


def _compress(db: marketdb.MarketDB, table: str) -> int:
    """Compress every chunk of ``table`` (TimescaleDB); the number of compressed chunks."""
    with db.transaction() as conn:
        conn.execute(
            sa.text(f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c")
        )
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = :t AND is_compressed"
                ),
                {"t": table},
            ).scalar_one()
        )


def test_mixed_batch_into_a_compressed_chunk(backend_db: marketdb.MarketDB) -> None:
    """Defect 1: a batch of stored and new ticks landing in a compressed chunk (a backfill)."""
    backend_db.ingest.write_instruments([{"symbol": "AAPL", "exchange": "XNAS"}])
    day = (dt.datetime.now(UTC) - dt.timedelta(days=40)).replace(hour=15, minute=0, second=0, microsecond=0)
    first = backend_db.ingest.write_ticks(_ticks(day, list(range(0, 600, 60))))
    assert first.inserted == 10
    with backend_db.transaction() as conn:
        backend = timeseries.backend_for(conn)
    if backend.self_managed:
        assert _compress(backend_db, "trades") >= 1
    # The stored ten again, plus five new ones between them: the new rows are not later than
    # everything stored, so the batch takes the staged INSERT .. ON CONFLICT path and the bars
    # hook needs to know exactly which rows were inserted.
    mixed = _ticks(day, list(range(0, 600, 60)) + list(range(30, 330, 60)))
    res = backend_db.ingest.write_ticks(mixed)
    assert (res.inserted, res.duplicates) == (5, 10)
    with backend_db.transaction() as conn:
        n, volume = conn.execute(sa.text("SELECT count(*), sum(size) FROM trades")).one()
        bar_volume = conn.execute(
            sa.text("SELECT sum(volume) FROM candles WHERE interval = '1m' AND source = 'trades'")
        ).scalar_one()
    assert n == 15
    assert bar_volume == pytest.approx(volume)  # each new tick folded into the bars once, no stored one twice
    assert backend_db.bars.verify().ok


def _wait_for_failure(db: marketdb.MarketDB, job_id: int, deadline_s: float = 180.0) -> None:
    """Wait (bounded) until TimescaleDB's scheduler has run the job and recorded a failure."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        with db.transaction() as conn:
            failures = conn.execute(
                sa.text(
                    "SELECT coalesce(total_failures, 0) FROM timescaledb_information.job_stats"
                    " WHERE job_id = :j"
                ),
                {"j": job_id},
            ).scalar()
        if failures:
            return
        time.sleep(1.0)
    pytest.fail(f"TimescaleDB's scheduler did not run job {job_id} within {deadline_s:.0f}s (is it running?)")


def test_doctor_shows_a_failing_timescaledb_job(backend_db: marketdb.MarketDB) -> None:
    """Defect 2: a TimescaleDB job that fails is a doctor failure with its error, and exit code 1."""
    with backend_db.transaction() as conn:
        if not timeseries.backend_for(conn).self_managed:
            pytest.skip("TimescaleDB background jobs only")
        conn.execute(
            sa.text(
                "CREATE PROCEDURE marketdb_test_broken_job(job_id int, config jsonb) LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'marketdb test: this job always fails'; END $$"
            )
        )
        job_id = int(
            conn.execute(
                sa.text("SELECT add_job('marketdb_test_broken_job', '1 hour', initial_start => now())")
            ).scalar_one()
        )
    label = f"job {job_id} (marketdb_test_broken_job)"
    healthy_before = [c for c in Ops(backend_db).doctor().by_name("timescaledb jobs") if label in c.detail]
    assert healthy_before == []  # not run yet: neither failing nor overdue
    with backend_db.transaction() as conn:
        conn.execute(sa.text("SELECT _timescaledb_functions.restart_background_workers()"))
    _wait_for_failure(backend_db, job_id)

    report = Ops(backend_db).doctor()
    jobs = [c for c in report.by_name("timescaledb jobs") if c.status == "fail"]
    assert len(jobs) == 1, report.by_name("timescaledb jobs")
    assert label in jobs[0].detail
    assert "this job always fails" in jobs[0].detail
    assert "job_errors" in (jobs[0].hint or "")
    assert not report.ok

    app = typer.Typer()
    app.command("doctor")(cli.doctor)
    app.command("maintain")(cli.maintain)
    result: Any = CliRunner().invoke(app, ["doctor", "--url", backend_db.url])
    assert result.exit_code == 1, result.output
    assert "marketdb_test_broken_job" in result.output
