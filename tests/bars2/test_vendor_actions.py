"""Vendor corporate-action columns on candles (split factor, cash dividend) become corporate
actions with their source; a conflict with another source is reported, not merged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.store.schema import tables as t
from tests.bars.test_db import add_instrument

REAL = Path("/work/shared/realdata")


def _actions(db: marketdb.MarketDB) -> list[tuple[object, ...]]:
    ca = t.corporate_actions
    with db.transaction() as conn:
        rows = conn.execute(
            sa.select(ca.c.action_type, ca.c.ex_date, ca.c.ratio, ca.c.amount, ca.c.source).order_by(
                ca.c.ex_date, ca.c.action_type, ca.c.source
            )
        ).all()
    return [(a, d, r, None if m is None else float(m), s) for a, d, r, m, s in rows]


def test_tiingo_split_and_dividend_columns_become_actions_and_conflicts_are_reported(
    db: marketdb.MarketDB,
) -> None:
    add_instrument(db, "KO", "XNYS")
    df = pd.DataFrame(
        {
            "date": ["2012-08-09", "2012-08-10", "2012-08-13"],
            "open": [76.0, 76.0, 38.0],
            "high": [77.0, 77.0, 38.5],
            "low": [75.5, 75.5, 37.8],
            "close": [76.5, 76.5, 38.2],
            "volume": [1e6, 1e6, 2e6],
            "divCash": [0.0, 0.51, 0.0],
            "splitFactor": [1.0, 1.0, 2.0],
        }
    )
    res = db.ingest.write_candles(df, symbol="KO", interval="1d", source="tiingo")
    assert res.warnings == []
    assert _actions(db) == [
        ("cash_dividend", dt.date(2012, 8, 10), None, 0.51, "tiingo"),
        ("split", dt.date(2012, 8, 13), 2.0, None, "tiingo"),
    ]
    # Adjusted reads work without writing the actions a second time.
    adj = db.query.bars("KO", "1d", adjusted=True)
    assert adj["close"].iloc[0] == pytest.approx(76.5 / 2 * (1 - 0.51 / 76.5))
    # Another source with a different split ratio on that day: reported, both kept as written.
    other = df.assign(splitFactor=[1.0, 1.0, 3.0], divCash=[0.0, 0.51, 0.0])
    res2 = db.ingest.write_candles(other, symbol="KO", interval="1d", source="quandl")
    assert len(res2.warnings) == 1
    assert "split ex 2012-08-13 is 3 from quandl but 2.0 from tiingo" in res2.warnings[0]
    assert ("split", dt.date(2012, 8, 13), 3.0, None, "quandl") in _actions(db)
    assert ("split", dt.date(2012, 8, 13), 2.0, None, "tiingo") in _actions(db)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs /work/shared/realdata")
def test_zipline_ko_split_column_becomes_a_corporate_action(db: marketdb.MarketDB) -> None:
    db.ingest.write_candles(
        REAL / "zipline/csvdir_daily/KO.csv", symbol="KO", interval="1d", source="quandl", auto_register=True
    )
    splits = [a for a in _actions(db) if a[0] == "split"]
    assert splits == [("split", dt.date(2012, 8, 13), 2.0, None, "quandl")]
    raw = db.query.bars("KO", "1d", "2012-08-01", "2012-08-31")
    adj = db.query.bars("KO", "1d", "2012-08-01", "2012-08-31", adjusted=True)
    before = raw.index < pd.Timestamp("2012-08-13", tz="UTC")
    assert (adj["close"][before] < raw["close"][before] * 0.51).all()  # no cliff across the split
