"""The instruments hub: one resolver (with symbol history) used by ingest, query, bars and trading."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

import marketdb
from marketdb.errors import Conflict, InvalidInput, NotFound

UTC = dt.UTC


def _ticks(symbol: str, day: str, n: int = 4, price: float = 100.0) -> pd.DataFrame:
    base = pd.Timestamp(f"{day}T14:30:00Z")
    return pd.DataFrame({
        "symbol": [symbol] * n,
        "ts": [base + pd.Timedelta(seconds=i) for i in range(n)],
        "price": [price + i for i in range(n)],
        "size": [1.0] * n,
    })


def _candles(symbol: str, source: str) -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": [symbol] * 2, "ts": ["2024-01-02", "2024-01-03"], "interval": ["1d"] * 2,
        "open": [10.0, 11.0], "high": [12.0, 12.5], "low": [9.5, 10.5], "close": [11.0, 12.0],
        "volume": [1000.0, 2000.0],
    })


@pytest.fixture
def stocked(db: marketdb.MarketDB) -> marketdb.MarketDB:
    db.instruments.add("AAPL", name="Apple Inc.", exchange="XNAS", currency="USD")
    db.instruments.add("AAL", name="American Airlines", exchange="XNAS")
    db.instruments.add("MSFT", name="Microsoft", exchange="XNAS")
    db.instruments.add("SPY", name="SPDR S&P 500", asset_class="etf", exchange="ARCX")
    db.ingest.write_ticks(_ticks("AAPL", "2024-01-02"))
    db.ingest.write_ticks(_ticks("AAPL", "2024-01-03", n=2), source="polygon")
    db.ingest.write_candles(_candles("AAPL", "csv"), source="csv")
    return db


def test_list_counts_the_data_stored_per_instrument(stocked: marketdb.MarketDB) -> None:
    rows = {i.symbol: i for i in stocked.instruments.list()}
    assert sorted(rows) == ["AAL", "AAPL", "MSFT", "SPY"]
    aapl = rows["AAPL"]
    by_table = {d.table: d for d in aapl.data}
    assert by_table["trades"].rows == 6
    assert by_table["trades"].first_ts == dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert by_table["trades"].last_ts == dt.datetime(2024, 1, 3, 14, 30, 1, tzinfo=UTC)
    assert by_table["candles"].rows >= 2
    assert "1d" in aapl.intervals
    assert {"csv", "polygon"} <= set(aapl.sources)
    assert aapl.rows == sum(d.rows for d in aapl.data)
    assert rows["MSFT"].rows == 0
    assert rows["MSFT"].first_ts is None
    assert rows["MSFT"].data == ()


def test_list_filters_by_prefix_class_exchange_active_and_search(stocked: marketdb.MarketDB) -> None:
    ins = stocked.instruments
    assert [i.symbol for i in ins.list(prefix="aa", counts=False)] == ["AAL", "AAPL"]
    assert [i.symbol for i in ins.list(asset_class="etf")] == ["SPY"]
    assert [i.symbol for i in ins.list(exchange="xnas", counts=False)] == ["AAL", "AAPL", "MSFT"]
    assert [i.symbol for i in ins.list(search="micro")] == ["MSFT"]
    assert [i.symbol for i in ins.list(limit=1)] == ["AAL"]
    ins.delist("AAL", at=dt.date(2024, 2, 1))
    assert [i.symbol for i in ins.list(active=False)] == ["AAL"]
    assert "AAL" not in [i.symbol for i in ins.list(active=True)]
    # LIKE wildcards in a prefix are literal
    assert ins.list(prefix="%") == []
    with pytest.raises(InvalidInput, match="asset class"):
        ins.list(asset_class="shares")


def test_add_refuses_a_taken_symbol_and_names_the_command_to_update(stocked: marketdb.MarketDB) -> None:
    with pytest.raises(Conflict, match="AAPL") as err:
        stocked.instruments.add("aapl")
    assert "marketdb ingest instruments" in (err.value.hint or "")


def test_renamed_ticker_resolves_everywhere(db: marketdb.MarketDB) -> None:
    db.instruments.add("FB", name="Facebook", listed_at=dt.date(2012, 5, 18))
    db.ingest.write_ticks(_ticks("FB", "2022-06-01"))
    iid = db.instruments.rename("FB", "META", effective=dt.date(2022, 6, 9))
    # the hub
    assert db.instruments.resolve("FB")["FB"].id == iid
    assert db.instruments.resolve(["META", iid])["META"].symbol == "META"
    assert db.instruments.resolve("FB", at=dt.date(2022, 1, 3))["FB"].id == iid
    assert [(s.symbol, s.reason) for s in db.instruments.history("META")] == [
        ("FB", "listing"), ("META", "rename")
    ]
    # ingest under the old symbol before the rename lands on the same instrument
    db.ingest.write_ticks(_ticks("FB", "2022-06-02", price=50.0))
    # query
    assert len(db.query.ticks("FB")) == 8
    # bars
    assert db.bars.verify("FB").ok
    # trading: a renamed ticker can be traded by its old symbol
    db.trading.create_strategy("s1", "S1")
    order = db.trading.submit_order("s1", "FB", "buy", Decimal("1"))
    assert order["instrument_id"] == iid
    assert order["symbol"] == "META"


def test_unknown_symbols_are_named_with_a_real_command(db: marketdb.MarketDB) -> None:
    with pytest.raises(NotFound, match="NOPE, ZZZ") as err:
        db.instruments.resolve(["nope", "ZZZ"])
    assert err.value.details == {"symbols": ["NOPE", "ZZZ"]}
    assert "marketdb instruments add" in (err.value.hint or "")
    with pytest.raises(NotFound, match="NOPE"):
        db.bars.verify("NOPE")
    db.trading.create_strategy("s", "S")
    with pytest.raises(NotFound, match="NOPE"):
        db.trading.submit_order("s", "NOPE", "buy", Decimal("1"))


def test_ingest_rename_and_delist_still_work_through_the_hub(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "TWTR", "listed_at": "2013-11-07"}])
    iid = db.ingest.rename_symbol("TWTR", "X", effective=dt.date(2023, 7, 24))
    assert db.ingest.delist("X", at=dt.date(2024, 1, 1)) == iid
    info = db.instruments.get("TWTR")
    assert (info.id, info.symbol, info.is_active, info.delisted_at) == (iid, "X", False, dt.date(2024, 1, 1))
    reasons = [s.reason for s in db.instruments.history(iid)]
    assert reasons == ["listing", "rename", "delisting"]
