"""Crash safety: a writer killed mid-batch, or its server backend terminated mid-COPY.

After the crash the table holds exactly the batches committed before it (no partial batch);
re-running the same input then stores every row exactly once.

The child process pauses at a known point of batch 3 (inside its open transaction, with the
COPY started) by wrapping the COPY encoder, so the crash lands mid-batch on every run; the
database is real and is never mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import marketdb

ROWS = 5000
BATCH = 1000
APP = "marketdb-crash-test"

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import marketdb
    import marketdb.services.ingest._writer as writer

    url, path, marker, home = sys.argv[1:5]
    calls = {"n": 0}
    encode = writer.encode_rows

    def paused_encode(columns):
        calls["n"] += 1
        if calls["n"] == 3:          # batch 3: its transaction is open and COPY has begun
            Path(marker).write_text("in COPY")
            go = Path(marker + ".go")
            deadline = time.monotonic() + 120
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return encode(columns)

    writer.encode_rows = paused_encode
    db = marketdb.connect(url, home=home, application_name="__APP__")
    db.ingest.write_ticks(path, batch_size=__BATCH__)
    """
).replace("__APP__", APP).replace("__BATCH__", str(BATCH))


def _input(tmp_path: Path) -> tuple[Path, pa.Table]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        import datagen
    finally:
        sys.path.pop(0)
    table = datagen.ticks_table(ROWS, symbols=2, days=1, seed=99)
    path = tmp_path / "ticks.parquet"
    pq.write_table(table, path)
    return path, table


def _start(
    db_url: str, path: Path, tmp_path: Path, home: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with (tmp_path / "child.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), db_url, str(path), str(marker), str(home)],
            stdout=subprocess.DEVNULL, stderr=err,
        )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {_stderr(tmp_path)[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("child never reached batch 3")
        time.sleep(0.05)
    return proc, marker


def _stderr(tmp_path: Path) -> str:
    return (tmp_path / "child.err").read_text(errors="replace")


def _stored(db_url: str) -> tuple[int, int, set[tuple[int, int]]]:
    with psycopg.connect(db_url) as c:
        n, distinct = c.execute(
            "SELECT count(*), count(DISTINCT (instrument_id, ts, ts_nanos, seq)) FROM trades"
        ).fetchone()
        keys = set(c.execute(
            "SELECT (extract(epoch FROM ts) * 1e6)::bigint * 1000 + ts_nanos, seq FROM trades"
        ).fetchall())
    return n, distinct, keys


def _expected_keys(table: pa.Table, rows: int) -> set[tuple[int, int]]:
    import numpy as np

    from marketdb.store.tick_identity import SeqAssigner, content_hash

    part = table.slice(0, rows)
    sym = np.array([hash(s) for s in part.column("symbol").to_pylist()])
    ts = part.column("ts").cast(pa.int64()).to_numpy()
    h, counted = content_hash(part, "trades")
    seq = SeqAssigner().assign(sym, ts, h, counted, np.ones(len(ts), bool))
    return set(zip(ts.tolist(), seq.tolist(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill the client", "terminate the backend"])
def test_a_crash_mid_batch_leaves_whole_batches_and_a_rerun_completes_exactly(
    db: marketdb.MarketDB, db_url: str, tmp_path: Path, pg_server: object, how: str
) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}, {"symbol": "BBB"}])
    path, table = _input(tmp_path)
    proc, _ = _start(db_url, path, tmp_path, pg_server.home)  # type: ignore[attr-defined]
    try:
        if how == "kill the client":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            with psycopg.connect(db_url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND query ILIKE 'COPY%%'", [APP]
                ).fetchall()
            assert killed == [(True,)]
            (tmp_path / "marker.go").write_text("resume")  # the child's next write then fails
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    if how == "terminate the backend":
        err = _stderr(tmp_path)
        assert "Unavailable" in err, err[-2000:]
        assert "re-run" in err
    n, distinct, keys = _stored(db_url)
    assert n == distinct == 2 * BATCH  # batches 1 and 2 committed, batch 3 not at all
    assert keys == _expected_keys(table, 2 * BATCH)

    res = db.ingest.write_ticks(path, batch_size=BATCH)
    assert (res.inserted, res.duplicates) == (ROWS - 2 * BATCH, 2 * BATCH)
    n, distinct, keys = _stored(db_url)
    assert n == distinct == ROWS
    assert keys == _expected_keys(table, ROWS)
