"""The :class:`Ops` facade: policies, maintain, backup/restore, doctor."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from marketdb.services.accounts.audit import SYSTEM, Actor
from marketdb.services.ops import backup as _backup
from marketdb.services.ops import doctor as _doctor
from marketdb.services.ops import maintain as _maintain
from marketdb.services.ops import policies as _policies
from marketdb.services.ops.policies import UNSET, IntervalArg, PolicyInfo, Unset

if TYPE_CHECKING:
    from marketdb.services.analytics import Analytics
    from marketdb.store.database import Database

__all__ = ["Ops"]


class Ops:
    """Operations on one marketdb database (``db.ops``).

    * :meth:`policies` / :meth:`set_policy` -- partition size, compression and
      retention (time-series tables) and row retention (ordinary tables).
    * :meth:`maintain` -- partitions ahead, retention, then every callable in
      :attr:`hooks`.
    * :meth:`backup`, :meth:`restore`, :meth:`verify_backup` -- ``pg_dump`` /
      ``pg_restore`` with a verified round trip.
    * :meth:`doctor` -- what is configured, reachable and wrong.

    ``actor`` is recorded in the audit log for policy changes and retention
    (default: ``system``).
    """

    def __init__(
        self,
        db: Database,
        *,
        actor: Actor | None = None,
        analytics: Callable[[], Analytics | None] | None = None,
    ) -> None:
        self.db = db
        self.actor = actor or SYSTEM
        #: Extra maintain steps, run in order after retention. Each takes a
        #: :class:`~marketdb.services.ops.maintain.MaintainContext` and returns a
        #: short summary (or None); append to add one.
        self.hooks: list[_maintain.MaintainHook] = _maintain.default_hooks()
        self._analytics = analytics
        if analytics is not None and db.settings.clickhouse_url:
            from marketdb.services.analytics import maintenance_hook

            self.hooks.append(maintenance_hook(analytics))  # keep the ClickHouse tier fed

    # -------------------------------------------------------------- policies
    def policies(self) -> list[PolicyInfo]:
        """Every time-series policy and every row-retention policy."""
        with self.db.transaction() as conn:
            return _policies.list_policies(conn)

    def set_policy(
        self,
        table: str,
        *,
        partition_interval: str | Unset = UNSET,
        compress_after: IntervalArg = UNSET,
        retain_for: IntervalArg = UNSET,
        time_column: str | None = None,
    ) -> PolicyInfo | None:
        """Change one table's policy; see :func:`marketdb.services.ops.policies.set_policy`.

        Durations are text (``"30d"``, ``"5 years"``) or timedeltas; ``None``
        or ``"off"`` turns compression/retention off; omitted ones stay.
        """
        with self.db.transaction() as conn:
            return _policies.set_policy(
                conn,
                table,
                partition_interval=partition_interval,
                compress_after=compress_after,
                retain_for=retain_for,
                time_column=time_column,
                actor=self.actor,
            )

    # -------------------------------------------------------------- maintain
    def maintain(
        self,
        now: dt.datetime | None = None,
        dry_run: bool = False,
        *,
        days_ahead: int = 7,
        batch_size: int = 10_000,
        hooks: Sequence[_maintain.MaintainHook] | None = None,
        progress: _maintain.MaintainProgress | None = None,
    ) -> _maintain.MaintainReport:
        """Partitions ahead, retention and hooks; ``dry_run`` reports without changing anything.

        ``hooks`` replaces :attr:`hooks` for this run. ``progress(done, total, next_phase)``
        counts phases (partitions, each retention policy, each hook).
        """
        return _maintain.run_maintain(
            self.db,
            now=now,
            dry_run=dry_run,
            days_ahead=days_ahead,
            batch_size=batch_size,
            hooks=self.hooks if hooks is None else hooks,
            actor=self.actor,
            progress=progress,
        )

    # ---------------------------------------------------------------- backup
    def backup(
        self,
        path: str | os.PathLike[str],
        *,
        verify: bool = False,
        count_rows: bool | None = None,
        overwrite: bool = False,
        tables: Sequence[str] | None = None,
    ) -> _backup.BackupResult:
        """``pg_dump -Fc`` to ``path`` plus a manifest; ``verify`` restores it and compares.

        ``tables`` limits the dump to those tables, partitions included.
        """
        return _backup.backup(
            self.db, path, verify=verify, count_rows=count_rows, overwrite=overwrite, tables=tables
        )

    def base_backup(self, path: str | os.PathLike[str]) -> _backup.BaseBackupResult:
        """``pg_basebackup`` of the whole server into a new directory (point-in-time recovery)."""
        return _backup.base_backup(self.db, path)

    def restore(
        self, path: str | os.PathLike[str], database: str, *, no_owner: bool = False, jobs: int = 1
    ) -> _backup.RestoreResult:
        """Restore ``path`` into the new database ``database`` on the same server."""
        return _backup.restore(self.db, path, database, no_owner=no_owner, jobs=jobs)

    def verify_backup(self, path: str | os.PathLike[str]) -> _backup.VerifyResult:
        """Restore ``path`` into a scratch database, compare row counts, drop it."""
        return _backup.verify_backup(self.db, path)

    # ---------------------------------------------------------------- doctor
    def doctor(self, now: dt.datetime | None = None) -> _doctor.DoctorReport:
        """What is configured, what is reachable, what is wrong (with fix hints)."""
        return _doctor.diagnose(self.db.settings, self.db, now=now)
