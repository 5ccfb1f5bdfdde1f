"""L2 order-book update streams rebuilt into snapshots (then stored by ``write_order_books``).

Readers turn vendor streams into :class:`BookUpdate` events:

* :func:`read_bybit` -- Bybit ``orderbook.N.SYMBOL`` JSON lines (``snapshot`` /
  ``delta`` messages; ``u`` is the update id, a size of ``"0"`` deletes a level);
* :func:`read_binance_depth` -- Binance depth: a REST snapshot (JSON with
  ``lastUpdateId``, or the CSV layout ``symbol,timestamp,first_update_id,
  last_update_id,side,update_type,price,qty,pu`` with ``update_type=snap``) plus
  diff updates (``depthUpdate`` JSON events or the same CSV layout with ``set``).

:func:`rebuild_books` applies the events in order and emits snapshots at a
cadence (``every="1s"``: the book as it stood after the last update of each
bucket) or after every update, cut to ``depth`` levels. Update ids are checked:
an update must continue the book (its ``prev_id`` equals the last applied id,
or its id range covers the next id); updates wholly older than the book are
skipped. A gap is an :class:`~marketdb.errors.InvalidInput` naming both ids,
unless ``on_gap="resync"``: then updates are dropped until the next snapshot
and the gap is reported in :attr:`Rebuilt.gaps`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from marketdb.errors import InvalidInput

__all__ = ["BookUpdate", "Gap", "Rebuilt", "read_binance_depth", "read_bybit", "rebuild_books"]

_UNITS_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


@dataclass
class BookUpdate:
    """One snapshot or delta: levels as (price, size); size 0 deletes the level."""

    ts_ns: int
    is_snapshot: bool
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    first_id: int | None = None
    last_id: int | None = None
    prev_id: int | None = None
    symbol: str | None = None


@dataclass(frozen=True)
class Gap:
    """A break in the update ids: ``expected`` was next, ``got`` arrived at ``ts_ns``."""

    ts_ns: int
    expected: int
    got: int


@dataclass
class Rebuilt:
    """Snapshots rebuilt from a stream (an Arrow table for ``write_order_books``)."""

    table: pa.Table
    updates: int = 0
    skipped: int = 0
    gaps: list[Gap] = field(default_factory=list)


def _levels(rows: Iterable[Sequence[Any]]) -> list[tuple[float, float]]:
    return [(float(r[0]), float(r[1])) for r in rows]


def read_bybit(path: str | Path) -> Iterator[BookUpdate]:
    """Bybit ``orderbook`` JSON lines (v5 public stream as recorded by Bybit's archive)."""
    with Path(path).open() as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
                data = msg["data"]
                u = int(data["u"])
                yield BookUpdate(
                    ts_ns=int(msg["ts"]) * 1_000_000, is_snapshot=msg["type"] == "snapshot",
                    bids=_levels(data.get("b", ())), asks=_levels(data.get("a", ())),
                    first_id=u, last_id=u, symbol=data.get("s"))
            except (KeyError, TypeError, ValueError) as e:
                raise InvalidInput(f"{Path(path).name} line {n}: not a Bybit orderbook message "
                                   f"({e!r})", hint="expected {topic, type, ts, data: {s, b, "
                                   "a, u, seq}} per line") from e


def _binance_csv(path: Path) -> Iterator[BookUpdate]:
    """Rows sharing (timestamp, first_update_id, last_update_id) form one event."""
    current: BookUpdate | None = None
    key: tuple[str, str, str] | None = None
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), 2):
            try:
                k = (row["timestamp"], row["first_update_id"], row["last_update_id"])
                if k != key:
                    if current is not None:
                        yield current
                    key = k
                    pu = int(row.get("pu") or -1)
                    current = BookUpdate(
                        ts_ns=int(row["timestamp"]) * 1_000_000,
                        is_snapshot=row["update_type"] == "snap", bids=[], asks=[],
                        first_id=int(row["first_update_id"]), last_id=int(row["last_update_id"]),
                        prev_id=pu if pu >= 0 else None, symbol=row.get("symbol"))
                assert current is not None
                level = (float(row["price"]), float(row["qty"]))
                (current.bids if row["side"] in ("b", "bid", "buy") else current.asks).append(level)
            except (KeyError, ValueError) as e:
                raise InvalidInput(f"{path.name} row {n}: not a Binance depth row ({e!r})",
                                   hint="columns: symbol,timestamp,first_update_id,"
                                   "last_update_id,side,update_type,price,qty,pu") from e
    if current is not None:
        yield current


def _binance_json(path: Path, ts_ns: int | None) -> Iterator[BookUpdate]:
    doc = json.loads(Path(path).read_text())
    events = doc if isinstance(doc, list) else [doc]
    for ev in events:
        ev = ev.get("data", ev) if isinstance(ev, dict) else ev
        if "lastUpdateId" in ev:  # REST snapshot
            last = int(ev["lastUpdateId"])
            t = ev.get("T") or ev.get("E")
            when = int(t) * 1_000_000 if t else ts_ns
            if when is None:
                raise InvalidInput(f"{Path(path).name}: a REST depth snapshot has no time",
                                   hint="pass snapshot_ts= (when it was fetched)")
            yield BookUpdate(ts_ns=when, is_snapshot=True, bids=_levels(ev["bids"]),
                             asks=_levels(ev["asks"]), first_id=last, last_id=last)
        else:
            pu = ev.get("pu")
            yield BookUpdate(ts_ns=int(ev.get("T") or ev["E"]) * 1_000_000, is_snapshot=False,
                             bids=_levels(ev.get("b", ())), asks=_levels(ev.get("a", ())),
                             first_id=int(ev["U"]), last_id=int(ev["u"]),
                             prev_id=int(pu) if pu is not None else None, symbol=ev.get("s"))


def read_binance_depth(snapshot: str | Path, updates: str | Path | None = None, *,
                       snapshot_ts: int | None = None) -> Iterator[BookUpdate]:
    """A Binance depth snapshot followed by its diff updates (CSV or JSON, see module doc)."""
    for p in (snapshot, updates):
        if p is None:
            continue
        path = Path(p)
        if path.suffix.lower() == ".csv":
            yield from _binance_csv(path)
        else:
            yield from _binance_json(path, snapshot_ts)


def _interval_ns(every: str) -> int:
    e = every.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if e.endswith(unit) and e[: -len(unit)].isdigit():
            return int(e[: -len(unit)]) * _UNITS_NS[unit]
    raise InvalidInput(f"cannot read cadence {every!r}", hint="use e.g. 100ms, 1s, 1m, 1h")


def rebuild_books(
    updates: Iterable[BookUpdate],
    *,
    symbol: str | None = None,
    every: str | None = None,
    depth: int = 20,
    on_gap: str = "raise",
) -> Rebuilt:
    """Apply ``updates`` in order; return snapshots (see the module docstring)."""
    if on_gap not in ("raise", "resync"):
        raise InvalidInput(f"on_gap must be 'raise' or 'resync', got {on_gap!r}")
    if depth < 1:
        raise InvalidInput(f"depth must be at least 1, got {depth}")
    step = _interval_ns(every) if every else None
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    last_id: int | None = None
    synced = False
    out: dict[str, list[Any]] = {k: [] for k in ("symbol", "ts", "bid_prices", "bid_sizes",
                                                  "ask_prices", "ask_sizes")}
    result = Rebuilt(table=pa.table({}))
    pending: tuple[int, str] | None = None  # (ts, symbol) of a state not yet emitted

    def emit(ts_ns: int, sym: str) -> None:
        top_b = sorted(bids.items(), key=lambda kv: -kv[0])[:depth]
        top_a = sorted(asks.items())[:depth]
        out["symbol"].append(sym)
        out["ts"].append(ts_ns)
        out["bid_prices"].append([p for p, _ in top_b])
        out["bid_sizes"].append([s for _, s in top_b])
        out["ask_prices"].append([p for p, _ in top_a])
        out["ask_sizes"].append([s for _, s in top_a])

    def apply(side: dict[float, float], levels: list[tuple[float, float]]) -> None:
        for price, size in levels:
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size

    def close_bucket(ts_ns: int | None) -> None:
        """With a cadence: emit the book as it stood after the last update of a bucket."""
        nonlocal pending
        if step is not None and pending is not None and (
                ts_ns is None or pending[0] // step != ts_ns // step):
            emit(*pending)
            pending = None

    for up in updates:
        sym = symbol or up.symbol
        if sym is None:
            raise InvalidInput("the stream carries no symbol", hint="pass symbol=...")
        if up.is_snapshot:
            close_bucket(up.ts_ns)
            bids.clear()
            asks.clear()
            apply(bids, up.bids)
            apply(asks, up.asks)
            last_id, synced = up.last_id, True
        else:
            if not synced:
                result.skipped += 1
                continue
            if last_id is not None and up.last_id is not None and up.first_id is not None:
                if up.last_id <= last_id:
                    result.skipped += 1  # older than the book: already in it
                    continue
                continuous = (up.prev_id == last_id) if up.prev_id is not None else (
                    up.first_id <= last_id + 1 <= up.last_id)
                if not continuous:
                    gap = Gap(up.ts_ns, last_id + 1, up.first_id if up.prev_id is None
                              else up.prev_id + 1)
                    if on_gap == "raise":
                        raise InvalidInput(
                            f"order-book sequence gap for {sym} at "
                            f"{pa.scalar(up.ts_ns, pa.timestamp('ns', 'UTC'))}: the book is at "
                            f"update {last_id}, the next update starts at {gap.got}",
                            hint="updates were lost; pass on_gap='resync' (CLI: --on-gap "
                            "resync) to drop updates until the next snapshot",
                            details={"rule": "sequence_gap", "expected": gap.expected,
                                     "got": gap.got})
                    result.gaps.append(gap)
                    close_bucket(None)
                    synced = False
                    result.skipped += 1
                    continue
            close_bucket(up.ts_ns)
            apply(bids, up.bids)
            apply(asks, up.asks)
            last_id = up.last_id if up.last_id is not None else last_id
        result.updates += 1
        if step is None:
            emit(up.ts_ns, sym)
        else:
            pending = (up.ts_ns, sym)
    close_bucket(None)
    result.table = pa.table({
        "symbol": pa.array(out["symbol"], pa.string()),
        "ts": pa.array(out["ts"], pa.int64()).cast(pa.timestamp("ns", "UTC")),
        "bid_prices": pa.array(out["bid_prices"], pa.list_(pa.float64())),
        "bid_sizes": pa.array(out["bid_sizes"], pa.list_(pa.float64())),
        "ask_prices": pa.array(out["ask_prices"], pa.list_(pa.float64())),
        "ask_sizes": pa.array(out["ask_sizes"], pa.list_(pa.float64())),
    })
    return result
