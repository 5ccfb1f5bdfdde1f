"""End-to-end paths across services: provider candles, demo data, CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

import marketdb
from marketdb.testing import SyntheticSplit, synthetic_trades

# A Polygon /v2/aggs/ticker/AAPL/range/1/day response across the US DST change of
# 2005-04-03: bar start times are New York midnight, i.e. 05:00 UTC before the
# change and 04:00 UTC after it (values as recorded in polygon-client-python).
POLYGON_DAILY = {
    "ticker": "AAPL",
    "results": [
        {
            "v": 642646396.0,
            "vw": 1.469,
            "o": 1.5032,
            "c": 1.4604,
            "h": 1.5064,
            "l": 1.4489,
            "t": 1112331600000,
            "n": 82132,
        },
        {
            "v": 578172308.0,
            "vw": 1.4589,
            "o": 1.4639,
            "c": 1.4675,
            "h": 1.4754,
            "l": 1.4343,
            "t": 1112587200000,
            "n": 65543,
        },
    ],
}
REAL = Path(__file__).resolve().parents[3] / "shared" / "realdata"


def _register(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAPL", "asset_class": "stock", "calendar": "XNYS"}])


@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_polygon_daily_bars_across_dst_land_on_their_sessions(db: marketdb.MarketDB, tz: str | None) -> None:
    _register(db)
    frame = pd.DataFrame(POLYGON_DAILY["results"]).assign(
        t=lambda d: pd.to_datetime(d.t, unit="ms", utc=True)
    )
    opts = {"tz": tz} if tz else {}
    res = db.ingest.write_candles(frame, symbol="AAPL", interval="1d", source="polygon", **opts)
    assert res.inserted == 2
    bars = db.query.bars("AAPL", "1d", source="polygon")
    assert [ts.date() for ts in bars.index] == [dt.date(2005, 4, 1), dt.date(2005, 4, 4)]
    assert bars["close"].tolist() == [1.4604, 1.4675]
    assert set(bars["source"]) == {"polygon"}


def test_recorded_polygon_response_lands_on_sessions(db: marketdb.MarketDB, tmp_path: Path) -> None:
    path = REAL / "polygon-client-python/mocks/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json"
    if not path.exists():
        pytest.skip("needs ../shared/realdata (not part of the project)")
    _register(db)
    results = json.loads(path.read_text())["results"]
    frame = pd.DataFrame(results).assign(t=lambda d: pd.to_datetime(d.t, unit="ms", utc=True))
    db.ingest.write_candles(frame, symbol="AAPL", interval="1d", source="polygon")
    bars = db.query.bars("AAPL", "1d", source="polygon")
    assert [ts.date() for ts in bars.index] == [dt.date(2005, 4, 1), dt.date(2005, 4, 4)]


def test_synthetic_day_ingest_gives_bars_adjustment_and_idempotency(db: marketdb.MarketDB) -> None:
    """The demo's path in miniature: trades -> continuous bars -> split-adjusted reads."""
    db.ingest.write_instruments([{"symbol": "AAPL", "asset_class": "stock", "calendar": "XNYS"}])
    trades = synthetic_trades(
        ["AAPL"],
        start="2024-03-07",
        days=3,
        trades_per_day=2000,
        splits={"AAPL": SyntheticSplit(dt.date(2024, 3, 11), 4.0)},
    )
    first = db.ingest.write_ticks(trades)
    again = db.ingest.write_ticks(trades)
    assert first.inserted == len(trades)
    assert again.inserted == 0
    assert again.duplicates == len(trades)
    db.ingest.write_corporate_actions(
        [
            {
                "symbol": "AAPL",
                "action_type": "split",
                "ex_date": "2024-03-11",
                "ratio": 4.0,
                "known_at": "2024-03-01T00:00:00Z",
            }
        ]
    )
    raw = db.query.bars("AAPL", "1d")
    adj = db.query.bars("AAPL", "1d", adjusted=True)
    early = db.query.bars("AAPL", "1d", adjusted=True, as_of="2024-02-01T00:00:00Z")
    assert [ts.date() for ts in raw.index] == [dt.date(2024, 3, 7), dt.date(2024, 3, 8), dt.date(2024, 3, 11)]
    # Daily close equals the last trade of the regular session; volume and count add up.
    day1 = trades[trades.ts.dt.date == dt.date(2024, 3, 7)]
    assert raw["close"].iloc[0] == day1["price"].iloc[-1]
    assert raw["trade_count"].iloc[0] == len(day1)
    assert raw["volume"].iloc[0] == pytest.approx(day1["size"].sum())
    assert adj["close"].iloc[0] == pytest.approx(raw["close"].iloc[0] / 4.0, rel=1e-12)
    assert adj["close"].iloc[2] == pytest.approx(raw["close"].iloc[2], rel=1e-12)
    assert early["close"].tolist() == raw["close"].tolist()
    assert db.bars.verify().ok


def test_deleting_an_instrument_deletes_its_ticks_without_a_row_foreign_key(db: marketdb.MarketDB) -> None:
    import sqlalchemy as sa

    db.ingest.write_instruments([{"symbol": "AAA"}, {"symbol": "BBB"}])
    frame = pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "BBB"],
            "ts": pd.to_datetime(["2024-01-02 15:00", "2024-01-02 15:01", "2024-01-02 15:00"], utc=True),
            "price": [1.0, 2.0, 3.0],
            "size": [1.0, 1.0, 1.0],
            "bid": [0.9, 1.9, 2.9],
            "ask": [1.1, 2.1, 3.1],
        }
    )
    db.ingest.write_ticks(frame)
    with db.transaction() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM candles WHERE instrument_id = (SELECT id FROM instruments WHERE symbol = 'AAA')"
            )
        )
        conn.execute(sa.text("DELETE FROM instruments WHERE symbol = 'AAA'"))
        left = conn.execute(sa.text("SELECT count(*) FROM trades")).scalar_one()
        quotes = conn.execute(sa.text("SELECT count(*) FROM quotes")).scalar_one()
    assert left == 1
    assert quotes == 1


def test_a_batch_for_an_instrument_deleted_meanwhile_writes_nothing(db: marketdb.MarketDB) -> None:
    from marketdb.errors import Conflict
    from marketdb.services.ingest._writer import bump_versions

    db.ingest.write_instruments([{"symbol": "AAA"}])
    with db.raw() as conn:
        iid = conn.execute("SELECT id FROM instruments WHERE symbol = 'AAA'").fetchone()[0]
        conn.execute("DELETE FROM instruments WHERE id = %s", [iid])
    with pytest.raises(Conflict, match="deleted while this batch"), db.raw() as conn:
        bump_versions(conn, [iid], ["trades"])
