"""Issue 14 defect 1: an ``instrument_id`` column never silently overrides the symbol."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import marketdb
from marketdb.errors import InvalidInput

DAY = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)


def _ids(db: marketdb.MarketDB) -> dict[str, int]:
    db.ingest.write_instruments([{"symbol": "A"}, {"symbol": "B"}])
    with db.raw() as conn:
        return dict(conn.execute("SELECT symbol, id FROM instruments").fetchall())


def _count(db: marketdb.MarketDB, table: str) -> int:
    with db.raw() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _candle(**kw: object) -> dict[str, object]:
    return {"ts": DAY, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0, **kw}


@pytest.mark.parametrize("kind", ["candles", "ticks"])
def test_an_id_of_another_instrument_than_the_symbol_is_rejected(
    db: marketdb.MarketDB, kind: str
) -> None:
    ids = _ids(db)
    if kind == "candles":
        rows = [_candle(symbol="A", instrument_id=ids["B"])]
        write, table = (lambda **o: db.ingest.write_candles(rows, interval="1d", **o)), "candles"
    else:
        rows = [{"symbol": "A", "instrument_id": ids["B"], "ts": DAY, "price": 1.0, "size": 1.0}]
        write, table = (lambda **o: db.ingest.write_ticks(rows, **o)), "trades"
    with pytest.raises(InvalidInput) as e:
        write()
    msg = str(e.value)
    assert "instrument_mismatch" in msg
    assert "row 0 instrument_id=" in msg
    assert write(on_invalid="skip").rejected == 1
    assert write(dry_run=True, on_invalid="skip").rejected == 1
    with pytest.raises(InvalidInput, match="instrument_mismatch"):
        write(dry_run=True)
    assert _count(db, table) == 0


def test_matching_id_and_symbol_are_accepted(db: marketdb.MarketDB) -> None:
    ids = _ids(db)
    res = db.ingest.write_candles([_candle(symbol="A", instrument_id=ids["A"])], interval="1d")
    assert res.inserted == 1


@pytest.mark.parametrize("on_invalid", ["raise", "skip"])
def test_an_unknown_id_is_a_validation_error_not_a_database_error(
    db: marketdb.MarketDB, on_invalid: str
) -> None:
    ids = _ids(db)
    vendor_id = max(ids.values()) + 1000  # e.g. a Databento instrument_id
    rows = [_candle(instrument_id=vendor_id), _candle(instrument_id=ids["A"])]
    if on_invalid == "raise":
        with pytest.raises(InvalidInput, match=r"unknown_symbol: 1 row \(no instrument has this id"):
            db.ingest.write_candles(rows, interval="1d")
        with pytest.raises(InvalidInput, match="no instrument has this id"):
            db.ingest.write_candles(rows, interval="1d", dry_run=True)
        assert _count(db, "candles") == 0
    else:
        res = db.ingest.write_candles(rows, interval="1d", on_invalid="skip")
        assert (res.inserted, res.rejected) == (1, 1)
        assert res.rejections[0].rule == "unknown_symbol"


def test_an_id_without_a_symbol_in_a_symbol_file_is_checked(db: marketdb.MarketDB) -> None:
    ids = _ids(db)
    rows = pd.DataFrame([_candle(symbol=None, instrument_id=max(ids.values()) + 7),
                         _candle(symbol="B", instrument_id=None)])
    res = db.ingest.write_candles(rows, interval="1d", on_invalid="skip")
    assert (res.inserted, res.rejected) == (1, 1)
    with db.raw() as conn:
        written = conn.execute("SELECT instrument_id FROM candles WHERE rolled_from IS NULL").fetchall()
        assert written == [(ids["B"],)]  # (its 1w and 1mo roll-ups are stored beside it)
