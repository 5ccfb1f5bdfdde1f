"""The public API as a user writes it, checked by mypy --strict (``[tool.mypy] files``).

Not run by pytest: it type-checks that documented calls have the types the
docs promise (``assert_type`` fails mypy when they drift).
"""

from __future__ import annotations

import datetime as dt
from typing import assert_type

import pandas as pd
import polars as pl
import pyarrow as pa

import marketdb
from marketdb.errors import (
    AuthenticationFailed,
    BackupVerificationFailed,
    InternalError,
    MarketdbError,
    NotFound,
    SecretIntegrityError,
)
from marketdb.services.ingest import IngestOptions, WriteResult
from marketdb.services.instruments import InstrumentInfo, Resolved, SymbolChange
from marketdb.store.database import Database


def reads(db: marketdb.MarketDB) -> None:
    assert_type(db.query.bars("AAPL", "5m"), pd.DataFrame)
    assert_type(db.query.bars(["AAPL", "MSFT"], "1d", output="polars"), pl.DataFrame)
    assert_type(db.query.bars("AAPL", output="arrow"), pa.Table)
    assert_type(db.query.ticks("AAPL", "2024-01-02", output="polars"), pl.DataFrame)
    assert_type(db.query.quotes("AAPL"), pd.DataFrame)


def writes(db: marketdb.MarketDB, frame: pd.DataFrame) -> None:
    opts = IngestOptions(source="polygon", on_invalid="skip", tz="America/New_York")
    assert_type(db.ingest.write_ticks(frame, opts), WriteResult)
    assert_type(db.ingest.write_ticks(frame, source="polygon", dry_run=True), WriteResult)
    assert_type(db.ingest.write_candles(frame, opts, interval="1d", on_conflict="update"), WriteResult)
    db.ingest.write_ticks(frame, on_invalid="skip")


def instruments(db: marketdb.MarketDB) -> None:
    found = db.instruments.resolve(["AAPL", "FB"], at=dt.date(2020, 1, 2))
    assert_type(found["FB"], Resolved)
    listed = db.instruments.list(prefix="AA", asset_class="stock", active=True)
    assert_type(listed, list[InstrumentInfo])
    assert_type(listed[0].rows, int)
    assert_type(db.instruments.history("META"), list[SymbolChange])
    assert_type(db.instruments.rename("FB", "META", effective=dt.date(2022, 6, 9)), int)


def handle(db: marketdb.MarketDB) -> Database:
    # A MarketDB is the narrow Database handle plus the services.
    with db.transaction() as conn:
        conn.exec_driver_sql("SELECT 1")
    return db


def errors() -> list[type[MarketdbError]]:
    # Every error class is importable from marketdb.errors.
    return [AuthenticationFailed, BackupVerificationFailed, InternalError, NotFound, SecretIntegrityError]
