"""HTTP API benchmark on loopback: `marketdb serve` under a bounded load.

    python bench/api.py                  # 100k ticks, 2 workers, 2,000 requests per figure
    python bench/api.py --workers 4 --requests 5000

Figures (medians; ratios matter more than absolutes on a shared 2-core box,
where the load generator competes with the server for the same cores):

* cached bar reads (Redis, one day of 1m bars): req/s, p50, p99;
* uncached bar reads (no REDIS_URL): req/s, p50, p99;
* a 100k-row tick read as Arrow IPC stream vs JSON (ms, bytes);
* ingest of 100k ticks over HTTP (Arrow body) vs the library's write_ticks (rows/s).

A scratch embedded PostgreSQL and, when ``redis-server`` is installed, a
scratch Redis on a random port are started and removed afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import marketdb
from bench._server import BenchServer
from marketdb.services.accounts.tokens import ApiAuth

ARROW = "application/vnd.apache.arrow.stream"
DAY = pd.Timestamp("2024-03-04", tz="UTC")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ticks(symbol: str, n: int, seed: int = 1) -> pd.DataFrame:
    """``n`` trades of ``symbol`` spread over one regular session."""
    rng = np.random.default_rng(seed)
    start = (DAY + pd.Timedelta(hours=14, minutes=30)).value
    ns = np.sort(start + rng.integers(0, int(6.5 * 3600e9), n, dtype=np.int64))
    return pd.DataFrame({
        "symbol": symbol, "ts": pd.to_datetime(ns, utc=True), "seq": np.arange(n, dtype=np.int32),
        "price": 100 + np.cumsum(rng.normal(0, 0.01, n)), "size": np.maximum(1, rng.integers(1, 500, n)),
    })  # fmt: skip


@contextmanager
def scratch_redis() -> Iterator[str | None]:
    """A throw-away redis-server on a random port (None when not installed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def serve(url: str, workers: int, redis_url: str | None, home: Path) -> Iterator[str]:
    """`marketdb serve` (uvicorn) on a random loopback port until the block ends."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "MARKETDB_HOME": str(home), "MARKETDB_API_ACCESS_LOG": "0"}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "marketdb.api.server:build",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the API server did not start")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load(
    base: str, headers: dict[str, str], path: str, params: dict[str, str], requests: int, concurrency: int
) -> dict[str, Any]:
    """``requests`` GETs from ``concurrency`` threads: req/s, p50, p99 (ms), errors."""
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()
    per = requests // concurrency

    def worker() -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            c.get(path, params=params)  # connection + warm-up
            for _ in range(per):
                t0 = time.perf_counter()
                r = c.get(path, params=params)
                mine.append((time.perf_counter() - t0) * 1000)
                bad += r.status_code != 200
        with lock:
            lat.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": len(lat),
        "errors": errors,
        "req_per_s": len(lat) / wall,
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
    }


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def run(
    n_ticks: int = 100_000,
    workers: int = 2,
    requests: int = 2000,
    concurrency: int = 8,
    rounds: int = 3,
    url: str | None = None,
    log: Callable[..., None] = print,
) -> dict[str, Any]:
    """Run every figure; returns the results as a dict."""
    server = BenchServer(url, prefix="marketdb-bench-api-")
    name = "marketdb_bench_api"
    res: dict[str, Any] = {
        "ticks": n_ticks,
        "workers": workers,
        "requests": requests,
        "concurrency": concurrency,
    }
    try:
        db_url = server.create_database(name)
        db = marketdb.connect(db_url, migrate_schema=True, home=server.home, redis_url=None)
        db.ingest.write_instruments([{"symbol": s} for s in ("BNCH", "HTTP", "LIBR")])
        db.ingest.write_ticks(ticks("BNCH", n_ticks))
        user = db.accounts.create_user("bench", "bench@example.com", "bench password 1234", role="admin")
        _, key = ApiAuth(db).create_api_key(user.id, "bench")
        headers = {"Authorization": f"Bearer {key}"}
        bars_q = {"interval": "1m", "start": "2024-03-04", "end": "2024-03-05"}
        with scratch_redis() as redis_url:
            if redis_url:
                with serve(db_url, workers, redis_url, server.home) as base:
                    res["cached_bars"] = load(base, headers, "/v1/bars/BNCH", bars_q, requests, concurrency)
                    log(f"cached 1m bars (Redis): {res['cached_bars']}")
            else:
                log("redis-server not installed: cached figure skipped")
        with serve(db_url, workers, None, server.home) as base:
            res["uncached_bars"] = load(base, headers, "/v1/bars/BNCH", bars_q, requests, concurrency)
            log(f"uncached 1m bars: {res['uncached_bars']}")
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                sizes = {}

                def fetch(accept: str) -> None:
                    r = c.get("/v1/ticks/BNCH", headers={"Accept": accept})
                    assert r.status_code == 200, r.text[:200]
                    sizes[accept] = len(r.content)
                    if accept == ARROW:
                        assert pa.ipc.open_stream(pa.BufferReader(r.content)).read_all().num_rows == n_ticks
                    else:
                        assert json.loads(r.content)["count"] == n_ticks

                fetch(ARROW)
                res["ticks_read"] = {
                    "arrow_ms": _median_ms(lambda: fetch(ARROW), rounds),
                    "json_ms": _median_ms(lambda: fetch("application/json"), rounds),
                    "arrow_bytes": sizes[ARROW],
                    "json_bytes": sizes["application/json"],
                }
                t = res["ticks_read"]
                t["json_vs_arrow"] = t["json_ms"] / t["arrow_ms"]
                log(f"100k-tick read: {t}")
                frame = ticks("HTTP", n_ticks, seed=2)
                sink = io.BytesIO()
                table = pa.Table.from_pandas(frame, preserve_index=False)
                with pa.ipc.new_stream(sink, table.schema) as w:
                    w.write_table(table)
                body = sink.getvalue()
                t0 = time.perf_counter()
                r = c.post("/v1/ingest/ticks", content=body, headers={"Content-Type": ARROW})
                http_s = time.perf_counter() - t0
                assert r.status_code == 200, r.text[:300]
                assert r.json()["inserted"] == n_ticks
        lib_frame = ticks("LIBR", n_ticks, seed=3)
        t0 = time.perf_counter()
        db.ingest.write_ticks(lib_frame)
        lib_s = time.perf_counter() - t0
        res["ingest"] = {
            "http_rows_per_s": n_ticks / http_s,
            "library_rows_per_s": n_ticks / lib_s,
            "http_vs_library": lib_s / http_s,
        }
        log(f"ingest: {res['ingest']}")
        db.close()
    finally:
        server.drop(name)
        server.close()
    return res


def main(argv: list[str] | None = None) -> None:
    """Command line: run and print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ticks", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", default=os.environ.get("DATABASE_URL"))
    a = p.parse_args(argv)
    out = run(a.ticks, a.workers, a.requests, a.concurrency, a.rounds, a.url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
