"""All benchmarks in one run, printed side by side with the baselines and ANCHORS.md.

    ./scripts/bench                 # 10M ticks (5 symbols x 5 days), as ANCHORS.md
    ./scripts/bench --ticks 1000000 # a quick run

Ratios are what matter: absolute figures move +-25% with the machine's load.
Every figure is a median of interleaved rounds; nothing here is asserted in tests.
Results are also saved as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import api as bench_api
from bench import bars as bench_bars
from bench import cli as bench_cli
from bench import clickhouse as bench_clickhouse
from bench import ingest as bench_ingest
from bench import reads as bench_reads
from bench import stream as bench_stream

console = Console()


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}{unit}"
    if isinstance(x, float):
        return f"{x:.3g}{unit}"
    return f"{x}{unit}"


def summarize(res: dict[str, Any]) -> Table:
    """One table: figure, marketdb, baseline, ratio, goal, ANCHORS reference."""
    ing, brs, rds = res.get("ingest", {}), res.get("bars", {}), res.get("reads", {})
    cli = res.get("cli", {})
    t = Table(title="marketdb vs baselines (one run)")
    for col in ("figure", "marketdb", "baseline", "ratio", "goal", "ANCHORS.md"):
        t.add_column(col)
    m = _get(ing, "marketdb", "rows_per_second")
    raw = _get(ing, "raw_copy", "rows_per_second")
    tosql = _get(ing, "to_sql", "rows_per_second")
    t.add_row(
        "tick ingest rows/s vs raw binary COPY",
        _fmt(m),
        _fmt(raw),
        _fmt(m / raw if m and raw else None, "x"),
        ">= 0.7x",
        "COPY with PK 328k",
    )
    t.add_row(
        "tick ingest vs pandas.to_sql",
        _fmt(m),
        _fmt(tosql),
        _fmt(m / tosql if m and tosql else None, "x"),
        ">= 20x",
        "to_sql 46k",
    )
    t.add_row(
        "tick ingest vs DuckDB (with PK)",
        _fmt(m),
        _fmt(_get(ing, "duckdb_pk", "rows_per_second")),
        _fmt(_get(ing, "ratios", "marketdb_vs_duckdb_pk"), "x"),
        "-",
        "DuckDB 765k with PK",
    )
    t.add_row(
        "tick ingest vs ArcticDB",
        _fmt(m),
        _fmt(_get(ing, "arcticdb", "rows_per_second")),
        _fmt(_get(ing, "ratios", "marketdb_vs_arcticdb"), "x"),
        "-",
        "ArcticDB 2.8M",
    )
    t.add_row(
        "bytes per tick on disk",
        _fmt(_get(ing, "marketdb", "bytes_per_tick")),
        _fmt(_get(ing, "raw_copy", "bytes_per_tick")),
        "-",
        "-",
        "PG rows 92; Parquet 8",
    )
    peak = _get(ing, "marketdb", "peak_rss_bytes")
    t.add_row(
        "peak memory, 10M-row Parquet ingest",
        _fmt(peak / 1e6 if peak else None, " MB"),
        "-",
        "-",
        "< 1000 MB",
        "-",
    )
    duck = _get(brs, "bars_1m", "duckdb", "seconds")
    t.add_row(
        "1m bars from scratch, in memory (s)",
        _fmt(_get(brs, "bars_1m", "marketdb_memory", "seconds")),
        _fmt(duck),
        _fmt(_get(brs, "ratios", "marketdb_memory_vs_duckdb"), "x"),
        "<= 1.5x DuckDB",
        "DuckDB 0.43 s",
    )
    t.add_row(
        "1m..1d bars rebuilt from PostgreSQL (s)",
        _fmt(_get(brs, "bars_1m", "marketdb_rebuild", "seconds")),
        _fmt(duck),
        _fmt(_get(brs, "ratios", "marketdb_rebuild_vs_duckdb"), "x"),
        "-",
        "best PG SQL 13.6 s",
    )
    t.add_row(
        "1m bars, pandas (s)",
        "-",
        _fmt(_get(brs, "bars_1m", "pandas", "seconds")),
        "-",
        "-",
        "pandas 1.8-7.5 s",
    )
    t.add_row(
        "continuous-bars overhead on ingest",
        _fmt(_get(brs, "ratios", "ingest_overhead_of_continuous_bars")),
        "-",
        "-",
        "<= 30%",
        "-",
    )
    for key, label, goal, anchor in (
        (
            "ticks_day_ms",
            "one symbol-day of ticks -> pandas (ms)",
            "<= 3x ArcticDB",
            "ArcticDB 5 ms; PG COPY 483",
        ),
        ("bars_1m_ms", "one symbol's 1m bar history -> pandas (ms)", "<= 2x ArcticDB", "ArcticDB 1.3 ms"),
    ):
        block = rds.get(key, {}) if isinstance(rds, dict) else {}
        mk = next((v for k, v in block.items() if k.startswith("marketdb")), None) if block else None
        arc = block.get("arcticdb") if block else None
        t.add_row(label, _fmt(mk), _fmt(arc), _fmt(mk / arc if mk and arc else None, "x"), goal, anchor)
    py = _get(cli, "python", "median_s")
    for key, label, goal in (
        ("version", "`marketdb --version` (s) vs python -c pass", "<= 0.3 s"),
        ("help", "`marketdb --help` (s) vs python -c pass", "<= 0.3 s"),
        ("command", "command overhead, `latest NOPE` (s)", "<= 0.8 s"),
    ):
        v = _get(cli, key, "median_s")
        t.add_row(label, _fmt(v), _fmt(py), _fmt(v / py if v and py else None, "x"), goal, "-")
    api = res.get("api", {})
    if api:
        figures = (("cached_bars", "API cached 1m bars (Redis)"), ("uncached_bars", "API uncached 1m bars"))
        for key, label in figures:
            fig = api.get(key) or {}
            t.add_row(
                f"{label} req/s (p50/p99 ms)",
                _fmt(fig.get("req_per_s")),
                f"{_fmt(fig.get('p50_ms'))}/{_fmt(fig.get('p99_ms'))}",
                "-",
                ">= 2,000 req/s, p99 <= 20 ms" if key == "cached_bars" else "-",
                "-",
            )
        tr = api.get("ticks_read") or {}
        t.add_row("API 100k ticks: JSON ms vs Arrow ms", _fmt(tr.get("json_ms")), _fmt(tr.get("arrow_ms")),
                  _fmt(tr.get("json_vs_arrow"), "x"), "-", "-")
        ing = api.get("ingest") or {}
        t.add_row("API ingest rows/s vs library", _fmt(ing.get("http_rows_per_s")),
                  _fmt(ing.get("library_rows_per_s")), _fmt(ing.get("http_vs_library"), "x"), "-", "-")
    st = res.get("stream", {})
    for n in ("1", "10", "100"):
        t.add_row(
            f"commit -> WebSocket client p50 / p99 (ms), {n} subscriber(s)",
            f"{_fmt(_get(st, 'latency', n, 'p50_ms'))} / {_fmt(_get(st, 'latency', n, 'p99_ms'))}",
            "-", "-", "-", "-",
        )
    t.add_row(
        "ingest with a slow stream consumer vs without",
        _fmt(_get(st, "ingest", "slow_consumer_vs_capture"), "x"),
        "-",
        "-",
        ">= 0.9x",
        "-",
    )
    t.add_row(
        "ingest with change-capture triggers vs without",
        _fmt(_get(st, "ingest", "capture_vs_no_capture"), "x"),
        "-",
        "-",
        "-",
        "-",
    )
    ch = res.get("clickhouse", {})
    if ch:
        rate = _fmt(_get(ch, "sync", "rows_per_second"))
        t.add_row("ClickHouse sync rows/s (chdb)", rate, "-", "-", "-", "-")
        pg = _get(ch, "bars_1m", "postgres_sql", "seconds")
        for engine in ("clickhouse", "duckdb", "arcticdb"):
            v = _get(ch, "bars_1m", engine, "seconds")
            t.add_row(
                f"1m bars from scratch, {engine} vs PostgreSQL SQL (s)",
                _fmt(v),
                _fmt(pg),
                _fmt(v / pg if v and pg else None, "x"),
                "-",
                "-",
            )
        base = _get(ch, "ticks_day", "marketdb postgres", "seconds")
        for engine in ("marketdb clickhouse", "duckdb", "arcticdb"):
            v = _get(ch, "ticks_day", engine, "seconds")
            t.add_row(
                f"symbol-day ticks, {engine} vs marketdb postgres (ms)",
                _fmt(v * 1000 if v else None),
                _fmt(base * 1000 if base else None),
                _fmt(v / base if v and base else None, "x"),
                "-",
                "-",
            )
    return t


def main(argv: list[str] | None = None) -> int:
    """Run ingest, bars and reads benchmarks on the same data size and print the summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ticks", type=int, default=10_000_000, help="ticks in the data set (default 10M)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure")
    p.add_argument(
        "--only",
        choices=("ingest", "bars", "reads", "cli", "api", "stream", "clickhouse"),
        action="append",
        help="run only these parts (repeatable)",
    )
    args = p.parse_args(argv)
    parts = args.only or ["ingest", "bars", "reads", "cli", "api", "stream", "clickhouse"]
    res: dict[str, Any] = {"ticks": args.ticks, "started": dt.datetime.now(dt.UTC).isoformat()}
    if "ingest" in parts:
        console.rule("ingest")
        res["ingest"] = bench_ingest.run(args.ticks, rounds=args.rounds, log=console.print)
    if "bars" in parts:
        console.rule("bars")
        res["bars"] = bench_bars.run(args.ticks, rounds=args.rounds, log=console.print)
    if "reads" in parts:
        console.rule("reads")
        res["reads"] = bench_reads.run(
            ticks_per_day=max(args.ticks // 25, 1000), rounds=args.rounds, log=console.print
        )
    if "cli" in parts:
        console.rule("cli start-up")
        res["cli"] = bench_cli.run(rounds=max(args.rounds, 5), log=console.print)
    if "api" in parts:
        console.rule("api")
        res["api"] = bench_api.run(min(args.ticks, 100_000), rounds=args.rounds, log=console.print)
    if "stream" in parts:
        console.rule("stream")
        res["stream"] = bench_stream.run(min(args.ticks, 200_000), rounds=args.rounds, log=console.print)
    if "clickhouse" in parts:
        console.rule("clickhouse")
        res["clickhouse"] = bench_clickhouse.run(args.ticks, rounds=args.rounds, log=console.print)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(res, indent=2, default=str))
    console.print(summarize(res))
    console.print(f"full results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
