"""The stream hub: one LISTEN connection per process, fan-out to subscribers.

Notifications on ``marketdb_changes`` come from the change-capture triggers
(migration 0011), so they cover every committed write whatever wrote it, in
commit order, and nothing from a rolled-back transaction. The hub drains them
in bursts, reads back only what some subscriber wants (ticks by instrument,
time range and writing transaction id; bars by range; orders, fills, signals
and pattern events by key) and puts one message per channel and burst into
each subscriber's bounded queue. It never waits for a subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg.rows import dict_row

from marketdb.errors import NotFound, Unavailable
from marketdb.services.streams._channels import Channel, interval_seconds, parse_channel
from marketdb.services.streams._encode import clean
from marketdb.services.streams._queue import Message, SubscriberQueue

log = logging.getLogger("marketdb.streams")

CHANNEL = "marketdb_changes"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BURST = 2000  # notifications handled together at most


def _us(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


@dataclass
class _BarState:
    channel: Channel
    instrument_id: int
    seconds: int
    forming: dict[str, Any] | None = None  # last update sent for the open bar


@dataclass
class HubStats:
    """Counters for doctor/benchmarks."""

    notifications: int = 0
    bursts: int = 0
    messages: int = 0
    reads: int = 0
    started: float = field(default_factory=time.time)


class Subscription:
    """One subscriber: its channels and its bounded queue. Create with ``StreamHub.subscription``."""

    def __init__(self, hub: StreamHub, maxsize: int) -> None:
        self.hub = hub
        self.queue = SubscriberQueue(maxsize)
        self.channels: dict[str, Channel] = {}

    async def subscribe(self, name: str) -> Channel:
        """Subscribe to a channel by name; raises InvalidInput / NotFound."""
        channel = parse_channel(name)
        await self.hub._add(self, channel)
        self.channels[channel.name] = channel
        return channel

    def unsubscribe(self, name: str) -> bool:
        """Stop receiving a channel; False when it was not subscribed."""
        try:
            channel = parse_channel(name)
        except Exception:
            return False
        if self.channels.pop(channel.name, None) is None:
            return False
        self.hub._remove(self, channel)
        return True

    async def get(self, timeout: float | None = None) -> Message | None:
        """The next message (None on timeout)."""
        return await self.queue.get(timeout)

    def close(self) -> None:
        """Unsubscribe from everything."""
        for channel in list(self.channels.values()):
            self.hub._remove(self, channel)
        self.channels.clear()
        self.queue.close()


class StreamHub:
    """Listens once per process and fans committed changes out to subscriptions.

    Use as ``async with StreamHub(conninfo) as hub:``; ``conninfo`` is a libpq
    URL (``MarketDB.url``).
    """

    def __init__(self, conninfo: str, *, queue_size: int = 1000, tick_seconds: float = 1.0) -> None:
        self.conninfo = conninfo
        self.queue_size = queue_size
        self.tick_seconds = tick_seconds
        self.stats = HubStats()
        self._subs: dict[str, set[Subscription]] = {}
        self._seq: dict[str, int] = {}
        self._symbols: dict[str, int] = {}
        self._bars: dict[str, _BarState] = {}
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listen: psycopg.AsyncConnection[Any] | None = None
        self._read: psycopg.AsyncConnection[Any] | None = None
        self._read_lock = asyncio.Lock()
        self.ready = asyncio.Event()

    # ----------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Connect, LISTEN and start the reader tasks."""
        try:
            self._listen = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            self._read = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise Unavailable(f"stream hub cannot connect: {exc}", hint="is the database running?") from exc
        await self._listen.execute(f"LISTEN {CHANNEL}")
        self._tasks = [
            asyncio.create_task(self._receive(), name="marketdb-streams-listen"),
            asyncio.create_task(self._process_loop(), name="marketdb-streams-process"),
            asyncio.create_task(self._clock(), name="marketdb-streams-clock"),
        ]
        self.ready.set()

    async def stop(self) -> None:
        """Stop the tasks, close the connections and every subscription."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.queue.close()
        for conn in (self._listen, self._read):
            if conn is not None:
                await conn.close()
        self._listen = self._read = None

    async def __aenter__(self) -> StreamHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def subscription(self, maxsize: int | None = None) -> Subscription:
        """A new subscriber with its own bounded queue."""
        return Subscription(self, maxsize or self.queue_size)

    @property
    def subscriber_count(self) -> int:
        """Distinct subscriptions with at least one channel."""
        return len({id(s) for subs in self._subs.values() for s in subs})

    # ------------------------------------------------------- registration
    async def _instrument(self, symbol: str) -> int:
        iid = self._symbols.get(symbol)
        if iid is None:
            rows = await self._fetch("SELECT id FROM instruments WHERE symbol = %s", [symbol])
            if not rows:
                raise NotFound(f"no instrument {symbol!r}",
                               hint="register it first (marketdb instruments add)")
            iid = int(rows[0]["id"])
            self._symbols[symbol] = iid
        return iid

    async def _add(self, sub: Subscription, channel: Channel) -> None:
        if channel.by_symbol:
            iid = await self._instrument(channel.key)
            if channel.kind == "bars" and channel.name not in self._bars:
                self._bars[channel.name] = _BarState(channel, iid, interval_seconds(channel.interval or "1m"))
        self._subs.setdefault(channel.name, set()).add(sub)

    def _remove(self, sub: Subscription, channel: Channel) -> None:
        subs = self._subs.get(channel.name)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[channel.name]
            self._bars.pop(channel.name, None)

    def _wanted(self, name: str) -> bool:
        return bool(self._subs.get(name))

    # ----------------------------------------------------------- publishing
    def _publish(self, channel: str, type_: str, data: dict[str, Any], *,
                 coalesce: str | None = None, droppable: bool = True) -> None:
        subs = self._subs.get(channel)
        if not subs:
            return
        seq = self._seq.get(channel, 0) + 1
        self._seq[channel] = seq
        msg = Message(channel, seq, type_, data, coalesce=coalesce, droppable=droppable)
        for sub in list(subs):
            sub.queue.put(replace(msg))
        self.stats.messages += 1

    # -------------------------------------------------------------- reading
    async def _fetch(self, query: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        assert self._read is not None, "hub not started"
        async with self._read_lock:
            self.stats.reads += 1
            cur = self._read.cursor(row_factory=dict_row)
            await cur.execute(query, list(params))
            return await cur.fetchall()

    async def _receive(self) -> None:
        assert self._listen is not None
        async for note in self._listen.notifies():
            self._inbox.put_nowait(note.payload)

    async def _process_loop(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < _BURST and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            self.stats.notifications += len(batch)
            self.stats.bursts += 1
            try:
                await self._process(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad burst must not stop the stream
                log.exception("stream hub: failed to process %d notifications", len(batch))

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            now = time.time()
            for state in list(self._bars.values()):
                bar = state.forming
                if bar is not None and bar["_start"] + state.seconds <= now:
                    state.forming = None
                    self._publish_bar(state, bar, final=True)

    async def _process(self, payloads: list[str]) -> None:
        """Handle a burst in commit order; consecutive tick notifications share one read."""
        notes = []
        for text in payloads:
            try:
                notes.append(json.loads(text))
            except ValueError:
                log.warning("stream hub: ignoring a malformed notification %r", text[:200])
        run: list[dict[str, Any]] = []
        candles: dict[tuple[int, str, str], tuple[int, int]] = {}
        by_id: dict[str, list[list[Any]]] = {}
        for note in notes:
            table = note.get("t")
            if table in ("trades", "quotes"):
                if run and run[-1]["t"] != table:
                    await self._ticks(run)
                    run = []
                run.append(note)
            elif table == "candles":
                for iid, interval, source, lo, hi, _n in note["r"]:
                    key = (int(iid), str(interval), str(source))
                    old = candles.get(key)
                    candles[key] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
            elif table in ("orders", "executions", "signals", "pattern_events"):
                by_id.setdefault(table, []).extend(note["r"])
        if run:
            await self._ticks(run)
        if candles:
            await self._candles(candles)
        if "orders" in by_id:
            await self._orders(by_id["orders"])
        if "executions" in by_id:
            await self._fills(by_id["executions"])
        if "signals" in by_id:
            await self._signals(by_id["signals"])
        if "pattern_events" in by_id:
            await self._patterns(by_id["pattern_events"])

    def _symbol_of(self, iid: int) -> str | None:
        for symbol, known in self._symbols.items():
            if known == iid:
                return symbol
        return None

    async def _ticks(self, notes: list[dict[str, Any]]) -> None:
        table = notes[0]["t"]
        wanted: dict[int, str] = {}
        for symbol, iid in self._symbols.items():
            if self._wanted(f"{table}:{symbol}"):
                wanted[iid] = symbol
        if not wanted:
            return
        iids: list[int] = []
        los: list[dt.datetime] = []
        his: list[dt.datetime] = []
        xids: list[int] = []
        for note in notes:
            hit = False
            for iid, lo, hi, _n in note["r"]:
                if iid in wanted:
                    iids.append(iid)
                    los.append(_us(lo))
                    his.append(_us(hi))
                    hit = True
            if hit and int(note["x"]) not in xids:
                xids.append(int(note["x"]))
        if not iids:
            return
        cols = (
            "t.ts, t.ts_nanos, t.seq, t.price, t.size, t.side"
            if table == "trades"
            else "t.ts, t.ts_nanos, t.seq, t.bid, t.ask, t.bid_size, t.ask_size"
        )
        # One statement's rows are those in its ranges written by its (sub)transaction:
        # ranges of several statements may overlap, so DISTINCT keeps each row once, in
        # commit order (the order of the notifications), then time order.
        rows = await self._fetch(
            f"""
            SELECT DISTINCT ON (t.instrument_id, t.ts, t.ts_nanos, t.seq)
                   t.instrument_id, {cols}, array_position(%s::bigint[], t.xmin::text::bigint) AS k
            FROM {table} t
            JOIN unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]) AS r(i, lo, hi)
              ON t.instrument_id = r.i AND t.ts BETWEEN r.lo AND r.hi
            WHERE t.xmin::text::bigint = ANY(%s::bigint[])
            ORDER BY t.instrument_id, t.ts, t.ts_nanos, t.seq
            """,
            [xids, iids, los, his, xids],
        )
        rows.sort(key=lambda r: (r["k"], r["ts"], r["ts_nanos"], r["seq"]))
        out: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            iid = row.pop("instrument_id")
            row.pop("k")
            out.setdefault(iid, []).append({k: clean(v) for k, v in row.items()})
        for iid, items in out.items():
            symbol = wanted[iid]
            self._publish(f"{table}:{symbol}", table, {"symbol": symbol, "rows": items})

    async def _candles(self, touched: dict[tuple[int, str, str], tuple[int, int]]) -> None:
        for state in list(self._bars.values()):
            ch = state.channel
            span = touched.get((state.instrument_id, ch.interval or "", ch.source))
            if span is None:
                continue
            rows = await self._fetch(
                """
                SELECT ts, open, high, low, close, volume, vwap, trade_count
                FROM candles
                WHERE instrument_id = %s AND interval = %s AND source = %s AND ts BETWEEN %s AND %s
                ORDER BY ts
                """,
                [state.instrument_id, ch.interval, ch.source, _us(span[0]), _us(span[1])],
            )
            now = time.time()
            for i, row in enumerate(rows):
                bar = {k: clean(v) for k, v in row.items()}
                bar["_start"] = row["ts"].timestamp()
                later = i + 1 < len(rows)
                forming = state.forming
                if forming is not None and forming["_start"] < bar["_start"]:
                    state.forming = None
                    self._publish_bar(state, forming, final=True)
                final = later or bar["_start"] + state.seconds <= now
                if final:
                    if state.forming is not None and state.forming["_start"] == bar["_start"]:
                        state.forming = None
                elif state.forming is None or state.forming["_start"] <= bar["_start"]:
                    state.forming = bar
                self._publish_bar(state, bar, final=final)

    def _publish_bar(self, state: _BarState, bar: dict[str, Any], *, final: bool) -> None:
        data = {k: v for k, v in bar.items() if not k.startswith("_")}
        self._publish(
            state.channel.name,
            "bar",
            {"symbol": state.channel.key, "interval": state.channel.interval,
             "source": state.channel.source, "final": final, "bar": data},
            coalesce=data["ts"].isoformat(),
            droppable=not final,
        )

    async def _orders(self, keys: list[list[Any]]) -> None:
        ids = list(dict.fromkeys(
            str(k[0]) for k in keys if k[1] is not None and self._wanted(f"orders:{k[1]}")))
        if not ids:
            return
        rows = await self._fetch(
            "SELECT o.*, i.symbol FROM orders o JOIN instruments i ON i.id = o.instrument_id "
            "WHERE o.id = ANY(%s::uuid[])",
            [ids],
        )
        order = {k: n for n, k in enumerate(ids)}
        for row in sorted(rows, key=lambda r: order[str(r["id"])]):
            # Coalesced per order: a slow consumer gets the order's latest state.
            self._publish(f"orders:{row['strategy_id']}", "order", {"order": row},
                          coalesce=str(row["id"]))

    async def _fills(self, keys: list[list[Any]]) -> None:
        ids = list(dict.fromkeys(str(k[0]) for k in keys))
        if not any(name.startswith("fills:") for name in self._subs):
            return
        rows = await self._fetch(
            "SELECT e.*, o.strategy_id, i.symbol FROM executions e JOIN orders o ON o.id = e.order_id "
            "JOIN instruments i ON i.id = e.instrument_id WHERE e.id = ANY(%s::uuid[]) ORDER BY e.ts",
            [ids],
        )
        for row in rows:
            if row["strategy_id"] is not None:
                self._publish(f"fills:{row['strategy_id']}", "fill", {"fill": row}, droppable=False)

    async def _signals(self, keys: list[list[Any]]) -> None:
        ids = list(dict.fromkeys(
            str(k[0]) for k in keys if k[2] is not None and self._wanted(f"signals:{k[2]}")))
        if not ids:
            return
        rows = await self._fetch(
            "SELECT s.*, i.symbol FROM signals s LEFT JOIN instruments i ON i.id = s.instrument_id "
            "WHERE s.id = ANY(%s::uuid[]) ORDER BY s.ts",
            [ids],
        )
        for row in rows:
            self._publish(f"signals:{row['user_id']}", "signal", {"signal": row})

    async def _patterns(self, keys: list[list[Any]]) -> None:
        all_wanted = self._wanted("patterns:*")
        wanted = [k for k in keys if all_wanted or (
            (s := self._symbol_of(int(k[0]))) is not None and self._wanted(f"patterns:{s}"))]
        if not wanted:
            return
        rows = await self._fetch(
            "SELECT p.*, i.symbol FROM pattern_events p JOIN instruments i ON i.id = p.instrument_id "
            "JOIN unnest(%s::int[], %s::timestamptz[], %s::text[]) AS k(i, ts, pattern) "
            "ON p.instrument_id = k.i AND p.ts = k.ts AND p.pattern = k.pattern ORDER BY p.ts",
            [[int(k[0]) for k in wanted], [_us(int(k[1])) for k in wanted], [str(k[2]) for k in wanted]],
        )
        for row in rows:
            for name in (f"patterns:{row['symbol']}", "patterns:*"):
                self._publish(name, "pattern", {"event": row})
