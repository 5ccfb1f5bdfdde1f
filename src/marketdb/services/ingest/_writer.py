"""The write path of one batch: staging table, binary COPY, one INSERT .. ON CONFLICT.

Per batch, inside the caller's transaction (all or nothing):

1. ``CREATE TEMP TABLE .. ON COMMIT DROP`` with the target's columns (typed
   for the COPY: e.g. ``amount`` is staged as float8 and cast to numeric by
   the INSERT);
2. ``COPY .. FROM STDIN (FORMAT BINARY)`` of a buffer built by :mod:`._copy`;
3. ``INSERT INTO target SELECT .. FROM staging ON CONFLICT (key) DO NOTHING``
   (or ``DO UPDATE .. WHERE (..) IS DISTINCT FROM (..)`` for corrections, so
   re-sending identical rows updates nothing).

Partitions are created before the transaction (``ensure_partitions`` is
idempotent and takes its own lock), so a failed batch never leaves a
half-created partition behind and a concurrent writer never waits on our DDL.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from marketdb.errors import Conflict

from ._copy import HEADER, TRAILER, Column, encode_rows

__all__ = ["SPECS", "TableSpec", "TradesHook", "WriteCounts", "bump_versions", "ts_range",
           "write_table"]

_PG_TYPES = {
    "int2": "smallint", "int4": "integer", "int8": "bigint", "float8": "double precision",
    "text": "text", "bool": "boolean", "date": "date", "timestamptz": "timestamptz",
    "ts_us": "timestamptz", "ts_nanos": "smallint", "float8[]": "double precision[]",
}  # fmt: skip

#: Rows encoded per COPY message group (Arrow binary offsets are 32-bit).
_ENCODE_CHUNK = 250_000


@dataclass(frozen=True)
class TableSpec:
    """How canonical columns land in one physical table."""

    table: str
    #: (canonical column, physical column, COPY type)
    columns: tuple[tuple[str, str, str], ...]
    #: conflict target (physical names)
    key: tuple[str, ...]
    #: physical column -> SQL default used when the staged value is NULL
    defaults: tuple[tuple[str, str], ...] = ()
    #: canonical column whose range picks the partitions (None: not partitioned)
    ts: str | None = "ts"
    #: physical column holding the instrument whose data version to bump
    instrument: str = "instrument_id"

    @property
    def physical(self) -> tuple[str, ...]:
        """Physical column names, in COPY order."""
        return tuple(p for _, p, _ in self.columns)


def _cols(*names: str, types: dict[str, str]) -> tuple[tuple[str, str, str], ...]:
    return tuple((n, n, types.get(n, "float8")) for n in names)


_TICK_HEAD = (("instrument_id", "instrument_id", "int4"), ("ts", "ts", "ts_us"),
              ("ts", "ts_nanos", "ts_nanos"), ("seq", "seq", "int8"))  # fmt: skip
_TEXT = {"trade_id": "text", "exchange": "text", "conditions": "text", "source": "text",
         "interval": "text", "option_right": "text", "action_type": "text", "currency": "text",
         "side": "int2", "trade_count": "int8", "volume_int": "int8", "instrument_id": "int4",
         "ts": "timestamptz", "expiration": "date", "ex_date": "date", "record_date": "date",
         "pay_date": "date", "declared_date": "date", "known_at": "timestamptz",
         "bid_prices": "float8[]", "bid_sizes": "float8[]", "ask_prices": "float8[]",
         "ask_sizes": "float8[]", "open_interest": "int8"}  # fmt: skip

SPECS: dict[str, TableSpec] = {
    "trades": TableSpec(
        "trades",
        _TICK_HEAD + _cols("price", "size", "side", "trade_id", "exchange", "conditions",
                           "source", types=_TEXT),
        key=("instrument_id", "ts", "ts_nanos", "seq"),
    ),
    "quotes": TableSpec(
        "quotes",
        _TICK_HEAD + _cols("bid", "ask", "bid_size", "ask_size", "exchange", "source",
                           types=_TEXT),
        key=("instrument_id", "ts", "ts_nanos", "seq"),
    ),
    "candles": TableSpec(
        "candles",
        _cols("instrument_id", "interval", "ts", "source", "open", "high", "low", "close",
              "volume", "vwap", "trade_count", "notional", "adj_open", "adj_high", "adj_low",
              "adj_close", "adj_volume", "div_cash", "split_factor", "bid", "ask", "bid_size",
              "ask_size", types=_TEXT),
        key=("instrument_id", "interval", "ts", "source"),
        defaults=(("volume", "0"),),
    ),
    "order_book_snapshots": TableSpec(
        "order_book_snapshots",
        _cols("instrument_id", "ts", "bid_prices", "bid_sizes", "ask_prices", "ask_sizes",
              "total_bid_size", "total_ask_size", "source", types=_TEXT),
        key=("instrument_id", "ts"),
    ),
    "options_chains": TableSpec(
        "options_chains",
        (
            ("instrument_id", "underlying_id", "int4"),
            *_cols("ts", "expiration", "strike", "option_right", "bid", "ask", "last_price",
                   "volume", "open_interest", "implied_vol", "delta", "gamma", "theta", "vega",
                   "rho", "underlying_price", "source", types={**_TEXT, "volume": "int8"}),
        ),
        key=("underlying_id", "ts", "expiration", "strike", "option_right"),
        instrument="underlying_id",
    ),
    "corporate_actions": TableSpec(
        "corporate_actions",
        _cols("instrument_id", "action_type", "ex_date", "record_date", "pay_date",
              "declared_date", "ratio", "amount", "currency", "known_at", "source",
              types=_TEXT),
        key=("instrument_id", "action_type", "ex_date", "source"),
        defaults=(("known_at", "now()"),),
        ts=None,
    ),
}


class TradesHook(Protocol):
    """Called inside the batch's transaction after trades were inserted.

    ``rows`` are exactly the trades this batch stored (canonical Arrow columns:
    instrument_id, ts as timestamp[ns, UTC], seq, price, size, side, ...);
    ``replaced`` is True when ``on_conflict="update"`` changed stored trades
    (they are in ``rows`` too), in which case aggregates over them must be
    recomputed rather than merged. Raising aborts the whole batch.
    """

    def __call__(
        self,
        conn: psycopg.Connection[Any],
        rows: pa.Table,
        *,
        inserted: int,
        received: int,
        replaced: bool,
    ) -> None: ...


@dataclass
class WriteCounts:
    """What one INSERT did."""

    staged: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def duplicates(self) -> int:
        """Staged rows that were already stored (or identical, in update mode)."""
        return self.staged - self.inserted - self.updated


def ts_range(table: pa.Table, column: str) -> tuple[dt.datetime, dt.datetime] | None:
    """Min and max of a timestamp/date column as aware datetimes (None when empty)."""
    if table.num_rows == 0:
        return None
    col = table.column(column)
    lo, hi = pc.min(col).as_py(), pc.max(col).as_py()
    if lo is None:
        return None
    if isinstance(lo, dt.datetime):
        return lo, hi
    return (dt.datetime(lo.year, lo.month, lo.day, tzinfo=dt.UTC),
            dt.datetime(hi.year, hi.month, hi.day, tzinfo=dt.UTC))


def _stage_name(spec: TableSpec) -> sql.Identifier:
    return sql.Identifier(f"_mdb_stage_{spec.table}")


def _copy_columns(spec: TableSpec, table: pa.Table, row0: int | None) -> list[Column]:
    """COPY fields for ``table``; with ``row0``, a trailing ``_row`` ordinal column."""
    cols = []
    n = table.num_rows
    for canon, phys, pgtype in spec.columns:
        data = table.column(canon).combine_chunks() if canon in table.column_names \
            else pa.nulls(n)
        if pa.types.is_null(data.type):
            data = pa.nulls(n, pa.float64() if pgtype == "float8" else pa.int64())
        cols.append(Column(phys, pgtype, data))
    if row0 is not None:
        cols.append(Column("_row", "int4", pa.array(np.arange(row0, row0 + n, dtype=np.int32))))
    return cols


def _used_columns(spec: TableSpec, table: pa.Table) -> TableSpec:
    """Drop columns that are null in the whole batch (the INSERT fills their defaults)."""
    keep = []
    for canon, phys, pgtype in spec.columns:
        if phys in spec.key or canon not in table.column_names:
            if phys in spec.key:
                keep.append((canon, phys, pgtype))
            continue
        if table.column(canon).null_count < table.num_rows:
            keep.append((canon, phys, pgtype))
    return TableSpec(spec.table, tuple(keep), spec.key, spec.defaults, spec.ts, spec.instrument)


def _copy(conn: psycopg.Connection[Any], spec: TableSpec, table: pa.Table,
          with_row: bool, target: sql.Composable | None = None) -> None:
    """Binary COPY of ``table`` into the staging table (or ``target``)."""
    cols = [sql.Identifier(p) for p in spec.physical]
    if with_row:
        cols.append(sql.Identifier("_row"))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target if target is not None else _stage_name(spec), sql.SQL(", ").join(cols)
    )
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        cp.write(HEADER)
        for start in range(0, table.num_rows, _ENCODE_CHUNK):
            part = table.slice(start, _ENCODE_CHUNK)
            cp.write(encode_rows(_copy_columns(spec, part, start if with_row else None)))
        cp.write(TRAILER)


def _beyond_stored(conn: psycopg.Connection[Any], spec: TableSpec, table: pa.Table) -> np.ndarray:
    """Rows that cannot clash with a stored row: later than every stored row of their
    instrument inside the batch's time range (one backward index probe per instrument)."""
    inst = np.asarray(table.column("instrument_id").combine_chunks().to_numpy(
        zero_copy_only=False), dtype=np.int64)
    ts_col = table.column(spec.ts).combine_chunks()
    if pa.types.is_date(ts_col.type):
        ts_col = ts_col.cast(pa.timestamp("s")).cast(pa.timestamp("ns", tz="UTC"))
    us = np.floor_divide(np.asarray(ts_col.cast(pa.int64()).to_numpy(zero_copy_only=False),
                                    dtype=np.int64), 1000)
    ids, first = np.unique(inst, return_inverse=True)
    lo = np.full(len(ids), np.iinfo(np.int64).max)
    hi = np.full(len(ids), np.iinfo(np.int64).min)
    np.minimum.at(lo, first, us)
    np.maximum.at(hi, first, us)
    rows = conn.execute(
        sql.SQL(
            "SELECT (SELECT max(t.ts) FROM {} t WHERE t.{} = r.id AND t.ts >= r.lo AND t.ts <= r.hi)"
            " FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY"
            " AS r(id, lo, hi, n) ORDER BY r.n"
        ).format(sql.Identifier(spec.table), sql.Identifier(spec.instrument)),
        [ids.tolist(), _us_datetimes(lo), _us_datetimes(hi)],
    ).fetchall()
    stored = np.array([_dt_us(r[0]) for r in rows], dtype=np.int64)
    return us > stored[first]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NONE_US = np.iinfo(np.int64).min


def _dt_us(v: dt.datetime | None) -> int:
    if v is None:
        return int(_NONE_US)
    delta = v - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _us_datetimes(us: np.ndarray) -> list[dt.datetime]:
    return [_EPOCH + dt.timedelta(microseconds=int(v)) for v in us]


def _key_order(table: pa.Table, spec: TableSpec) -> pa.Table:
    """Rows in primary-key order: index pages fill densely and an instrument's rows sit together.

    Time-sorted input (the usual case) only needs a stable radix sort by instrument.
    """
    if table.num_rows < 2 or spec.ts is None:
        return table
    inst = np.asarray(table.column("instrument_id").combine_chunks().to_numpy(
        zero_copy_only=False))
    ts = np.asarray(table.column(spec.ts).combine_chunks().cast(pa.int64()).to_numpy(
        zero_copy_only=False))
    if (inst[1:] >= inst[:-1]).all() and ((inst[1:] > inst[:-1]) | (ts[1:] >= ts[:-1])).all():
        return table
    if (ts[1:] >= ts[:-1]).all():
        order = np.argsort(inst, kind="stable")
    else:
        keys = [ts, inst] if "seq" not in table.column_names else [
            np.asarray(table.column("seq").combine_chunks().to_numpy(zero_copy_only=False)), ts,
            inst]
        order = np.lexsort(keys)
    return table.take(pa.array(order))


def _create_stage(conn: psycopg.Connection[Any], spec: TableSpec, with_row: bool) -> None:
    defs: list[sql.Composable] = [
        sql.SQL("{} {}").format(sql.Identifier(p), sql.SQL(_PG_TYPES[t]))
        for _, p, t in spec.columns
    ]
    if with_row:
        defs.append(sql.SQL("_row integer"))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            _stage_name(spec), sql.SQL(", ").join(defs)
        )
    )


def _select_list(spec: TableSpec) -> sql.Composable:
    defaults = dict(spec.defaults)
    items = []
    for p in spec.physical:
        if p in defaults:
            items.append(sql.SQL("COALESCE(s.{}, {})").format(sql.Identifier(p),
                                                             sql.SQL(defaults[p])))
        else:
            items.append(sql.SQL("s.{}").format(sql.Identifier(p)))
    return sql.SQL(", ").join(items)


def _insert(conn: psycopg.Connection[Any], spec: TableSpec, on_conflict: str,
            written: list[int] | None = None) -> WriteCounts:
    target = sql.Identifier(spec.table)
    cols = sql.SQL(", ").join(sql.Identifier(p) for p in spec.physical)
    key = sql.SQL(", ").join(sql.Identifier(k) for k in spec.key)
    stage = _stage_name(spec)
    staged = 0
    counts = WriteCounts()
    if on_conflict == "update":
        existing = conn.execute(
            sql.SQL("SELECT count(*) FROM {} s WHERE EXISTS (SELECT 1 FROM {} t WHERE {})").format(
                stage, target,
                sql.SQL(" AND ").join(
                    sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in spec.key
                ),
            )
        ).fetchone()
        n_existing = int(existing[0]) if existing else 0
        rest = [p for p in spec.physical if p not in spec.key]
        action: sql.Composable
        if rest:
            action = sql.SQL("DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in rest
                ),
                sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in rest),
                sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in rest),
            )
        else:
            action = sql.SQL("DO NOTHING")
    else:
        action = sql.SQL("DO NOTHING")
        n_existing = -1  # not needed: nothing is updated
    stmt = sql.SQL(
        "INSERT INTO {} AS t ({}) SELECT {} FROM {} s ON CONFLICT ({}) {}"
    ).format(target, cols, _select_list(spec), stage, key, action)
    if written is None:
        cur = conn.execute(stmt)
        touched = max(cur.rowcount, 0)
    else:
        # The keys the INSERT wrote (inserted or changed), joined back to the staged row numbers.
        # RETURNING needs no system column: TimescaleDB refuses xmin on compressed chunks.
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in spec.key)
        found = conn.execute(sql.SQL(
            "WITH w AS ({} RETURNING {}) SELECT (SELECT count(*) FROM w),"
            " ARRAY(SELECT s._row FROM {} s JOIN w ON {} ORDER BY 1)"
        ).format(stmt, keys, stage, sql.SQL(" AND ").join(
            sql.SQL("w.{k} = s.{k}").format(k=sql.Identifier(k)) for k in spec.key))).fetchone()
        touched = int(found[0]) if found else 0
        written.extend(found[1] if found else [])
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(stage)).fetchone()
    staged = int(row[0]) if row else 0
    counts.staged = staged
    if on_conflict == "update":
        counts.inserted = staged - n_existing
        counts.updated = touched - counts.inserted
    else:
        counts.inserted = touched
    return counts


def _inserted_rows(table: pa.Table, written: list[int]) -> pa.Table:
    """The staged rows that the INSERT wrote (``written``: their staged row numbers)."""
    rows = np.array(written, dtype=np.int64)
    rows.sort()
    return table.take(pa.array(rows))


def write_table(
    conn: psycopg.Connection[Any],
    spec: TableSpec,
    table: pa.Table,
    *,
    on_conflict: str = "ignore",
    hooks: Sequence[TradesHook] = (),
    received: int | None = None,
    timer: Callable[[str, float], None] | None = None,
    direct: bool = True,
) -> WriteCounts:
    """Write ``table`` (canonical columns) into ``spec.table`` in ``conn``'s transaction and
    run ``hooks`` (trades only) on the rows actually written.

    The staged path (COPY into a temporary table, then ``INSERT .. ON CONFLICT``)
    always gives the right answer. With ``direct`` (the default) and
    ``on_conflict="ignore"``, rows later than every stored row of their
    instrument in the batch's time range cannot clash with anything stored, so
    they are COPied straight into the table, which saves the second pass over
    them (appending new data: all of them); only the others are staged (see
    docs/performance.md for the figures).
    """
    if table.num_rows == 0:
        return WriteCounts()
    clock = timer or (lambda stage, secs: None)
    t0 = time.perf_counter()
    used = _used_columns(spec, table)
    counts = WriteCounts()
    rest = table
    fresh: pa.Table | None = None
    if direct and on_conflict == "ignore" and spec.ts is not None:
        new_rows = _beyond_stored(conn, used, table)
        if new_rows.any():
            fresh = table if new_rows.all() else table.filter(pa.array(new_rows))
            rest = table.filter(pa.array(~new_rows)) if not new_rows.all() else table.slice(0, 0)
    if fresh is not None:
        # These rows are later than anything stored for their instrument in this time range, so
        # they COPY straight into the table (in a savepoint). A concurrent writer may have stored
        # one of the keys since the check: the unique violation rolls back to the savepoint and
        # every row takes the staged path below.
        fresh = _key_order(fresh, used)
        try:
            with conn.transaction():
                _copy(conn, used, fresh, False, target=sql.Identifier(used.table))
            counts.staged += fresh.num_rows
            counts.inserted += fresh.num_rows
        except psycopg.errors.UniqueViolation:
            fresh, rest = None, table
        clock("copy", time.perf_counter() - t0)
    staged = False
    staged_counts = WriteCounts()
    if rest.num_rows:
        t1 = time.perf_counter()
        with_row = bool(hooks)
        _create_stage(conn, used, with_row)
        _copy(conn, used, rest, with_row)
        t2 = time.perf_counter()
        clock("copy", t2 - t1)
        written: list[int] | None = [] if with_row else None
        staged_counts = _insert(conn, used, on_conflict, written)
        staged = True
        counts.staged += staged_counts.staged
        counts.inserted += staged_counts.inserted
        counts.updated += staged_counts.updated
        clock("insert", time.perf_counter() - t2)
    t2 = time.perf_counter()
    if hooks and (counts.inserted or counts.updated):
        parts = [fresh] if fresh is not None else []
        if staged and (staged_counts.inserted or staged_counts.updated):
            parts.append(rest if staged_counts.inserted == rest.num_rows
                         else _inserted_rows(rest, written or []))
        rows = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        for hook in hooks:
            hook(conn, rows, inserted=counts.inserted,
                 received=received if received is not None else table.num_rows,
                 replaced=counts.updated > 0)
        clock("hooks", time.perf_counter() - t2)
    if staged:  # free it now; several writes of one table may share a transaction
        conn.execute(sql.SQL("DROP TABLE {}").format(_stage_name(used)))
    return counts


def bump_versions(
    conn: psycopg.Connection[Any], instrument_ids: Sequence[int], tables: Sequence[str]
) -> None:
    """Bump ``instruments.data_version`` of the written instruments and NOTIFY listeners.

    Both take effect at commit; a rolled-back batch bumps and notifies nothing.
    The channel is ``marketdb_data``; the payload is JSON
    ``{"tables": [...], "instrument_ids": [...]}`` (ids truncated to fit).
    """
    if not instrument_ids:
        return
    ids = sorted({int(i) for i in instrument_ids})
    # The bump also row-locks the instruments until commit: trades and quotes have no
    # per-row foreign key (migration 0003), so this is what stops a concurrent DELETE
    # from leaving orphan ticks; an instrument already gone fails the whole batch.
    bumped = {
        r[0]
        for r in conn.execute(
            "UPDATE instruments SET data_version = data_version + 1 WHERE id = ANY(%s) RETURNING id",
            [ids],
        ).fetchall()
    }
    if len(bumped) != len(ids):
        gone = [i for i in ids if i not in bumped]
        raise Conflict(
            f"instrument id(s) {gone[:10]} were deleted while this batch was being written; "
            "nothing was written",
            hint="re-register the instruments (or drop their rows from the input) and re-run",
        )
    payload = json.dumps({"tables": list(tables), "instrument_ids": ids[:500]})
    conn.execute("SELECT pg_notify('marketdb_data', %s)", [payload])
