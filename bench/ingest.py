"""Ingest benchmark: marketdb ``write_ticks`` against the usual ways to load ticks.

On the deterministic data set of ``bench/datagen.py`` (10M trades, 5 symbols,
5 days by default) it reports, from one run:

* **marketdb** ``Ingest.write_ticks(parquet_path)``: the whole pipeline from the
  Parquet file (read, normalise, validate, seq, partitions, COPY, dedup), run in
  a child process so its **peak RSS** is the peak of a real ingest of the file;
  and its stage profile (``WriteResult.stage_seconds``);
* **raw COPY**: psycopg binary COPY, straight into the same ``trades`` table
  (same primary key, same foreign key, same day partitions) of a fresh
  database, in 1M-row transactions, from an Arrow table already in memory with
  instrument ids and seq (encoding included, reading the file not); the
  **CSV COPY** variant (``COPY .. (FORMAT CSV)`` from pyarrow's CSV writer);
* **pandas.to_sql** (SQLAlchemy, ``method="multi"``) into the same table, on a
  subset;
* **DuckDB** (file database, with and without the primary key) and **ArcticDB**
  (LMDB) inserting the same rows;
* **bytes per tick on disk**: ``pg_total_relation_size`` of the partitions,
  the DuckDB file, the ArcticDB directory and the Parquet file;
* **re-run**: the same file ingested a second time (everything is a duplicate).

Rounds are interleaved (every contender once per round, fresh databases each
round) and the median is reported; compare ratios from one run. No assertion
on time anywhere: this prints numbers.

* **CSV memory** (``--csv-mb 190,767,2048``): peak RSS of ingesting generated
  tick CSVs of those sizes at the default batch size (issue 10 item 5: it must
  stay under 1 GB whatever the file size).

Run::

    .venv/bin/python bench/ingest.py                 # 10M rows, 1 round
    .venv/bin/python bench/ingest.py --csv-mb 190,767,2048   # CSV peak RSS only
    .venv/bin/python bench/ingest.py --rows 1000000 --rounds 3 --json out.json

:func:`run` returns the results as a dict (the lead's bench runner calls it).
A scratch embedded PostgreSQL is started in a temporary directory unless
``--url`` names a server (the benchmark creates and drops its own databases).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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


# ------------------------------------------------------------------ servers
class Server(BenchServer):
    """The benchmark server plus a migrated template with the data set's instruments."""

    def __init__(self, url: str | None) -> None:
        super().__init__(url, prefix="marketdb-bench-ingest-")
        self._template: str | None = None

    def fresh(self, name: str) -> str:
        """A freshly migrated database (copied from a migrated template)."""
        import marketdb

        if self._template is None:
            self._template = f"mdb_bench_tpl_{os.getpid()}"
            db = marketdb.connect(self.create_database(self._template), migrate_schema=True,
                                  home=self.home)
            db.ingest.write_instruments([{"symbol": s, "asset_class": "stock"}
                                         for s in datagen.SYMBOLS])
            db.close()
        return self.create_database(name, template=self._template)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._template:
                self.drop(self._template)
        super().close()


# -------------------------------------------------------------- contenders
def _marketdb_child(url: str, path: str, home: str, batch_size: int, rerun: bool) -> dict[str, Any]:
    """Runs in a child process: ingest the file, report timings and peak RSS."""
    import marketdb

    db = marketdb.connect(url, home=home)
    t0 = time.perf_counter()
    res = db.ingest.write_ticks(path, batch_size=batch_size)
    secs = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": secs, "rows": res.received, "inserted": res.inserted,
                           "stage_seconds": res.stage_seconds}
    if rerun:
        t0 = time.perf_counter()
        again = db.ingest.write_ticks(path, batch_size=batch_size)
        out["rerun_seconds"] = time.perf_counter() - t0
        out["rerun_inserted"] = again.inserted
        out["rerun_duplicates"] = again.duplicates
        out["rerun_stage_seconds"] = again.stage_seconds
    out["peak_rss_bytes"] = _peak_rss()
    db.close()
    return out


def _peak_rss() -> int:
    """Peak resident set of this process, in bytes.

    ``VmHWM`` of /proc/self/status, which belongs to the process image (getrusage's
    ``ru_maxrss`` survives exec on Linux and would report the parent's peak).
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_marketdb(server: Server, path: Path, name: str, *, batch_size: int,
                   rerun: bool) -> dict[str, Any]:
    """marketdb write_ticks from the Parquet file, in a child process."""
    url = server.fresh(name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", url, str(path),
           str(server.home), str(batch_size), "1" if rerun else "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"marketdb child failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["bytes_per_tick"] = _pg_bytes_per_tick(url, out["rows"])
    out["rows_per_second"] = out["rows"] / out["seconds"]
    server.drop(name)
    return out


def _pg_bytes_per_tick(url: str, rows: int) -> float:
    import psycopg

    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
            "WHERE inhparent = 'trades'::regclass"
        ).fetchone()
    return float(row[0]) / rows if row and row[0] else 0.0


def canonical_table(path: Path) -> pa.Table:
    """The file as the rows marketdb stores (instrument ids, seq), built once, untimed."""
    import pyarrow.compute as pc

    from marketdb.store.tick_identity import SeqAssigner, content_hash

    t = pq.read_table(path)
    ids = {s: i + 1 for i, s in enumerate(datagen.SYMBOLS)}
    sym = t.column("symbol").combine_chunks().dictionary_encode()
    lookup = np.array([ids[s] for s in sym.dictionary.to_pylist()], dtype=np.int32)
    inst = lookup[sym.indices.to_numpy()]
    ts = t.column("ts").combine_chunks()
    ts_ns = ts.cast(pa.int64()).to_numpy()
    h, counted = content_hash(t, "trades")
    seq = SeqAssigner().assign(inst, ts_ns, h, counted, np.ones(len(inst), dtype=bool))
    return pa.table({
        "instrument_id": pa.array(inst, pa.int32()), "ts": ts, "seq": pa.array(seq),
        "price": t.column("price"), "size": t.column("size"),
        "side": pc.cast(t.column("side"), pa.int16()), "exchange": t.column("exchange"),
    })  # fmt: skip


def _instrument_ids(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as c:
        return dict(c.execute("SELECT symbol, id FROM instruments").fetchall())


def _remap(table: pa.Table, url: str) -> pa.Table:
    ids = _instrument_ids(url)
    lookup = np.zeros(len(datagen.SYMBOLS) + 1, dtype=np.int32)
    for i, s in enumerate(datagen.SYMBOLS):
        lookup[i + 1] = ids[s]
    inst = lookup[table.column("instrument_id").to_numpy()]
    return table.set_column(0, "instrument_id", pa.array(inst, pa.int32()))


def _ensure_day_partitions(url: str, table: pa.Table) -> None:
    import psycopg
    import pyarrow.compute as pc

    from marketdb.store.timeseries import ensure_partitions

    lo, hi = pc.min(table.column("ts")).as_py(), pc.max(table.column("ts")).as_py()
    with psycopg.connect(url) as c:
        ensure_partitions(c, "trades", lo, hi)


_COPY_COLS = "instrument_id, ts, ts_nanos, seq, price, size, side, exchange"


def bench_raw_copy(server: Server, table: pa.Table, name: str, batch: int = 1_000_000
                   ) -> dict[str, Any]:
    """psycopg binary COPY straight into ``trades`` (numpy/Arrow encoder), 1M rows a commit."""
    import psycopg

    from marketdb.services.ingest._copy import HEADER, TRAILER, Column, encode_rows

    url = server.fresh(name)
    table = _remap(table, url)
    _ensure_day_partitions(url, table)
    t0 = time.perf_counter()
    with psycopg.connect(url) as c:
        for start in range(0, table.num_rows, batch):
            part = table.slice(start, batch)
            ts = part.column("ts").combine_chunks()
            cols = [Column("instrument_id", "int4", part.column("instrument_id").combine_chunks()),
                    Column("ts", "ts_us", ts), Column("ts_nanos", "ts_nanos", ts),
                    Column("seq", "int8", part.column("seq").combine_chunks()),
                    Column("price", "float8", part.column("price").combine_chunks()),
                    Column("size", "float8", part.column("size").combine_chunks()),
                    Column("side", "int2", part.column("side").combine_chunks()),
                    Column("exchange", "text", part.column("exchange").combine_chunks())]
            with c.cursor().copy(f"COPY trades ({_COPY_COLS}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(HEADER)
                for s2 in range(0, part.num_rows, 250_000):
                    cp.write(encode_rows([Column(k.name, k.pgtype, k.data.slice(s2, 250_000))
                                          for k in cols]))
                cp.write(TRAILER)
            c.commit()
    secs = time.perf_counter() - t0
    out = {"seconds": secs, "rows": table.num_rows, "rows_per_second": table.num_rows / secs,
           "bytes_per_tick": _pg_bytes_per_tick(url, table.num_rows)}
    server.drop(name)
    return out


def bench_csv_copy(server: Server, table: pa.Table, name: str, batch: int = 1_000_000
                   ) -> dict[str, Any]:
    """Text COPY (FORMAT CSV) of the same rows, CSV written by pyarrow (included in the time)."""
    import io

    import psycopg
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    url = server.fresh(name)
    table = _remap(table, url)
    _ensure_day_partitions(url, table)
    t0 = time.perf_counter()
    with psycopg.connect(url) as c:
        for start in range(0, table.num_rows, batch):
            part = table.slice(start, batch)
            ns = part.column("ts").combine_chunks().cast(pa.int64())
            us = pc.divide(ns, 1000)  # integer division; the data set's times are positive
            us_ts = us.cast(pa.timestamp("us", tz="UTC"))
            nanos = pc.subtract(ns, pc.multiply(us, 1000)).cast(pa.int16())
            out_t = pa.table({"instrument_id": part.column("instrument_id"), "ts": us_ts,
                              "ts_nanos": nanos, "seq": part.column("seq"),
                              "price": part.column("price"), "size": part.column("size"),
                              "side": part.column("side"), "exchange": part.column("exchange")})
            buf = io.BytesIO()
            pacsv.write_csv(out_t, buf, pacsv.WriteOptions(include_header=False))
            with c.cursor().copy(f"COPY trades ({_COPY_COLS}) FROM STDIN (FORMAT CSV)") as cp:
                cp.write(buf.getbuffer())
            c.commit()
    secs = time.perf_counter() - t0
    server.drop(name)
    return {"seconds": secs, "rows": table.num_rows, "rows_per_second": table.num_rows / secs}


def bench_to_sql(server: Server, table: pa.Table, name: str, rows: int,
                 method: str | None = None) -> dict[str, Any]:
    """pandas.DataFrame.to_sql into ``trades``: SQLAlchemy 2 on psycopg 3, chunks of 5,000 rows;
    ``method=None`` (pandas' default: executemany, batched by SQLAlchemy's insertmanyvalues) or
    ``"multi"`` (one multi-row VALUES statement per chunk)."""
    import sqlalchemy as sa

    from marketdb.store.db import sqlalchemy_url

    url = server.fresh(name)
    sub = _remap(table.slice(0, rows), url)
    _ensure_day_partitions(url, sub)
    ns = sub.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    df = sub.drop_columns(["ts"]).to_pandas()
    import pandas as pd

    df.insert(1, "ts", pd.to_datetime(ns - ns % 1000, utc=True))
    df.insert(2, "ts_nanos", (ns % 1000).astype(np.int16))
    engine = sa.create_engine(sqlalchemy_url(url))
    t0 = time.perf_counter()
    df.to_sql("trades", engine, if_exists="append", index=False, method=method, chunksize=5_000)
    secs = time.perf_counter() - t0
    engine.dispose()
    server.drop(name)
    return {"seconds": secs, "rows": rows, "rows_per_second": rows / secs}


def bench_duckdb(table: pa.Table, workdir: Path, *, with_pk: bool) -> dict[str, Any]:
    """DuckDB file database: INSERT .. SELECT from the Arrow table."""
    import duckdb

    path = workdir / f"bench_{'pk' if with_pk else 'nopk'}.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    pk = ", PRIMARY KEY (instrument_id, ts, seq)" if with_pk else ""
    con.execute(
        "CREATE TABLE trades (instrument_id INTEGER, ts TIMESTAMPTZ_NS, seq INTEGER, "
        f"price DOUBLE, size DOUBLE, side SMALLINT, exchange VARCHAR{pk})"
    )
    src = table  # noqa: F841 - referenced by name in the SQL below
    t0 = time.perf_counter()
    con.execute("INSERT INTO trades SELECT * FROM src")
    con.execute("CHECKPOINT")
    secs = time.perf_counter() - t0
    con.close()
    size = path.stat().st_size
    path.unlink(missing_ok=True)
    return {"seconds": secs, "rows": table.num_rows, "rows_per_second": table.num_rows / secs,
            "bytes_per_tick": size / table.num_rows}


def bench_arcticdb(table: pa.Table, workdir: Path) -> dict[str, Any]:
    """ArcticDB on LMDB: one symbol per instrument, DataFrames indexed by ts."""
    import arcticdb

    d = workdir / "arctic"
    shutil.rmtree(d, ignore_errors=True)
    ac = arcticdb.Arctic(f"lmdb://{d}?map_size=8GB")
    lib = ac.get_library("ticks", create_if_missing=True)
    frames = {}
    inst = table.column("instrument_id").to_numpy()
    for i in np.unique(inst):
        sub = table.filter(pa.array(inst == i))
        df = sub.drop_columns(["instrument_id"]).to_pandas().set_index("ts")
        frames[f"sym{i}"] = df
    t0 = time.perf_counter()
    for k, df in frames.items():
        lib.write(k, df)
    secs = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    del lib, ac
    shutil.rmtree(d, ignore_errors=True)
    return {"seconds": secs, "rows": table.num_rows, "rows_per_second": table.num_rows / secs,
            "bytes_per_tick": size / table.num_rows}


# ------------------------------------------------------------------ runner
#: Approximate bytes per row of the generated tick CSV (sizes the file).
_CSV_BYTES_PER_ROW = 55


def csv_file(megabytes: int) -> Path:
    """A tick CSV of about ``megabytes`` MB (the datagen rows), generated at bench time
    into bench/data (never committed) and reused by later runs."""
    import pyarrow.csv as pacsv

    path = datagen.DATA_DIR / f"ticks_{megabytes}MB.csv"
    if path.exists():
        return path
    rows = int(megabytes * 1e6 / _CSV_BYTES_PER_ROW)
    src = datagen.generate(rows)
    tmp = path.with_suffix(".tmp")
    pf = pq.ParquetFile(src)
    with pacsv.CSVWriter(tmp, pf.schema_arrow) as w:
        for batch in pf.iter_batches(batch_size=1_000_000):
            w.write_batch(batch)
    tmp.rename(path)
    return path


def bench_csv_rss(server: Server, sizes_mb: list[int], *, batch_size: int,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Peak RSS of ``write_ticks(csv_path)`` (child process) per CSV size, default batch."""
    out: dict[str, Any] = {}
    for mb in sizes_mb:
        path = csv_file(mb)
        log(f"csv {mb} MB: {path} ({path.stat().st_size / 1e6:.0f} MB) ...")
        res = bench_marketdb(server, path, f"mdb_bench_csv_{os.getpid()}",
                             batch_size=batch_size, rerun=False)
        out[f"{mb}MB"] = {"file_bytes": path.stat().st_size, "rows": res["rows"],
                          "peak_rss_bytes": res["peak_rss_bytes"],
                          "rows_per_second": res["rows_per_second"]}
        log(f"    peak RSS {res['peak_rss_bytes'] / 2**20:,.0f} MiB, "
            f"{res['rows_per_second']:,.0f} rows/s")
    return out


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="marketdb-bench-ingest-work-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(
    rows: int = 10_000_000,
    *,
    url: str | None = None,
    rounds: int = 1,
    to_sql_rows: int = 100_000,
    batch_size: int = 500_000,
    contenders: tuple[str, ...] = ("marketdb", "raw_copy", "csv_copy", "to_sql", "to_sql_multi",
                                   "duckdb", "duckdb_pk", "arcticdb"),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return every figure (see the module docstring)."""
    path = datagen.generate(rows)
    log(f"data: {path} ({rows:,} rows, {path.stat().st_size / 1e6:.1f} MB)")
    server = Server(url)
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in contenders}
    try:
        table = canonical_table(path)
        with _workdir() as work:
            for r in range(rounds):
                for k in contenders:
                    log(f"round {r + 1}/{rounds}: {k} ...")
                    if k == "marketdb":
                        res = bench_marketdb(server, path, f"mdb_bench_m_{os.getpid()}",
                                             batch_size=batch_size, rerun=(r == 0))
                    elif k == "raw_copy":
                        res = bench_raw_copy(server, table, f"mdb_bench_c_{os.getpid()}")
                    elif k == "csv_copy":
                        res = bench_csv_copy(server, table, f"mdb_bench_v_{os.getpid()}")
                    elif k == "to_sql":
                        res = bench_to_sql(server, table, f"mdb_bench_s_{os.getpid()}",
                                           to_sql_rows)
                    elif k == "to_sql_multi":
                        res = bench_to_sql(server, table, f"mdb_bench_s_{os.getpid()}",
                                           to_sql_rows, method="multi")
                    elif k == "duckdb":
                        res = bench_duckdb(table, work, with_pk=False)
                    elif k == "duckdb_pk":
                        res = bench_duckdb(table, work, with_pk=True)
                    elif k == "arcticdb":
                        res = bench_arcticdb(table, work)
                    else:
                        raise ValueError(f"unknown contender {k}")
                    log(f"    {res['rows_per_second']:,.0f} rows/s")
                    samples[k].append(res)
    finally:
        server.close()
    summary: dict[str, Any] = {"rows": rows, "rounds": rounds, "data_file": str(path),
                               "parquet_bytes_per_tick": path.stat().st_size / rows}
    for k, runs in samples.items():
        if not runs:
            continue
        entry: dict[str, Any] = {
            "rows_per_second": _median([x["rows_per_second"] for x in runs]),
            "samples_rows_per_second": [round(x["rows_per_second"]) for x in runs],
        }
        if "bytes_per_tick" in runs[0]:
            entry["bytes_per_tick"] = _median([x["bytes_per_tick"] for x in runs])
        if k == "marketdb":
            entry["peak_rss_bytes"] = max(x["peak_rss_bytes"] for x in runs)
            entry["stage_seconds"] = runs[0]["stage_seconds"]
            for key in ("rerun_seconds", "rerun_inserted", "rerun_duplicates",
                        "rerun_stage_seconds"):
                if key in runs[0]:
                    entry[key] = runs[0][key]
        summary[k] = entry
    m = summary.get("marketdb", {}).get("rows_per_second")
    ratios = {}
    for k in contenders:
        if k != "marketdb" and m and k in summary:
            ratios[f"marketdb_vs_{k}"] = m / summary[k]["rows_per_second"]
    summary["ratios"] = ratios
    summary["versions"] = _versions()
    return summary


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for mod in ("marketdb", "psycopg", "pyarrow", "numpy", "pandas", "duckdb", "arcticdb"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--child":
        url, path, home, batch, rerun = argv[1:6]
        print(json.dumps(_marketdb_child(url, path, home, int(batch), rerun == "1")))
        return 0
    p = argparse.ArgumentParser(description="marketdb ingest benchmark")
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--to-sql-rows", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=1_000_000)
    p.add_argument("--url", default=None, help="PostgreSQL server to use (default: scratch embedded)")
    p.add_argument("--only", default=None, help="comma-separated contenders")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--csv-mb", default=None,
                   help="only the CSV memory case: comma-separated CSV sizes in MB "
                   "(e.g. 190,767,2048), ingested at the default batch size")
    a = p.parse_args(argv)
    if a.csv_mb:
        from marketdb.services.ingest._sources import DEFAULT_BATCH_SIZE

        server = Server(a.url)
        try:
            res = {"csv_rss": bench_csv_rss(server, [int(x) for x in a.csv_mb.split(",")],
                                            batch_size=DEFAULT_BATCH_SIZE),
                   "versions": _versions()}
        finally:
            server.close()
        text = json.dumps(res, indent=2, default=str)
        print(text)
        if a.json:
            a.json.write_text(text)
        return 0
    kw: dict[str, Any] = {}
    if a.only:
        kw["contenders"] = tuple(a.only.split(","))
    res = run(a.rows, url=a.url, rounds=a.rounds, to_sql_rows=a.to_sql_rows,
              batch_size=a.batch_size, **kw)
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
