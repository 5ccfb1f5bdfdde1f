"""Issue 10 item 1: only the OS user owning MARKETDB_HOME (and root) reaches the embedded server."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from marketdb.errors import ConfigurationError
from marketdb.store.embedded import EmbeddedServer

needs_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="switching to another OS user needs root and setpriv",
)


def _as_nobody(uri: str) -> subprocess.CompletedProcess[str]:
    """Connect as OS user `nobody` with psql and read the password hashes (what the attack did)."""
    psql = shutil.which("psql")
    assert psql is not None
    setpriv = shutil.which("setpriv")
    assert setpriv is not None
    return subprocess.run(
        [
            setpriv,
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--reset-env",
            psql,
            uri,
            "-Atc",
            "SELECT rolname FROM pg_authid",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A scratch directory the server's OS user may traverse (its creator chose so)."""
    path = Path(tempfile.mkdtemp(prefix="marketdb-sec-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(open_tmp: Path) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(open_tmp / "home")
    srv.ensure_running()
    yield srv
    srv.stop("immediate")


@needs_root
def test_another_os_user_is_refused(server: EmbeddedServer) -> None:
    info = server.ensure_running()
    with psycopg.connect(info.libpq_uri()) as conn:  # the owner (root here) still connects
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    proc = _as_nobody(info.libpq_uri())
    assert proc.returncode != 0
    assert "Permission denied" in proc.stderr, proc.stderr
    assert "postgres" not in proc.stdout
    assert _mode(info.socket_dir) == 0o700
    assert _mode(info.socket_dir / ".s.PGSQL.5432") == 0o700
    assert _mode(server.passfile) == 0o600
    assert server.exposure() == []


@needs_root
def test_a_password_is_required_even_if_someone_opens_the_socket(server: EmbeddedServer) -> None:
    info = server.ensure_running()
    info.socket_dir.chmod(0o755)
    (info.socket_dir / ".s.PGSQL.5432").chmod(0o777)
    try:
        found = server.exposure()
        assert any("socket directory" in f for f in found)
        assert any(f.startswith("the socket ") for f in found)
        proc = _as_nobody(info.libpq_uri())
        assert proc.returncode != 0
        assert "password" in proc.stderr, proc.stderr  # no password supplied / authentication failed
        assert "postgres" not in proc.stdout
    finally:
        server.ensure_running()  # locks the socket down again
    assert server.exposure() == []


@needs_root
def test_an_old_trust_data_directory_is_locked_down_on_next_start(server: EmbeddedServer) -> None:
    info = server.ensure_running()
    hba = server.pgdata / "pg_hba.conf"
    # What older versions left: trust authentication, an open socket directory, no password file.
    hba.write_text("local all all trust\n")
    os.kill(info.pid, signal.SIGHUP)  # reload: trust is in effect
    info.socket_dir.chmod(0o755)
    server.passfile.unlink()
    found = server.exposure()
    assert any("trust" in f for f in found)
    assert any("socket directory" in f for f in found)

    info = EmbeddedServer(server.home).ensure_running()  # running server: fixed in place
    assert server.exposure() == []
    assert hba.read_text().startswith("# written by marketdb")
    assert "trust" not in hba.read_text()
    assert _mode(server.passfile) == 0o600
    with psycopg.connect(info.libpq_uri()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _as_nobody(info.libpq_uri()).returncode != 0

    # Stopped server with a trust configuration: fixed when it starts.
    server.stop("fast")
    hba.write_text("local all all trust\n")
    conf = server.pgdata / "postgresql.conf"
    conf.write_text(conf.read_text().replace("unix_socket_permissions = 0700", ""))
    info = EmbeddedServer(server.home).ensure_running()
    assert server.exposure() == []
    assert "unix_socket_permissions = 0700" in conf.read_text()
    with psycopg.connect(info.libpq_uri()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _as_nobody(info.libpq_uri()).returncode != 0


@needs_root
def test_directories_marketdb_did_not_create_keep_their_permissions() -> None:
    private = Path(tempfile.mkdtemp(prefix="marketdb-priv-"))  # 0700, like /root
    try:
        assert _mode(private) == 0o700
        home = private / "made" / "home"
        with pytest.raises(ConfigurationError) as err:
            EmbeddedServer(home).ensure_running()
        assert str(private) in err.value.message
        assert "MARKETDB_HOME" in (err.value.hint or "")
        assert _mode(private) == 0o700  # not loosened
        assert _mode(private / "made") == 0o711  # created by marketdb: traverse only
        assert _mode(home) == 0o711
        assert not (home / "pgdata").exists()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_a_new_home_is_private_to_its_owner(open_tmp: Path) -> None:
    home = open_tmp / "fresh"
    server = EmbeddedServer(home)
    try:
        server.ensure_running()
        assert _mode(home) == (0o711 if os.geteuid() == 0 else 0o700)
        assert _mode(server.pgdata) == 0o700
        assert _mode(server.passfile) == 0o600
        assert server.exposure() == []
    finally:
        server.stop("immediate")
