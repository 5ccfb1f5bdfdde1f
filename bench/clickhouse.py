"""ClickHouse analytics-tier benchmark: sync throughput and routed scans against the alternatives.

On the deterministic data set of ``bench/datagen.py`` (10M trades, 5 symbols, 5 days by
default), ingested into a scratch PostgreSQL, it reports from one run:

* **sync rows/s**: ``Analytics.sync(["trades"])`` into in-process ClickHouse (chdb), from
  an empty tier (every row streamed from PostgreSQL over ADBC and inserted as Arrow);
* **1m bars from scratch over all the ticks** (open/close by ``(ts, seq)``, high, low,
  volume, vwap, count), per engine:

  - ``clickhouse``: ``db.query.bars(symbols, "1m", route="clickhouse")`` -- the routed read,
    into the same pandas frame PostgreSQL returns;
  - ``postgres_sql``: the same aggregation as one SQL query on ``trades``
    (``date_bin`` + ordered ``array_agg`` for open/close);
  - ``duckdb``: the same query on a DuckDB table (loaded untimed);
  - ``arcticdb``: ArcticDB's ``QueryBuilder.resample("1min")`` per symbol (LMDB);

* **one symbol-day of ticks into pandas**: ``db.query.ticks(sym, day, day + 1, route=...)``
  with ``postgres`` and ``clickhouse``, DuckDB and ArcticDB reads of the same rows.

Medians of interleaved rounds after a warm-up; compare ratios from one run. Nothing is
asserted on time. ``python bench/clickhouse.py --ticks 1000000`` for a quick run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _server import BenchServer  # noqa: E402

_PG_1M = """
SELECT instrument_id, date_bin('1 minute', ts, TIMESTAMPTZ 'epoch') AS bucket,
    (array_agg(price ORDER BY ts, ts_nanos, seq))[1] AS open, max(price) AS high, min(price) AS low,
    (array_agg(price ORDER BY ts DESC, ts_nanos DESC, seq DESC))[1] AS close, sum(size) AS volume,
    sum(price * size) / nullif(sum(size), 0) AS vwap, count(*) AS trade_count
FROM trades GROUP BY 1, 2 ORDER BY 1, 2
"""
_DUCKDB_1M = """
SELECT symbol, time_bucket(INTERVAL 1 minute, ts) AS bucket,
    arg_min(price, ts) AS open, max(price) AS high, min(price) AS low,
    arg_max(price, ts) AS close, sum(size) AS volume,
    sum(price * size) / nullif(sum(size), 0) AS vwap, count(*) AS trade_count
FROM trades GROUP BY ALL ORDER BY 1, 2
"""


def _interleaved(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, dict[str, float]]:
    for fn in cases.values():
        fn()  # warm-up
    samples: dict[str, list[float]] = {k: [] for k in cases}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            res = fn()
            samples[k].append(time.perf_counter() - t0)
            sizes[k] = len(res)
    return {k: {"seconds": statistics.median(v), "rows": sizes[k]} for k, v in samples.items()}


def run(
    ticks: int = 10_000_000,
    *,
    rounds: int = 3,
    url: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return every figure (see the module docstring)."""
    import marketdb
    from marketdb.services.analytics import Analytics

    path = datagen.generate(ticks)
    log(f"data: {path} ({ticks:,} rows)")
    out: dict[str, Any] = {"ticks": ticks, "rounds": rounds}
    server = BenchServer(url, prefix="marketdb-bench-ch-")
    tmp = Path(tempfile.mkdtemp(prefix="marketdb-bench-chdb-"))
    name = "marketdb_bench_clickhouse"
    try:
        db = marketdb.connect(
            server.create_database(name), redis_url=None, bar_intervals=("1m",), migrate_schema=True
        )
        t0 = time.perf_counter()
        db.ingest.write_ticks(path, auto_register=True)
        log(f"postgres ingest: {time.perf_counter() - t0:.1f} s")
        an = Analytics(db, f"chdb://{tmp / 'chdb'}")
        db.__dict__["analytics"] = an
        t0 = time.perf_counter()
        report = an.sync(["trades"])
        secs = time.perf_counter() - t0
        out["sync"] = {"rows": report.rows_sent, "seconds": secs, "rows_per_second": report.rows_sent / secs}
        log(f"sync: {report.rows_sent:,} rows in {secs:.1f} s = {report.rows_sent / secs:,.0f} rows/s")
        assert an.verify(["trades"]).ok

        with db.raw() as conn:
            symbols = [r[0] for r in conn.execute("SELECT symbol FROM instruments ORDER BY id").fetchall()]
        table = pq.read_table(path)
        cases: dict[str, Callable[[], Any]] = {
            "clickhouse": lambda: db.query.bars(symbols, "1m", source="trades", route="clickhouse"),
        }

        def pg_sql() -> list[Any]:
            with db.raw() as conn:
                return conn.execute(_PG_1M).fetchall()

        cases["postgres_sql"] = pg_sql
        ticks_cases: dict[str, Callable[[], Any]] = {}
        sym = symbols[0]
        day = pd.Timestamp(table.column("ts")[0].as_py()).normalize()
        day_end = day + pd.Timedelta(days=1)
        ticks_cases["marketdb postgres"] = lambda: db.query.ticks(sym, day, day_end, route="postgres")
        ticks_cases["marketdb clickhouse"] = lambda: db.query.ticks(sym, day, day_end, route="clickhouse")
        duck = arctic = None
        with contextlib.suppress(ImportError):
            import duckdb

            duck = duckdb.connect()
            duck.register("t_arrow", table)
            duck.execute("CREATE TABLE trades AS SELECT * FROM t_arrow ORDER BY symbol, ts")
            duck.unregister("t_arrow")
            cases["duckdb"] = lambda: duck.sql(_DUCKDB_1M).df()
            ticks_cases["duckdb"] = lambda: duck.execute(
                "SELECT * FROM trades WHERE symbol = ? AND ts >= ? AND ts < ? ORDER BY ts",
                [sym, day.to_pydatetime(), day_end.to_pydatetime()],
            ).df()
        if duck is None:
            log("duckdb not installed: skipped (pip install 'marketdb[bench]')")
        with contextlib.suppress(ImportError):
            import arcticdb as adb

            ac = adb.Arctic(f"lmdb://{tmp / 'arctic'}?map_size=8GB")
            lib = ac.get_library("bench", create_if_missing=True)
            frame = table.to_pandas()
            for s in symbols:
                part = frame[frame["symbol"] == s].drop(columns=["symbol"]).set_index("ts").sort_index()
                part.index = part.index.tz_convert(None)
                lib.write(s, part)
            del frame
            arctic = lib

            def arctic_bars() -> list[pd.DataFrame]:
                res = []
                for s in symbols:
                    q = (
                        adb.QueryBuilder()
                        .resample("1min")
                        .agg(
                            {
                                "open": ("price", "first"),
                                "high": ("price", "max"),
                                "low": ("price", "min"),
                                "close": ("price", "last"),
                                "volume": ("size", "sum"),
                                "trade_count": ("price", "count"),
                            }
                        )
                    )
                    res.append(lib.read(s, query_builder=q).data)
                return res

            cases["arcticdb"] = lambda: pd.concat(arctic_bars())
            d0, d1 = day.tz_convert(None), day_end.tz_convert(None)
            ticks_cases["arcticdb"] = lambda: lib.read(sym, date_range=(d0, d1)).data
        if arctic is None:
            log("arcticdb not installed: skipped (pip install 'marketdb[bench]')")
        out["bars_1m"] = _interleaved(cases, rounds)
        for k, v in out["bars_1m"].items():
            log(f"1m bars from scratch, {k}: {v['seconds']:.3f} s ({v['rows']:,} bars)")
        out["ticks_day"] = _interleaved(ticks_cases, rounds)
        for k, v in out["ticks_day"].items():
            log(f"symbol-day ticks, {k}: {v['seconds'] * 1000:.1f} ms ({v['rows']:,} rows)")
        an.close()
        db.close()
    finally:
        server.drop(name)
        server.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python bench/clickhouse.py [--ticks N] [--rounds R] [--json out.json]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ticks", type=int, default=10_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", default=None, help="PostgreSQL server (default: a scratch embedded one)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    res = run(args.ticks, rounds=args.rounds, url=args.url)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
