"""The stream hub against a real PostgreSQL, with a writer in another process."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

import marketdb
from marketdb.errors import InvalidInput, NotFound
from marketdb.services.streams import Message, StreamHub, SubscriberQueue, parse_channel

ROOT = Path(__file__).resolve().parents[2]


async def _run_writer(url: str, symbols: str, batches: int, rows: int) -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'src'}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.streams.writer_proc", url, symbols, str(batches), str(rows),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip().endswith("done")


async def _drain(sub: Any, quiet: float = 1.5) -> list[Message]:
    got = []
    while (msg := await sub.get(timeout=quiet)) is not None:
        got.append(msg)
    return got


def _stored(url: str, symbol: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT t.ts, t.ts_nanos, t.seq, t.price FROM trades t "
            "JOIN instruments i ON i.id = t.instrument_id "
            "WHERE i.symbol = %s ORDER BY t.ts, t.ts_nanos, t.seq",
            [symbol],
        ).fetchall()


def test_every_committed_trade_once_in_commit_order_from_another_process(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}, {"symbol": "BBB"}, {"symbol": "CCC"}])

    async def scenario() -> tuple[list[Message], list[Message]]:
        async with StreamHub(db.url) as hub:
            sub = hub.subscription()
            await sub.subscribe("trades:AAA")
            other = hub.subscription()
            await other.subscribe("trades:bbb")
            await _run_writer(db.url, "AAA,BBB,CCC", 8, 50)
            return await _drain(sub), await _drain(other, quiet=0.2)

    got, other = asyncio.run(scenario())
    received = [
        (pd.Timestamp(r["ts"]).to_pydatetime(), r["ts_nanos"], r["seq"], r["price"])
        for m in got for r in m.data["rows"]
    ]
    stored = _stored(db.url, "AAA")
    assert len(stored) == 8 * 50
    assert received == stored  # every committed trade, exactly once, in commit (= time) order
    assert all(p > 0 for *_, p in received)  # nothing from the rolled-back batch
    assert {m.channel for m in got} == {"trades:AAA"}
    seqs = [m.seq for m in got]
    assert seqs == list(range(1, len(seqs) + 1))  # no gaps for a consumer that keeps up
    assert sum(len(m.data["rows"]) for m in other) == 8 * 50


def test_bar_updates_equal_stored_bars_and_a_slow_consumer_gets_the_final_bar(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}])

    async def scenario() -> tuple[list[Message], list[Message], int]:
        async with StreamHub(db.url) as hub:
            fast = hub.subscription()
            await fast.subscribe("bars:AAA:1m")
            slow = hub.subscription(maxsize=3)
            await slow.subscribe("bars:AAA:1m")
            await slow.subscribe("trades:AAA")
            fast_got: list[Message] = []

            async def keep_up() -> None:
                while (m := await fast.get(timeout=3)) is not None:
                    fast_got.append(m)

            reader = asyncio.create_task(keep_up())
            for b in range(6):  # six commits into the same minutes: many bar updates
                frame = pd.DataFrame({
                    "symbol": "AAA",
                    "ts": [pd.Timestamp("2026-03-02 14:30", tz="UTC") + pd.Timedelta(seconds=b * 10 + i)
                           for i in range(10)],
                    "price": [100.0 + b + i / 10 for i in range(10)],
                    "size": [1.0] * 10,
                })
                await asyncio.to_thread(db.ingest.write_ticks, frame)
            await reader
            return fast_got, await _drain(slow, quiet=0.5), slow.queue.total_dropped

    fast_got, slow_got, dropped = asyncio.run(scenario())
    with psycopg.connect(db.url) as conn:
        stored = conn.execute(
            "SELECT ts, open, high, low, close, volume, trade_count FROM candles "
            "WHERE interval = '1m' AND source = 'trades' ORDER BY ts"
        ).fetchall()
    assert len(stored) == 1
    last: dict[Any, dict[str, Any]] = {}
    for m in fast_got:
        last[m.data["bar"]["ts"]] = m.data["bar"]
    assert [(b["ts"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["trade_count"])
            for b in last.values()] == stored
    assert len(fast_got) == 6  # one update per commit: the fast consumer saw every one
    assert all(m.data["final"] for m in fast_got)  # 2026-03-02 is in the past: closed at once
    # The slow consumer's queue (3) overflowed: it was told how much it missed, and its
    # last bar message is the final stored bar.
    assert dropped > 0
    assert sum(m.dropped for m in slow_got) == dropped
    bars = [m for m in slow_got if m.type == "bar"]
    assert bars
    assert bars[-1].data["final"]
    assert bars[-1].data["bar"]["close"] == stored[0][4]
    assert bars[-1].data["bar"]["volume"] == 60


def test_forming_bar_updates_then_a_final_message_when_it_closes(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}])
    now = pd.Timestamp.now(tz="UTC")
    if now.second >= 55:  # keep both trades and the first read inside one minute
        import time

        time.sleep(61 - now.second)
        now = pd.Timestamp.now(tz="UTC")

    async def scenario() -> list[Message]:
        async with StreamHub(db.url, tick_seconds=0.2) as hub:
            sub = hub.subscription()
            await sub.subscribe("bars:AAA:1s")  # not a stored interval: stays silent
            await sub.subscribe("bars:AAA:1m")
            for k in range(2):
                frame = pd.DataFrame({"symbol": "AAA", "ts": [now + pd.Timedelta(milliseconds=k)],
                                      "price": [10.0 + k], "size": [1.0]})
                await asyncio.to_thread(db.ingest.write_ticks, frame)
            first = await _drain(sub, quiet=1.0)
            # the minute closes at the next minute boundary (+ the clock tick)
            wait = (now.floor("1min") + pd.Timedelta(minutes=1) - pd.Timestamp.now(tz="UTC")).total_seconds()
            closing = await sub.get(timeout=max(wait, 0) + 3)
            return [*first, *([closing] if closing else [])]

    got = asyncio.run(scenario())
    assert [m.channel for m in got] == ["bars:AAA:1m"] * len(got)
    updates = [m for m in got if not m.data["final"]]
    finals = [m for m in got if m.data["final"]]
    assert updates
    assert updates[-1].data["bar"]["close"] == 11.0
    assert len(finals) == 1
    assert finals[0].data["bar"]["close"] == 11.0
    assert finals[0].data["bar"]["trade_count"] == 2


def test_orders_fills_signals_and_patterns_channels(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}])
    user = db.accounts.create_user("streamer", "streamer@example.com", "correct horse battery staple")
    db.trading.create_strategy("s1", "Strategy one")
    db.trading.create_strategy("s2", "Strategy two")

    async def scenario() -> list[Message]:
        async with StreamHub(db.url) as hub:
            sub = hub.subscription()
            for name in ("orders:s1", "fills:s1", "signals:" + str(user.id), "patterns:AAA"):
                await sub.subscribe(name)

            def work() -> None:
                order = db.trading.submit_order("s1", "AAA", "buy", 10, client_order_id="c1")
                db.trading.submit_order("s2", "AAA", "buy", 5)  # other strategy: not delivered
                db.trading.accept_order(order["id"])
                db.trading.record_fill(order["id"], 4, 101.5, broker_exec_id="e1")
                db.trading.create_signal("AAA", "BUY", user_id=user.id)
                db.trading.record_pattern("AAA", dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC), "doji")

            await asyncio.to_thread(work)
            return await _drain(sub)

    got = asyncio.run(scenario())
    kinds = [(m.channel.split(":")[0], m.type) for m in got]
    assert ("fills", "fill") in kinds
    assert ("signals", "signal") in kinds
    assert ("patterns", "pattern") in kinds
    orders = [m for m in got if m.type == "order"]
    assert orders
    assert {m.data["order"]["strategy_id"] for m in orders} == {"s1"}
    assert orders[-1].data["order"]["filled_quantity"] == 4
    fill = next(m for m in got if m.type == "fill")
    assert fill.data["fill"]["price"] == 101.5
    assert fill.data["fill"]["symbol"] == "AAA"


def test_channel_names_are_validated() -> None:
    assert parse_channel("bars:aapl:5m").name == "bars:AAPL:5m"
    assert parse_channel("bars:aapl:1d:polygon").source == "polygon"
    for bad in ("ticks:AAPL", "bars:AAPL", "bars:AAPL:7x", "signals:not-a-uuid", "trades:"):
        with pytest.raises(InvalidInput):
            parse_channel(bad)


def test_unknown_symbol_is_not_found(db: marketdb.MarketDB) -> None:
    async def scenario() -> None:
        async with StreamHub(db.url) as hub:
            with pytest.raises(NotFound):
                await hub.subscription().subscribe("trades:NOPE")

    asyncio.run(scenario())


def test_queue_coalesces_forming_bars_and_counts_drops() -> None:
    async def scenario() -> list[Message]:
        q = SubscriberQueue(maxsize=2)
        for i in range(5):
            q.put(Message("trades:A", i + 1, "trades", {"n": i}))
        q.put(Message("bars:A:1m", 1, "bar", {"close": 1}, coalesce="t0"))
        q.put(Message("bars:A:1m", 2, "bar", {"close": 2}, coalesce="t0", droppable=False))
        q.put(Message("bars:A:1m", 3, "bar", {"close": 3}, coalesce="t0"))
        return [m for m in [q.get_nowait() for _ in range(3)] if m is not None]

    got = asyncio.run(scenario())
    assert [(m.channel, m.data) for m in got] == [("trades:A", {"n": 4}), ("bars:A:1m", {"close": 3})]
    assert got[0].dropped == 4  # trades 0-3 were pushed out by newer messages
    assert got[1].dropped == 2
    assert not got[1].droppable
