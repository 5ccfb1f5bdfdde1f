"""Reads from a real PostgreSQL: bars, ticks, quotes, latest, books, chains, as-of joins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import InvalidInput, NotFound
from marketdb.services.query import Query
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

UTC = dt.UTC
DAY = dt.datetime(2024, 3, 1, tzinfo=UTC)
T0 = dt.datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
T0_NS = int(pd.Timestamp(T0).value)


def _ns_to_row(ns: int) -> tuple[dt.datetime, int]:
    us, rest = divmod(ns, 1000)
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=us), rest


def _instrument(conn: sa.Connection, symbol: str, calendar: str | None = "XNYS") -> int:
    return conn.execute(
        sa.insert(t.instruments).values(symbol=symbol, calendar=calendar).returning(t.instruments.c.id)
    ).scalar_one()


def _candle(iid: int, interval: str, ts: dt.datetime, o: float, h: float, lo: float, c: float,
            v: float, source: str = "trades", **extra: Any) -> dict[str, Any]:
    optional = dict.fromkeys(("vwap", "trade_count", "adj_open", "adj_high", "adj_low", "adj_close",
                              "adj_volume"))
    return {"instrument_id": iid, "interval": interval, "ts": ts, "source": source, "open": o,
            "high": h, "low": lo, "close": c, "volume": v, **optional, **extra}


TRADE_NS = [  # (ns offset from T0, seq, price, size, side)
    (0, 0, 100.0, 10.0, 1),
    (1, 1, 100.5, 5.0, -1),  # 1 ns later: same microsecond
    (1, 2, 100.25, 7.0, None),  # same ns as the previous, later seq
    (999, 3, 101.0, 1.0, 1),
    (1_000, 4, 101.5, 2.0, 1),  # next microsecond
    (60_000_000_123, 5, 99.0, 3.0, -1),
]


@pytest.fixture
def market(db: marketdb.MarketDB) -> dict[str, int]:
    """AAA (XNYS) with trades, quotes and bars from two sources; BBB (24/7) with bars."""
    with db.transaction() as conn:
        for table in ("trades", "quotes", "candles", "order_book_snapshots", "options_chains"):
            ensure_partitions(conn, table, DAY - dt.timedelta(days=10), DAY + dt.timedelta(days=3))
        aaa = _instrument(conn, "AAA")
        bbb = _instrument(conn, "BBB", "24/7")
        trades = []
        for off, seq, price, size, side in TRADE_NS:
            ts, rest = _ns_to_row(T0_NS + off)
            trades.append({"instrument_id": aaa, "ts": ts, "ts_nanos": rest, "seq": seq, "price": price,
                           "size": size, "side": side, "exchange": "XNAS", "trade_id": f"t{seq}",
                           "conditions": "@", "source": "test"})
        conn.execute(sa.insert(t.trades), trades)
        quotes = []
        for k in range(5):
            ts, rest = _ns_to_row(T0_NS + k * 1_000_000_000 + 500)
            quotes.append({"instrument_id": aaa, "ts": ts, "ts_nanos": rest, "seq": k,
                           "bid": 100.0 + k, "ask": 100.1 + k, "bid_size": 1.0, "ask_size": 2.0})
        conn.execute(sa.insert(t.quotes), quotes)
        m = dt.timedelta(minutes=1)
        conn.execute(sa.insert(t.candles), [
            _candle(aaa, "1m", T0, 100, 101.5, 100, 101.5, 25, vwap=100.6, trade_count=5),
            _candle(aaa, "1m", T0, 100.1, 101.6, 100, 101.4, 26, "polygon"),
            _candle(aaa, "1m", T0 + m, 99, 99, 99, 99, 3, trade_count=1),
            _candle(aaa, "1m", T0 + 2 * m, 98, 98.5, 97.5, 98.2, 40, "polygon"),
            _candle(aaa, "1m", T0 + 3 * m, 97, 97, 97, 97, 1, "zeta"),
            _candle(bbb, "1m", T0, 10, 11, 9, 10.5, 100),
            _candle(bbb, "1m", T0 + m, 10.5, 10.6, 10.4, 10.6, 50),
        ])
    return {"AAA": aaa, "BBB": bbb}


@pytest.fixture(params=["adbc", "copy"])
def q(request: pytest.FixtureRequest, db: marketdb.MarketDB) -> Iterator[Query]:
    with Query(db, transport=request.param) as query:
        yield query


# ---------------------------------------------------------------------- bars
def test_bars_pick_sources_by_preference_and_say_which(q: Query, market: dict[str, int]) -> None:
    df = q.bars("AAA", "1m", "2024-03-01", "2024-03-01")
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC"
    assert df.index.tolist() == [pd.Timestamp(T0) + pd.Timedelta(minutes=k) for k in range(4)]
    # trades beat polygon at T0; polygon and the unlisted 'zeta' fill the gaps.
    assert df["source"].tolist() == ["trades", "trades", "polygon", "zeta"]
    assert df["close"].tolist() == [101.5, 99.0, 98.2, 97.0]
    assert df["trade_count"].iloc[0] == 5
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "vwap", "trade_count", "source"]

    only = q.bars("AAA", "1m", T0, T0 + dt.timedelta(hours=1), source="polygon")
    assert only["source"].unique().tolist() == ["polygon"]
    assert only["close"].tolist() == [101.4, 98.2]

    ordered = q.bars("aaa", "1m", source=["polygon", "trades"])
    assert ordered["source"].tolist() == ["polygon", "trades", "polygon"]


def test_bars_multi_symbol_long_format_and_outputs(q: Query, market: dict[str, int]) -> None:
    df = q.bars(["BBB", "AAA"], "1m", T0, T0 + dt.timedelta(minutes=2), columns=["close"])
    assert df["symbol"].tolist() == ["AAA", "AAA", "BBB", "BBB"]
    assert list(df.columns) == ["symbol", "close", "source"]
    pl_df = q.bars(["AAA", "BBB"], "1m", T0, T0 + dt.timedelta(minutes=2), output="polars")
    assert isinstance(pl_df, pl.DataFrame)
    assert pl_df.columns[:2] == ["symbol", "ts"]
    assert pl_df.schema["ts"] == pl.Datetime("ns", "UTC")
    arrow = q.bars("AAA", "1m", T0, T0 + dt.timedelta(minutes=2), output="arrow")
    assert isinstance(arrow, pa.Table)
    assert arrow.column_names[0] == "ts"
    assert arrow.num_rows == 2


def test_empty_reads_keep_their_columns(q: Query, market: dict[str, int]) -> None:
    df = q.bars("AAA", "1m", "2024-02-01", "2024-02-02")
    assert df.empty
    assert "close" in df.columns
    assert isinstance(df.index, pd.DatetimeIndex)
    ticks = q.ticks(["AAA", "BBB"], "2024-02-01", "2024-02-02", output="arrow")
    assert ticks.num_rows == 0
    assert ticks.column_names[:2] == ["symbol", "ts"]


def test_unknown_symbols_are_listed(q: Query, market: dict[str, int]) -> None:
    with pytest.raises(NotFound, match="NOPE, ZZZ") as err:
        q.bars(["AAA", "zzz", "nope"], "1m")
    assert err.value.details == {"symbols": ["NOPE", "ZZZ"]}


def test_old_symbols_resolve_through_history(q: Query, market: dict[str, int], db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        conn.execute(sa.insert(t.symbol_history).values(
            instrument_id=market["AAA"], symbol="OLDA", valid_from=DAY - dt.timedelta(days=400),
            valid_to=DAY - dt.timedelta(days=30), reason="rename"))
    df = q.bars("OLDA", "1m", T0, T0 + dt.timedelta(minutes=1))
    assert df["close"].tolist() == [101.5]


def test_bad_arguments_say_what_to_do(q: Query, market: dict[str, int]) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        q.bars("AAA", "1m", dt.datetime(2024, 3, 1))
    with pytest.raises(InvalidInput, match="not after start"):
        q.bars("AAA", "1m", "2024-03-02", "2024-03-01 00:00")
    with pytest.raises(InvalidInput, match="no column"):
        q.bars("AAA", "1m", columns=["colse"])
    with pytest.raises(InvalidInput, match="output="):
        q.ticks("AAA", output="excel")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="interval"):
        q.bars("AAA", "5mo")


# --------------------------------------------------------------------- ticks
def test_ticks_come_back_with_exact_nanoseconds_in_order(q: Query, market: dict[str, int]) -> None:
    df = q.ticks("AAA", "2024-03-01", "2024-03-01")
    got = df.index.as_unit("ns").asi8.tolist()
    assert got == [T0_NS + off for off, *_ in TRADE_NS]
    assert df["seq"].tolist() == [0, 1, 2, 3, 4, 5]
    assert df["price"].tolist() == [p for _, _, p, _, _ in TRADE_NS]
    assert df["side"].iloc[:3].tolist()[:2] == [1, -1]
    assert pd.isna(df["side"].iloc[2])
    assert df["trade_id"].tolist()[0] == "t0"
    assert list(df.columns) == [
        "price", "size", "side", "seq", "exchange", "conditions", "trade_id", "source"]


def test_tick_bounds_are_nanosecond_exact(q: Query, market: dict[str, int]) -> None:
    start = pd.Timestamp(T0_NS + 1, tz="UTC")
    end = pd.Timestamp(T0_NS + 1_000, tz="UTC")
    df = q.ticks("AAA", start, end, columns=["seq"])
    assert df["seq"].tolist() == [1, 2, 3]  # [T0+1ns, T0+1000ns)
    assert df.index[0].value == T0_NS + 1


def test_quotes_and_multi_symbol_ticks(q: Query, market: dict[str, int]) -> None:
    quotes = q.quotes("AAA", T0, T0 + dt.timedelta(seconds=3), columns=["bid", "ask"])
    assert quotes["bid"].tolist() == [100.0, 101.0, 102.0]
    assert quotes.index[0].value == T0_NS + 500
    both = q.ticks(["AAA", "BBB"], output="polars", columns=["price"])
    assert both["symbol"].unique().to_list() == ["AAA"]
    assert both.height == len(TRADE_NS)


# -------------------------------------------------------------------- latest
def test_latest_trade_quote_and_bar(q: Query, market: dict[str, int]) -> None:
    df = q.latest(["AAA", "BBB"])
    assert df.index.tolist() == ["AAA", "BBB"]
    a = df.loc["AAA"]
    assert a["price"] == 99.0
    assert a["trade_ts"].value == T0_NS + 60_000_000_123
    assert a["bid"] == 104.0
    assert a["bar_interval"] == "1m"
    assert a["bar_ts"] == pd.Timestamp(T0) + pd.Timedelta(minutes=3)
    assert a["bar_source"] == "zeta"
    b = df.loc["BBB"]
    assert pd.isna(b["price"])
    assert b["close"] == 10.6


# ------------------------------------------------------- order books, chains
def test_order_books_with_depth(q: Query, market: dict[str, int], db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        conn.execute(sa.insert(t.order_book_snapshots), [
            {"instrument_id": market["AAA"], "ts": T0 + dt.timedelta(seconds=k),
             "bid_prices": [100.0 - k, 99.9 - k, 99.8 - k], "bid_sizes": [1.0, 2.0, 3.0],
             "ask_prices": [100.1, 100.2, 100.3], "ask_sizes": [4.0, 5.0, 6.0], "source": "test"}
            for k in range(3)
        ])
    full = q.order_books("AAA", T0, T0 + dt.timedelta(minutes=1))
    assert len(full) == 3
    assert list(full["bid_prices"].iloc[1]) == [99.0, 98.9, 98.8]
    top = q.order_books("AAA", depth=1, output="arrow")
    assert top["ask_sizes"].to_pylist() == [[4.0]] * 3


def test_options_chain_as_of_a_time(q: Query, market: dict[str, int], db: marketdb.MarketDB) -> None:
    aaa = market["AAA"]
    rows = []
    for day, price in ((1, 1.0), (2, 2.0)):
        snap = DAY - dt.timedelta(days=3) + dt.timedelta(days=day, hours=20)
        for exp in (dt.date(2024, 2, 28), dt.date(2024, 3, 15), dt.date(2024, 4, 19)):
            for right in ("call", "put"):
                rows.append({"underlying_id": aaa, "ts": snap, "expiration": exp, "strike": 100.0,
                             "option_right": right, "bid": price, "ask": price + 0.1,
                             "implied_vol": 0.3, "delta": 0.5 if right == "call" else -0.5})
    with db.transaction() as conn:
        conn.execute(sa.insert(t.options_chains), rows)
    chain = q.options_chain("AAA", at=DAY)
    assert sorted(set(chain["expiration"])) == [dt.date(2024, 3, 15), dt.date(2024, 4, 19)]
    assert chain["bid"].unique().tolist() == [2.0]  # the later snapshot
    earlier = q.options_chain("AAA", at=DAY - dt.timedelta(days=1), expiration="2024-03-15")
    assert earlier["bid"].tolist() == [1.0, 1.0]
    assert earlier["option_right"].tolist() == ["call", "put"]
    stale = q.options_chain("AAA", at=DAY + dt.timedelta(days=30), max_age="7d")
    assert stale.empty


# ------------------------------------------------------------------- as-of
def test_asof_join_quotes_onto_orders(q: Query, market: dict[str, int]) -> None:
    orders = pd.DataFrame(
        {"qty": [1, 2, 3]},
        index=pd.DatetimeIndex([T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=2),
                                T0 - dt.timedelta(seconds=1)], name="ts"),
    )
    out = q.asof_join(orders, "AAA")
    assert out["qty"].tolist() == [1, 2, 3]
    assert out["bid"].tolist()[:2] == [104.0, 101.0]  # last quote is +4s; +2s quote is at +2s+500ns
    assert np.isnan(out["bid"].iloc[2])
    assert out["quote_ts"].iloc[0].value == T0_NS + 4_000_000_500
    tight = q.asof_join(orders, "AAA", tolerance="1s")
    assert np.isnan(tight["bid"].iloc[0])
    fwd = q.asof_join(orders.reset_index(), "AAA", on="ts", direction="forward", what="trades")
    assert fwd["price"].tolist() == [99.0, 99.0, 100.0]
    assert fwd["trade_ts"].iloc[2].value == T0_NS


def test_asof_join_by_symbol_column_with_polars(q: Query, market: dict[str, int]) -> None:
    frame = pl.DataFrame({
        "symbol": ["AAA", "BBB", "aaa"],
        "ts": [T0 + dt.timedelta(seconds=1, microseconds=1), T0, T0 + dt.timedelta(seconds=3)],
    }).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    out = q.asof_join(frame, on="ts")
    assert isinstance(out, pl.DataFrame)
    assert out["bid"].to_list()[0] == 101.0
    assert out["bid"].to_list()[1] is None or np.isnan(out["bid"].to_list()[1])
    assert out["bid"].to_list()[2] == 102.0


# --------------------------------------------------------------------- cache
def test_cache_serves_until_the_data_version_moves(db: marketdb.MarketDB, market: dict[str, int]) -> None:
    with Query(db, cache_mb=16) as cached, Query(db) as uncached:
        first = cached.bars("AAA", "1m", columns=["close"])
        with db.transaction() as conn:
            conn.execute(
                sa.update(t.candles).where(t.candles.c.source == "zeta").values(close=96.5, low=96.5))
        # Hand-written SQL does not bump the version: the cache still answers (documented).
        assert cached.bars("AAA", "1m", columns=["close"])["close"].tolist() == first["close"].tolist()
        assert uncached.bars("AAA", "1m", columns=["close"])["close"].iloc[-1] == 96.5
        assert cached.cache.hits == 1
        with db.transaction() as conn:  # what every marketdb write does in its transaction
            conn.execute(sa.update(t.instruments).where(t.instruments.c.id == market["AAA"])
                         .values(data_version=t.instruments.c.data_version + 1))
        assert cached.bars("AAA", "1m", columns=["close"])["close"].iloc[-1] == 96.5
    with pytest.raises(InvalidInput, match="cache_mb"):
        Query(db, cache_mb=-1)


def test_intervals_that_are_not_stored_are_rolled_up(q: Query, market: dict[str, int]) -> None:
    df = q.bars("AAA", "3m", T0, T0 + dt.timedelta(minutes=3))
    assert df.index.tolist() == [pd.Timestamp(T0)]
    row = df.iloc[0]
    # From the stored 1m bars of source 'trades' (14:30 and 14:31).
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (100, 101.5, 99, 99, 28)
    assert row["source"] == "trades"
