"""Fixtures of the time-series backend contract: one fresh database per backend available.

``native`` always runs (on the session's server, created with
``MARKETDB_TIMESCALEDB=off``). ``timescaledb`` runs when
``MARKETDB_TIMESCALE_URL`` names a server with the TimescaleDB extension, or
when the session's own server (``DATABASE_URL``) has it; otherwise it skips.
docs/timeseries.md says how to build such a server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest

import marketdb
from tests.fix_db import TestServer

_counter = itertools.count()
BACKENDS = ("native", "timescaledb")


def _has_timescaledb(server: TestServer) -> bool:
    try:
        with server.admin() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
                " AND current_setting('shared_preload_libraries') LIKE '%timescaledb%'"
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0])


@pytest.fixture(scope="session")
def timescale_server(pg_server: TestServer) -> TestServer | None:
    """A server with TimescaleDB, or None."""
    url = os.environ.get("MARKETDB_TIMESCALE_URL")
    if url:
        server = TestServer(url, None, pg_server.home)
        if not _has_timescaledb(server):
            pytest.fail("MARKETDB_TIMESCALE_URL names a server without the timescaledb extension")
        return server
    return pg_server if _has_timescaledb(pg_server) else None


@pytest.fixture(scope="session")
def backend_templates(pg_server: TestServer, timescale_server: TestServer | None) -> dict[str, str]:
    """Migrated template databases, one per backend available (created lazily)."""
    return {}


def _template(server: TestServer, backend: str, cache: dict[str, str]) -> str:
    if backend not in cache:
        name = f"marketdb_tpl_{backend}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
        url = server.create_database(name)
        db = marketdb.connect(
            url,
            migrate_schema=True,
            home=server.home,
            redis_url=None,
            timescaledb="off" if backend == "native" else "on",
        )
        db.close()
        server.close_template(name)
        cache[backend] = name
    return cache[backend]


@pytest.fixture(params=BACKENDS)
def backend_db(
    request: pytest.FixtureRequest,
    pg_server: TestServer,
    timescale_server: TestServer | None,
    backend_templates: dict[str, str],
) -> Iterator[marketdb.MarketDB]:
    """A fresh database whose time-series tables use the parametrised backend."""
    backend = str(request.param)
    server = pg_server if backend == "native" else timescale_server
    if server is None:
        pytest.skip("no TimescaleDB server: set MARKETDB_TIMESCALE_URL (docs/timeseries.md)")
    template = _template(server, backend, backend_templates)
    name = f"marketdb_ts_{backend}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{next(_counter)}"
    url = server.create_database(name, template=template)
    db = marketdb.connect(url, home=server.home, redis_url=None)
    try:
        yield db
    finally:
        db.close()
        server.drop_database(name)
