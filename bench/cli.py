"""Start-up cost of the `marketdb` command, each command run as a whole process.

    .venv/bin/python bench/cli.py [--rounds 7] [--json cli.json]

Figures (seconds, median and best of interleaved rounds; issue 15 goals):

Each figure is wall time and the process's CPU time (user + system, steadier
when the machine is busy).

* ``python``: ``python -c pass``, the interpreter alone (the floor, the baseline).
* ``version``: ``marketdb --version`` (goal <= 0.3 s).
* ``help``: ``marketdb --help`` (goal <= 0.3 s).
* ``subcommand_help``: ``marketdb bars show --help`` (parses every option, no data).
* ``command``: ``marketdb latest NOPE`` against an already running scratch
  embedded server: imports, settings, connect, schema check and one lookup that
  finds nothing (exit 3) -- a command's own overhead before it touches data
  (goal <= 0.8 s).

Absolute figures move with the machine's load; the ratio to ``python`` is the
steadier one. :func:`run` returns every figure as a dict; ``bench/run.py``
includes it (``--only cli``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import BenchServer

GOALS = {"version": 0.3, "help": 0.3, "command": 0.8}


def _marketdb() -> list[str]:
    exe = Path(sys.executable).with_name("marketdb")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "marketdb.cli"]


def _time(argv: list[str], env: dict[str, str], expect: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one whole process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != expect:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}, expected {expect}: {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def run(rounds: int = 7, url: str | None = None, log: Callable[..., Any] = print) -> dict[str, Any]:
    """Time each case ``rounds`` times, interleaved; return medians, minima and ratios."""
    import marketdb

    server = BenchServer(url, prefix="marketdb-bench-cli-")
    try:
        db_url = server.create_database("marketdb_bench_cli")
        marketdb.connect(db_url, migrate_schema=True, home=server.home).close()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["MARKETDB_HOME"] = str(server.home)
        mdb = _marketdb()
        cases: dict[str, tuple[list[str], int]] = {
            "python": ([sys.executable, "-c", "pass"], 0),
            "version": ([*mdb, "--version"], 0),
            "help": ([*mdb, "--help"], 0),
            "subcommand_help": ([*mdb, "bars", "show", "--help"], 0),
            "command": ([*mdb, "latest", "NOPE", "--url", db_url], 3),
        }
        for argv, code in cases.values():  # warm the file cache once
            _time(argv, env, code)
        samples: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        for r in range(rounds):
            for name, (argv, code) in cases.items():
                wall, used = _time(argv, env, code)
                samples[name].append(wall)
                cpu[name].append(used)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in samples.items()))
        server.drop("marketdb_bench_cli")
    finally:
        server.close()
    out: dict[str, Any] = {
        name: {
            "median_s": statistics.median(v),
            "best_s": min(v),
            "cpu_median_s": statistics.median(cpu[name]),
            "samples_s": v,
        }
        for name, v in samples.items()
    }
    base = out["python"]["median_s"]
    out["ratios_vs_python"] = {k: out[k]["median_s"] / base for k in cases if k != "python"}
    out["goals_s"] = GOALS
    out["goals_met_median"] = {k: out[k]["median_s"] <= g for k, g in GOALS.items()}
    out["cpu_count"] = os.cpu_count()
    out["load_avg"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the CLI start-up benchmark and print (or save) the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--url", default=None, help="PostgreSQL server (default: scratch embedded)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    res = run(args.rounds, args.url)
    for name in ("python", "version", "help", "subcommand_help", "command"):
        r = res[name]
        goal = GOALS.get(name)
        print(
            f"{name:16s} median {r['median_s']:.3f}s  best {r['best_s']:.3f}s  cpu {r['cpu_median_s']:.3f}s"
            + (f"  goal <= {goal}s" if goal else "")
        )
    print(f"load average {res['load_avg']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
