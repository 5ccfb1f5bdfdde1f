"""Time partitioning behind one interface: TimescaleDB hypertables or native
declarative range partitions.

:class:`TimeseriesBackend` is the contract; :class:`NativePartitions` and
:class:`Timescale` implement it, and :func:`backend_for` picks the one the
schema was created with. Services (ingest, bars, ``maintain``, ``policies``,
``doctor``) call the backend instead of branching on its name.

* **TimescaleDB present** (and ``MARKETDB_TIMESCALEDB`` is ``auto`` or ``on``):
  the time-series tables become hypertables (``create_default_indexes =>
  false``: the primary key already leads with the instrument), with native
  compression and retention policies run by TimescaleDB's job scheduler.
  Chunks are created on demand, so any insert lands.
* **Otherwise**: ``PARTITION BY RANGE (ts)`` tables. marketdb creates the
  partitions a write needs: only for the periods that actually hold rows
  (:func:`ensure_partitions_for`), or for a range (``maintain`` creates the
  coming days ahead). Every table also has a **default partition**
  (``<table>_default``, migration 0009) so that a row outside every partition
  (a raw ``INSERT`` from psql, years in the past or future) still lands;
  creating a partition moves the default partition's rows of that period into
  it in the same transaction, and ``maintain`` does that for every period the
  default partition holds, so retention and partition pruning see them.

Per-table settings live in the ``timeseries_policies`` table; the defaults
below come from the seed documents (see docs/timeseries.md for the mapping).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import psycopg
import sqlalchemy as sa
from psycopg import sql

from marketdb.errors import ConfigurationError, Conflict, InvalidInput
from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

__all__ = [
    "DEFAULT_POLICIES",
    "Backend",
    "NativePartitions",
    "Policy",
    "TableSize",
    "Timescale",
    "TimeseriesBackend",
    "backend_for",
    "default_partition_name",
    "detect_backend",
    "ensure_partitions",
    "ensure_partitions_for",
    "list_partitions",
    "partition_bounds",
]

_log = logging.getLogger(__name__)

Backend = Literal["native", "timescaledb"]
UTC = dt.UTC
_MAX_NEW_PARTITIONS = 2000  # guards against a bogus range creating thousands of tables
_BOUND = re.compile(r"FROM \((.*?)\) TO \((.*?)\)")


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


# ----------------------------------------------------------------- intervals
def _to_utc(t: dt.datetime | dt.date) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        return dt.datetime(t.year, t.month, t.day, tzinfo=UTC)
    if t.tzinfo is None:
        raise InvalidInput("partition bounds need timezone-aware timestamps")
    return t.astimezone(UTC)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
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


def _next_month(t: dt.datetime) -> dt.datetime:
    return dt.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)


def _check_days(interval: dt.timedelta | str) -> dt.timedelta:
    if not isinstance(interval, dt.timedelta) or interval.total_seconds() % 86400:
        raise ConfigurationError(
            f"unsupported partition interval {interval!r}",
            hint="use a whole number of days or '1 month'",
        )
    return interval


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
            nxt = _next_month(cur)
            yield cur, nxt
            cur = nxt
        return
    step = _check_days(interval)
    anchor = _EPOCH_MONDAY if step.days > 1 else _EPOCH
    n = (lo_t - anchor) // step
    cur = anchor + n * step
    while cur <= hi_t:
        yield cur, cur + step
        cur += step


def _epoch_us(values: pa.Array | pa.ChunkedArray | Sequence[dt.datetime | dt.date]) -> np.ndarray:
    """Microseconds since the epoch (UTC) of timestamps or dates, nulls dropped."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.timestamp("us", "UTC"))
    arr = pc.drop_null(arr)
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.date32()).cast(pa.timestamp("s")).cast(pa.timestamp("us"))
    elif pa.types.is_timestamp(arr.type):
        if arr.type.tz is None and len(arr):
            raise InvalidInput("partitions need timezone-aware timestamps")
        arr = arr.cast(pa.timestamp("us", arr.type.tz), safe=False)
    else:
        raise InvalidInput(f"partitions need timestamps or dates, got {arr.type}")
    return np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def period_bounds(
    interval: dt.timedelta | str, values: pa.Array | pa.ChunkedArray | Sequence[dt.datetime | dt.date]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The distinct aligned [lo, hi) partition ranges that hold ``values``, oldest first.

    Unlike :func:`partition_bounds` this never yields a period without a row:
    two ticks nine years apart need two partitions, not 3,288.
    """
    if isinstance(interval, str):
        interval = parse_partition_interval(interval)
    us = _epoch_us(values)
    if not len(us):
        return []
    day_us = 86_400_000_000
    days = np.unique(us // day_us)
    if interval == "1 month":
        starts = sorted({(_EPOCH + dt.timedelta(days=int(d))).replace(day=1) for d in days})
        return [(s, _next_month(s)) for s in starts]
    step = _check_days(interval)
    anchor = _EPOCH_MONDAY if step.days > 1 else _EPOCH
    offset = (anchor - _EPOCH).days
    buckets = np.unique((days - offset) // step.days)
    return [(anchor + int(b) * step, anchor + int(b) * step + step) for b in buckets]


def partition_name(table: str, lo: dt.datetime) -> str:
    """Child table name: ``<table>_p<YYYYMMDD>`` of the partition's lower bound."""
    return f"{table}_p{lo:%Y%m%d}"


def default_partition_name(table: str) -> str:
    """Name of the default partition of a natively partitioned table."""
    return f"{table}_default"


def partition_range(bound: str) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """[lo, hi) of a range partition from ``pg_get_expr(relpartbound)``; None for DEFAULT.

    ``MINVALUE``/``MAXVALUE`` give None for that side. The server prints the
    bounds in the session time zone, which marketdb sessions set to UTC.
    """
    m = _BOUND.search(bound)
    if m is None:
        return None
    return _bound_value(m.group(1)), _bound_value(m.group(2))


def _bound_value(text: str) -> dt.datetime | None:
    text = text.strip()
    if not text.startswith("'"):
        return None  # MINVALUE / MAXVALUE
    value = dt.datetime.fromisoformat(text.strip("'"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _all_partitions(conn: Any, table: str) -> list[tuple[str, str]]:
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


def list_partitions(conn: Any, table: str, *, include_default: bool = False) -> list[tuple[str, str]]:
    """(child name, bound expression) of a natively partitioned table, oldest first.

    The default partition is left out unless ``include_default``.
    """
    return [
        (name, bound)
        for name, bound in _all_partitions(conn, table)
        if include_default or bound.strip() != "DEFAULT"
    ]


def _policy_interval(conn: Any, table: str) -> dt.timedelta | str:
    rows = _exec(conn, "SELECT partition_interval FROM timeseries_policies WHERE table_name = %s", [table])
    if rows:
        return parse_partition_interval(rows[0][0])
    if table not in DEFAULT_POLICIES:
        raise ConfigurationError(f"{table!r} is not a time-series table")
    return parse_partition_interval(DEFAULT_POLICIES[table].partition_interval)


# -------------------------------------------------------------- the contract
@dataclass(frozen=True, slots=True)
class TableSize:
    """Size and time coverage of one time-series table."""

    table: str
    total_bytes: int
    #: partitions (native, the default partition included) or chunks (TimescaleDB)
    partitions: int
    #: chunks stored compressed (always 0 on native partitions)
    compressed: int
    oldest: dt.datetime | None
    newest: dt.datetime | None


@runtime_checkable
class TimeseriesBackend(Protocol):
    """What marketdb needs from a time-partitioning backend.

    Every method runs in the caller's transaction (a psycopg or SQLAlchemy
    connection) and is idempotent.
    """

    name: Backend
    #: True when the server itself creates partitions and runs retention (TimescaleDB's jobs)
    self_managed: bool

    def create_table(self, conn: Any, table: str, policy: Policy) -> None:
        """Finish a freshly created time-series table (hypertable, default partition ...)."""
        ...

    def ensure_partitions(
        self, conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
    ) -> list[str]:
        """Make every period in [start, end] writable ahead of time; the names created."""
        ...

    def ensure_partitions_for(
        self, conn: Any, table: str, values: pa.Array | pa.ChunkedArray | Sequence[dt.datetime | dt.date]
    ) -> list[str]:
        """Make the periods holding ``values`` (and only those) writable; the names created."""
        ...

    def missing_partitions(
        self, conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
    ) -> list[str]:
        """What :meth:`ensure_partitions` would create (for dry runs)."""
        ...

    def settle(self, conn: Any, table: str, *, dry_run: bool = False) -> tuple[list[str], int]:
        """Move rows parked outside their proper partition into it: (partitions created, rows moved)."""
        ...

    def expired_partitions(self, conn: Any, table: str, cutoff: dt.datetime) -> list[str]:
        """Partitions wholly before ``cutoff`` that marketdb must drop (none if the server's jobs do it)."""
        ...

    def drop_partitions(self, conn: Any, table: str, names: Sequence[str]) -> None:
        """Drop the named partitions of ``table``."""
        ...

    def apply_policy(self, conn: Any, table: str, values: dict[str, Any], old_interval: str | None) -> None:
        """Apply a changed ``partition_interval``/``compress_after``/``retain_for`` to the server."""
        ...

    def size(self, conn: Any, table: str) -> TableSize:
        """Bytes, partition/chunk counts and time coverage of ``table``."""
        ...


def _lock_table(conn: Any, table: str) -> None:
    _exec(conn, "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"marketdb.partitions.{table}"])


def _coverage(conn: Any, table: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    rows = _exec(conn, sql.SQL("SELECT min(ts), max(ts) FROM {}").format(sql.Identifier(table)))
    return (rows[0][0], rows[0][1]) if rows else (None, None)


class NativePartitions:
    """``PARTITION BY RANGE (ts)`` with marketdb-made partitions and a default partition."""

    name: Backend = "native"
    self_managed: bool = False

    def create_table(self, conn: Any, table: str, policy: Policy) -> None:
        """Add the default partition that catches rows outside every range partition."""
        _exec(
            conn,
            sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT").format(
                sql.Identifier(default_partition_name(table)), sql.Identifier(table)
            ),
        )

    def _default(self, conn: Any, table: str) -> str | None:
        """Name of the default partition of ``table``, if it has one."""
        return next((name for name, b in _all_partitions(conn, table) if b.strip() == "DEFAULT"), None)

    def _create(self, conn: Any, table: str, bounds: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[str]:
        """Create the partitions of ``bounds`` that do not exist, moving default-partition rows in."""
        existing = {name for name, _ in list_partitions(conn, table)}
        missing = [(lo, hi) for lo, hi in bounds if partition_name(table, lo) not in existing]
        if not missing:
            return []
        _lock_table(conn, table)
        existing = {name for name, _ in list_partitions(conn, table)}
        default = self._default(conn, table)
        created = []
        for lo, hi in missing:
            name = partition_name(table, lo)
            if name in existing:
                continue
            parked = 0
            if default is not None:
                parked = self._park(conn, table, default, lo, hi)
            _exec(
                conn,
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name), sql.Identifier(table), sql.Literal(lo), sql.Literal(hi)
                ),
            )
            if parked:
                _exec(
                    conn,
                    sql.SQL("INSERT INTO {} SELECT * FROM _marketdb_parked").format(sql.Identifier(table)),
                )
                _exec(conn, "DROP TABLE _marketdb_parked")
                _log.info("moved %d row(s) of %s from the default partition into %s", parked, table, name)
            created.append(name)
        if created:
            _log.info("created %d partition(s) of %s: %s", len(created), table, ", ".join(created))
        return created

    def _park(self, conn: Any, table: str, default: str, lo: dt.datetime, hi: dt.datetime) -> int:
        """Move the default partition's rows in [lo, hi) to a temporary table; how many.

        PostgreSQL refuses to create a partition whose range has rows in the default
        partition. The rows go back through the parent once the partition exists, in the
        same transaction, so a failure loses nothing.
        """
        dflt = sql.Identifier(default)
        lo_l, hi_l = sql.Literal(lo), sql.Literal(hi)
        exists = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE ts >= {} AND ts < {})")
        any_rows = _exec(conn, exists.format(dflt, lo_l, hi_l))
        if not any_rows or not any_rows[0][0]:
            return 0
        _exec(
            conn,
            sql.SQL("CREATE TEMP TABLE _marketdb_parked (LIKE {}) ON COMMIT DROP").format(
                sql.Identifier(table)
            ),
        )
        n = _exec(
            conn,
            sql.SQL(
                "WITH moved AS (DELETE FROM {} WHERE ts >= {} AND ts < {} RETURNING *), "
                "kept AS (INSERT INTO _marketdb_parked SELECT * FROM moved RETURNING 1) "
                "SELECT count(*) FROM kept"
            ).format(dflt, lo_l, hi_l),
        )
        return int(n[0][0]) if n else 0

    def ensure_partitions(
        self, conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
    ) -> list[str]:
        """Create every partition of [start, end] (at most 2,000: a bogus range is refused)."""
        wanted = list(partition_bounds(_policy_interval(conn, table), start, end))
        if len(wanted) > _MAX_NEW_PARTITIONS:
            raise InvalidInput(
                f"the time range {start} .. {end} would need {len(wanted)} partitions of {table}",
                hint="check the timestamps of the input; a bogus date (e.g. year 9999) is the usual cause; "
                "to make rows writable, create partitions only for their periods (ensure_partitions_for)",
            )
        return self._create(conn, table, wanted)

    def ensure_partitions_for(
        self, conn: Any, table: str, values: pa.Array | pa.ChunkedArray | Sequence[dt.datetime | dt.date]
    ) -> list[str]:
        """Create the partitions of the periods that hold ``values``, and no others."""
        return self._create(conn, table, period_bounds(_policy_interval(conn, table), values))

    def missing_partitions(
        self, conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
    ) -> list[str]:
        """Names of the partitions of [start, end] that do not exist yet."""
        existing = {name for name, _ in list_partitions(conn, table)}
        wanted = partition_bounds(_policy_interval(conn, table), start, end)
        return [n for n in (partition_name(table, lo) for lo, _ in wanted) if n not in existing]

    def settle(self, conn: Any, table: str, *, dry_run: bool = False) -> tuple[list[str], int]:
        """Create the partitions the default partition's rows belong to and move the rows there."""
        name = self._default(conn, table)
        if name is None:
            return [], 0
        default = sql.Identifier(name)
        rows = _exec(conn, sql.SQL("SELECT count(*) FROM {}").format(default))
        n = int(rows[0][0]) if rows else 0
        if n == 0:
            return [], 0
        interval = _policy_interval(conn, table)
        if interval == "1 month":
            trunc = sql.SQL("date_trunc('month', ts AT TIME ZONE 'UTC')")
        else:
            trunc = sql.SQL("date_trunc('day', ts AT TIME ZONE 'UTC')")
        days = [
            r[0].replace(tzinfo=UTC)
            for r in _exec(conn, sql.SQL("SELECT DISTINCT {} FROM {} ORDER BY 1").format(trunc, default))
        ]
        bounds = period_bounds(interval, days)
        if dry_run:
            existing = {name for name, _ in list_partitions(conn, table)}
            return [
                partition_name(table, lo) for lo, _ in bounds if partition_name(table, lo) not in existing
            ], n
        created = self._create(conn, table, bounds)
        left = _exec(conn, sql.SQL("SELECT count(*) FROM {}").format(default))
        if left and int(left[0][0]):
            # A range partition already exists for these rows' period (made before migration 0009
            # or by hand while the rows sat here): move them through the parent.
            _exec(
                conn,
                sql.SQL(
                    "WITH moved AS (DELETE FROM {d} RETURNING *) INSERT INTO {t} SELECT * FROM moved"
                ).format(d=default, t=sql.Identifier(table)),
            )
        return created, n

    def expired_partitions(self, conn: Any, table: str, cutoff: dt.datetime) -> list[str]:
        """Range partitions whose upper bound is at or before ``cutoff``."""
        old = []
        for name, bound in list_partitions(conn, table):
            rng = partition_range(bound)
            if rng is not None and rng[1] is not None and rng[1] <= cutoff:
                old.append(name)
        return old

    def drop_partitions(self, conn: Any, table: str, names: Sequence[str]) -> None:
        """DROP TABLE each named partition (never the parent or the default partition)."""
        own = {name for name, _ in list_partitions(conn, table)}
        for name in names:
            if name not in own:
                raise InvalidInput(f"{name!r} is not a range partition of {table}")
            _exec(conn, sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))

    def apply_policy(self, conn: Any, table: str, values: dict[str, Any], old_interval: str | None) -> None:
        """Nothing to do on the server; a new partition size needs a table without partitions.

        Raises:
            Conflict: ``partition_interval`` changes while partitions exist (they would overlap).
        """
        if "partition_interval" not in values:
            return
        parts = list_partitions(conn, table)
        if parts:
            raise Conflict(
                f"{table} already has {len(parts)} partition(s) of {old_interval}; "
                f"partitions of {values['partition_interval']} would overlap them",
                hint=(
                    "choose the partition size before the first write (or before the first "
                    "`marketdb maintain`); on TimescaleDB the new size applies to new chunks"
                ),
            )

    def size(self, conn: Any, table: str) -> TableSize:
        """Total bytes of every partition, their count, and min/max ``ts``."""
        parts = list_partitions(conn, table, include_default=True)
        rows = _exec(
            conn,
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(%s)",
            [[name for name, _ in parts]],
        )
        oldest, newest = _coverage(conn, table)
        return TableSize(table, int(rows[0][0]) if rows else 0, len(parts), 0, oldest, newest)


class Timescale:
    """TimescaleDB hypertables: chunks on demand, compression and retention as TimescaleDB jobs."""

    name: Backend = "timescaledb"
    self_managed: bool = True

    def create_table(self, conn: Any, table: str, policy: Policy) -> None:
        """Turn the table into a hypertable with compression settings and its compression job."""
        _exec(
            conn,
            "SELECT create_hypertable(CAST(%s AS regclass), by_range('ts', CAST(%s AS interval)),"
            " create_default_indexes => false, if_not_exists => true)",
            [table, policy.partition_interval],
        )
        _exec(
            conn,
            sql.SQL(
                "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                "timescaledb.compress_orderby = {})"
            ).format(sql.Identifier(table), sql.Literal(policy.segment_by), sql.Literal(policy.order_by)),
        )
        if policy.compress_after is not None:
            _exec(
                conn,
                "SELECT add_compression_policy(CAST(%s AS regclass), CAST(%s AS interval),"
                " if_not_exists => true)",
                [table, policy.compress_after],
            )

    def ensure_partitions(
        self, conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
    ) -> list[str]:
        """Nothing: TimescaleDB creates a chunk when the first row of its range arrives."""
        return []

    def ensure_partitions_for(
        self, conn: Any, table: str, values: pa.Array | pa.ChunkedArray | Sequence[dt.datetime | dt.date]
    ) -> list[str]:
        """Nothing: chunks are created on insert."""
        return []

    def missing_partitions(
        self, conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
    ) -> list[str]:
        """Never any: chunks are created on insert."""
        return []

    def settle(self, conn: Any, table: str, *, dry_run: bool = False) -> tuple[list[str], int]:
        """Nothing is ever parked: every row lands in its own chunk."""
        return [], 0

    def expired_partitions(self, conn: Any, table: str, cutoff: dt.datetime) -> list[str]:
        """None: retention is TimescaleDB's own job (``add_retention_policy``)."""
        return []

    def drop_partitions(self, conn: Any, table: str, names: Sequence[str]) -> None:
        """Drop the named chunks (``drop_chunks`` is the usual way; this drops exact ones)."""
        own = {
            f"{r[0]}.{r[1]}"
            for r in _exec(
                conn,
                "SELECT chunk_schema, chunk_name FROM timescaledb_information.chunks"
                " WHERE hypertable_name = %s",
                [table],
            )
        }
        for name in names:
            if name not in own:
                raise InvalidInput(f"{name!r} is not a chunk of {table}")
            schema, chunk = name.split(".", 1)
            _exec(conn, sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, chunk)))

    def apply_policy(self, conn: Any, table: str, values: dict[str, Any], old_interval: str | None) -> None:
        """Apply a policy change with TimescaleDB's documented API, in the caller's transaction.

        A new chunk interval applies to new chunks only; old ones keep their size.
        """
        if "partition_interval" in values:
            _exec(
                conn,
                "SELECT set_chunk_time_interval(CAST(%s AS regclass), CAST(%s AS interval))",
                [table, values["partition_interval"]],
            )
        if "compress_after" in values:
            _exec(conn, "SELECT remove_compression_policy(CAST(%s AS regclass), if_exists => true)", [table])
            if values["compress_after"] is not None:
                _exec(
                    conn,
                    "SELECT add_compression_policy(CAST(%s AS regclass),"
                    " compress_after => CAST(%s AS interval))",
                    [table, values["compress_after"]],
                )
        if "retain_for" in values:
            _exec(conn, "SELECT remove_retention_policy(CAST(%s AS regclass), if_exists => true)", [table])
            if values["retain_for"] is not None:
                _exec(
                    conn,
                    "SELECT add_retention_policy(CAST(%s AS regclass), drop_after => CAST(%s AS interval))",
                    [table, values["retain_for"]],
                )

    def size(self, conn: Any, table: str) -> TableSize:
        """``hypertable_size``, chunk counts (compressed ones too) and min/max ``ts``."""
        total = _exec(conn, "SELECT coalesce(hypertable_size(CAST(%s AS regclass)), 0)", [table])
        chunks = _exec(
            conn,
            "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = %s",
            [table],
        )
        oldest, newest = _coverage(conn, table)
        return TableSize(table, int(total[0][0]), int(chunks[0][0]), int(chunks[0][1]), oldest, newest)


_BACKENDS: dict[Backend, TimeseriesBackend] = {"native": NativePartitions(), "timescaledb": Timescale()}


def backend_named(name: Backend) -> TimeseriesBackend:
    """The implementation of ``name``."""
    return _BACKENDS[name]


def backend_for(conn: Any) -> TimeseriesBackend:
    """The backend the schema on ``conn``'s database was created with."""
    return _BACKENDS[current_backend(conn)]


# ------------------------------------------------------ module-level helpers
def ensure_partitions(
    conn: Any, table: str, start: dt.datetime | dt.date, end: dt.datetime | dt.date
) -> list[str]:
    """Create the partitions of ``table`` that rows in [start, end] need.

    Idempotent and safe under concurrency (a transaction-scoped advisory lock
    serialises creators of the same table). A no-op on TimescaleDB, which
    creates chunks itself. Returns the names of partitions it created.
    """
    return backend_for(conn).ensure_partitions(conn, table, start, end)


def ensure_partitions_for(
    conn: Any, table: str, values: pa.Array | pa.ChunkedArray | Sequence[dt.datetime | dt.date]
) -> list[str]:
    """Create the partitions of ``table`` for the periods that hold ``values``, and no others."""
    return backend_for(conn).ensure_partitions_for(conn, table, values)


def drop_partitions_before(conn: Any, table: str, cutoff: dt.datetime) -> list[str]:
    """Retention on native partitions: drop every partition wholly before ``cutoff``."""
    backend = backend_for(conn)
    old = backend.expired_partitions(conn, table, cutoff)
    backend.drop_partitions(conn, table, old)
    return old
