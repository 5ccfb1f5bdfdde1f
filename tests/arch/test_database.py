"""The narrow Database handle: what services get, session options on every path, error translation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import Conflict, InvalidInput, MarketdbError, NotFound
from marketdb.store.database import Database
from marketdb.store.errors import translate
from marketdb.store.schema import tables as t

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_db(db_url: str, pg_server: Any) -> Iterator[marketdb.MarketDB]:
    conn = marketdb.connect(db_url, home=pg_server.home, redis_url=None, statement_timeout_ms=250,
                            application_name="mdb-arch-test")
    try:
        yield conn
    finally:
        conn.close()


def test_services_get_a_plain_database_handle_not_the_client(db: marketdb.MarketDB) -> None:
    assert isinstance(db, Database)
    for handle in (db.ingest.db, db.ops.db, db.query._db, db.bars._db, db.trading._db, db.instruments._db):
        assert type(handle) is Database
        assert handle.engine is db.engine
        assert handle.settings is db.settings
        assert not hasattr(handle, "bars")


def test_adbc_reads_run_with_the_engines_session_options(slow_db: marketdb.MarketDB) -> None:
    conn = slow_db.arrow_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_setting('statement_timeout') AS st, current_setting('TimeZone') AS tz,"
                " current_setting('application_name') AS app"
            )
            row = cur.fetch_arrow_table().to_pylist()[0]
    finally:
        conn.close()
    assert row == {"st": "250ms", "tz": "UTC", "app": "mdb-arch-test"}


def test_statement_timeout_applies_to_query_reads_through_adbc(slow_db: marketdb.MarketDB) -> None:
    transport = slow_db.query.transport
    assert transport.name == "adbc"
    [setting] = transport.fetch("SELECT current_setting('statement_timeout')", [("st", "text")]).column(0)
    assert setting.as_py() == "250ms"
    with pytest.raises(MarketdbError, match="statement timeout"):
        transport.fetch("SELECT 1::int4 FROM pg_sleep(2)", [("x", "int4")])


def test_transaction_translates_constraint_errors_by_sqlstate_when_asked(db: marketdb.MarketDB) -> None:
    with db.transaction() as conn:
        conn.execute(sa.insert(t.instruments).values(symbol="DUP"))
    with pytest.raises(Conflict, match="duplicate"), db.transaction(translate_errors=True) as conn:
        conn.execute(sa.insert(t.instruments).values(symbol="DUP"))
    with pytest.raises(InvalidInput, match="check"), db.transaction(translate_errors=True) as conn:
        conn.execute(sa.insert(t.instruments).values(symbol="BAD", asset_class="shares"))
    with pytest.raises(NotFound, match="referenced"), db.transaction(translate_errors=True) as conn:
        conn.execute(sa.insert(t.symbol_history).values(instrument_id=999_999, symbol="X",
                                                        valid_from=sa.func.now()))
    # without translate_errors the driver's error escapes, as before
    with pytest.raises(sa.exc.IntegrityError), db.transaction() as conn:
        conn.execute(sa.insert(t.instruments).values(symbol="DUP"))


def test_translate_ignores_errors_without_a_sqlstate() -> None:
    assert translate(ValueError("no state")) is None


def test_no_service_imports_the_client_and_layers_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e .[dev])")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout
