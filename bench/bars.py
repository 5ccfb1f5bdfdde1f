"""Bars benchmark: 1m bars from scratch, and what continuous bars cost at ingest.

On the deterministic data set of ``bench/datagen.py`` (10M trades, 5 symbols, 5 days by
default) it reports, from one run:

* **1m bars from scratch**, the same fields everywhere (open/close by ``(ts, seq)``, high,
  low, volume, notional, count, buy/sell volume, first/last time), from the same 10M trades:

  - ``marketdb_memory``: the aggregation the ingest hook runs (polars), from the canonical
    Arrow table; ``marketdb_memory_all``: every default stored interval (1m, 5m, 15m, 1h,
    1d on the XNYS calendar) in one call;
  - ``duckdb``: the same query on a DuckDB table (in-memory database, loaded untimed);
  - ``polars``: a plain polars ``group_by`` (OHLCV + count, first/last in time order);
  - ``pandas``: sort + ``groupby().agg`` (OHLCV + count);
  - ``marketdb_rebuild``: ``db.bars.rebuild()`` -- every stored interval recomputed from the
    trades stored in PostgreSQL and written back (read by binary COPY, a day per piece);
  - ``postgres_sql`` (``--with-sql``): the best plain-SQL 1m query (``date_bin`` +
    ``min/max`` joined back), for reference.

* **ingest rows/s with and without continuous bars**: ``Ingest.write_ticks(parquet)`` into
  a fresh database, once with no hook and once with ``db.bars.update`` as its
  ``on_trades_inserted`` hook; the overhead is ``(t_with - t_without) / t_without``; the
  writer's own stage profile (``stage_seconds``, ``hooks`` = time in the bars hook).

* **profile of the hook** per 1M-row batch: aggregation in memory, COPY of the partial bars,
  the merge ``INSERT .. ON CONFLICT DO UPDATE``.

Rounds are interleaved and medians reported; compare ratios from one run. Nothing here
asserts on time. Run::

    .venv/bin/python bench/bars.py                       # 10M rows
    .venv/bin/python bench/bars.py --rows 1000000 --rounds 3 --json out.json

:func:`run` returns every figure as a dict. A scratch embedded PostgreSQL is started in a
temporary directory unless ``--url`` names a server (it creates and drops its own databases).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _server import BenchServer  # noqa: E402

DEFAULT_INTERVALS = ("1m", "5m", "15m", "1h", "1d")
CALENDAR = "XNYS"  # the data set's sessions (14:30-21:00 UTC in January) are XNYS sessions

# ------------------------------------------------------------------- data


def canonical_table(path: Path) -> pa.Table:
    """The Parquet file as the canonical trade batch (instrument ids 1..N in SYMBOLS order,
    ``seq`` = ordinal among the trades of one instrument sharing a timestamp)."""
    t = pq.read_table(path)
    ids = {s: i + 1 for i, s in enumerate(datagen.SYMBOLS)}
    sym = t.column("symbol").combine_chunks().dictionary_encode()
    lookup = np.array([ids[s] for s in sym.dictionary.to_pylist()], dtype=np.int32)
    inst = lookup[sym.indices.to_numpy()]
    ts = t.column("ts").combine_chunks()
    ts_ns = ts.cast(pa.int64()).to_numpy()
    order = np.lexsort((ts_ns, inst))
    k_inst, k_ts = inst[order], ts_ns[order]
    first = np.r_[True, (k_inst[1:] != k_inst[:-1]) | (k_ts[1:] != k_ts[:-1])]
    starts = np.flatnonzero(first)
    ordinal = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    seq = np.empty(len(order), dtype=np.int32)
    seq[order] = ordinal
    return pa.table(
        {
            "instrument_id": pa.array(inst, pa.int32()),
            "ts": ts,
            "seq": pa.array(seq, pa.int32()),
            "price": t.column("price"),
            "size": t.column("size"),
            "side": t.column("side"),
        }
    )


# ---------------------------------------------------- 1m bars in memory


def bars_marketdb(table: pa.Table) -> int:
    """The ingest hook's aggregation of one interval, from the Arrow batch."""
    from marketdb.services.bars import aggregate, trades_frame

    return aggregate(trades_frame(table), "1m").height


def bars_marketdb_all(table: pa.Table) -> int:
    """Every default stored interval (daily bars on the XNYS calendar) in one call."""
    from marketdb.services.bars import aggregate_many, trades_frame

    ids = np.unique(table.column("instrument_id").to_numpy())
    got = aggregate_many(
        trades_frame(table),
        DEFAULT_INTERVALS,
        calendars=_CALENDARS,
        calendar_of={int(i): CALENDAR for i in ids},
    )
    return sum(df.height for df in got.values())


_CALENDARS: Any = None

_DUCKDB_1M = """
SELECT instrument_id, epoch_ns(ts) // 60000000000 AS bucket,
    arg_min(price, {'t': ts, 's': seq}) AS open, max(price) AS high, min(price) AS low,
    arg_max(price, {'t': ts, 's': seq}) AS close, sum(size) AS volume,
    sum(price * size) AS notional, count(*) AS trade_count,
    sum(CASE WHEN side = 1 THEN size ELSE 0 END) AS buy_volume,
    sum(CASE WHEN side = -1 THEN size ELSE 0 END) AS sell_volume,
    min(ts) AS first_ts, max(ts) AS last_ts
FROM trades GROUP BY ALL
"""


def bars_duckdb(con: Any) -> int:
    """The same 1m bars in DuckDB, on a DuckDB table."""
    return len(con.sql(_DUCKDB_1M).fetchnumpy()["bucket"])


def bars_polars(table: pa.Table) -> int:
    """A plain polars group_by (the way a polars user writes 1m OHLCV)."""
    import polars as pl

    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    out = (
        df.lazy()
        .with_columns((pl.col("ts").dt.epoch("ns") // 60_000_000_000).alias("bucket"))
        .group_by(["instrument_id", "bucket"])
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            pl.len().alias("trade_count"),
        )
        .collect()
    )
    return out.height


def bars_pandas(table: pa.Table) -> int:
    """Sort + groupby().agg in pandas (OHLCV + count)."""
    df = table.to_pandas()
    df = df.sort_values(["instrument_id", "ts", "seq"], kind="stable")
    df["bucket"] = df["ts"].dt.floor("1min")
    g = df.groupby(["instrument_id", "bucket"], sort=False)
    out = g.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        trade_count=("price", "size"),
    )
    return len(out)


# --------------------------------------------------------------- servers


class Server(BenchServer):
    """The benchmark server; ``fresh`` gives a migrated database with the data set's instruments."""

    def __init__(self, url: str | None) -> None:
        super().__init__(url, prefix="marketdb-bench-bars-")

    def fresh(self, name: str) -> str:
        """A freshly migrated database with the data set's instruments (XNYS calendar)."""
        import marketdb

        url = self.create_database(name)
        db = marketdb.connect(url, migrate_schema=True, home=self.home)
        with db.raw() as conn:
            for s in datagen.SYMBOLS:
                conn.execute(
                    "INSERT INTO instruments (symbol, asset_class, calendar) VALUES (%s, 'stock', %s)",
                    [s, CALENDAR],
                )
        db.close()
        return url


# ----------------------------------------------------------- PostgreSQL


def ingest(url: str, path: Path, home: Path, *, bars: bool, batch_size: int) -> dict[str, Any]:
    """``Ingest.write_ticks`` of the Parquet file, with or without the bars hook."""
    import marketdb
    from marketdb.services.ingest import Ingest

    db = marketdb.connect(url, home=home)
    try:
        hooks = [db.bars.update] if bars else []
        t0 = time.perf_counter()
        res = Ingest(db, on_trades_inserted=hooks, batch_size=batch_size).write_ticks(path)
        secs = time.perf_counter() - t0
        return {
            "seconds": secs,
            "rows": res.received,
            "inserted": res.inserted,
            "rows_per_second": res.received / secs,
            "stage_seconds": {k: round(v, 3) for k, v in res.stage_seconds.items()},
        }
    finally:
        db.close()


def rebuild(url: str, home: Path) -> dict[str, Any]:
    """``db.bars.rebuild()`` of every stored interval from the trades in PostgreSQL."""
    import marketdb

    db = marketdb.connect(url, home=home)
    try:
        t0 = time.perf_counter()
        rep = db.bars.rebuild()
        secs = time.perf_counter() - t0
        return {"seconds": secs, "trades_read": rep.trades_read, "bars_written": rep.bars_written}
    finally:
        db.close()


def verify(url: str, home: Path) -> dict[str, Any]:
    """``db.bars.verify()``: the continuously maintained bars against a recomputation."""
    import marketdb

    db = marketdb.connect(url, home=home)
    try:
        t0 = time.perf_counter()
        rep = db.bars.verify()
        return {
            "seconds": time.perf_counter() - t0,
            "ok": rep.ok,
            "differences": len(rep.differences),
            "bars_checked": rep.bars_checked,
        }
    finally:
        db.close()


_PG_1M = """
SELECT instrument_id, date_bin('1 minute', ts, TIMESTAMPTZ '1970-01-01+00') AS bucket,
    (array_agg(price ORDER BY ts, ts_nanos, seq))[1] AS open, max(price) AS high,
    min(price) AS low, (array_agg(price ORDER BY ts DESC, ts_nanos DESC, seq DESC))[1] AS close,
    sum(size) AS volume, sum(price * size) AS notional, count(*) AS trade_count
FROM trades GROUP BY 1, 2
"""


def postgres_sql(url: str) -> dict[str, Any]:
    """1m bars over all trades in plain SQL (for reference)."""
    import psycopg

    with psycopg.connect(url) as c:
        t0 = time.perf_counter()
        n = len(c.execute(_PG_1M).fetchall())
        return {"seconds": time.perf_counter() - t0, "bars": n}


def profile_hook(url: str, table: pa.Table, batch_size: int) -> dict[str, Any]:
    """Where the hook's time goes, per batch: aggregate in memory, COPY, merge upsert.

    Runs the hook's steps one by one over the canonical table in ``batch_size`` batches, in
    a transaction that is rolled back (the database keeps its state).
    """
    import psycopg

    from marketdb.services.bars import Calendars, aggregate_many, stored_intervals, trades_frame
    from marketdb.services.bars._store import instrument_calendars, stage_bars, upsert_staged

    ivs = stored_intervals(DEFAULT_INTERVALS)
    cals = Calendars()
    steps = {"frame": 0.0, "calendars": 0.0, "aggregate": 0.0, "copy": 0.0, "merge": 0.0}
    batches = 0
    with psycopg.connect(url) as conn:
        conn.execute("SET timezone = 'UTC'")
        for start in range(0, table.num_rows, batch_size):
            batch = table.slice(start, batch_size)
            t0 = time.perf_counter()
            frame = trades_frame(batch)
            t1 = time.perf_counter()
            ids = np.unique(frame.get_column("instrument_id").to_numpy()).tolist()
            cal_of = instrument_calendars(conn, ids)
            t2 = time.perf_counter()
            parts = aggregate_many(frame, ivs, calendars=cals, calendar_of=cal_of)
            t3 = time.perf_counter()
            names, _ = stage_bars(conn, {iv: parts[iv.name] for iv in ivs})
            t4 = time.perf_counter()
            upsert_staged(conn, names, merge=True)
            t5 = time.perf_counter()
            for k, v in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                steps[k] += v
            batches += 1
        conn.rollback()
    return {
        "batches": batches,
        "batch_rows": batch_size,
        "seconds_total": {k: round(v, 3) for k, v in steps.items()},
        "ms_per_batch": {k: round(1000 * v / max(batches, 1), 1) for k, v in steps.items()},
    }


# ------------------------------------------------------------------ run


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[Server]:
    server = Server(url)
    try:
        yield server
    finally:
        server.close()


def run(
    rows: int = 10_000_000,
    *,
    url: str | None = None,
    rounds: int = 3,
    ingest_rounds: int = 1,
    batch_size: int = 1_000_000,
    with_sql: bool = False,
    with_verify: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return every figure (see the module docstring)."""
    global _CALENDARS
    import duckdb

    from marketdb.services.bars import Calendars

    _CALENDARS = Calendars()
    path = datagen.generate(rows)
    log(f"data: {path} ({rows:,} rows)")
    table = canonical_table(path)
    out: dict[str, Any] = {"rows": rows, "rounds": rounds, "ingest_rounds": ingest_rounds}

    # 1m bars in memory, interleaved rounds.
    con = duckdb.connect()
    con.register("t_arrow", table)
    con.execute("CREATE TABLE trades AS SELECT * FROM t_arrow")
    con.unregister("t_arrow")
    cases: dict[str, Callable[[], Any]] = {
        "marketdb_memory": lambda: bars_marketdb(table),
        "marketdb_memory_all": lambda: bars_marketdb_all(table),
        "duckdb": lambda: bars_duckdb(con),
        "polars": lambda: bars_polars(table),
        "pandas": lambda: bars_pandas(table),
    }
    for fn in cases.values():  # warm-up: imports, calendars, DuckDB caches
        fn()
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(rounds):
        for k, fn in cases.items():
            samples[k].append(_timed(fn))
        log(f"1m bars round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in samples.items()))
    bars_1m = {k: {"seconds": _median(v), "samples": [round(x, 3) for x in v]} for k, v in samples.items()}
    con.close()

    # PostgreSQL: ingest with and without bars, rebuild, profile.
    ingest_runs: dict[str, list[dict[str, Any]]] = {"without_bars": [], "with_bars": []}
    rebuilds: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    with _server(url) as server:
        pid = os.getpid()
        for r in range(ingest_rounds):
            order = ("without_bars", "with_bars") if r % 2 == 0 else ("with_bars", "without_bars")
            for kind in order:
                name = f"mdb_bench_bars_{kind}_{pid}"
                db_url = server.fresh(name)
                res = ingest(db_url, path, server.home, bars=kind == "with_bars", batch_size=batch_size)
                log(f"ingest {kind} round {r + 1}: {res['rows_per_second']:,.0f} rows/s")
                ingest_runs[kind].append(res)
                if kind == "with_bars" and r == 0 and with_verify:
                    extra["verify_after_ingest"] = verify(db_url, server.home)
                    log(f"verify after ingest: {extra['verify_after_ingest']}")
                if kind == "without_bars":
                    if r == 0:
                        extra["hook_profile"] = profile_hook(db_url, table, batch_size)
                        log(f"hook profile: {extra['hook_profile']['ms_per_batch']}")
                        if with_sql:
                            extra["postgres_sql"] = postgres_sql(db_url)
                            log(f"postgres sql 1m: {extra['postgres_sql']['seconds']:.1f}s")
                    rebuilds.append(rebuild(db_url, server.home))
                    log(f"rebuild: {rebuilds[-1]['seconds']:.2f}s")
                server.drop(name)
    bars_1m["marketdb_rebuild"] = {
        "seconds": _median([x["seconds"] for x in rebuilds]),
        "samples": [round(x["seconds"], 3) for x in rebuilds],
        "note": "all 5 default intervals, from PostgreSQL, written back",
    }
    if "postgres_sql" in extra:
        bars_1m["postgres_sql"] = {"seconds": extra.pop("postgres_sql")["seconds"]}
    out["bars_1m"] = bars_1m
    wo = _median([x["seconds"] for x in ingest_runs["without_bars"]])
    wi = _median([x["seconds"] for x in ingest_runs["with_bars"]])
    out["ingest"] = {
        "without_bars_rows_per_second": rows / wo,
        "with_bars_rows_per_second": rows / wi,
        "overhead": (wi - wo) / wo,
        "without_bars_stage_seconds": ingest_runs["without_bars"][0]["stage_seconds"],
        "with_bars_stage_seconds": ingest_runs["with_bars"][0]["stage_seconds"],
    }
    out.update(extra)
    duck = bars_1m["duckdb"]["seconds"]
    out["ratios"] = {
        "marketdb_memory_vs_duckdb": bars_1m["marketdb_memory"]["seconds"] / duck,
        "marketdb_memory_all_vs_duckdb": bars_1m["marketdb_memory_all"]["seconds"] / duck,
        "marketdb_rebuild_vs_duckdb": bars_1m["marketdb_rebuild"]["seconds"] / duck,
        "ingest_overhead_of_continuous_bars": out["ingest"]["overhead"],
    }
    out["versions"] = _versions()
    return out


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for mod in ("marketdb", "polars", "pyarrow", "numpy", "pandas", "duckdb", "psycopg"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python bench/bars.py [--rows N] [--rounds R] [--json FILE]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--rounds", type=int, default=3, help="rounds of the in-memory 1m bars")
    p.add_argument("--ingest-rounds", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1_000_000)
    p.add_argument("--url", default=None, help="PostgreSQL server (default: scratch embedded)")
    p.add_argument("--with-sql", action="store_true", help="also time 1m bars in plain SQL")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    res = run(
        a.rows,
        url=a.url,
        rounds=a.rounds,
        ingest_rounds=a.ingest_rounds,
        batch_size=a.batch_size,
        with_sql=a.with_sql,
        with_verify=not a.no_verify,
    )
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
