"""A separate writer process for the stream tests: ingest, plain SQL, COPY and a rollback.

Run as ``python -m tests.streams.writer_proc URL SYMBOLS BATCHES ROWS``. Every
trade's price encodes (batch, row) so the test can tell batches apart; the
rolled-back batch uses negative prices.
"""

from __future__ import annotations

import datetime as dt
import sys

import pandas as pd
import psycopg

import marketdb

BASE = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


def frame(symbols: list[str], batch: int, rows: int) -> pd.DataFrame:
    """``rows`` trades per symbol, one second apart, after every earlier batch."""
    out = []
    for s, symbol in enumerate(symbols):
        for i in range(rows):
            out.append({
                "symbol": symbol,
                "ts": BASE + dt.timedelta(seconds=batch * rows + i, microseconds=s),
                "price": 100.0 + batch + i / 1000.0,
                "size": 1.0 + i,
            })
    return pd.DataFrame(out)


def main(url: str, symbols: list[str], batches: int, rows: int) -> None:
    db = marketdb.connect(url)
    ids = {}
    with psycopg.connect(url) as conn:
        for symbol in symbols:
            row = conn.execute("SELECT id FROM instruments WHERE symbol = %s", [symbol]).fetchone()
            assert row is not None
            ids[symbol] = row[0]
    for b in range(batches):
        data = frame(symbols, b, rows)
        if b % 4 == 1:  # plain SQL from "another language": no marketdb code involved
            with psycopg.connect(url) as conn:
                conn.cursor().executemany(
                    "INSERT INTO trades (instrument_id, ts, price, size) VALUES (%s, %s, %s, %s)",
                    [(ids[r.symbol], r.ts, r.price, r.size) for r in data.itertuples()],
                )
        elif b % 4 == 2:  # COPY, then a rolled-back batch after it
            with psycopg.connect(url) as conn, conn.cursor().copy(
                    "COPY trades (instrument_id, ts, price, size) FROM STDIN") as cp:
                for r in data.itertuples():
                    cp.write_row((ids[r.symbol], r.ts, r.price, r.size))
            with psycopg.connect(url) as conn:
                try:
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO trades (instrument_id, ts, price, size) "
                            "SELECT %s, %s + make_interval(secs => g), -1, 1 FROM generate_series(0, 9) g",
                            [ids[symbols[0]], BASE + dt.timedelta(seconds=b * rows, microseconds=500)],
                        )
                        raise RuntimeError("roll back")
                except RuntimeError:
                    pass
        else:
            db.ingest.write_ticks(data)
        print(f"batch {b}", flush=True)
    db.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4]))
