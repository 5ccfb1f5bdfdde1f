"""Time partitioning behind one interface: TimescaleDB hypertables or native
declarative range partitions.

* **TimescaleDB present** (and ``MARKETDB_TIMESCALEDB`` is ``auto`` or ``on``):
  the time-series tables become hypertables (``create_default_indexes =>
  false``: the primary key already leads with the instrument), with native
  compression and retention policies run by TimescaleDB's job scheduler.
* **Otherwise**: ``PARTITION BY RANGE (ts)`` tables. marketdb creates the
  partitions a write needs (:func:`ensure_partitions`) and drops whole
  partitions for retention (``maintain``). There is deliberately **no default
  partition**: a row outside every partition is an error, never silently
  parked somewhere that retention and partition pruning cannot see.

Per-table settings live in the ``timeseries_policies`` table; the defaults
below come from the seed documents (see docs/timeseries.md for the mapping).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from psycopg import sql

from marketdb.errors import ConfigurationError, InvalidInput

__all__ = [
    "DEFAULT_POLICIES",
    "Backend",
    "Policy",
    "detect_backend",
    "ensure_partitions",
    "list_partitions",
    "partition_bounds",
]

_log = logging.getLogger(__name__)

Backend = Literal["native", "timescaledb"]
UTC = dt.UTC
_MAX_NEW_PARTITIONS = 2000  # guards against a bogus timestamp creating thousands of tables


@dataclass(frozen=True)
class Policy:
    """Partition size, compression and retention of one time-series table."""

    table: str
    partition_interval: str  # "N day(s)" or "1 month"
    compress_after: dt.timedelta | None = None
    retain_for: dt.timedelta | None = None
    segment_by: str = "instrument_id"
    order_by: str = "ts DESC"


def _days(n: int) -> dt.timedelta:
    """A whole number of days."""
    return dt.timedelta(days=n)


#: Defaults from the seed documents. Retention is off by default: deleting a
#: user's history is opt-in (``marketdb policies set trades --retain-for 30d``);
#: the seeds' retention figures are listed in docs/timeseries.md.
DEFAULT_POLICIES: dict[str, Policy] = {
    # 003 uses 1-hour chunks for ticks; a day per partition keeps the partition
    # count sane on native PostgreSQL and reads a symbol-day fastest (ANCHORS).
    "trades": Policy("trades", "1 day", compress_after=_days(7), order_by="ts DESC, ts_nanos DESC, seq DESC"),
    "quotes": Policy("quotes", "1 day", compress_after=_days(7), order_by="ts DESC, ts_nanos DESC, seq DESC"),
    # 003: candles compressed after 30 days; monthly partitions hold decades of daily bars.
    "candles": Policy(
        "candles",
        "1 month",
        compress_after=_days(30),
        segment_by="instrument_id, interval",
        order_by="ts DESC",
    ),
    # 003: order books compressed after 1 day.
    "order_book_snapshots": Policy("order_book_snapshots", "1 day", compress_after=_days(1)),
    "options_chains": Policy("options_chains", "7 days", compress_after=_days(7), segment_by="underlying_id"),
}


def _exec(
    conn: Any, query: sql.Composable | str, params: Sequence[Any] | None = None
) -> list[tuple[Any, ...]]:
    """Run SQL on either a psycopg connection or a SQLAlchemy connection."""
    if isinstance(conn, psycopg.Connection):
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []
    raw = conn.connection.driver_connection if isinstance(conn, sa.Connection) else None
    if raw is None:
        raise TypeError(f"expected a psycopg or SQLAlchemy connection, got {type(conn).__name__}")
    with raw.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def detect_backend(conn: Any, setting: str = "auto") -> Backend:
    """Which partitioning backend to use on this server.

    ``setting`` is ``auto`` (TimescaleDB when the extension is installed or
    can be created), ``on`` (require it) or ``off`` (native partitions).
    """
    if setting == "off":
        return "native"
    installed = _exec(conn, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if installed:
        return "timescaledb"
    available = _exec(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    preloaded = _exec(conn, "SELECT current_setting('shared_preload_libraries') LIKE '%timescaledb%'")
    if available and preloaded and preloaded[0][0]:
        return "timescaledb"
    if setting == "on":
        raise ConfigurationError(
            "MARKETDB_TIMESCALEDB=on but the TimescaleDB extension is not available on this server",
            hint="install TimescaleDB (shared_preload_libraries), or set MARKETDB_TIMESCALEDB=auto",
        )
    return "native"


def current_backend(conn: Any) -> Backend:
    """The backend the schema was created with (read from timeseries_policies)."""
    rows = _exec(conn, "SELECT DISTINCT backend FROM timeseries_policies")
    return "timescaledb" if rows and rows[0][0] == "timescaledb" else "native"


# ----------------------------------------------------------------- partitions
def _to_utc(t: dt.datetime | dt.date) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        return dt.datetime(t.year, t.month, t.day, tzinfo=UTC)
    if t.tzinfo is None:
        raise InvalidInput("partition bounds need timezone-aware timestamps")
    return t.astimezone(UTC)


_EPOCH_MONDAY = dt.datetime(1970, 1, 5, tzinfo=UTC)


def parse_partition_interval(text: str) -> dt.timedelta | str:
    """``"1 month"`` stays a month; ``"N day(s)"`` becomes a timedelta."""
    t = text.strip().lower()
    if t in ("1 month", "1 mon", "month"):
        return "1 month"
    parts = t.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] in ("day", "days") and int(parts[0]) > 0:
        return dt.timedelta(days=int(parts[0]))
    raise ConfigurationError(
        f"unsupported partition interval {text!r}", hint="use 'N days' (e.g. '1 day', '7 days') or '1 month'"
    )


def partition_bounds(
    interval: dt.timedelta | str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The aligned [lo, hi) partition ranges covering ``start`` .. ``end`` (inclusive).

    Day-multiple intervals are aligned to UTC midnight (multi-day ones to
    Mondays since the epoch); ``"1 month"`` to the first of the month.
    """
    lo_t, hi_t = _to_utc(start), _to_utc(end)
    if hi_t < lo_t:
        lo_t, hi_t = hi_t, lo_t
    if isinstance(interval, str):
        interval = parse_partition_interval(interval)
    if interval == "1 month":
        cur = dt.datetime(lo_t.year, lo_t.month, 1, tzinfo=UTC)
        while cur <= hi_t:
            nxt = dt.datetime(cur.year + (cur.month == 12), cur.month % 12 + 1, 1, tzinfo=UTC)
            yield cur, nxt
            cur = nxt
        return
    if not isinstance(interval, dt.timedelta) or interval.total_seconds() % 86400:
        raise ConfigurationError(
            f"unsupported partition interval {interval!r}",
            hint="use a whole number of days or '1 month'",
        )
    step = interval
    anchor = _EPOCH_MONDAY if step.days > 1 else dt.datetime(1970, 1, 1, tzinfo=UTC)
    n = (lo_t - anchor) // step
    cur = anchor + n * step
    while cur <= hi_t:
        yield cur, cur + step
        cur += step


def partition_name(table: str, lo: dt.datetime) -> str:
    """Child table name: ``<table>_p<YYYYMMDD>`` of the partition's lower bound."""
    return f"{table}_p{lo:%Y%m%d}"


def list_partitions(conn: Any, table: str) -> list[tuple[str, str]]:
    """(child name, bound expression) of a natively partitioned table, oldest first."""
    rows = _exec(
        conn,
        """
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE p.relname = %s AND n.nspname = current_schema()
        ORDER BY c.relname
        """,
        [table],
    )
    return [(r[0], r[1]) for r in rows]


def _policy_interval(conn: Any, table: str) -> dt.timedelta | str:
    rows = _exec(conn, "SELECT partition_interval FROM timeseries_policies WHERE table_name = %s", [table])
    if rows:
        return parse_partition_interval(rows[0][0])
    if table not in DEFAULT_POLICIES:
        raise ConfigurationError(f"{table!r} is not a time-series table")
    return parse_partition_interval(DEFAULT_POLICIES[table].partition_interval)


def ensure_partitions(
    conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
) -> list[str]:
    """Create the partitions of ``table`` that rows in [start, end] need.

    Idempotent and safe under concurrency (a transaction-scoped advisory lock
    serialises creators of the same table). A no-op on TimescaleDB, which
    creates chunks itself. Returns the names of partitions it created.
    """
    if current_backend(conn) == "timescaledb":
        return []
    interval = _policy_interval(conn, table)
    wanted = list(partition_bounds(interval, start, end))
    if len(wanted) > _MAX_NEW_PARTITIONS:
        raise InvalidInput(
            f"the time range {start} .. {end} would need {len(wanted)} partitions of {table}",
            hint="check the timestamps of the input; a bogus date (e.g. year 9999) is the usual cause",
        )
    existing = {name for name, _ in list_partitions(conn, table)}
    missing = [(lo, hi) for lo, hi in wanted if partition_name(table, lo) not in existing]
    if not missing:
        return []
    _exec(conn, "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"marketdb.partitions.{table}"])
    existing = {name for name, _ in list_partitions(conn, table)}
    created = []
    for lo, hi in missing:
        name = partition_name(table, lo)
        if name in existing:
            continue
        _exec(
            conn,
            sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(name), sql.Identifier(table), sql.Literal(lo), sql.Literal(hi)
            ),
        )
        created.append(name)
    if created:
        _log.info("created %d partition(s) of %s: %s", len(created), table, ", ".join(created))
    return created


def drop_partitions_before(conn: Any, table: str, cutoff: dt.datetime) -> list[str]:
    """Retention on native partitions: drop every partition wholly before ``cutoff``."""
    interval = _policy_interval(conn, table)
    dropped = []
    for name, _bound in list_partitions(conn, table):
        lo = dt.datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d").replace(tzinfo=UTC)
        hi = next(partition_bounds(interval, lo, lo))[1]
        if hi <= cutoff:
            _exec(conn, sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped
