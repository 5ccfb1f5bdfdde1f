"""A scheduler without cron: maintenance in a loop, one runner at a time, every run recorded.

:class:`Scheduler` runs ``maintain`` (partitions ahead, retention, compression where the
backend has it, bar refresh and roll-up checks: the :attr:`Ops.hooks`) every ``every``:

* ``marketdb maintain --loop`` (the CLI) runs it in the foreground;
* :meth:`Scheduler.start` runs it on a daemon thread: the background runner an
  application server starts in its lifespan (``marketdb serve`` does when it exists) and
  stops with :meth:`Scheduler.stop`.

**Exactly one runner.** Any number of schedulers may run against one database, in one or
many processes or machines: a run takes ``maintain``'s session advisory lock, so when
another run holds it this one does nothing and is recorded as ``skipped`` (it waits for the
next tick). **Every run is recorded** in ``maintenance_runs``: when it started and ended,
the runner (host, pid, name), status (``running``, ``ok``, ``failed``, ``skipped``), each
step (what, table, detail, rows, status) and the errors; ``marketdb doctor`` shows the
latest runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from marketdb.errors import Conflict, InvalidInput
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    from marketdb.services.ops.service import Ops

__all__ = ["RunRecord", "Scheduler", "latest_runs"]

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of ``maintenance_runs``."""

    id: int
    runner: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    steps: list[dict[str, Any]]
    error: str | None

    @property
    def seconds(self) -> float | None:
        """How long the run took (None while it runs)."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def _record(row: Any) -> RunRecord:
    return RunRecord(
        id=int(row.id),
        runner=str(row.runner),
        status=str(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        steps=list(row.steps or []),
        error=row.error,
    )


def latest_runs(conn: sa.Connection, limit: int = 10) -> list[RunRecord]:
    """The ``limit`` most recent maintenance runs, newest first."""
    r = t.maintenance_runs
    rows = conn.execute(sa.select(r).order_by(r.c.started_at.desc(), r.c.id.desc()).limit(limit))
    return [_record(x) for x in rows]


class Scheduler:
    """Runs ``ops.maintain()`` every ``every``; see the module docstring.

    ``name`` identifies the runner in the run log (default ``host:pid``).
    """

    def __init__(
        self,
        ops: Ops,
        *,
        every: dt.timedelta = dt.timedelta(hours=1),
        name: str | None = None,
        days_ahead: int = 7,
    ) -> None:
        if every <= dt.timedelta(0):
            raise InvalidInput("the scheduler period must be positive", hint="e.g. every=timedelta(hours=1)")
        self.ops = ops
        self.every = every
        self.days_ahead = days_ahead
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ one run
    def run_once(self, now: dt.datetime | None = None) -> RunRecord:
        """One maintenance run, recorded; ``skipped`` when another runner holds the lock."""
        r = t.maintenance_runs
        db = self.ops.db
        with db.transaction() as conn:
            run_id = conn.execute(
                sa.insert(r).values(runner=self.name, status="running").returning(r.c.id)
            ).scalar_one()
        status, error, steps = "ok", None, []
        started = time.perf_counter()
        try:
            report = self.ops.maintain(now=now, days_ahead=self.days_ahead)
            steps = [dataclasses.asdict(s) for s in report.steps]
            if not report.ok:
                status = "failed"
                error = "; ".join(f"{s.step} {s.table or ''} {s.action}: {s.detail}" for s in report.errors)
        except Conflict as exc:
            status, error = "skipped", f"another runner holds the maintenance lock: {exc.message}"
        except Exception as exc:  # recorded, and the loop goes on
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            _log.exception("maintenance run %s failed", run_id)
        steps.append({"step": "run", "seconds": round(time.perf_counter() - started, 3)})
        with db.transaction() as conn:
            row = conn.execute(
                sa.update(r)
                .where(r.c.id == run_id)
                .values(
                    status=status,
                    error=error,
                    steps=json.loads(json.dumps(steps, default=str)),
                    finished_at=sa.func.clock_timestamp(),
                )
                .returning(*r.c)
            ).one()
        return _record(row)

    # ------------------------------------------------------------- loops
    def run_forever(self) -> None:
        """Run every :attr:`every` until :meth:`stop` (a failed run does not stop the loop)."""
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # e.g. the server restarting: try again next period
                _log.exception("maintenance scheduler: run not recorded")
            self._stop.wait(self.every.total_seconds())

    def start(self) -> threading.Thread:
        """Run :meth:`run_forever` on a daemon thread (the background runner of a server)."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="marketdb-maintain", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to stop after the current run and wait for it (up to ``timeout`` s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def maintain_period() -> dt.timedelta | None:
    """``MARKETDB_MAINTAIN_EVERY`` as a period (None: off); a bad value is :class:`InvalidInput`."""
    from marketdb.store.intervals import parse_duration

    every = os.environ.get("MARKETDB_MAINTAIN_EVERY", "1h").strip().lower()
    if every in ("", "0", "off", "no", "false"):
        return None
    period = parse_duration(every, what="MARKETDB_MAINTAIN_EVERY")
    if period <= dt.timedelta(0):
        raise InvalidInput(f"MARKETDB_MAINTAIN_EVERY={every!r}", hint="e.g. 15min or 1h, or off")
    return period
