"""Operations: policies, maintain, backup/restore and doctor.

Start from :class:`Ops` (``db.ops``). Modules:

* :mod:`.policies` -- partition size, compression, retention (``timeseries_policies``,
  ``retention_policies``), applied with TimescaleDB's API where it runs.
* :mod:`.maintain` -- partitions ahead, retention, hooks; a dataclass report.
* :mod:`.backup`   -- ``pg_dump``/``pg_restore`` with a manifest and a verified restore.
* :mod:`.doctor`   -- configured / reachable / wrong, each with a fix hint.

See docs/operations.md.
"""

from marketdb.services.ops._intervals import format_interval, parse_interval
from marketdb.services.ops.backup import (
    BackupResult,
    BackupVerificationFailed,
    PgTool,
    RestoreResult,
    TableCount,
    VerifyResult,
)
from marketdb.services.ops.doctor import Check, DoctorReport, diagnose
from marketdb.services.ops.maintain import (
    MaintainContext,
    MaintainHook,
    MaintainReport,
    MaintainStep,
)
from marketdb.services.ops.policies import ROW_RETENTION_TABLES, UNSET, PolicyInfo
from marketdb.services.ops.service import Ops

__all__ = [
    "ROW_RETENTION_TABLES",
    "UNSET",
    "BackupResult",
    "BackupVerificationFailed",
    "Check",
    "DoctorReport",
    "MaintainContext",
    "MaintainHook",
    "MaintainReport",
    "MaintainStep",
    "Ops",
    "PgTool",
    "PolicyInfo",
    "RestoreResult",
    "TableCount",
    "VerifyResult",
    "diagnose",
    "format_interval",
    "parse_interval",
]
