"""Database fixtures: a real PostgreSQL for every test.

By default each pytest worker starts its own embedded server in a temporary
``MARKETDB_HOME``. With ``DATABASE_URL`` set, the tests use that server
instead (it needs CREATEDB rights). Either way the schema is migrated once
into a template database, and every test that asks for ``db`` gets a fresh
copy of it (``CREATE DATABASE .. TEMPLATE``, ~30 ms), so tests never see each
other's rows or partitions.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

import marketdb
from marketdb.settings import Settings
from marketdb.store.db import libpq_uri
from marketdb.store.embedded import EmbeddedServer

_counter = itertools.count()


class TestServer:
    """A PostgreSQL server the test session may create databases on."""

    def __init__(self, base_url: str, embedded: EmbeddedServer | None, home: Path) -> None:
        self.base_url = libpq_uri(base_url)
        self.embedded = embedded
        self.home = home

    def url_for(self, dbname: str) -> str:
        return make_url(self.base_url).set(database=dbname).render_as_string(hide_password=False)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url_for("postgres"), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if template:
                stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
                for attempt in itertools.count():
                    # A template must have no sessions. TimescaleDB's scheduler connects to every
                    # database with the extension; close_template() keeps it out, and any session
                    # that slipped in before is ended here.
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        [template],
                    )
                    try:
                        conn.execute(stmt)
                        break
                    except psycopg.errors.ObjectInUse:
                        if attempt >= 20:
                            raise
                        time.sleep(0.1)
            else:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def close_template(self, name: str) -> None:
        """No new sessions on ``name`` (TimescaleDB's scheduler skips it too); end the open ones."""
        with self.admin() as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    """The session's PostgreSQL server (embedded unless DATABASE_URL is set)."""
    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the
    # data directory out from under a server another session is still running.
    home = Path(tempfile.mkdtemp(prefix="marketdb-test-"))
    home.chmod(0o711)  # as root the server runs as user 'marketdb', which must traverse it
    url = os.environ.get("DATABASE_URL")
    if url:
        yield TestServer(url, None, home)
        return
    server = EmbeddedServer(home)
    info = server.ensure_running()
    try:
        yield TestServer(info.libpq_uri(), server, home)
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: TestServer) -> str:
    """Name of a migrated template database for this worker."""
    name = f"marketdb_tpl_{_worker()}"
    url = pg_server.create_database(name)
    db = marketdb.connect(url, migrate_schema=True, home=pg_server.home)
    db.close()
    pg_server.close_template(name)
    return name


@pytest.fixture
def db_url(pg_server: TestServer, template_db: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database, dropped after the test."""
    name = f"marketdb_t_{_worker()}_{next(_counter)}"
    url = pg_server.create_database(name, template=template_db)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def db(db_url: str, pg_server: TestServer) -> Iterator[marketdb.MarketDB]:
    """A MarketDB connected to a fresh, fully migrated database."""
    conn = marketdb.connect(db_url, home=pg_server.home, redis_url=None)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def empty_db_url(pg_server: TestServer) -> Iterator[str]:
    """URL of an empty database (no schema), for migration tests."""
    name = f"marketdb_e_{_worker()}_{next(_counter)}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def settings(pg_server: TestServer) -> Settings:
    """Settings isolated from the developer's environment."""
    return Settings.from_env(home=pg_server.home)
