"""Incremental sync of PostgreSQL market data into ClickHouse, and its verification.

How it stays correct without reading everything every time:

* **Watermark per (table, instrument)**: ``clickhouse_sync_state.data_version``.
  Every committed market-data write bumps ``instruments.data_version``, so an
  instrument is looked at again only when it moved past its watermark.
* **Per-day digests** decide what to send: for such an instrument, PostgreSQL
  and ClickHouse each compute, per UTC day, ``(rows, sum of ns-in-day, sum of
  integer keys, sum of floor(value * 1e6) per value column)``. Days that
  differ are re-sent whole (a late batch or a correction changes a day's
  digest); days ClickHouse has and PostgreSQL no longer has are deleted there.
* **Idempotent**: a re-sent day first loses its old ClickHouse rows
  (lightweight DELETE), inserts carry a deduplication token (so a retried
  insert is not stored twice), and rows carry the instrument's
  ``data_version`` as the ReplacingMergeTree version. A crash anywhere leaves a state that the next
  run repairs, since digests, not a log of what was sent, decide what to send.
* **Bounded memory**: rows stream from PostgreSQL in Arrow batches (ADBC)
  and go to ClickHouse batch by batch.
* **Retention and deletes**: data older than the earliest remaining
  PostgreSQL partition is deleted in ClickHouse; instruments that no longer
  exist lose their rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from marketdb.services.analytics._client import ClickHouse, quote_ident
from marketdb.services.analytics._ddl import TABLES, ChTable
from marketdb.store import timeseries

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = ["DayDiff", "SyncProgress", "SyncReport", "VerifyReport", "sync", "verify"]

_log = logging.getLogger("marketdb.analytics")
_UTC = dt.UTC
_DAY_NS = 86_400_000_000_000
#: Rows per ClickHouse insert (and per Arrow batch held in memory).
DEFAULT_BATCH_ROWS = 250_000

Digest = tuple[int, ...]


@dataclass(frozen=True)
class SyncProgress:
    """One step of a sync, for progress display."""

    table: str
    instrument_id: int
    rows_sent: int
    days_sent: int
    days_deleted: int


@dataclass
class SyncReport:
    """What a sync did."""

    rows_sent: int = 0
    days_sent: int = 0
    days_deleted: int = 0
    instruments_checked: int = 0
    instruments_deleted: int = 0
    retention_cutoffs: dict[str, dt.datetime] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        per = ", ".join(f"{t} {n}" for t, n in self.tables.items() if n)
        return (
            f"{self.rows_sent} rows{f' ({per})' if per else ''} in {self.days_sent} days sent, "
            f"{self.days_deleted} days deleted, "
            f"{self.instruments_checked} instrument tables checked"
        )


@dataclass(frozen=True)
class DayDiff:
    """One (table, instrument, day) where ClickHouse and PostgreSQL disagree."""

    table: str
    instrument_id: int
    day: dt.date
    postgres: Digest | None
    clickhouse: Digest | None


@dataclass
class VerifyReport:
    """Row counts and per-day digests compared table by table."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (postgres, clickhouse)
    diffs: list[DayDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every count and every day's digest match."""
        return not self.diffs and all(p == c for p, c in self.counts.values())

    def summary(self) -> str:
        """One line for the CLI."""
        parts = [f"{t} {p}/{c}" for t, (p, c) in self.counts.items()]
        state = "in sync" if self.ok else f"{len(self.diffs)} days differ"
        return f"{state} (rows postgres/clickhouse: {', '.join(parts)})"


# ------------------------------------------------------------------ digests
# Nanoseconds since UTC midnight from float date parts, each an exact integer
# (numeric arithmetic on extract(epoch) is several times slower).
_PG_NS_IN_DAY = (
    "((date_part('hour', ts AT TIME ZONE 'UTC') * 3600 + date_part('minute', ts AT TIME ZONE 'UTC') * 60)"
    " * 1000000 + date_part('microseconds', ts))::bigint * 1000"
)


def _pg_digest_sql(t: ChTable, by_instrument: bool) -> sql.Composed:
    ns_in_day = _PG_NS_IN_DAY + (" + ts_nanos" if t.pg_nanos else "")
    parts = [
        "count(*)",
        f"sum({ns_in_day})",
        *[f"sum({c})" for c in t.digest_ints],
        *[f"sum(coalesce(floor({c} * 1000000.0::float8)::bigint, 0))" for c in t.digest_values],
    ]
    where = f"({t.pg_where})" + (" AND instrument_id = %(iid)s" if by_instrument else "")
    head = "instrument_id, " if not by_instrument else ""
    return sql.SQL(
        "SELECT "
        + head
        + "(ts AT TIME ZONE 'UTC')::date AS day, "
        + ", ".join(parts)
        + " FROM {src} WHERE "
        + where
        + " GROUP BY "
        + ("instrument_id, " if head else "")
        + "day"
    ).format(src=sql.Identifier(t.source))


def _ch_digest_sql(t: ChTable, database: str, by_instrument: bool) -> str:
    parts = [
        "toInt128(count())",
        f"sum(toInt128(toUnixTimestamp64Nano(ts) % {_DAY_NS}))",
        *[f"sum(toInt128({quote_ident(c)}))" for c in t.digest_ints],
        *[f"sum(toInt128(ifNull(floor({quote_ident(c)} * 1000000.0), 0)))" for c in t.digest_values],
    ]
    head = "" if by_instrument else "instrument_id, "
    where = "WHERE instrument_id = {iid:Int32} " if by_instrument else ""
    return (
        f"SELECT {head}toDate(ts, 'UTC') AS day, {', '.join(parts)} "
        f"FROM {quote_ident(database)}.{quote_ident(t.name)} FINAL {where}"
        f"GROUP BY {head}day"
    )


def _as_digest(values: Sequence[Any]) -> Digest:
    return tuple(int(v) if v is not None else 0 for v in values)


def pg_day_digests(db: Database, t: ChTable, iid: int) -> dict[dt.date, Digest]:
    """Per-day digests of one instrument in PostgreSQL."""
    with db.raw() as conn:
        rows = conn.execute(_pg_digest_sql(t, True), {"iid": iid}).fetchall()
    return {r[0]: _as_digest(r[1:]) for r in rows}


def ch_day_digests(ch: ClickHouse, t: ChTable, iid: int) -> dict[dt.date, Digest]:
    """Per-day digests of one instrument in ClickHouse."""
    rows = ch.rows(_ch_digest_sql(t, ch.database, True), {"iid": iid})
    return {r[0]: _as_digest(r[1:]) for r in rows}


# --------------------------------------------------------------------- rows
_ARROW: dict[str, pa.DataType] = {
    "Int8": pa.int8(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "String": pa.string(),
    "Date": pa.date32(),
}


def _arrow_type(ch_type: str) -> pa.DataType:
    inner = ch_type
    for wrap in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrap):
            inner = inner[len(wrap) : -1]
    if inner.startswith("DateTime64"):
        return pa.timestamp("ns", tz="UTC")
    return _ARROW[inner]


def _conform(t: ChTable, batch: pa.RecordBatch, version: int) -> pa.Table:
    arrays = []
    for n, (name, typ) in enumerate(t.columns):
        col = batch.column(n)
        target = _arrow_type(typ)
        if name == "ts":
            ns = pc.multiply(pc.cast(col, pa.int64()), 1000)
            if t.pg_nanos:  # the last column read is ts_nanos
                ns = pc.add(ns, pc.cast(batch.column(batch.num_columns - 1), pa.int64()))
            col = ns
        arrays.append(pc.cast(col, target))
    arrays.append(pa.array([version] * batch.num_rows, pa.uint64()))
    return pa.Table.from_arrays(arrays, names=t.column_names)


def _day_runs(days: Sequence[dt.date], all_days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Runs of ``days`` that are consecutive within ``all_days``, as [first, last] pairs."""
    wanted = set(days)
    runs: list[tuple[dt.date, dt.date]] = []
    start: dt.date | None = None
    prev: dt.date | None = None
    for d in sorted(all_days):
        if d in wanted:
            if start is None:
                start = d
            prev = d
        elif start is not None:
            assert prev is not None
            runs.append((start, prev))
            start = None
    if start is not None:
        assert prev is not None
        runs.append((start, prev))
    return runs


def _stream_rows(
    db: Database, t: ChTable, iid: int, first: dt.date, last: dt.date, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    import adbc_driver_postgresql.dbapi as adbc

    lo = dt.datetime(first.year, first.month, first.day, tzinfo=_UTC)
    hi = dt.datetime(last.year, last.month, last.day, tzinfo=_UTC) + dt.timedelta(days=1)
    query = sql.SQL(
        "SELECT "
        + ", ".join(t.pg_select)
        + (", ts_nanos" if t.pg_nanos else "")
        + " FROM {src} WHERE "
        + f"({t.pg_where})"
        + " AND instrument_id = {iid} AND ts >= {lo} AND ts < {hi} ORDER BY "
        + ("ts, ts_nanos, seq" if "seq" in t.order_by else ", ".join(t.order_by[1:]))
    ).format(src=sql.Identifier(t.source), iid=sql.Literal(iid), lo=sql.Literal(lo), hi=sql.Literal(hi))
    with db.raw() as conn:
        text = query.as_string(conn)
    with adbc.connect(db.url) as aconn, aconn.cursor() as cur:
        cur.execute(text)
        reader = cur.fetch_record_batch()
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            if size >= batch_rows:
                yield from pa.Table.from_batches(pending).combine_chunks().to_batches()
                pending, size = [], 0
        if pending:
            yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


# --------------------------------------------------------------------- sync
def _pending(db: Database, table: str, full: bool = False) -> list[tuple[int, int, int | None]]:
    """(instrument id, current data_version, synced version) of instruments to look at (all: ``full``)."""
    with db.raw() as conn:
        rows = conn.execute(
            """
            SELECT i.id, i.data_version, s.data_version
            FROM instruments i
            LEFT JOIN clickhouse_sync_state s ON s.instrument_id = i.id AND s.table_name = %(t)s
            WHERE s.data_version IS DISTINCT FROM i.data_version OR %(full)s
            ORDER BY i.id
            """,
            {"t": table, "full": full},
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _vanished(db: Database, table: str) -> list[int]:
    with db.raw() as conn:
        rows = conn.execute(
            "SELECT s.instrument_id FROM clickhouse_sync_state s "
            "WHERE s.table_name = %(t)s "
            "AND NOT EXISTS (SELECT 1 FROM instruments i WHERE i.id = s.instrument_id)",
            {"t": table},
        ).fetchall()
    return [r[0] for r in rows]


def _save_state(db: Database, table: str, iid: int, version: int, pg: dict[dt.date, Digest]) -> None:
    rows = sum(d[0] for d in pg.values())
    first = dt.datetime.combine(min(pg), dt.time(), _UTC) if pg else None
    last = dt.datetime.combine(max(pg), dt.time(), _UTC) if pg else None
    with db.raw() as conn:
        conn.execute(
            """
            INSERT INTO clickhouse_sync_state (table_name, instrument_id, data_version, row_count,
                                               first_ts, last_ts, synced_at)
            VALUES (%(t)s, %(i)s, %(v)s, %(r)s, %(f)s, %(l)s, now())
            ON CONFLICT (table_name, instrument_id) DO UPDATE SET
                data_version = EXCLUDED.data_version, row_count = EXCLUDED.row_count,
                first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts, synced_at = now()
            """,
            {"t": table, "i": iid, "v": version, "r": rows, "f": first, "l": last},
        )


def _delete_days(ch: ClickHouse, t: ChTable, iid: int, days: Sequence[dt.date]) -> None:
    if not days:
        return
    listed = ", ".join(f"'{d.isoformat()}'" for d in days)
    ch.command(
        f"DELETE FROM {quote_ident(ch.database)}.{quote_ident(t.name)} "
        f"WHERE instrument_id = {int(iid)} AND toDate(ts, 'UTC') IN ({listed})",
        settings={"lightweight_deletes_sync": 2},
    )


def _sync_instrument(
    db: Database,
    ch: ClickHouse,
    t: ChTable,
    iid: int,
    version: int,
    batch_rows: int,
    report: SyncReport,
    progress: Callable[[SyncProgress], None] | None,
    run_id: str,
) -> None:
    pg = pg_day_digests(db, t, iid)
    chd = ch_day_digests(ch, t, iid)
    differ = sorted(d for d, dig in pg.items() if chd.get(d) != dig)
    stale = sorted({d for d in differ if d in chd} | {d for d in chd if d not in pg})
    _delete_days(ch, t, iid, stale)
    sent = 0
    for first, last in _day_runs(differ, list(pg)):
        # A retried insert of this run is dropped by ClickHouse; a later run that
        # must re-send the same rows (after a delete) gets a new token.
        pre = hashlib.sha256(repr((run_id, t.name, iid, version, first, last)).encode()).hexdigest()[:24]
        for n, batch in enumerate(_stream_rows(db, t, iid, first, last, batch_rows)):
            data = _conform(t, batch, version)
            ch.insert_arrow(t.name, data, settings={"insert_deduplication_token": f"{pre}-{n}"})
            sent += data.num_rows
            if progress is not None:
                progress(SyncProgress(t.name, iid, sent, len(differ), len(stale)))
    _save_state(db, t.name, iid, version, pg)
    report.rows_sent += sent
    report.days_sent += len(differ)
    report.days_deleted += len([d for d in stale if d not in pg])
    report.instruments_checked += 1
    report.tables[t.name] = report.tables.get(t.name, 0) + sent


def retention_horizon(db: Database, table: str) -> dt.datetime | None:
    """Start of the oldest data PostgreSQL can still hold in ``table`` (None: no bound known)."""
    from marketdb.services.ops.maintain import partition_range

    with db.raw() as conn:
        parts = timeseries.list_partitions(conn, table)
        if parts:
            lows = [r[0] for _, b in parts if (r := partition_range(b)) is not None]
            if lows and all(lo is not None for lo in lows):
                return min(lo for lo in lows if lo is not None)
            return None
        try:
            row = conn.execute(
                "SELECT min(range_start) FROM timescaledb_information.chunks WHERE hypertable_name = %s",
                [table],
            ).fetchone()
        except Exception:
            return None
    return row[0] if row else None


def _mirror_retention(db: Database, ch: ClickHouse, t: ChTable, report: SyncReport) -> None:
    horizon = retention_horizon(db, t.source)
    if horizon is None:
        return
    name = f"{quote_ident(ch.database)}.{quote_ident(t.name)}"
    cutoff = horizon.astimezone(_UTC).strftime("%Y-%m-%d %H:%M:%S")
    old = ch.rows(f"SELECT count() FROM {name} WHERE ts < toDateTime64('{cutoff}', 9, 'UTC')")[0][0]
    if old:
        ch.command(
            f"DELETE FROM {name} WHERE ts < toDateTime64('{cutoff}', 9, 'UTC')",
            settings={"lightweight_deletes_sync": 2},
        )
        report.retention_cutoffs[t.name] = horizon


def sync(
    db: Database,
    ch: ClickHouse,
    *,
    tables: Iterable[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[SyncProgress], None] | None = None,
    full: bool = False,
) -> SyncReport:
    """Bring ClickHouse up to PostgreSQL for ``tables`` (default all); safe to interrupt and re-run.

    ``full`` compares every instrument's digests, not only those whose data
    version moved (repairs changes made to ClickHouse behind marketdb's back).
    """
    report = SyncReport()
    run_id = uuid.uuid4().hex
    for name in tables or TABLES:
        t = TABLES[name]
        for iid in _vanished(db, t.name):
            ch.command(
                f"DELETE FROM {quote_ident(ch.database)}.{quote_ident(t.name)} "
                f"WHERE instrument_id = {int(iid)}",
                settings={"lightweight_deletes_sync": 2},
            )
            with db.raw() as conn:
                conn.execute(
                    "DELETE FROM clickhouse_sync_state WHERE table_name = %s AND instrument_id = %s",
                    [t.name, iid],
                )
            report.instruments_deleted += 1
        _mirror_retention(db, ch, t, report)
        for iid, version, _synced in _pending(db, t.name, full):
            _sync_instrument(db, ch, t, iid, version, batch_rows, report, progress, run_id)
    _log.info("clickhouse sync: %s", report.summary())
    return report


# ------------------------------------------------------------------- verify
def verify(db: Database, ch: ClickHouse, *, tables: Iterable[str] | None = None) -> VerifyReport:
    """Compare row counts and per-(instrument, day) digests of every table with PostgreSQL."""
    report = VerifyReport()
    for name in tables or TABLES:
        t = TABLES[name]
        with db.raw() as conn:
            pg_rows = conn.execute(_pg_digest_sql(t, False)).fetchall()
        pg = {(r[0], r[1]): _as_digest(r[2:]) for r in pg_rows}
        chd = {(r[0], r[1]): _as_digest(r[2:]) for r in ch.rows(_ch_digest_sql(t, ch.database, False))}
        report.counts[name] = (sum(d[0] for d in pg.values()), sum(d[0] for d in chd.values()))
        for key in sorted(set(pg) | set(chd)):
            if pg.get(key) != chd.get(key):
                report.diffs.append(DayDiff(name, key[0], key[1], pg.get(key), chd.get(key)))
    return report
