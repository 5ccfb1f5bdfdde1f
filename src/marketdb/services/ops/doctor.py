"""``doctor``: what is configured, what is reachable, what is wrong, and how to fix it.

Each finding is a :class:`Check` with a status:

* ``ok``   -- fine.
* ``info`` -- worth knowing, nothing to do (an optional component not set up).
* ``warn`` -- works, but needs attention soon (no partition for today yet:
  ``maintain`` is probably not scheduled).
* ``fail`` -- wrong: the CLI exits 1 (schema behind, drift, unreachable
  Redis, a failing TimescaleDB job, secrets sealed with a key that is not configured).

Secrets never appear: URLs are shown without passwords, master keys by count
and id only.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from marketdb.errors import MarketdbError
from marketdb.services.ops.maintain import partition_range
from marketdb.services.ops.policies import list_policies
from marketdb.settings import Settings
from marketdb.store import timeseries
from marketdb.store.schema import TIMESERIES_TABLES, metadata

if TYPE_CHECKING:
    from marketdb.services.accounts.crypto import KeyRing
    from marketdb.store.database import Database

__all__ = ["Check", "CheckStatus", "DoctorReport", "diagnose"]

CheckStatus = Literal["ok", "info", "warn", "fail"]
Section = Literal["configured", "reachable", "health"]
_MIN_SERVER: Final = 14
_TIMEOUT: Final = 1.0  # seconds, for Redis and ClickHouse probes


@dataclass(frozen=True, slots=True)
class Check:
    """One finding of the doctor."""

    section: Section
    name: str
    status: CheckStatus
    detail: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every finding, in the order checked."""

    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings and notes allowed)."""
        return not self.failures

    def by_name(self, name: str) -> list[Check]:
        """The checks called ``name``."""
        return [c for c in self.checks if c.name == name]

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-friendly rows."""
        return [asdict(c) for c in self.checks]


def mask_url(url: str) -> str:
    """``scheme://user:***@host/...``: a URL with its password hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# ------------------------------------------------------------ configured
def _configured(settings: Settings) -> tuple[list[Check], KeyRing | None]:
    out: list[Check] = []
    if settings.database_url:
        out.append(Check("configured", "database", "ok", f"DATABASE_URL {mask_url(settings.database_url)}"))
    else:
        from marketdb.store.embedded import EmbeddedServer

        server = EmbeddedServer(settings.home)
        if not server.exists():
            out.append(
                Check(
                    "configured",
                    "database",
                    "fail",
                    f"no marketdb database exists at MARKETDB_HOME={settings.home}",
                    "create one with `marketdb db upgrade` (empty) or `marketdb demo` (sample data), "
                    "or point MARKETDB_HOME or DATABASE_URL at the database you meant",
                )
            )
        else:
            state = "running" if server.info() else "not running (starts on first use)"
            out.append(Check("configured", "database", "ok", f"embedded server in {settings.home}: {state}"))
            exposed = server.exposure()
            for finding in exposed:
                out.append(
                    Check(
                        "configured",
                        "local access",
                        "fail",
                        f"other OS users may reach the embedded server: {finding}",
                        "run any marketdb command as the owner of MARKETDB_HOME: it locks the server "
                        "down (socket 0700, password authentication); chmod go-rwx what is still open",
                    )
                )
            if not exposed:
                out.append(
                    Check(
                        "configured",
                        "local access",
                        "ok",
                        "only the owner of MARKETDB_HOME (and root) can reach the embedded server",
                    )
                )
    where = "MARKETDB_HOME" if "MARKETDB_HOME" in os.environ else "default home"
    out.append(Check("configured", "home", "info", f"{where} {settings.home}"))
    for name, env, url, extra in (
        ("redis", "REDIS_URL", settings.redis_url, "no cache"),
        ("clickhouse", "CLICKHOUSE_URL", settings.clickhouse_url, "no analytics tier"),
    ):
        if url:
            out.append(Check("configured", name, "ok", f"{env} {mask_url(url)}"))
        else:
            out.append(Check("configured", name, "info", f"{env} not set: {extra} (optional)"))
    keyring = None
    try:
        from marketdb.services.accounts.crypto import KeyRing

        keyring = KeyRing.from_settings(settings)
        ids = keyring.key_ids
        if not ids:
            out.append(
                Check(
                    "configured",
                    "master keys",
                    "info",
                    "none configured: secrets and broker credentials cannot be sealed or opened",
                    "only needed for secrets: `marketdb keys generate`, then set MARKETDB_MASTER_KEYS",
                )
            )
        else:
            primary = keyring.primary_key_id
            out.append(
                Check(
                    "configured",
                    "master keys",
                    "ok",
                    f"{len(ids)} key(s): {', '.join(ids)}; primary {primary}",
                )
            )
    except MarketdbError as exc:
        out.append(Check("configured", "master keys", "fail", exc.message, exc.hint))
    out.append(Check("configured", "timescaledb", "info", f"MARKETDB_TIMESCALEDB={settings.timescaledb}"))
    return out, keyring


# ------------------------------------------------------------- reachable
def _redis(settings: Settings) -> Iterable[Check]:
    if not settings.redis_url:
        return
    url = mask_url(settings.redis_url)
    try:
        import redis
    except ImportError:
        yield Check(
            "reachable",
            "redis",
            "fail",
            "REDIS_URL is set but the redis package is not installed",
            "pip install 'marketdb[redis]'",
        )
        return
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT
    )
    try:
        client.ping()
    except Exception as exc:
        yield Check(
            "reachable",
            "redis",
            "fail",
            f"cannot reach Redis at {url}: {type(exc).__name__}: {exc}",
            "start Redis or fix REDIS_URL; marketdb still works without it (reads skip the cache; "
            "`marketdb serve` falls back to PostgreSQL sessions and uncached reads)",
        )
    else:
        yield Check("reachable", "redis", "ok", f"Redis at {url} answers PING")
    finally:
        client.close()


def _clickhouse(settings: Settings) -> Iterable[Check]:
    url = settings.clickhouse_url
    if not url:
        return
    if url.startswith("chdb:"):
        if importlib.util.find_spec("chdb") is None:
            yield Check(
                "reachable",
                "clickhouse",
                "fail",
                "CLICKHOUSE_URL names the in-process engine but chdb is not installed",
                "pip install 'marketdb[clickhouse]'",
            )
        else:
            yield Check("reachable", "clickhouse", "ok", f"in-process ClickHouse (chdb) at {url[5:]}")
        return
    if importlib.util.find_spec("clickhouse_connect") is None:
        yield Check(
            "reachable",
            "clickhouse",
            "fail",
            "CLICKHOUSE_URL is set but clickhouse-connect is not installed",
            "pip install 'marketdb[clickhouse]'",
        )
        return
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (8443 if parts.scheme in ("https", "clickhouses") else 8123)
    try:
        with socket.create_connection((host, port), timeout=_TIMEOUT):
            pass
    except OSError as exc:
        yield Check(
            "reachable",
            "clickhouse",
            "fail",
            f"cannot reach ClickHouse at {host}:{port}: {exc}",
            "start ClickHouse or fix CLICKHOUSE_URL (chdb:PATH runs it in-process)",
        )
    else:
        yield Check("reachable", "clickhouse", "ok", f"ClickHouse port {host}:{port} accepts connections")


def _clickhouse_sync(db: Database) -> Iterable[Check]:
    """How far the analytics tier is fed: from the sync watermarks, not a port probe."""
    from marketdb.services.analytics import TABLES

    try:
        with db.raw() as conn:
            rows = {
                r[0]: r[1:]
                for r in conn.execute(
                    """
                    SELECT t.name,
                           count(s.instrument_id) FILTER (WHERE s.data_version = i.data_version),
                           count(*) FILTER (WHERE s.data_version IS DISTINCT FROM i.data_version),
                           max(s.last_ts), max(s.synced_at)
                    FROM unnest(%s::text[]) AS t(name)
                    CROSS JOIN instruments i
                    LEFT JOIN clickhouse_sync_state s ON s.instrument_id = i.id AND s.table_name = t.name
                    GROUP BY t.name
                    """,
                    [list(TABLES)],
                ).fetchall()
            }
    except Exception as exc:
        yield Check("reachable", "clickhouse sync", "fail", f"cannot read the sync state: {exc}")
        return
    if not rows:
        yield Check("reachable", "clickhouse sync", "ok", "no instruments yet: nothing to mirror")
        return
    never = all(r[3] is None for r in rows.values())
    if never:
        yield Check(
            "reachable",
            "clickhouse sync",
            "warn",
            "ClickHouse is configured but was never synced",
            "run `marketdb clickhouse sync` (maintain runs it too)",
        )
        return
    behind = {t: r[1] for t, r in rows.items() if r[1]}
    upto = max((r[2] for r in rows.values() if r[2] is not None), default=None)
    last = max(r[3] for r in rows.values() if r[3] is not None)
    detail = (
        f"data up to {upto.date() if upto else '-'}, last sync {last.isoformat(timespec='seconds')}; "
        + ", ".join(f"{t}: {r[0]} in sync, {r[1]} behind" for t, r in rows.items())
    )
    if behind:
        yield Check("reachable", "clickhouse sync", "warn", detail, "run `marketdb clickhouse sync`")
    else:
        yield Check("reachable", "clickhouse sync", "ok", detail)


# -------------------------------------------------------------- postgres
def _postgres(db: Database, now: dt.datetime) -> Iterable[Check]:
    where = "the embedded server" if db.server else mask_url(db.url)
    try:
        with db.engine.connect() as conn:
            version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
            major = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    except (sa.exc.SQLAlchemyError, MarketdbError) as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        yield Check(
            "reachable",
            "postgresql",
            "fail",
            f"cannot reach PostgreSQL ({where}): {text[0] if text else exc}",
            "check DATABASE_URL and that the server runs; unset DATABASE_URL to use the embedded server",
        )
        return
    yield Check("reachable", "postgresql", "ok", f"PostgreSQL {version} ({where})")
    if major < _MIN_SERVER:
        yield Check(
            "health",
            "server version",
            "fail",
            f"PostgreSQL {major} is too old: marketdb needs {_MIN_SERVER} or newer",
            "upgrade the server (pg_upgrade), or unset DATABASE_URL to use the embedded PostgreSQL 18",
        )
    yield from _schema(db, now)


def _schema(db: Database, now: dt.datetime) -> Iterable[Check]:
    from alembic.script import ScriptDirectory

    from marketdb.store import migrate

    current = migrate.current_revision(db.engine)
    script = ScriptDirectory.from_config(migrate.alembic_config(db.engine, db.settings))
    head = script.get_current_head()
    known = {r.revision for r in script.walk_revisions()}
    if current is None:
        yield Check(
            "health",
            "schema",
            "fail",
            "the database has no marketdb schema",
            "run `marketdb db upgrade`",
        )
        return
    if current not in known:
        yield Check(
            "health",
            "schema",
            "fail",
            f"the database is at revision {current}, which this marketdb does not know (newer?)",
            "upgrade marketdb (pip install -U marketdb) to the version that wrote this schema",
        )
        return
    if current != head:
        yield Check(
            "health",
            "schema",
            "fail",
            f"schema at revision {current}, marketdb needs {head}",
            "run `marketdb db upgrade` (take a backup first: `marketdb backup FILE`)",
        )
        yield Check("health", "drift", "info", "not checked (nor partitions, policies): schema not at head")
        return
    yield Check("health", "schema", "ok", f"at revision {current} (newest)")
    diffs = migrate.check_drift(db.engine)
    if diffs:
        shown = "; ".join(_describe_diff(d) for d in diffs[:3])
        more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
        yield Check(
            "health",
            "drift",
            "fail",
            f"{len(diffs)} difference(s) between the database and marketdb's model: {shown}{more}",
            "`marketdb db check` lists them; undo manual schema changes, or restore from a backup",
        )
    else:
        yield Check("health", "drift", "ok", "the live schema matches the model")
    yield from _audit_trigger(db)
    yield from _timeseries(db, now)
    yield from _row_retention(db)
    yield from _maintenance_runs(db, now)
    yield from _scratch_databases(db)


def _describe_diff(diff: Any) -> str:
    if isinstance(diff, tuple) and diff:
        op = diff[0]
        target = diff[1] if len(diff) > 1 else ""
        name = getattr(target, "name", None) or str(target)
        return f"{op} {name}"
    if isinstance(diff, list) and diff:
        return _describe_diff(diff[0])
    return str(diff)


def _audit_trigger(db: Database) -> Iterable[Check]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT tgname, tgenabled FROM pg_trigger "
                "WHERE tgrelid = to_regclass('audit_logs') AND NOT tgisinternal"
            )
        ).all()
    state = {r[0]: r[1] for r in rows}
    missing = [n for n in ("audit_logs_append_only", "audit_logs_no_truncate") if state.get(n, "D") == "D"]
    if missing:
        yield Check(
            "health",
            "audit log",
            "fail",
            f"audit_logs is not protected: trigger(s) {', '.join(missing)} missing or disabled",
            "ALTER TABLE audit_logs ENABLE TRIGGER ALL; if they are gone, "
            "`marketdb db downgrade 0001 && marketdb db upgrade` recreates them",
        )
    else:
        yield Check("health", "audit log", "ok", "append-only (UPDATE, DELETE and TRUNCATE are rejected)")


def _timeseries(db: Database, now: dt.datetime) -> Iterable[Check]:
    with db.engine.connect() as conn:
        backend = timeseries.backend_for(conn)
        policies = [p for p in list_policies(conn) if p.kind == "timeseries"]
        has_ext = (
            conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()
            is not None
        )
        parts = {
            tbl: timeseries.list_partitions(conn, tbl, include_default=True) for tbl in TIMESERIES_TABLES
        }
        parked = {
            tbl: int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one())
            for tbl in TIMESERIES_TABLES
            for name, bound in parts[tbl]
            if bound.strip() == "DEFAULT"
        }
        license_ = None
        jobs: set[tuple[str, str]] = set()
        job_rows: list[JobState] = []
        if backend.self_managed and has_ext:
            license_ = conn.execute(sa.text("SELECT current_setting('timescaledb.license', true)")).scalar()
            jobs = {
                (str(r[0]), str(r[1]))
                for r in conn.execute(
                    sa.text(
                        "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs "
                        "WHERE hypertable_name IS NOT NULL"
                    )
                )
            }
            job_rows = timescaledb_jobs(conn)
    if backend.self_managed:
        yield from _timescaledb(has_ext, license_, jobs, policies)
        if has_ext:
            yield from _timescaledb_job_health(job_rows, now)
        return
    yield Check("health", "time-series backend", "ok", "native range partitions (maintained by marketdb)")
    without = [tbl for tbl in TIMESERIES_TABLES if tbl not in parked]
    waiting = {tbl: n for tbl, n in parked.items() if n}
    if without:
        yield Check(
            "health",
            "default partitions",
            "warn",
            f"no default partition in {', '.join(without)}: a raw SQL insert outside every partition fails",
            "run `marketdb db upgrade` (revision 0009 adds them), or "
            "CREATE TABLE <table>_default PARTITION OF <table> DEFAULT",
        )
    elif waiting:
        yield Check(
            "health",
            "default partitions",
            "warn",
            "rows outside every range partition: "
            + ", ".join(f"{n} in {tbl}" for tbl, n in waiting.items())
            + " (retention and partition pruning do not see them yet)",
            "run `marketdb maintain`: it creates their partitions and moves the rows there",
        )
    else:
        yield Check("health", "default partitions", "ok", "every default partition is empty")
    missing = []
    for tbl in TIMESERIES_TABLES:
        ranges = [partition_range(bound) for _, bound in parts[tbl]]
        if not any(
            r is not None and (r[0] is None or r[0] <= now) and (r[1] is None or now < r[1]) for r in ranges
        ):
            missing.append(tbl)
    if missing:
        yield Check(
            "health",
            "partitions",
            "warn",
            f"no partition for today in {', '.join(missing)}",
            "schedule `marketdb maintain` (cron or `marketdb maintain --every 1h`); writes through "
            "marketdb create partitions on demand, raw SQL inserts land in the default partition "
            "until `maintain` moves them",
        )
    else:
        yield Check("health", "partitions", "ok", "every time-series table has a partition for today")
    compressed = [p.table for p in policies if p.compress_after is not None]
    if compressed:
        yield Check(
            "health",
            "compression",
            "info",
            f"compress_after is set for {', '.join(compressed)}, but native partitions have no "
            "compression; it applies if the schema is created on TimescaleDB",
        )
    retained = [p.table for p in policies if p.retain_for is not None]
    if retained:
        yield Check(
            "health",
            "retention",
            "ok",
            f"partition retention for {', '.join(retained)} (applied by `marketdb maintain`)",
        )


def _timescaledb(
    has_ext: bool, license_: str | None, jobs: set[tuple[str, str]], policies: list[Any]
) -> Iterable[Check]:
    if not has_ext:
        yield Check(
            "health",
            "time-series backend",
            "fail",
            "the schema was created with TimescaleDB, but the extension is not installed",
            "install TimescaleDB on the server (shared_preload_libraries) and CREATE EXTENSION timescaledb",
        )
        return
    yield Check("health", "time-series backend", "ok", f"TimescaleDB hypertables (license {license_})")
    wanted = [p for p in policies if p.compress_after is not None or p.retain_for is not None]
    if license_ == "apache" and wanted:
        yield Check(
            "health",
            "policies",
            "fail",
            "compression/retention are configured but the Apache edition of TimescaleDB has neither",
            "set timescaledb.license = 'timescale' (Community edition), or turn the policies off "
            "(`marketdb policies set TABLE --compress-after off --retain-for off`)",
        )
        return
    lost = []
    for p in policies:
        if p.compress_after is not None and (p.table, "policy_compression") not in jobs:
            lost.append(f"{p.table} compression")
        if p.retain_for is not None and (p.table, "policy_retention") not in jobs:
            lost.append(f"{p.table} retention")
    if lost:
        yield Check(
            "health",
            "policies",
            "warn",
            f"configured but no TimescaleDB job: {', '.join(lost)}",
            "re-apply with `marketdb policies set TABLE --compress-after ... --retain-for ...`",
        )
    else:
        yield Check("health", "policies", "ok", "every configured policy has its TimescaleDB job")


@dataclass(frozen=True, slots=True)
class JobState:
    """One TimescaleDB background job as ``timescaledb_information.job_stats`` sees it."""

    job_id: int
    proc_name: str
    hypertable: str | None
    scheduled: bool
    last_run_status: str | None
    total_failures: int
    next_start: dt.datetime | None
    schedule_interval: dt.timedelta | None
    last_error: str | None
    last_error_at: dt.datetime | None


def timescaledb_jobs(conn: sa.Connection) -> list[JobState]:
    """Every TimescaleDB job of this database with its last run and last error."""
    rows = conn.execute(
        sa.text(
            """
            SELECT j.job_id, j.proc_name, j.hypertable_name, j.scheduled, s.last_run_status,
                   coalesce(s.total_failures, 0),
                   CASE WHEN isfinite(s.next_start) THEN s.next_start END,  -- never run: -infinity
                   j.schedule_interval, e.err_message,
                   CASE WHEN isfinite(e.finish_time) THEN e.finish_time END
            FROM timescaledb_information.jobs j
            LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
            LEFT JOIN LATERAL (
                SELECT err_message, finish_time FROM timescaledb_information.job_errors x
                WHERE x.job_id = j.job_id ORDER BY x.finish_time DESC NULLS LAST LIMIT 1
            ) e ON true
            ORDER BY j.job_id
            """
        )
    ).all()
    return [
        JobState(
            job_id=int(r[0]),
            proc_name=str(r[1]),
            hypertable=r[2],
            scheduled=bool(r[3]),
            last_run_status=r[4],
            total_failures=int(r[5]),
            next_start=r[6],
            schedule_interval=r[7],
            last_error=r[8],
            last_error_at=r[9],
        )
        for r in rows
    ]


#: A job is overdue when its next start is this much in the past (the scheduler is not running it).
_OVERDUE_GRACE: Final = dt.timedelta(minutes=30)
_PORTAL_BUG: Final = "cannot drop portal"


def _job_label(job: JobState) -> str:
    on = f" on {job.hypertable}" if job.hypertable else ""
    return f"job {job.job_id} ({job.proc_name}{on})"


def _timescaledb_job_health(jobs: list[JobState], now: dt.datetime) -> Iterable[Check]:
    failing = [j for j in jobs if j.scheduled and j.last_run_status == "Failed"]
    overdue = [
        j
        for j in jobs
        if j.scheduled
        and j.last_run_status != "Failed"
        and j.next_start is not None
        and j.next_start < now - _OVERDUE_GRACE
    ]
    if failing:
        details = "; ".join(
            f"{_job_label(j)}: last run failed ({j.total_failures} failure(s))"
            + (f": {j.last_error}" if j.last_error else "")
            for j in failing
        )
        hint = "read timescaledb_information.job_errors; run one by hand with CALL run_job(<job_id>)"
        if any(_PORTAL_BUG in (j.last_error or "") for j in failing):
            hint += (
                "; 'cannot drop portal' is a TimescaleDB bug exposed by PostgreSQL 15.20 and later "
                "15.x releases: the job's work is committed but the run is marked failed "
                "(docs/timeseries.md, 'Known problems')"
            )
        yield Check("health", "timescaledb jobs", "fail", f"{len(failing)} failing: {details}", hint)
    if overdue:
        yield Check(
            "health",
            "timescaledb jobs",
            "warn",
            "overdue: "
            + "; ".join(f"{_job_label(j)} was due at {j.next_start:%Y-%m-%d %H:%M %Z}" for j in overdue),
            "is the TimescaleDB scheduler running? (timescaledb.max_background_workers, "
            "SELECT * FROM timescaledb_information.job_stats)",
        )
    if not failing and not overdue:
        yield Check("health", "timescaledb jobs", "ok", f"{len(jobs)} job(s), none failing or overdue")


def _row_retention(db: Database) -> Iterable[Check]:
    from marketdb.services.ops.policies import check_time_column

    with db.engine.connect() as conn:
        rows = [p for p in list_policies(conn) if p.kind == "rows"]
        live = set(sa.inspect(conn).get_table_names())
    bad = []
    for p in rows:
        try:
            if p.table not in metadata.tables or p.table not in live:
                raise ValueError(p.table)
            check_time_column(p.table, p.time_column or "")
        except (ValueError, MarketdbError):
            bad.append(f"{p.table}.{p.time_column}")
    if bad:
        yield Check(
            "health",
            "row retention",
            "fail",
            f"retention policies name missing tables or columns: {', '.join(bad)}",
            "fix them with `marketdb policies set TABLE --retain-for off` (or a valid --time-column)",
        )
    elif rows:
        yield Check(
            "health",
            "row retention",
            "ok",
            ", ".join(f"{p.table} ({p.time_column})" for p in rows) + " (applied by `marketdb maintain`)",
        )


def _maintenance_runs(db: Database, now: dt.datetime) -> Iterable[Check]:
    """The latest maintenance runs (``maintenance_runs``): when, who, how long, what, errors."""
    from marketdb.services.ops.scheduler import latest_runs

    with db.engine.connect() as conn:
        runs = latest_runs(conn, 5)
    if not runs:
        yield Check(
            "health",
            "maintenance runs",
            "info",
            "no recorded maintenance run",
            "run `marketdb maintain --loop` (or a server with the background runner) so partitions, "
            "retention and bar checks happen without cron",
        )
        return
    for run in runs:
        took = f"{run.seconds:.1f}s" if run.seconds is not None else "still running"
        did = sum(1 for s in run.steps if s.get("status") in ("done", "planned"))
        status: CheckStatus = "fail" if run.status == "failed" else "ok"
        if run.status == "failed" and run is not runs[0]:
            status = "warn"  # an older failure; the latest run is what counts
        yield Check(
            "health",
            "maintenance runs",
            status,
            f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC by {run.runner}: {run.status}, {took}, "
            f"{did} step(s) done" + (f"; {run.error}" if run.error else ""),
            "see the error; `marketdb maintain` runs one by hand" if run.status == "failed" else None,
        )


def _scratch_databases(db: Database) -> Iterable[Check]:
    """Scratch databases left by an interrupted backup verification."""
    with db.engine.connect() as conn:
        names = list(
            conn.execute(
                sa.text(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'marketdb\\_verify\\_%' ORDER BY 1"
                )
            ).scalars()
        )
    if names:
        yield Check(
            "health",
            "scratch databases",
            "warn",
            f"left over from an interrupted `marketdb backup --verify`: {', '.join(names)}",
            "drop them: DROP DATABASE <name> WITH (FORCE)",
        )


def _keys(db: Database, keyring: KeyRing) -> Iterable[Check]:
    from marketdb.services.accounts.vault import key_status

    with db.engine.connect() as conn:
        status = key_status(conn, keyring)
    orphaned = [s for s in status if not s.configured and (s.user_secrets or s.broker_credentials)]
    if orphaned:
        detail = ", ".join(f"{s.key_id} ({s.user_secrets + s.broker_credentials} rows)" for s in orphaned)
        yield Check(
            "health",
            "sealed secrets",
            "fail",
            f"secrets are sealed with master key(s) that are not configured: {detail}",
            "add those keys to MARKETDB_MASTER_KEYS or MARKETDB_MASTER_KEY_FILE; without them "
            "the secrets cannot be opened",
        )
    elif any(s.user_secrets or s.broker_credentials for s in status):
        yield Check("health", "sealed secrets", "ok", "every stored secret's master key is configured")


# ------------------------------------------------------------------ run
def _embedded_exists(settings: Settings) -> bool:
    from marketdb.store.embedded import EmbeddedServer

    return EmbeddedServer(settings.home).exists()


def diagnose(
    settings: Settings, db: Database | None = None, *, now: dt.datetime | None = None
) -> DoctorReport:
    """Run every check. Connects (without migrating) when ``db`` is None.

    Never raises for what it diagnoses: an unreachable server or a broken
    configuration becomes a failed check.
    """
    checks, keyring = _configured(settings)
    own: Database | None = None
    if db is None and not settings.database_url and not _embedded_exists(settings):
        pass  # reported under "configured": doctor never creates a database
    elif db is None:
        try:
            from marketdb.store.database import open_database

            db = own = open_database(settings)
        except MarketdbError as exc:
            checks.append(Check("reachable", "postgresql", "fail", exc.message, exc.hint))
    schema_ok = False
    try:
        if db is not None:
            pg = list(_postgres(db, now or dt.datetime.now(dt.UTC)))
            checks += pg
            reachable = any(c.name == "postgresql" and c.status == "ok" for c in pg)
            schema_ok = any(c.name == "schema" and c.status == "ok" for c in pg)
            if reachable and schema_ok and keyring is not None:
                checks += _keys(db, keyring)
        checks += _redis(settings)
        checks += _clickhouse(settings)
        if db is not None and settings.clickhouse_url and schema_ok:
            checks += _clickhouse_sync(db)
    finally:
        if own is not None:
            own.close()
    return DoctorReport(checks=checks)
