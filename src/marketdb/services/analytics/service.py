"""The analytics tier as one service: ``db.analytics`` (None-safe when ClickHouse is not configured)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from marketdb.errors import ConfigurationError
from marketdb.services.analytics import _sync
from marketdb.services.analytics._client import ClickHouse, connect_clickhouse, quote_ident
from marketdb.services.analytics._ddl import TABLES, create_statements

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = ["Analytics", "Route", "TableStatus", "maintenance_hook", "route_allows"]

Route = Literal["postgres", "clickhouse", "auto"]

#: Bar columns ClickHouse can compute from trades.
TRADE_BAR_COLUMNS = {
    "open": "argMin(price, (ts, seq))",
    "high": "max(price)",
    "low": "min(price)",
    "close": "argMax(price, (ts, seq))",
    "volume": "sum(size)",
    "vwap": "if(sum(size) = 0, NULL, sum(price * size) / sum(size))",
    "trade_count": "toInt64(count())",
    "notional": "sum(price * size)",
}
#: Bar columns stored in the ClickHouse candles table.
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count")
#: ``route="auto"`` sends a read to ClickHouse from this many days of range on.
AUTO_MIN_DAYS = 30


@dataclass(frozen=True)
class TableStatus:
    """How far one table is mirrored."""

    table: str
    instruments_synced: int
    instruments_behind: int
    rows: int
    last_ts: dt.datetime | None
    last_synced_at: dt.datetime | None


class Analytics:
    """ClickHouse analytics tier: schema, sync, verify, status and routed reads.

    ``Analytics(db, url)``; ``url`` defaults to ``CLICKHOUSE_URL``. With a
    ``cluster`` name the tables are created as Replicated + Distributed
    ``ON CLUSTER`` (``replicated=False`` for a cluster of plain shards).
    """

    def __init__(
        self,
        db: Database,
        url: str | None = None,
        *,
        database: str = "marketdb",
        cluster: str | None = None,
        replicated: bool = True,
    ) -> None:
        url = url or db.settings.clickhouse_url
        if not url:
            raise ConfigurationError(
                "no ClickHouse analytics tier is configured",
                hint="set CLICKHOUSE_URL (http://host:8123, or chdb:///path for the in-process engine)",
            )
        self._db = db
        self.url = url
        self.database = database
        self.cluster = cluster
        self.replicated = replicated
        self._ch: ClickHouse | None = None
        self._lock = threading.Lock()

    @property
    def ch(self) -> ClickHouse:
        """The ClickHouse client (connects and creates the tables on first use)."""
        with self._lock:
            if self._ch is None:
                ch = connect_clickhouse(self.url, database=self.database)
                for stmt in create_statements(
                    self.database, cluster=self.cluster, replicated=self.replicated
                ):
                    ch.command(stmt)
                self._ch = ch
            return self._ch

    def close(self) -> None:
        """Release the ClickHouse connection."""
        with self._lock:
            ch, self._ch = self._ch, None
        if ch is not None:
            ch.close()

    # ------------------------------------------------------------ sync
    def sync(
        self,
        tables: Iterable[str] | None = None,
        *,
        batch_rows: int = _sync.DEFAULT_BATCH_ROWS,
        progress: Callable[[_sync.SyncProgress], None] | None = None,
        full: bool = False,
    ) -> _sync.SyncReport:
        """Send what changed since the last sync (see :mod:`marketdb.services.analytics._sync`).

        ``full`` re-checks every instrument (repairs ClickHouse after changes made behind marketdb's back).
        """
        return _sync.sync(
            self._db, self.ch, tables=tables, batch_rows=batch_rows, progress=progress, full=full
        )

    def verify(self, tables: Iterable[str] | None = None) -> _sync.VerifyReport:
        """Row counts and per-day digests of ClickHouse against PostgreSQL."""
        return _sync.verify(self._db, self.ch, tables=tables)

    def status(self) -> list[TableStatus]:
        """Per table: instruments in sync and behind, rows mirrored, up to which time, when."""
        out = []
        with self._db.raw() as conn:
            for name in TABLES:
                row = conn.execute(
                    """
                    SELECT count(*) FILTER (WHERE s.data_version = i.data_version),
                           count(*) FILTER (WHERE s.data_version IS DISTINCT FROM i.data_version),
                           coalesce(sum(s.row_count), 0), max(s.last_ts), max(s.synced_at)
                    FROM instruments i
                    LEFT JOIN clickhouse_sync_state s ON s.instrument_id = i.id AND s.table_name = %s
                    """,
                    [name],
                ).fetchone()
                assert row is not None
                out.append(TableStatus(name, row[0], row[1], int(row[2]), row[3], row[4]))
        return out

    def in_sync(self, table: str, instrument_ids: Sequence[int]) -> bool:
        """True when ClickHouse holds the current data version of every instrument in ``table``."""
        with self._db.raw() as conn:
            row = conn.execute(
                """
                SELECT count(*) FROM instruments i
                JOIN clickhouse_sync_state s ON s.instrument_id = i.id AND s.table_name = %s
                WHERE i.id = ANY(%s) AND s.data_version = i.data_version
                """,
                [table, list(instrument_ids)],
            ).fetchone()
        return row is not None and row[0] == len(set(instrument_ids))

    # ---------------------------------------------------------- routed reads
    def bars(
        self,
        instrument_ids: Sequence[int],
        interval: str,
        seconds: float | None,
        start_ns: int | None,
        end_ns: int | None,
        columns: Sequence[str],
        *,
        sources: Sequence[str] | None,
        preference: Sequence[str],
    ) -> dict[int, pa.Table] | None:
        """Bars per instrument as (ts, columns..., source), or None when ClickHouse cannot answer.

        Intraday fixed intervals are computed from scratch over ``trades``
        (source ``trades``); ``1d`` comes from the mirrored candles with the
        same source preference as PostgreSQL.
        """
        db = quote_ident(self.database)
        where = [f"instrument_id IN ({', '.join(str(int(i)) for i in instrument_ids)})"]
        where += _time_where(start_ns, end_ns)
        if interval == "1d":
            if any(c not in CANDLE_COLUMNS for c in columns):
                return None
            where.append("interval = '1d'")
            if sources is not None:
                where.append("source IN (" + ", ".join(_lit(s) for s in sources) + ")")
            prefs = "[" + ", ".join(_lit(s) for s in preference) + "]"
            rank = f"(if(indexOf({prefs}, source) = 0, 1000000, indexOf({prefs}, source)), source)"
            # Output aliases must not shadow the columns the ranking reads.
            sel = ", ".join(f"argMin({quote_ident(c)}, {rank}) AS {quote_ident('c_' + c)}" for c in columns)
            q = (
                f"SELECT instrument_id, ts, {sel}, argMin(source, {rank}) AS c_source "
                f"FROM {db}.candles FINAL WHERE {' AND '.join(where)} "
                "GROUP BY instrument_id, ts ORDER BY instrument_id, ts"
            )
        else:
            if seconds is None or seconds >= 86400 or any(c not in TRADE_BAR_COLUMNS for c in columns):
                return None
            if sources is not None and list(sources) != ["trades"]:
                return None
            sel = ", ".join(f"{TRADE_BAR_COLUMNS[c]} AS {quote_ident('c_' + c)}" for c in columns)
            width = round(seconds * 1e9)
            q = (
                "SELECT instrument_id, fromUnixTimestamp64Nano("
                f"intDiv(toUnixTimestamp64Nano(ts), {width}) * {width}, 'UTC') AS bucket, "
                f"{sel}, 'trades' AS c_source FROM {db}.trades FINAL WHERE {' AND '.join(where)} "
                "GROUP BY instrument_id, bucket ORDER BY instrument_id, bucket"
            )
        table = self.ch.arrow(q)
        return _split(table, instrument_ids)

    def ticks(
        self,
        instrument_ids: Sequence[int],
        start_ns: int | None,
        end_ns: int | None,
        columns: Sequence[str],
    ) -> dict[int, pa.Table] | None:
        """Trades per instrument as (ts, ts_nanos, columns...), like the PostgreSQL read."""
        known = {c for c, _ in TABLES["trades"].columns}
        if any(c not in known for c in columns):
            return None
        db = quote_ident(self.database)
        where = [
            f"instrument_id IN ({', '.join(str(int(i)) for i in instrument_ids)})",
            *_time_where(start_ns, end_ns),
        ]
        sel = ", ".join(quote_ident(c) for c in columns)
        q = (
            f"SELECT instrument_id, ts, {sel} FROM {db}.trades FINAL WHERE {' AND '.join(where)} "
            "ORDER BY instrument_id, ts, seq"
        )
        return _split(self.ch.arrow(q), instrument_ids)


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time_where(start_ns: int | None, end_ns: int | None) -> list[str]:
    out = []
    for op, ns in ((">=", start_ns), ("<", end_ns)):
        if ns is not None:
            out.append(f"ts {op} fromUnixTimestamp64Nano(toInt64({int(ns)}), 'UTC')")
    return out


def _split(table: pa.Table, instrument_ids: Sequence[int]) -> dict[int, pa.Table]:
    import pyarrow.compute as pc

    ids = table.column("instrument_id")
    rest = table.drop_columns(["instrument_id"])
    names = rest.column_names
    rest = rest.rename_columns(["ts", *(n.removeprefix("c_") for n in names[1:])])
    return {int(i): rest.filter(pc.equal(ids, pa.scalar(int(i), ids.type))) for i in instrument_ids}


def maintenance_hook(tier: Callable[[], Analytics | None]) -> Callable[[Any], str | None]:
    """A ``maintain`` step: sync the ClickHouse tier (a dry run reports what is behind).

    ``tier`` returns the process's analytics service (None without CLICKHOUSE_URL).
    """

    def clickhouse_sync(ctx: Any) -> str | None:
        analytics = tier()
        if analytics is None:
            return "no ClickHouse configured"
        if ctx.dry_run:
            behind = {s.table: s.instruments_behind for s in analytics.status() if s.instruments_behind}
            return "clickhouse: " + (", ".join(f"{t} {n} behind" for t, n in behind.items()) or "in sync")
        return "clickhouse sync: " + analytics.sync().summary()

    return clickhouse_sync


def route_allows(
    route: Route, analytics: Analytics | None, table: str, ids: Sequence[int], span_days: float | None
) -> bool:
    """Whether a read goes to ClickHouse: asked for explicitly, or ``auto`` on a long, in-sync scan."""
    if route == "postgres":
        return False
    if analytics is None:
        if route == "clickhouse":
            raise ConfigurationError(
                "route='clickhouse' but no ClickHouse is configured", hint="set CLICKHOUSE_URL"
            )
        return False
    if route == "clickhouse":
        return True
    long_scan = span_days is None or span_days >= AUTO_MIN_DAYS
    return long_scan and analytics.in_sync(table, ids)
