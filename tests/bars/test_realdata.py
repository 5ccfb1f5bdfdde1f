"""Bars on real market data from /work/shared/realdata (skipped when it is absent).

* Binance BTCUSDT spot trades (2,001 prints, many sharing a millisecond): written through
  the ingest hook in shuffled batches with re-deliveries, the stored bars equal a pandas
  recomputation at every stored interval.
* CME 6E futures 1-minute bars (a provider's candles, January 2024, Globex sessions that
  open the evening before): rolled up in SQL, they equal a pandas resample.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.services.bars.testing import bar_differences, reference_bars
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions
from tests.bars.test_db import add_instrument, batch_table, stored_bars, write_batch

REAL = Path("/work/shared/realdata/nautilus_trader")
pytestmark = pytest.mark.skipif(not REAL.exists(), reason="needs /work/shared/realdata")


def test_binance_trades_give_exact_bars(db: marketdb.MarketDB) -> None:
    raw = pd.read_parquet(REAL / "binance" / "btcusdt-trades.parquet")
    iid = add_instrument(db, "BTCUSDT", "24/7")
    ts = raw["timestamp"].dt.as_unit("ns").astype("int64").to_numpy()
    # buyer_maker "True": the seller hit the bid, the aggressor sold.
    side = [-1 if m == "True" else 1 for m in raw["buyer_maker"]]
    seq = raw.groupby(ts).cumcount().to_numpy()  # ordinal among prints sharing a millisecond
    rows = [
        (iid, int(x), int(s), float(p), float(q), sd)
        for x, s, p, q, sd in zip(ts, seq, raw["price"], raw["quantity"], side, strict=True)
    ]
    rng = random.Random(11)
    batches = [rows[i : i + 250] for i in range(0, len(rows), 250)]
    batches.append(rng.sample(rows, 100))  # re-delivered prints
    rng.shuffle(batches)
    for b in batches:
        write_batch(db, batch_table(b))
    frame = pd.DataFrame(rows, columns=["instrument_id", "ts", "seq", "price", "size", "side"])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="ns", utc=True)
    frame["side"] = frame["side"].astype("Int8")
    for interval in ("1m", "5m", "15m", "1h", "1d"):
        want = reference_bars(frame, interval, calendar_of={iid: None})
        assert bar_differences(stored_bars(db, iid, interval), want) == [], interval
    one = stored_bars(db, iid, "1m").sort("ts").row(0, named=True)
    assert one["trade_count"] > 0
    assert one["buy_volume"] is not None
    assert db.bars.verify().ok


def test_cme_minute_bars_roll_up_like_pandas(db: marketdb.MarketDB) -> None:
    bars = pd.read_csv(REAL / "xcme" / "6EH4.XCME_1min_bars_20240101_20240131.csv")
    bars["ts"] = pd.to_datetime(bars["timestamp_utc"], utc=True)
    iid = add_instrument(db, "6EH4", "CMES")
    with db.transaction() as conn:
        ensure_partitions(conn, "candles", dt.date(2024, 1, 1), dt.date(2024, 2, 1))
        conn.execute(
            sa.insert(t.candles),
            [
                {
                    "instrument_id": iid,
                    "interval": "1m",
                    "ts": r.ts.to_pydatetime(),
                    "source": "xcme",
                    "open": r.open,
                    "high": r.high,
                    "low": r.low,
                    "close": r.close,
                    "volume": float(r.volume),
                }
                for r in bars.itertuples()
            ],
        )
    for interval, rule in (("15m", "15min"), ("1h", "1h"), ("4h", "4h")):
        got = pl.from_arrow(db.bars.rollup(iid, interval, source="xcme")).to_pandas()  # type: ignore[union-attr]
        want = (
            bars.set_index("ts")
            .resample(rule, label="left", closed="left", origin="epoch")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna(subset=["open"])
        )
        assert len(got) == len(want), interval
        assert (got["ts"].to_numpy() == want.index.to_numpy()).all(), interval
        for col in ("open", "high", "low", "close", "volume"):
            assert got[col].tolist() == want[col].tolist(), (interval, col)
        assert set(got["source"]) == {"xcme"}
