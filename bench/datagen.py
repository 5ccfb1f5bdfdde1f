"""Deterministic synthetic tick data for the benchmarks (and, at small sizes, for tests).

The default set is 10 million trades: 5 symbols x 5 trading days x 400,000
trades per symbol-day, in US-equity-like sessions (14:30-21:00 UTC, weekdays
from Monday 2024-01-08), merged across symbols in time order as a
consolidated feed would deliver them. Prices follow a random walk on a 0.01
grid, sizes are heavy-tailed round lots, the aggressor side is known for 95%
of trades, and about 8% of trades share their timestamp (to the nanosecond)
with the previous trade of the same symbol, as the fills of one sweep do, so
the ``seq`` tie-break is exercised.

The same seed always gives byte-identical data. Columns: ``symbol`` (string),
``ts`` (timestamp[ns, UTC]), ``price`` (float64), ``size`` (float64), ``side``
(int8, null when unknown), ``exchange`` (string).

Usage::

    python bench/datagen.py                 # 10M rows -> bench/data/ticks_10000000.parquet
    python bench/datagen.py --rows 100000   # a small file
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH", "III", "JJJ")
EXCHANGES = ("XNAS", "XNYS", "ARCX", "BATS", "EDGX", "IEXG")
FIRST_DAY = np.datetime64("2024-01-08", "D")  # a Monday
SESSION_OPEN_NS = (14 * 3600 + 30 * 60) * 1_000_000_000
SESSION_NS = int(6.5 * 3600 * 1_000_000_000)
SCHEMA = pa.schema([
    ("symbol", pa.string()),
    ("ts", pa.timestamp("ns", tz="UTC")),
    ("price", pa.float64()),
    ("size", pa.float64()),
    ("side", pa.int8()),
    ("exchange", pa.string()),
])


def trading_days(days: int) -> list[np.datetime64]:
    """``days`` weekdays from :data:`FIRST_DAY`."""
    out: list[np.datetime64] = []
    d = FIRST_DAY
    while len(out) < days:
        if (d.astype("datetime64[D]").view("int64") - 4) % 7 < 5:  # 1970-01-05 was a Monday
            out.append(d)
        d = d + np.timedelta64(1, "D")
    return out


def _symbol_day(
    rng: np.random.Generator, n: int, day: np.datetime64, start_price: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """ts, price, size, side, side-known mask, closing price, exchange index of one symbol-day."""
    day_ns = int(day.astype("datetime64[ns]").view("int64"))
    offsets = np.sort(rng.integers(0, SESSION_NS, n, dtype=np.int64))
    same = rng.random(n) < 0.08  # fills of one sweep share the timestamp of the previous trade
    same[0] = False
    idx = np.arange(n)
    idx[same] = 0
    np.maximum.accumulate(idx, out=idx)
    ts = day_ns + SESSION_OPEN_NS + offsets[idx]
    steps = rng.choice(np.array([-1, 0, 1], dtype=np.int64), size=n, p=[0.3, 0.4, 0.3])
    ticks = np.round(start_price * 100) + np.cumsum(steps)
    ticks = np.maximum(ticks, 100)  # never below 1.00
    price = ticks / 100.0
    size = np.maximum(1, np.round(rng.pareto(1.5, n) * 100)).astype(np.float64)
    side = rng.choice(np.array([1, -1], dtype=np.int8), size=n)
    known = rng.random(n) >= 0.05
    exch = rng.integers(0, len(EXCHANGES), n)
    return ts, price, size, side, known, float(price[-1]) if n else start_price, exch


def days_of_ticks(rows: int = 10_000_000, symbols: int = 5, days: int = 5, seed: int = 42
                  ) -> Iterator[pa.Table]:
    """One Arrow table per trading day, all symbols merged in time order."""
    if not 1 <= symbols <= len(SYMBOLS):
        raise ValueError(f"symbols must be between 1 and {len(SYMBOLS)}")
    rng = np.random.default_rng(seed)
    per = np.full(symbols * days, rows // (symbols * days), dtype=np.int64)
    per[: rows - int(per.sum())] += 1
    prices = 50.0 + 50.0 * np.arange(symbols)
    exchanges = pa.array(EXCHANGES)
    k = 0
    for day in trading_days(days):
        parts = []
        for s in range(symbols):
            ts, price, size, side, known, last, exch = _symbol_day(rng, int(per[k]), day,
                                                                   prices[s])
            prices[s] = last
            k += 1
            parts.append((s, ts, price, size, side, known, exch))
        ts = np.concatenate([p[1] for p in parts])
        order = np.argsort(ts, kind="stable")
        sym_idx = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int32) for p in parts])[order]
        known = np.concatenate([p[5] for p in parts])[order]
        table = pa.table({
            "symbol": pa.DictionaryArray.from_arrays(pa.array(sym_idx),
                                                     pa.array(SYMBOLS[:symbols])).cast(pa.string()),
            "ts": pa.array(ts[order], pa.timestamp("ns", tz="UTC")),
            "price": np.concatenate([p[2] for p in parts])[order],
            "size": np.concatenate([p[3] for p in parts])[order],
            "side": pa.array(np.concatenate([p[4] for p in parts])[order], pa.int8(),
                             mask=~known),
            "exchange": exchanges.take(pa.array(np.concatenate([p[6] for p in parts])[order])),
        }, schema=SCHEMA)
        yield table


def ticks_table(rows: int = 100_000, symbols: int = 5, days: int = 5, seed: int = 42) -> pa.Table:
    """The whole data set as one in-memory table (for small sizes)."""
    return pa.concat_tables(list(days_of_ticks(rows, symbols, days, seed)))


def generate(rows: int = 10_000_000, symbols: int = 5, days: int = 5, seed: int = 42,
             path: Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the data set to Parquet (zstd, 1M-row groups) and return its path.

    An existing file of the same name is kept unless ``overwrite``: the same
    arguments always produce the same data.
    """
    if path is None:
        path = DATA_DIR / f"ticks_{rows}_{symbols}s_{days}d_seed{seed}.parquet"
    if path.exists() and not overwrite:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
        for table in days_of_ticks(rows, symbols, days, seed):
            writer.write_table(table, row_group_size=1_000_000)
    tmp.replace(path)
    return path


def generate_ticks(symbol: str, day: object, n: int, seed: int = 42) -> pd.DataFrame:
    """One symbol-day as a pandas DataFrame (ts, seq, price, size, side, exchange).

    Same generator as the Parquet set; ``seq`` is marketdb's tie-break (ordinal
    among the trades sharing a timestamp). Used by bench/reads.py.
    """
    import pandas as pd

    d = np.datetime64(pd.Timestamp(day).tz_localize(None).date(), "D")  # type: ignore[arg-type]
    sym_seed = int.from_bytes(symbol.encode()[:8].ljust(8, b"\0"), "little") % (2**31)
    rng = np.random.default_rng([seed, sym_seed, int(d.view("int64"))])
    ts, price, size, side, known, _, exch = _symbol_day(rng, n, d, 50.0 + sym_seed % 400)
    first = np.r_[True, ts[1:] != ts[:-1]]
    starts = np.flatnonzero(first)
    seq = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    return pd.DataFrame({
        "ts": pd.to_datetime(ts, utc=True),
        "seq": seq.astype(np.int32),
        "price": price,
        "size": size,
        "side": pd.Series(side, dtype="Int8").mask(~known),
        "exchange": np.asarray(EXCHANGES, dtype=object)[exch],
    })


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python bench/datagen.py [--rows N] [--symbols S] [--days D] [--seed X]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--symbols", type=int, default=5)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    path = generate(a.rows, a.symbols, a.days, a.seed, a.out, overwrite=a.overwrite)
    meta = pq.ParquetFile(path).metadata
    print(f"{path} ({meta.num_rows:,} rows, {path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
