"""Streaming benchmark: commit-to-client latency and ingest rate with and without streaming.

* **latency**: ``marketdb``'s ``/ws`` served by uvicorn in a child process on
  loopback, 1, 10 and 100 WebSocket clients subscribed to ``trades:AAA`` in
  this process; a writer thread commits one trade at a time (plain ``INSERT``,
  ~50 commits/s) and notes when each ``COMMIT`` returned; each client notes
  when the trade arrived. p50/p99/max of (arrival - commit) over all
  (client, trade) pairs, and how many arrived.
* **ingest rate**: ``write_ticks`` of the same rows (5 symbols, batches of
  ``--batch`` rows) into fresh databases, interleaved rounds, in three
  settings: change-capture triggers disabled (as before migration 0011),
  triggers on and nobody listening, and triggers on while the server streams
  ``trades`` and ``bars:..:1m`` of every symbol to 10 clients that keep up plus
  one client that never reads (a deliberately slow consumer: its queue
  overflows and drops). Median rows/s and the ratios.

No assertion on time anywhere: this prints numbers. Run::

    .venv/bin/python bench/stream.py                  # 200k rows, 3 rounds
    .venv/bin/python bench/stream.py --rows 1000000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402
import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
import websockets  # noqa: E402
from _server import BenchServer  # noqa: E402

import marketdb  # noqa: E402

CAPTURED = ("trades", "quotes", "candles")
Log = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve(url: str, token: str, queue: int = 1000) -> Iterator[str]:
    port = _free_port()
    env = dict(os.environ, MARKETDB_BENCH_URL=url, MARKETDB_BENCH_TOKEN=token,
               MARKETDB_BENCH_QUEUE=str(queue),
               PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "_stream_app:create", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--ws-ping-interval", "0"],
        env=env, cwd=HERE,
    )
    try:
        deadline = time.time() + 180  # a loaded 2-core machine can take a while to import and start
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the bench server did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        proc.terminate()
        proc.wait(10)


async def _client(ws_url: str, token: str, channels: list[str], ready: asyncio.Event | None = None
                  ) -> websockets.ClientConnection:
    ws = await websockets.connect(ws_url, max_size=None)
    await ws.send(json.dumps({"op": "auth", "token": token}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    await ws.send(json.dumps({"op": "subscribe", "channels": channels}))
    for _ in channels:
        ack = json.loads(await ws.recv())
        assert ack["type"] == "subscribed", ack
    return ws


def _fresh_db(server: BenchServer, template: str, name: str) -> str:
    return server.create_database(name, template=template)


def _template(server: BenchServer) -> str:
    name = "marketdb_bench_stream_tpl"
    url = server.create_database(name)
    db = marketdb.connect(url, migrate_schema=True, home=server.home)
    db.ingest.write_instruments([{"symbol": s, "asset_class": "stock"} for s in datagen.SYMBOLS])
    # one trade through marketdb creates the time partition the latency writer's plain INSERTs need
    db.ingest.write_ticks(pa.table({"symbol": ["AAA"], "ts": [dt.datetime(2026, 1, 5, 14, tzinfo=dt.UTC)],
                                    "price": [1.0], "size": [1.0]}))
    db.close()
    return name


def latency(server: BenchServer, template: str, counts: tuple[int, ...], commits: int, log: Log
            ) -> dict[str, Any]:
    """p50/p99 commit-to-client latency per subscriber count."""
    out: dict[str, Any] = {}
    for n in counts:
        url = _fresh_db(server, template, f"marketdb_bench_stream_lat{n}")
        token = secrets.token_urlsafe(16)
        with _serve(url, token) as ws_url:
            out[str(n)] = asyncio.run(_latency_round(url, ws_url, token, n, commits))
        server.drop(f"marketdb_bench_stream_lat{n}")
        r = out[str(n)]
        log(f"  {n:>3} subscribers: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"max {r['max_ms']:.2f} ms, {r['received']}/{r['expected']} received")
    return out


async def _latency_round(url: str, ws_url: str, token: str, n: int, commits: int) -> dict[str, Any]:
    clients = [await _client(ws_url, token, ["trades:AAA"]) for _ in range(n)]
    arrivals: list[dict[int, float]] = [{} for _ in range(n)]

    async def listen(i: int) -> None:
        ws = clients[i]
        with contextlib.suppress(Exception):
            async for text in ws:
                now = time.time()
                msg = json.loads(text)
                for row in msg.get("rows", ()):
                    arrivals[i].setdefault(round(row["price"]), now)

    tasks = [asyncio.create_task(listen(i)) for i in range(n)]
    committed: dict[int, float] = {}

    def write() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            iid = conn.execute("SELECT id FROM instruments WHERE symbol = 'AAA'").fetchone()
            assert iid is not None
            base = dt.datetime(2026, 1, 5, 15, tzinfo=dt.UTC)
            for k in range(commits):
                conn.execute("INSERT INTO trades (instrument_id, ts, price, size) VALUES (%s, %s, %s, 1)",
                             [iid[0], base + dt.timedelta(seconds=k), float(k + 1)])
                committed[k + 1] = time.time()  # autocommit: the INSERT returned after COMMIT
                time.sleep(0.02)

    await asyncio.sleep(0.5)
    await asyncio.to_thread(write)
    deadline = time.time() + 10
    while time.time() < deadline and sum(len(a) for a in arrivals) < n * commits:
        await asyncio.sleep(0.05)
    for ws in clients:
        await ws.close()
    for t in tasks:
        t.cancel()
    lat = sorted((a[k] - committed[k]) * 1000 for a in arrivals for k in a if k in committed)
    if not lat:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"),
                "received": 0, "expected": n * commits}
    return {
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "max_ms": lat[-1],
        "received": len(lat),
        "expected": n * commits,
    }


def _set_triggers(url: str, enabled: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in CAPTURED:
            for event in ("insert", "update"):
                conn.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER "
                             f"{table}_capture_{event}")


def _ingest(url: str, server: BenchServer, data: pa.Table, batch: int) -> float:
    db = marketdb.connect(url, home=server.home)
    try:
        t0 = time.perf_counter()
        for off in range(0, data.num_rows, batch):
            db.ingest.write_ticks(data.slice(off, batch))
        return data.num_rows / (time.perf_counter() - t0)
    finally:
        db.close()


def ingest_rates(server: BenchServer, template: str, rows: int, batch: int, rounds: int, log: Log
                 ) -> dict[str, Any]:
    """rows/s without capture, with capture, and with capture while streaming to 11 clients."""
    data = datagen.ticks_table(rows, symbols=5, days=2)
    symbols = sorted(set(data.column("symbol").to_pylist()))
    samples: dict[str, list[float]] = {"no_capture": [], "capture": [], "slow_consumer": [], "streaming": []}
    slow_received: list[dict[str, Any]] = []
    for r in range(rounds):
        for mode in samples:
            name = f"marketdb_bench_stream_ing_{mode}"
            url = _fresh_db(server, template, name)
            if mode == "no_capture":
                _set_triggers(url, False)
            if mode in ("slow_consumer", "streaming"):
                token = secrets.token_urlsafe(16)
                fast = 10 if mode == "streaming" else 0
                with _serve(url, token, queue=100) as ws_url:
                    rate, got = asyncio.run(
                        _streaming_ingest(url, server, ws_url, token, symbols, data, batch, fast))
                slow_received.append(got)
            else:
                rate = _ingest(url, server, data, batch)
            samples[mode].append(rate)
            server.drop(name)
            log(f"  round {r + 1} {mode:<10} {rate:,.0f} rows/s")
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "rows": rows, "batch": batch, "rounds": rounds,
        "rows_per_second": med,
        "capture_vs_no_capture": med["capture"] / med["no_capture"],
        "slow_consumer_vs_capture": med["slow_consumer"] / med["capture"],
        "streaming_vs_capture": med["streaming"] / med["capture"],
        "streaming_vs_no_capture": med["streaming"] / med["no_capture"],
        "slow_consumer_received_after_ingest": slow_received,
    }


async def _streaming_ingest(url: str, server: BenchServer, ws_url: str, token: str, symbols: list[str],
                            data: pa.Table, batch: int, n_fast: int) -> tuple[float, dict[str, Any]]:
    channels = [f"trades:{s}" for s in symbols] + [f"bars:{s}:1m" for s in symbols]
    fast = [await _client(ws_url, token, channels) for _ in range(n_fast)]
    slow = await _client(ws_url, token, channels)  # never reads while ingest runs
    received = [0]

    async def drain(ws: websockets.ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                received[0] += 1

    tasks = [asyncio.create_task(drain(ws)) for ws in fast]
    rate = await asyncio.to_thread(_ingest, url, server, data, batch)
    await asyncio.sleep(1.0)
    slow_got: dict[str, Any] = {"messages": 0, "dropped": 0, "final_bars": 0}
    with contextlib.suppress(TimeoutError):
        while True:
            msg = json.loads(await asyncio.wait_for(slow.recv(), 2.0))
            slow_got["messages"] += 1
            slow_got["dropped"] += msg.get("dropped", 0)
            slow_got["final_bars"] += bool(msg.get("final"))
    for ws in [*fast, slow]:
        await ws.close()
    for t in tasks:
        t.cancel()
    return rate, {**slow_got, "fast_clients_messages": received[0]}


def run(rows: int = 200_000, *, rounds: int = 3, batch: int = 20_000, commits: int = 200,
        subscribers: tuple[int, ...] = (1, 10, 100), url: str | None = None,
        log: Log = print) -> dict[str, Any]:
    """Both parts; returns the results as a dict (bench/run.py calls this)."""
    server = BenchServer(url, prefix="marketdb-bench-stream-")
    try:
        template = _template(server)
        log(f"commit -> client latency ({commits} single-trade commits, loopback WebSocket)")
        lat = latency(server, template, subscribers, commits, log)
        log(f"ingest rate, {rows:,} rows in batches of {batch:,}")
        ing = ingest_rates(server, template, rows, batch, rounds, log)
        log(f"  capture/no capture {ing['capture_vs_no_capture']:.3f}, slow consumer/capture "
            f"{ing['slow_consumer_vs_capture']:.3f}, streaming/capture {ing['streaming_vs_capture']:.3f}")
        return {"latency": lat, "ingest": ing}
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module doc."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=20_000)
    p.add_argument("--commits", type=int, default=200)
    p.add_argument("--url", default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    res = run(a.rows, rounds=a.rounds, batch=a.batch, commits=a.commits, url=a.url)
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=str))
    print(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
