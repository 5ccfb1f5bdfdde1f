"""Read benchmark: market data from storage into pandas, marketdb against the usual suspects.

Two reads, as in ``ANCHORS.md``:

* **one symbol-day of ticks** (400k trades by default) into a pandas DataFrame;
* **one symbol's full 1m bar history** (5 days x 390 bars) into pandas;

each through marketdb (``Query.ticks`` / ``Query.bars``, ADBC and binary-COPY
transports), ``pandas.read_sql``, DuckDB and ArcticDB on the same rows, plus
the bare transports (ADBC ``fetch_arrow_table``, psycopg binary COPY) and a
profile of where marketdb's time goes. Medians of interleaved rounds after a
warm-up round; compare ratios taken in one run.

Run: ``.venv/bin/python bench/reads.py [--ticks-per-day N] [--json out.json]``.
:func:`run` returns the results as a dict. By default it starts a scratch
embedded PostgreSQL in a temporary directory (``--url`` to use another
server; the benchmark creates and drops its own database there).

Data: ``bench/datagen.py`` (the ingestion benchmark's generator) when it
offers ``generate_ticks``; otherwise an equivalent built-in generator
(random-walk prices, lognormal sizes, uniform nanosecond arrival times over
the New York regular session, 4-letter exchange codes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

HERE = Path(__file__).resolve().parent
UTC = dt.UTC
PG_EPOCH_US = 946_684_800_000_000
SESSION_OPEN_UTC = pd.Timedelta(hours=14, minutes=30)  # 09:30 New York (EST)
SESSION_NS = 390 * 60 * 10**9
EXCHANGES = np.array(["XNAS", "XNYS", "ARCX", "BATS", "EDGX", "IEXG"])


# ----------------------------------------------------------------- data
def _builtin_ticks(symbol_index: int, day: pd.Timestamp, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 7919 * symbol_index + day.day_of_year)
    start = (day + SESSION_OPEN_UTC).value
    ns = np.sort(start + rng.integers(0, SESSION_NS, n, dtype=np.int64))
    price = 50.0 + 20 * symbol_index + np.cumsum(rng.normal(0, 0.01, n))
    size = np.maximum(1, np.round(rng.lognormal(4.0, 1.0, n)))
    side = rng.choice(np.array([-1, 1], dtype=np.int16), n)
    exch = EXCHANGES[rng.integers(0, len(EXCHANGES), n)]
    return pd.DataFrame({
        "ts": pd.to_datetime(ns, utc=True), "seq": np.arange(n, dtype=np.int32), "price": price,
        "size": size, "side": side, "exchange": exch,
    })  # fmt: skip


def generate(symbols: int, days: int, ticks_per_day: int, seed: int = 7) -> dict[str, list[pd.DataFrame]]:
    """Ticks per symbol, one frame per session day (columns ts, seq, price, size, side, exchange)."""
    gen: Callable[..., pd.DataFrame] | None = None
    path = HERE / "datagen.py"
    if path.exists():
        spec = importlib.util.spec_from_file_location("marketdb_bench_datagen", path)
        if spec and spec.loader:
            mod = importlib.util.module_from_spec(spec)
            with contextlib.suppress(Exception):
                spec.loader.exec_module(mod)
                gen = getattr(mod, "generate_ticks", None)
    sessions = pd.bdate_range("2024-03-04", periods=days, tz="UTC")
    out: dict[str, list[pd.DataFrame]] = {}
    for s in range(symbols):
        sym = f"SYM{s}"
        frames = []
        for day in sessions:
            df = None
            if gen is not None:
                with contextlib.suppress(Exception):
                    df = gen(symbol=sym, day=day, n=ticks_per_day, seed=seed)
            if df is None or not {"ts", "price", "size"} <= set(df.columns):
                df = _builtin_ticks(s, day, ticks_per_day, seed)
            frames.append(df)
        out[sym] = frames
    return out


def one_minute_bars(ticks: pd.DataFrame) -> pd.DataFrame:
    """1m OHLCV bars of one symbol-day (first/last by time, then seq)."""
    g = ticks.assign(bucket=ticks["ts"].dt.floor("1min")).groupby("bucket", sort=True)
    notional = (ticks["price"] * ticks["size"]).groupby(ticks["ts"].dt.floor("1min")).sum()
    bars = pd.DataFrame({
        "open": g["price"].first(), "high": g["price"].max(), "low": g["price"].min(),
        "close": g["price"].last(), "volume": g["size"].sum(), "trade_count": g["price"].size(),
    })  # fmt: skip
    bars["vwap"] = notional / bars["volume"]
    bars.index.name = "ts"
    return bars


# -------------------------------------------------------------- loaders
def _copy_trades_buffer(iid: int, df: pd.DataFrame) -> bytes:
    """Binary COPY rows (instrument_id, ts, ts_nanos, seq, price, size, side, exchange, source).

    An unknown side (NULL) is sent as 0 and turned back into NULL by the INSERT from staging.
    """
    n = len(df)
    ns = df["ts"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8
    us, rest = np.divmod(ns, 1000)
    row = np.dtype([
        ("n", ">i2"), ("l0", ">i4"), ("iid", ">i4"), ("l1", ">i4"), ("ts", ">i8"), ("l2", ">i4"),
        ("nanos", ">i2"), ("l3", ">i4"), ("seq", ">i4"), ("l4", ">i4"), ("price", ">f8"),
        ("l5", ">i4"), ("size", ">f8"), ("l6", ">i4"), ("side", ">i2"), ("l7", ">i4"),
        ("exch", "S4"), ("l8", ">i4"), ("src", "S5"),
    ])  # fmt: skip
    a = np.empty(n, dtype=row)
    a["n"] = 9
    for k, w in enumerate((4, 8, 2, 4, 8, 8, 2, 4, 5)):
        a[f"l{k}"] = w
    a["iid"] = iid
    a["ts"] = us - PG_EPOCH_US
    a["nanos"] = rest
    a["seq"] = df["seq"].to_numpy()
    a["price"] = df["price"].to_numpy()
    a["size"] = df["size"].to_numpy()
    a["side"] = pd.to_numeric(df["side"]).fillna(0).to_numpy(dtype=np.int16)
    a["exch"] = df["exchange"].to_numpy().astype("S4")
    a["src"] = b"bench"
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + a.tobytes() + (-1).to_bytes(2, "big", signed=True)


def load_postgres(db: Any, data: dict[str, list[pd.DataFrame]]) -> dict[str, int]:
    """Instruments, trades (binary COPY) and 1m candles; then VACUUM ANALYZE (sealed history)."""
    import sqlalchemy as sa

    from marketdb.store.schema import tables as t
    from marketdb.store.timeseries import ensure_partitions

    first = min(f["ts"].min() for frames in data.values() for f in frames)
    last = max(f["ts"].max() for frames in data.values() for f in frames)
    ids: dict[str, int] = {}
    with db.transaction() as conn:
        lo_d, hi_d = first.date(), last.date()
        ensure_partitions(conn, "trades", lo_d, hi_d)
        ensure_partitions(conn, "candles", lo_d, hi_d)
        for sym in data:
            ids[sym] = conn.execute(
                sa.insert(t.instruments).values(symbol=sym, calendar="XNYS").returning(t.instruments.c.id)
            ).scalar_one()
    for sym, frames in data.items():
        for df in frames:
            cols = "instrument_id, ts, ts_nanos, seq, price, size, side, exchange, source"
            with db.raw() as conn, conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE stage (LIKE trades INCLUDING DEFAULTS) ON COMMIT DROP"
                )
                with cur.copy(f"COPY stage ({cols}) FROM STDIN (FORMAT BINARY)") as cp:  # type: ignore[arg-type]
                    cp.write(_copy_trades_buffer(ids[sym], df))
                cur.execute(
                    f"INSERT INTO trades ({cols}) SELECT instrument_id, ts, ts_nanos, seq, "  # type: ignore[arg-type]
                    "price, size, NULLIF(side, 0), exchange, source FROM stage"
                )
            bars = one_minute_bars(df).reset_index()
            bars.insert(0, "instrument_id", ids[sym])
            bars.insert(1, "interval", "1m")
            bars["source"] = "trades"
            with db.transaction() as conn:
                conn.execute(sa.insert(t.candles), bars.to_dict("records"))
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(sa.text("VACUUM ANALYZE trades"))
        conn.execute(sa.text("VACUUM ANALYZE candles"))
    return ids


def load_arctic(path: Path, data: dict[str, list[pd.DataFrame]]) -> Any:
    """One ArcticDB symbol per ticker for ticks, one for its 1m bars (LMDB on local disk)."""
    import arcticdb as adb

    ac = adb.Arctic(f"lmdb://{path}")
    lib = ac.get_library("bench", create_if_missing=True)
    for sym, frames in data.items():
        ticks = pd.concat(frames, ignore_index=True).set_index("ts")
        ticks["side"] = pd.to_numeric(ticks["side"]).astype("float64")  # ArcticDB: NaN for unknown
        ticks["exchange"] = ticks["exchange"].astype(str)
        ticks["source"] = "bench"
        lib.write(f"{sym}.ticks", ticks)
        lib.write(f"{sym}.1m", pd.concat([one_minute_bars(f) for f in frames]))
    return lib


def load_duckdb(path: Path, data: dict[str, list[pd.DataFrame]]) -> Any:
    """Two DuckDB tables, sorted by (symbol, ts) so zone maps skip other symbols and days."""
    import duckdb

    con = duckdb.connect(str(path))
    first = True
    for sym, frames in data.items():
        ticks = pd.concat(frames, ignore_index=True)
        ticks.insert(0, "symbol", sym)
        ticks["source"] = "bench"
        bars = pd.concat([one_minute_bars(f) for f in frames]).reset_index()
        bars.insert(0, "symbol", sym)
        con.register("t_df", pa.Table.from_pandas(ticks, preserve_index=False))
        con.register("b_df", pa.Table.from_pandas(bars, preserve_index=False))
        if first:
            con.execute("CREATE TABLE ticks AS SELECT * FROM t_df")
            con.execute("CREATE TABLE bars AS SELECT * FROM b_df")
            first = False
        else:
            con.execute("INSERT INTO ticks SELECT * FROM t_df")
            con.execute("INSERT INTO bars SELECT * FROM b_df")
        con.unregister("t_df")
        con.unregister("b_df")
    con.execute("CHECKPOINT")
    return con


# --------------------------------------------------------------- timing
def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _time_rounds(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Warm up once, then ``rounds`` interleaved rounds; median milliseconds per case."""
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()
    for _ in range(rounds):
        for k, fn in cases.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t0)
    return {k: _median_ms(v) for k, v in samples.items()}


@contextlib.contextmanager
def _database(url: str | None) -> Iterator[Any]:
    """A fresh marketdb database: on a scratch embedded server, or created on ``url``'s server."""
    import psycopg
    from psycopg import sql

    import marketdb
    from marketdb.store.db import libpq_uri
    from marketdb.store.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="marketdb-bench-reads-"))
    server = None
    try:
        if url is None:
            server = EmbeddedServer(home)
            base = server.ensure_running().libpq_uri()
        else:
            base = libpq_uri(url)
        from sqlalchemy.engine import make_url

        name = f"marketdb_bench_reads_{os.getpid()}"
        admin = make_url(base).set(database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        db_url = make_url(base).set(database=name).render_as_string(hide_password=False)
        db = marketdb.connect(db_url, migrate_schema=True, home=home)
        try:
            yield db
        finally:
            db.close()
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        if server is not None:
            server.stop(mode="fast")
        shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------ run
def run(
    url: str | None = None,
    *,
    symbols: int = 5,
    days: int = 5,
    ticks_per_day: int = 400_000,
    rounds: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load the data set into PostgreSQL, ArcticDB and DuckDB; time the two reads.

    Returns ``{"params", "ticks_day_ms", "bars_1m_ms", "ratios", "profile", "versions"}``
    (milliseconds, medians of ``rounds`` interleaved rounds).
    """
    import adbc_driver_postgresql.dbapi as adbc
    import sqlalchemy as sa

    from marketdb.services.query import Query

    t0 = time.perf_counter()
    data = generate(symbols, days, ticks_per_day)
    log(f"generated {symbols * days * ticks_per_day:,} ticks in {time.perf_counter() - t0:.1f}s")
    sym = "SYM2" if symbols > 2 else "SYM0"
    day = data[sym][days // 2]["ts"].iloc[0].normalize()
    day_end = day + pd.Timedelta(days=1)
    results: dict[str, Any] = {
        "params": {"symbols": symbols, "days": days, "ticks_per_day": ticks_per_day, "rounds": rounds,
                   "symbol": sym, "day": str(day.date())},
    }  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="marketdb-bench-stores-"))
    try:
        with _database(url) as db:
            t0 = time.perf_counter()
            ids = load_postgres(db, data)
            log(f"loaded PostgreSQL in {time.perf_counter() - t0:.1f}s")
            iid = ids[sym]
            arctic = duck = None
            try:
                t0 = time.perf_counter()
                arctic = load_arctic(tmp / "arctic", data)
                log(f"loaded ArcticDB in {time.perf_counter() - t0:.1f}s")
            except ImportError:
                log("arcticdb not installed: skipped (pip install arcticdb)")
            try:
                t0 = time.perf_counter()
                duck = load_duckdb(tmp / "bench.duckdb", data)
                log(f"loaded DuckDB in {time.perf_counter() - t0:.1f}s")
            except ImportError:
                log("duckdb not installed: skipped (pip install duckdb)")

            q_adbc = Query(db, transport="adbc")
            q_copy = Query(db, transport="copy")
            q_warm = Query(db, transport="adbc", cache_mb=1024)
            lo, hi = day.to_pydatetime(), day_end.to_pydatetime()
            tick_sql = (
                "SELECT ts, ts_nanos, price, size, side, seq, exchange, conditions, trade_id, source "
                f"FROM trades WHERE instrument_id = {int(iid)} AND ts >= '{lo.isoformat()}' "
                f"AND ts < '{hi.isoformat()}' ORDER BY ts, ts_nanos, seq"
            )  # benchmark-only text: integers and our own timestamps, no user input
            bar_sql = (
                "SELECT ts, open, high, low, close, volume, vwap, trade_count, source FROM candles "
                f"WHERE instrument_id = {int(iid)} AND interval = '1m' ORDER BY ts"
            )
            adbc_conn = adbc.connect(db.url, autocommit=True)

            def adbc_fetch(text: str) -> pa.Table:
                with adbc_conn.cursor() as cur:
                    cur.execute(text)
                    return cur.fetch_arrow_table()

            def copy_bytes(text: str) -> int:
                copy = f"COPY ({text}) TO STDOUT (FORMAT BINARY)"
                with db.raw() as c, c.cursor() as cur, cur.copy(copy) as cp:  # type: ignore[arg-type]
                    return sum(len(chunk) for chunk in cp)

            def read_sql(text: str) -> pd.DataFrame:
                return pd.read_sql(sa.text(text), db.engine)

            def fetchall(text: str) -> list[Any]:
                with db.raw() as c:
                    return c.execute(text).fetchall()  # type: ignore[arg-type]

            ticks_cases: dict[str, Callable[[], Any]] = {
                "marketdb (adbc)": lambda: q_adbc.ticks(sym, lo, hi),
                "marketdb (copy)": lambda: q_copy.ticks(sym, lo, hi),
                "marketdb (adbc, warm cache)": lambda: q_warm.ticks(sym, lo, hi),
                "marketdb numeric cols (adbc)": lambda: q_adbc.ticks(
                    sym, lo, hi, columns=["price", "size", "side"]),
                "adbc fetch_arrow_table only": lambda: adbc_fetch(tick_sql),
                "psycopg binary COPY bytes only": lambda: copy_bytes(tick_sql),
                "pandas.read_sql": lambda: read_sql(tick_sql),
            }  # fmt: skip
            bars_cases: dict[str, Callable[[], Any]] = {
                "marketdb (adbc)": lambda: q_adbc.bars(sym, "1m"),
                "marketdb (copy)": lambda: q_copy.bars(sym, "1m"),
                "marketdb (adbc, warm cache)": lambda: q_warm.bars(sym, "1m"),
                "adbc fetch_arrow_table only": lambda: adbc_fetch(bar_sql),
                "psycopg fetchall": lambda: fetchall(bar_sql),
                "pandas.read_sql": lambda: read_sql(bar_sql),
            }
            if arctic is not None:
                ticks_cases["arcticdb"] = lambda: arctic.read(f"{sym}.ticks", date_range=(day, day_end)).data
                ticks_cases["arcticdb numeric cols"] = lambda: arctic.read(
                    f"{sym}.ticks", date_range=(day, day_end), columns=["price", "size", "side"]).data
                bars_cases["arcticdb"] = lambda: arctic.read(f"{sym}.1m").data
            if duck is not None:
                ticks_cases["duckdb"] = lambda: duck.execute(
                    "SELECT ts, price, size, side, seq, exchange, source FROM ticks "
                    "WHERE symbol = ? AND ts >= ?::TIMESTAMPTZ_NS AND ts < ?::TIMESTAMPTZ_NS "
                    "ORDER BY ts, seq", [sym, lo, hi]).df()
                bars_cases["duckdb"] = lambda: duck.execute(
                    "SELECT * FROM bars WHERE symbol = ? ORDER BY ts", [sym]).df()

            # Correctness before speed: every contender returns the same rows.
            check = q_adbc.ticks(sym, lo, hi)
            assert len(check) == ticks_per_day, (len(check), ticks_per_day)
            assert check.index.equals(q_copy.ticks(sym, lo, hi).index)
            if arctic is not None:
                ref = arctic.read(f"{sym}.ticks", date_range=(day, day_end)).data
                assert np.array_equal(ref.index.as_unit("ns").asi8, check.index.as_unit("ns").asi8)
                assert np.array_equal(ref["price"].to_numpy(), check["price"].to_numpy())
            # Every regular-session minute has trades at full size; small runs leave gaps.
            n_bars = len(q_adbc.bars(sym, "1m"))
            assert 0 < n_bars <= days * 390
            if ticks_per_day >= 100_000:
                assert n_bars == days * 390

            log("timing one symbol-day of ticks ...")
            results["ticks_day_ms"] = _time_rounds(ticks_cases, rounds)
            log("timing the full 1m bar history ...")
            results["bars_1m_ms"] = _time_rounds(bars_cases, rounds)
            results["profile"] = _profile(db, q_adbc, sym, lo, hi, tick_sql, bar_sql, adbc_fetch, rounds)
            adbc_conn.close()
            q_adbc.close()
            q_copy.close()
            q_warm.close()
            if duck is not None:
                duck.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["ratios"] = _ratios(results)
    results["versions"] = _versions()
    return results


def _profile(
    db: Any, q: Any, sym: str, lo: dt.datetime, hi: dt.datetime, tick_sql: str, bar_sql: str,
    adbc_fetch: Callable[[str], pa.Table], rounds: int,
) -> dict[str, Any]:
    """Where marketdb's time goes, step by step (median ms)."""
    from marketdb.services.query._frames import convert
    from marketdb.services.query._service import _with_ns

    def server_ms(text: str) -> float:
        with db.raw() as c:
            plan = c.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + text).fetchone()[0]  # type: ignore[index, operator]
        return float(plan[0]["Execution Time"])

    def server_copy_ms(text: str) -> float | None:
        try:
            with db.raw() as c:
                t0 = time.perf_counter()
                c.execute(f"COPY ({text}) TO '/dev/null' (FORMAT BINARY)")  # type: ignore[arg-type]
                return (time.perf_counter() - t0) * 1000
        except Exception:  # needs superuser or pg_write_server_files
            return None

    out: dict[str, Any] = {}
    for name, text in (("ticks_day", tick_sql), ("bars_1m", bar_sql)):
        table = adbc_fetch(text)
        prof = {
            "rows": table.num_rows,
            "bytes_arrow": table.nbytes,
            "server_execute_ms": round(statistics.median(server_ms(text) for _ in range(rounds)), 2),
        }
        copies = [server_copy_ms(text) for _ in range(rounds)]
        if all(c is not None for c in copies):
            prof["server_execute_and_serialize_ms"] = round(statistics.median(copies), 2)  # type: ignore[arg-type]
        conv = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            if name == "ticks_day":
                convert(_with_ns(table.drop_columns([])), "pandas")
            else:
                convert(table, "pandas")
            conv.append(time.perf_counter() - t0)
        prof["arrow_to_pandas_ms"] = _median_ms(conv)
        out[name] = prof
    res = []
    for _ in range(rounds * 3):
        t0 = time.perf_counter()
        q._resolve(sym)  # profiling the symbol lookup round trip
        res.append(time.perf_counter() - t0)
    out["resolve_symbol_ms"] = _median_ms(res)
    return out


def _ratios(results: dict[str, Any]) -> dict[str, float | None]:
    def ratio(section: str, a: str, b: str) -> float | None:
        sec = results.get(section, {})
        if a in sec and b in sec and sec[b]:
            return round(sec[a] / sec[b], 2)
        return None

    return {
        "ticks_day marketdb/arcticdb (goal <= 3)": ratio("ticks_day_ms", "marketdb (adbc)", "arcticdb"),
        "bars_1m marketdb/arcticdb (goal <= 2)": ratio("bars_1m_ms", "marketdb (adbc)", "arcticdb"),
        "ticks_day marketdb/duckdb": ratio("ticks_day_ms", "marketdb (adbc)", "duckdb"),
        "ticks_day marketdb/pandas.read_sql": ratio("ticks_day_ms", "marketdb (adbc)", "pandas.read_sql"),
        "ticks_day copy/adbc transport": ratio("ticks_day_ms", "marketdb (copy)", "marketdb (adbc)"),
        "bars_1m marketdb/pandas.read_sql": ratio("bars_1m_ms", "marketdb (adbc)", "pandas.read_sql"),
        "bars_1m copy/adbc transport": ratio("bars_1m_ms", "marketdb (copy)", "marketdb (adbc)"),
        "ticks_day warm cache/arcticdb": ratio("ticks_day_ms", "marketdb (adbc, warm cache)", "arcticdb"),
        "bars_1m warm cache/arcticdb": ratio("bars_1m_ms", "marketdb (adbc, warm cache)", "arcticdb"),
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("pandas", "pyarrow", "adbc-driver-postgresql", "psycopg", "duckdb", "arcticdb"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: run and print (or save) the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="PostgreSQL server to use (default: scratch embedded)")
    p.add_argument("--symbols", type=int, default=5)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--ticks-per-day", type=int, default=400_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    res = run(args.url, symbols=args.symbols, days=args.days, ticks_per_day=args.ticks_per_day,
              rounds=args.rounds, log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
