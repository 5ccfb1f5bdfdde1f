"""Policies: partition size, compression and retention, one interface over both backends.

* Time-series tables (``trades``, ``quotes``, ``candles``, ``order_book_snapshots``,
  ``options_chains``) keep their settings in ``timeseries_policies``. On
  TimescaleDB a change is also applied with TimescaleDB's own API
  (``set_chunk_time_interval``, ``add/remove_compression_policy``,
  ``add/remove_retention_policy``); with native partitions ``maintain`` creates
  partitions ahead and drops whole partitions older than ``retain_for``.
* Ordinary tables (``order_history``, ``signals``, ``portfolio_snapshots`` ...)
  have no partitions: their retention lives in ``retention_policies`` and
  ``maintain`` deletes old rows in batches.

Every change writes an audit row (``resource_type = 'policy'``) in the same
transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import ConfigurationError, InvalidInput
from marketdb.services.accounts.audit import SYSTEM, Actor, audit_as
from marketdb.services.ops._intervals import format_interval, parse_interval, parse_partition_interval
from marketdb.store import timeseries
from marketdb.store.schema import TIMESERIES_TABLES, metadata
from marketdb.store.schema import tables as t
from marketdb.store.schema.ops import retention_policies

__all__ = [
    "ROW_RETENTION_TABLES",
    "UNSET",
    "IntervalArg",
    "PolicyInfo",
    "Unset",
    "list_policies",
    "set_policy",
]


class Unset(enum.Enum):
    """Marker for "leave this setting as it is" (``None`` means "turn it off")."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET

#: A duration argument: ``"30d"``, ``"5 years"``, a timedelta, ``None``/``"off"``
#: to turn the setting off, or :data:`UNSET` to leave it unchanged.
IntervalArg = str | dt.timedelta | None | Unset

#: Ordinary tables whose old rows ``maintain`` may delete, with the default time
#: column. The order is the order retention runs in: children before parents.
#: Rows still referenced through a restricting foreign key (an order that still
#: has fills or history) are kept until their children are gone.
ROW_RETENTION_TABLES: Final[dict[str, str]] = {
    "order_history": "ts",
    "executions": "ts",
    "orders": "created_at",
    "signals": "ts",
    "positions": "closed_at",
    "portfolio_snapshots": "ts",
    "pattern_events": "ts",
    "heston_parameters": "ts",
    "sabr_parameters": "ts",
    "ou_parameters": "ts",
}

_NOT_RETAINABLE: Final[dict[str, str]] = {
    "audit_logs": "the audit log is append-only (see 'Audit log' in docs/operations.md)",
    "timeseries_policies": "it is configuration",
    "retention_policies": "it is configuration",
}

_MIN_RETAIN: Final = dt.timedelta(days=1)
_MIN_COMPRESS: Final = dt.timedelta(hours=1)
_MAX_WINDOW: Final = dt.timedelta(days=365 * 100)
_OFF: Final = ("off", "none", "no", "never", "")


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """The policy of one table.

    ``kind`` is ``"timeseries"`` (partitioned by ``ts``: partition size,
    compression and retention) or ``"rows"`` (an ordinary table: only
    retention, by deleting rows whose ``time_column`` is older than
    ``retain_for``).
    """

    table: str
    kind: Literal["timeseries", "rows"]
    retain_for: dt.timedelta | None
    partition_interval: str | None = None
    compress_after: dt.timedelta | None = None
    time_column: str | None = None
    backend: str | None = None
    updated_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (durations as text), as written to the audit log."""
        return {
            "table": self.table,
            "kind": self.kind,
            "partition_interval": self.partition_interval,
            "compress_after": format_interval(self.compress_after),
            "retain_for": format_interval(self.retain_for),
            "time_column": self.time_column,
            "backend": self.backend,
        }


# ---------------------------------------------------------------- reading
def list_policies(conn: sa.Connection) -> list[PolicyInfo]:
    """Every time-series policy, then every row-retention policy, by table name."""
    tp = t.timeseries_policies
    out = [
        PolicyInfo(
            table=r.table_name,
            kind="timeseries",
            partition_interval=r.partition_interval,
            compress_after=r.compress_after,
            retain_for=r.retain_for,
            backend=r.backend,
            updated_at=r.updated_at,
        )
        for r in conn.execute(sa.select(tp).order_by(tp.c.table_name))
    ]
    rp = retention_policies
    out += [
        PolicyInfo(
            table=r.table_name,
            kind="rows",
            retain_for=r.retain_for,
            time_column=r.time_column,
            updated_at=r.updated_at,
        )
        for r in conn.execute(sa.select(rp).order_by(rp.c.table_name))
    ]
    return out


def _timeseries_policy(conn: sa.Connection, table: str, *, lock: bool = False) -> PolicyInfo:
    tp = t.timeseries_policies
    stmt = sa.select(tp).where(tp.c.table_name == table)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise ConfigurationError(
            f"no row for {table!r} in timeseries_policies",
            hint="the schema is incomplete: run `marketdb db upgrade` and `marketdb doctor`",
        )
    return PolicyInfo(
        table=table,
        kind="timeseries",
        partition_interval=row.partition_interval,
        compress_after=row.compress_after,
        retain_for=row.retain_for,
        backend=row.backend,
        updated_at=row.updated_at,
    )


def _row_policy(conn: sa.Connection, table: str, *, lock: bool = False) -> PolicyInfo | None:
    rp = retention_policies
    stmt = sa.select(rp).where(rp.c.table_name == table)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        return None
    return PolicyInfo(
        table=table,
        kind="rows",
        retain_for=row.retain_for,
        time_column=row.time_column,
        updated_at=row.updated_at,
    )


# --------------------------------------------------------------- validation
def _window(value: IntervalArg, *, what: str, minimum: dt.timedelta) -> dt.timedelta | Unset | None:
    """Parse and bound-check a compression/retention window."""
    if value is UNSET or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in _OFF:
        return None
    assert isinstance(value, str | dt.timedelta)
    td = parse_interval(value, what=what)
    if td < minimum or td > _MAX_WINDOW:
        raise InvalidInput(
            f"{what} {format_interval(td)} is out of range",
            hint=f"use at least {format_interval(minimum)} and at most 100 years, or 'off'",
        )
    return td


def _check_table(table: str) -> Literal["timeseries", "rows"]:
    if table in TIMESERIES_TABLES:
        return "timeseries"
    if table in ROW_RETENTION_TABLES:
        return "rows"
    if table in _NOT_RETAINABLE:
        raise InvalidInput(f"{table} cannot have a retention policy: {_NOT_RETAINABLE[table]}")
    raise InvalidInput(
        f"unknown table {table!r} for a policy",
        hint=(
            "time-series tables: "
            + ", ".join(TIMESERIES_TABLES)
            + "; row retention: "
            + ", ".join(ROW_RETENTION_TABLES)
        ),
    )


def check_time_column(table: str, column: str) -> None:
    """The column must be a timezone-aware timestamp column of ``table``."""
    tbl = metadata.tables[table]
    col = tbl.c.get(column)
    if col is None or not isinstance(col.type, sa.DateTime) or not col.type.timezone:
        choices = [c.name for c in tbl.c if isinstance(c.type, sa.DateTime) and c.type.timezone]
        raise InvalidInput(
            f"{table}.{column} is not a timestamptz column",
            hint=f"use one of: {', '.join(choices)}",
        )


# ---------------------------------------------------------------- writing
def set_policy(
    conn: sa.Connection,
    table: str,
    *,
    partition_interval: str | Unset = UNSET,
    compress_after: IntervalArg = UNSET,
    retain_for: IntervalArg = UNSET,
    time_column: str | None = None,
    actor: Actor | None = None,
) -> PolicyInfo | None:
    """Change the policy of ``table`` in the caller's transaction; return the new policy.

    Arguments left :data:`UNSET` keep their value; ``None`` (or ``"off"``) turns
    compression or retention off. Returns None when a row-retention policy was
    removed.

    Raises:
        InvalidInput: unknown table, a setting that does not apply to it, or an
            unreadable or out-of-range interval.
        Conflict: changing the partition size of a natively partitioned table
            that already has partitions (new ranges would overlap them).
    """
    kind = _check_table(table)
    new_compress = _window(compress_after, what="compress_after", minimum=_MIN_COMPRESS)
    new_retain = _window(retain_for, what="retain_for", minimum=_MIN_RETAIN)
    if kind == "rows":
        if partition_interval is not UNSET or compress_after is not UNSET:
            raise InvalidInput(
                f"{table} is an ordinary table: only retain_for (and time_column) apply",
                hint="partition_interval and compress_after are for the time-series tables",
            )
        return _set_row_policy(conn, table, new_retain, time_column, actor)
    if time_column is not None:
        raise InvalidInput(f"{table} is partitioned by ts; time_column applies to ordinary tables only")
    new_interval = UNSET if partition_interval is UNSET else parse_partition_interval(partition_interval)
    if new_interval is UNSET and new_compress is UNSET and new_retain is UNSET:
        raise InvalidInput(
            f"nothing to change for {table}", hint="give partition_interval, compress_after or retain_for"
        )
    old = _timeseries_policy(conn, table, lock=True)
    values: dict[str, Any] = {}
    if new_interval is not UNSET and new_interval != old.partition_interval:
        values["partition_interval"] = new_interval
    if new_compress is not UNSET and new_compress != old.compress_after:
        values["compress_after"] = new_compress
    if new_retain is not UNSET and new_retain != old.retain_for:
        values["retain_for"] = new_retain
    if not values:
        return old
    tp = t.timeseries_policies
    backend = timeseries.backend_named("timescaledb" if old.backend == "timescaledb" else "native")
    try:
        backend.apply_policy(conn, table, values, old.partition_interval)
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        raise ConfigurationError(
            f"TimescaleDB refused the policy change of {table}: {getattr(exc, 'orig', None) or exc}",
            hint="compression and retention policies need TimescaleDB's Community edition "
            "(timescaledb.license = 'timescale'); `marketdb doctor` checks it",
        ) from exc
    conn.execute(sa.update(tp).where(tp.c.table_name == table).values(**values, updated_at=sa.func.now()))
    new = _timeseries_policy(conn, table)
    audit_as(conn, actor or SYSTEM, "policy.set", "policy", table, old.as_dict(), new.as_dict())
    return new


def _set_row_policy(
    conn: sa.Connection,
    table: str,
    retain: dt.timedelta | Unset | None,
    time_column: str | None,
    actor: Actor | None,
) -> PolicyInfo | None:
    old = _row_policy(conn, table, lock=True)
    if retain is UNSET:
        if time_column is None or old is None:
            raise InvalidInput(
                f"nothing to change for {table}",
                hint="give retain_for (e.g. '5y'), or 'off' to remove the policy",
            )
        retain = old.retain_for
    rp = retention_policies
    if retain is None:
        if old is None:
            return None
        conn.execute(sa.delete(rp).where(rp.c.table_name == table))
        audit_as(conn, actor or SYSTEM, "policy.remove", "policy", table, old.as_dict(), None)
        return None
    column = time_column or (old.time_column if old else None) or ROW_RETENTION_TABLES[table]
    check_time_column(table, column)
    if old is not None and old.retain_for == retain and old.time_column == column:
        return old
    stmt = pg.insert(rp).values(table_name=table, time_column=column, retain_for=retain)
    stmt = stmt.on_conflict_do_update(
        index_elements=[rp.c.table_name],
        set_={"time_column": column, "retain_for": retain, "updated_at": sa.func.now()},
    )
    conn.execute(stmt)
    new = _row_policy(conn, table)
    assert new is not None
    audit_as(
        conn,
        actor or SYSTEM,
        "policy.set",
        "policy",
        table,
        None if old is None else old.as_dict(),
        new.as_dict(),
    )
    return new
