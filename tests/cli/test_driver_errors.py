"""Issue 10 item 8 (these parts): the disk-full message and db.status() with the server down."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import MarketdbError, Unavailable
from marketdb.store.db import explain_driver_error

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nowhere"


def test_disk_full_says_so_and_what_to_do() -> None:
    orig = psycopg.errors.DiskFull('could not extend file "base/16384/2619": No space left on device')
    for exc in (orig, sa.exc.OperationalError("INSERT ...", {}, orig)):
        err = explain_driver_error(exc)
        assert isinstance(err, Unavailable)
        assert "disk is full" in err.message
        assert "connection failed" not in err.message
        assert "free space" in (err.hint or "")


def test_other_driver_errors_are_explained_and_non_driver_errors_are_not() -> None:
    refused = psycopg.OperationalError("connection refused")
    err = explain_driver_error(sa.exc.OperationalError("SELECT 1", {}, refused))
    assert isinstance(err, Unavailable)
    assert err.message.startswith("cannot reach PostgreSQL")
    rejected = explain_driver_error(psycopg.errors.UndefinedTable('relation "x" does not exist'))
    assert type(rejected) is MarketdbError
    assert "rejected" in rejected.message
    assert explain_driver_error(ValueError("not a driver error")) is None


def test_status_with_the_server_down_is_unavailable_not_a_raw_driver_error() -> None:
    db = marketdb.connect(UNREACHABLE, check_schema=False, migrate_schema=False, redis_url=None)
    try:
        with pytest.raises(Unavailable, match="cannot reach PostgreSQL"):
            db.status()
    finally:
        db.close()
