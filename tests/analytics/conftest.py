"""Analytics-tier fixtures: one in-process ClickHouse (chdb) per test process, a database per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import marketdb

pytest.importorskip("chdb")
pytest.importorskip("clickhouse_connect")

from marketdb.services.analytics import Analytics

_counter = itertools.count()


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A chdb directory for this test process (chdb runs one engine per process)."""
    path: Path = tmp_path_factory.mktemp(f"chdb-{os.getpid()}")
    return f"chdb://{path}"


@pytest.fixture
def analytics(db: marketdb.MarketDB, chdb_url: str) -> Iterator[Analytics]:
    """The analytics tier of ``db`` in a ClickHouse database of its own, dropped afterwards."""
    an = Analytics(db, chdb_url, database=f"mdb_t{os.getpid()}_{next(_counter)}")
    try:
        yield an
    finally:
        an.ch.command(f"DROP DATABASE IF EXISTS `{an.database}` SYNC")
        an.close()
