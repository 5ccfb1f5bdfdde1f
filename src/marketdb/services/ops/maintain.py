"""``maintain``: partitions ahead, retention, and the extra steps other services add.

One run, from cron or a loop (``marketdb maintain --every 1h``):

1. **Partitions** (native partitions; TimescaleDB creates chunks itself):
   rows parked in a table's default partition (raw SQL inserts outside every
   partition) are moved into the partitions of their periods, created as
   needed; then partitions are created ahead: for tables with day-based
   partitions, today .. today + N days (default 7); for monthly ones, the
   current and the next month. Writes through marketdb create the partitions
   they need anyway; creating them ahead moves the DDL off the ingest path.
2. **Retention of time-series tables** (native): drop every partition whose
   upper bound is at or before ``now - retain_for``. On TimescaleDB, retention
   is TimescaleDB's own job (``add_retention_policy``).
3. **Retention of ordinary tables** (``retention_policies``): delete rows whose
   time column is older than ``now - retain_for``, in batches, each batch its
   own transaction. Rows still referenced through a restricting foreign key
   (an order with fills) are kept until their children are gone.
4. **Hooks**: plain callables taking a :class:`MaintainContext` (bars
   verification, a ClickHouse sync ...), each isolated: one failing hook is
   reported and the others still run.

Every retention step writes an audit row (``maintain.retention``). Two runs on
the same database never overlap (a session advisory lock); ``dry_run`` only
reads and reports what a run would do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import sqlalchemy as sa

from marketdb.errors import Conflict, InvalidInput
from marketdb.services.accounts.audit import SYSTEM, Actor, audit_as
from marketdb.services.ops.policies import ROW_RETENTION_TABLES, PolicyInfo, check_time_column, list_policies
from marketdb.store import timeseries
from marketdb.store.schema import TIMESERIES_TABLES, metadata

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = [
    "MaintainContext",
    "MaintainHook",
    "MaintainProgress",
    "MaintainReport",
    "MaintainStep",
    "default_hooks",
    "partition_range",
    "run_maintain",
]

_log = logging.getLogger(__name__)
UTC = dt.UTC
_LOCK_KEY: Final = "marketdb.maintain"
_DDL_LOCK_TIMEOUT: Final = "10s"  # never queue DDL behind a long read for long: it would block ingest

Status = Literal["done", "planned", "skipped", "error"]


@dataclass(frozen=True, slots=True)
class MaintainStep:
    """One thing a maintain run did (or, in a dry run, would do)."""

    step: str  # "partitions", "retention", "row retention", "hook"
    table: str | None
    action: str  # "create partition", "drop partition", "delete rows", hook name ...
    detail: str
    count: int = 0
    status: Status = "done"


@dataclass(slots=True)
class MaintainReport:
    """What a maintain run did: steps in order, and totals."""

    now: dt.datetime
    dry_run: bool
    steps: list[MaintainStep] = field(default_factory=list)

    @property
    def created_partitions(self) -> list[str]:
        """Partitions created (dry run: that would be created)."""
        return [s.detail for s in self.steps if s.action == "create partition" and s.status != "error"]

    @property
    def dropped_partitions(self) -> list[str]:
        """Partitions dropped for retention (dry run: that would be dropped)."""
        return [s.detail for s in self.steps if s.action == "drop partition" and s.status != "error"]

    @property
    def deleted_rows(self) -> dict[str, int]:
        """Rows deleted per ordinary table (dry run: that would be deleted)."""
        return {
            s.table: s.count
            for s in self.steps
            if s.action == "delete rows" and s.table is not None and s.status != "error"
        }

    @property
    def errors(self) -> list[MaintainStep]:
        """The steps that failed."""
        return [s for s in self.steps if s.status == "error"]

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return not self.errors


@dataclass(frozen=True, slots=True)
class MaintainContext:
    """What a hook gets: the database, the run's clock, and whether it is a dry run.

    A hook must honour ``dry_run`` (report, change nothing). It returns a short
    summary for the report, or None.
    """

    db: Database
    now: dt.datetime
    dry_run: bool
    actor: Actor


MaintainHook = Callable[[MaintainContext], str | None]
MaintainProgress = Callable[[int, int, str], None]
"""``progress(done, total, next_phase)``, see :func:`run_maintain`."""


def default_hooks() -> list[MaintainHook]:
    """The extra steps every ``Ops`` instance starts with (bars verify and repair of recent days)."""
    from marketdb.services.bars import maintenance_hook

    return [maintenance_hook()]


# ------------------------------------------------------------------ helpers
partition_range = timeseries.partition_range


def _ahead_range(interval: str, today: dt.date, days_ahead: int) -> tuple[dt.date, dt.date]:
    if timeseries.parse_partition_interval(interval) == "1 month":
        first = today.replace(day=1)
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        return first, nxt
    return today, today + dt.timedelta(days=days_ahead)


def _set_ddl_lock_timeout(conn: sa.Connection) -> None:
    conn.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": _DDL_LOCK_TIMEOUT})


def _error(step: str, table: str | None, action: str, exc: BaseException) -> MaintainStep:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    _log.warning("maintain: %s %s failed: %s", action, table or "", text[0] if text else exc)
    return MaintainStep(step, table, action, text[0] if text else type(exc).__name__, status="error")


# --------------------------------------------------------------- the steps
def _settle(
    db: Database, backend: timeseries.TimeseriesBackend, table: str, dry_run: bool
) -> Iterable[MaintainStep]:
    """Move rows parked in the default partition into their own partitions."""
    try:
        with db.transaction() as conn:
            if not dry_run:
                _set_ddl_lock_timeout(conn)
            created, moved = backend.settle(conn, table, dry_run=dry_run)
    except Exception as exc:
        yield _error("partitions", table, "move rows", exc)
        return
    status: Status = "planned" if dry_run else "done"
    for name in created:
        yield MaintainStep("partitions", table, "create partition", name, status=status)
    if moved:
        yield MaintainStep(
            "partitions",
            table,
            "move rows",
            "from the default partition into their partitions",
            moved,
            status,
        )


def _partitions_ahead(
    db: Database,
    backend: timeseries.TimeseriesBackend,
    policies: Sequence[PolicyInfo],
    now: dt.datetime,
    days_ahead: int,
    dry_run: bool,
) -> Iterable[MaintainStep]:
    today = now.astimezone(UTC).date()
    for p in policies:
        assert p.partition_interval is not None
        yield from _settle(db, backend, p.table, dry_run)
        start, end = _ahead_range(p.partition_interval, today, days_ahead)
        try:
            with db.transaction() as conn:
                if dry_run:
                    created = backend.missing_partitions(conn, p.table, start, end)
                else:
                    _set_ddl_lock_timeout(conn)
                    created = backend.ensure_partitions(conn, p.table, start, end)
        except Exception as exc:
            yield _error("partitions", p.table, "create partition", exc)
            continue
        for name in created:
            yield MaintainStep(
                "partitions", p.table, "create partition", name, status="planned" if dry_run else "done"
            )


def _partition_retention(
    db: Database,
    backend: timeseries.TimeseriesBackend,
    policy: PolicyInfo,
    now: dt.datetime,
    dry_run: bool,
    actor: Actor,
) -> Iterable[MaintainStep]:
    assert policy.retain_for is not None
    cutoff = now - policy.retain_for
    held: list[MaintainStep] = []
    try:
        with db.transaction() as conn:
            old = backend.expired_partitions(conn, policy.table, cutoff)
            bounds = dict(timeseries.list_partitions(conn, policy.table))
        if policy.table == "trades" and old and not dry_run:
            # never drop raw trades whose bars are not stored and verified
            ranges = {n: r for n in old if (r := timeseries.partition_range(bounds.get(n, ""))) is not None}
            kept, held = _bars_verified(db, ranges)
            old = [n for n in old if n in kept]
        with db.transaction() as conn:
            if old and not dry_run:
                _set_ddl_lock_timeout(conn)
                backend.drop_partitions(conn, policy.table, old)
                audit_as(
                    conn,
                    actor,
                    "maintain.retention",
                    "table",
                    policy.table,
                    None,
                    {"dropped_partitions": old, "cutoff": cutoff.isoformat()},
                )
    except Exception as exc:
        yield _error("retention", policy.table, "drop partition", exc)
        return
    yield from held
    for name in old:
        yield MaintainStep(
            "retention",
            policy.table,
            "drop partition",
            name,
            status="planned" if dry_run else "done",
        )


def _bars_verified(
    db: Database, ranges: dict[str, tuple[dt.datetime | None, dt.datetime | None]]
) -> tuple[dict[str, tuple[dt.datetime | None, dt.datetime | None]], list[MaintainStep]]:
    """Keep only the trades partitions whose bars are stored and verified.

    Retention never drops raw trades whose bars are not yet right: the bars of each
    partition's range are verified (and repaired) first; a partition whose bars still differ
    after the repair, or cannot be checked, is kept and reported as a skipped step.
    """
    if not db.settings.bar_intervals:
        return ranges, []
    from marketdb.services.bars import Bars

    bars = Bars(db)
    keep: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {}
    held: list[MaintainStep] = []
    for name, (lo, hi) in ranges.items():
        try:
            first = bars.verify(since=lo, until=hi, repair=True)
            ok = first.ok or bars.verify(since=lo, until=hi).ok
        except Exception as exc:  # kept: the bars could not be checked
            held.append(
                MaintainStep(
                    "retention", "trades", "keep partition", f"{name}: bars not verified ({exc})",
                    status="skipped",
                )
            )
            continue
        if ok:
            keep[name] = (lo, hi)
        else:
            held.append(
                MaintainStep(
                    "retention",
                    "trades",
                    "keep partition",
                    f"{name}: its bars still differ from its trades after repair",
                    status="skipped",
                )
            )
    return keep, held


def _restricting_children(table: sa.Table) -> list[tuple[sa.Table, list[tuple[str, str]]]]:
    """Tables whose foreign keys to ``table`` would block deleting a referenced row."""
    out = []
    for child in metadata.tables.values():
        for fk in child.foreign_key_constraints:
            if fk.referred_table is not table:
                continue
            if (fk.ondelete or "").upper() in ("CASCADE", "SET NULL", "SET DEFAULT"):
                continue
            pairs = [(e.parent.name, e.column.name) for e in fk.elements]
            out.append((child, pairs))
    return out


def _expired_rows(table: sa.Table, column: str, cutoff: dt.datetime) -> tuple[sa.FromClause, list[Any]]:
    r = table.alias("r")
    where: list[Any] = [r.c[column] < cutoff]
    for child, pairs in _restricting_children(table):
        where.append(~sa.exists().where(*(child.c[c] == r.c[p] for c, p in pairs)))
    return r, where


def _row_retention(
    db: Database, policy: PolicyInfo, now: dt.datetime, dry_run: bool, batch_size: int, actor: Actor
) -> Iterable[MaintainStep]:
    assert policy.retain_for is not None
    assert policy.time_column is not None
    cutoff = now - policy.retain_for
    detail = f"{policy.time_column} < {cutoff:%Y-%m-%d %H:%M}"
    try:
        if policy.table not in metadata.tables:
            raise InvalidInput(f"table {policy.table!r} does not exist")
        check_time_column(policy.table, policy.time_column)
        table = metadata.tables[policy.table]
        r, where = _expired_rows(table, policy.time_column, cutoff)
    except Exception as exc:
        yield _error("row retention", policy.table, "delete rows", exc)
        return
    if dry_run:
        try:
            with db.transaction() as conn:
                n = conn.execute(sa.select(sa.func.count()).select_from(r).where(*where)).scalar_one()
        except Exception as exc:
            yield _error("row retention", policy.table, "delete rows", exc)
            return
        yield MaintainStep("row retention", policy.table, "delete rows", detail, int(n), "planned")
        return
    ctid: sa.ColumnClause[Any] = sa.literal_column("ctid")
    ctids: sa.Select[Any] = sa.select(ctid).select_from(r).where(*where).limit(batch_size)
    stmt = sa.delete(table).where(sa.literal_column("ctid").in_(ctids))
    total = 0
    failure: Exception | None = None
    try:
        while True:
            with db.transaction() as conn:
                n = conn.execute(stmt).rowcount
            total += n
            if n < batch_size:
                break
    except Exception as exc:
        failure = exc
    finally:
        # Batches already committed stay deleted: record them even when a later one fails.
        if total:
            with db.transaction() as conn:
                audit_as(
                    conn,
                    actor,
                    "maintain.retention",
                    "table",
                    policy.table,
                    None,
                    {"deleted_rows": total, "time_column": policy.time_column, "cutoff": cutoff.isoformat()},
                )
    if failure is not None:
        yield _error("row retention", policy.table, "delete rows", failure)
    if total or failure is None:
        yield MaintainStep("row retention", policy.table, "delete rows", detail, total)


def _run_hooks(ctx: MaintainContext, hooks: Sequence[MaintainHook]) -> Iterable[MaintainStep]:
    for hook in hooks:
        name = getattr(hook, "__name__", None) or type(hook).__name__
        try:
            summary = hook(ctx)
        except Exception as exc:
            yield _error("hook", None, name, exc)
            continue
        yield MaintainStep("hook", None, name, summary or "", status="planned" if ctx.dry_run else "done")


# -------------------------------------------------------------------- run
def run_maintain(
    db: Database,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    days_ahead: int = 7,
    batch_size: int = 10_000,
    hooks: Sequence[MaintainHook] = (),
    actor: Actor | None = None,
    progress: MaintainProgress | None = None,
) -> MaintainReport:
    """One maintain run; see the module docstring.

    ``progress(done, total, next_phase)`` counts phases (partitions ahead, each
    retention policy, each hook): ``(0, total, first)`` first, then after each phase.

    Raises:
        InvalidInput: a naive ``now``, or ``days_ahead``/``batch_size`` out of range.
        Conflict: another maintain run holds the lock on this database.
    """
    if now is None:
        now = dt.datetime.now(UTC)
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware", hint="use datetime(..., tzinfo=datetime.UTC)")
    if not 0 <= days_ahead <= 366:
        raise InvalidInput(f"days_ahead must be between 0 and 366, got {days_ahead}")
    if not 1 <= batch_size <= 1_000_000:
        raise InvalidInput(f"batch_size must be between 1 and 1000000, got {batch_size}")
    actor = actor or SYSTEM
    report = MaintainReport(now=now, dry_run=dry_run)
    with db.engine.connect() as lock_conn:
        if not dry_run:
            got = lock_conn.execute(
                sa.text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": _LOCK_KEY}
            ).scalar_one()
            lock_conn.commit()
            if not got:
                raise Conflict(
                    "another `marketdb maintain` is running on this database",
                    hint="let it finish; schedule runs further apart than one run takes",
                )
        try:
            report.steps.extend(_steps(db, now, dry_run, days_ahead, batch_size, hooks, actor, progress))
        finally:
            # A broken connection has released its session lock already; keep the original error.
            if not dry_run and not lock_conn.closed and not lock_conn.invalidated:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    lock_conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": _LOCK_KEY})
                    lock_conn.commit()
    return report


def _steps(
    db: Database,
    now: dt.datetime,
    dry_run: bool,
    days_ahead: int,
    batch_size: int,
    hooks: Sequence[MaintainHook],
    actor: Actor,
    progress: MaintainProgress | None = None,
) -> Iterable[MaintainStep]:
    with db.transaction() as conn:
        policies = list_policies(conn)
        backend = timeseries.backend_for(conn)
    ts_policies = [p for p in policies if p.kind == "timeseries" and p.table in TIMESERIES_TABLES]
    # Each phase: (what it is, a thunk yielding its steps); counted for progress.
    phases: list[tuple[str, Callable[[], Iterable[MaintainStep]]]] = []
    if backend.self_managed:
        skipped = MaintainStep(
            "partitions",
            None,
            "skip",
            f"{backend.name} creates chunks and runs retention jobs",
            status="skipped",
        )
        phases.append(("partitions", lambda: [skipped]))
    else:
        phases.append(
            ("partitions", lambda: _partitions_ahead(db, backend, ts_policies, now, days_ahead, dry_run))
        )
        for p in ts_policies:
            if p.retain_for is not None:
                retain = functools.partial(_partition_retention, db, backend, p, now, dry_run, actor)
                phases.append((f"retention {p.table}", retain))
    order = list(ROW_RETENTION_TABLES)
    rows = sorted(
        (p for p in policies if p.kind == "rows"),
        key=lambda p: (order.index(p.table) if p.table in order else len(order), p.table),
    )
    for p in rows:
        delete = functools.partial(_row_retention, db, p, now, dry_run, batch_size, actor)
        phases.append((f"retention {p.table}", delete))
    ctx = MaintainContext(db=db, now=now, dry_run=dry_run, actor=actor)
    for hook in hooks:
        name = getattr(hook, "__name__", None) or type(hook).__name__
        phases.append((f"hook {name}", functools.partial(_run_hooks, ctx, [hook])))
    if progress is not None:
        progress(0, len(phases), phases[0][0] if phases else "")
    for done, (_what, phase) in enumerate(phases, 1):
        yield from phase()
        if progress is not None:
            progress(done, len(phases), phases[done][0] if done < len(phases) else "done")
