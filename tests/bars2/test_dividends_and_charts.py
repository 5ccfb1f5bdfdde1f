"""Issue 14 defects 2 and 3: both dividend conventions, and charts (x-axis labels, adjusted by default)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import InvalidInput
from marketdb.services.query import Query, render_chart
from marketdb.services.query._adjust import CorporateAction, adjustment_factors
from marketdb.services.query._chart import tick_positions
from marketdb.store.schema import tables as t
from tests.query.test_adjusted import CLOSES, OPENS, SESSIONS, VOLUMES, adj_db
from tests.query.test_cli import _run, seeded

__all__ = ["adj_db", "seeded"]  # fixtures used here
UTC = dt.UTC


def test_vendor_convention_is_p_over_p_plus_d() -> None:
    days = [dt.date(2024, 1, 8), dt.date(2024, 1, 9), dt.date(2024, 1, 10)]
    closes = [52.0, 50.0, 49.5]
    div = [CorporateAction("cash_dividend", dt.date(2024, 1, 10), amount=1.0)]
    crsp = adjustment_factors(days, closes, div)
    vendor = adjustment_factors(days, closes, div, dividends="vendor")
    assert crsp.price.tolist() == [0.98, 0.98, 1.0]
    assert vendor.price.tolist() == [50.0 / 51.0, 50.0 / 51.0, 1.0]
    # They differ by about (D/P)^2 per dividend.
    assert abs(vendor.price[0] - crsp.price[0]) == pytest.approx((1.0 / 50.0) ** 2, rel=0.05)
    with pytest.raises(InvalidInput, match="dividend convention"):
        adjustment_factors(days, closes, div, dividends="tiingo")  # type: ignore[arg-type]


def _vendor_series(db: marketdb.MarketDB, source: str, convention: str) -> None:
    """Provider bars whose adj_* follow ``convention`` (split 2:1 ex Jan 5, 1.00 ex Jan 10)."""
    div = 0.98 if convention == "crsp" else 50.0 / 51.0
    with db.transaction() as conn:
        iid = conn.execute(sa.select(t.instruments.c.id).where(t.instruments.c.symbol == "XYZ")).scalar_one()
        for d, o, c, v in zip(SESSIONS, OPENS, CLOSES, VOLUMES, strict=True):
            f = 0.5 * div if d < dt.date(2024, 1, 5) else (div if d < dt.date(2024, 1, 10) else 1.0)
            vf = 2.0 if d < dt.date(2024, 1, 5) else 1.0
            conn.execute(
                sa.insert(t.candles).values(
                    instrument_id=iid,
                    interval="1d",
                    ts=dt.datetime(d.year, d.month, d.day, tzinfo=UTC),
                    source=source,
                    open=o,
                    high=max(o, c) + 1,
                    low=min(o, c) - 1,
                    close=c,
                    volume=v,
                    adj_open=o * f,
                    adj_high=(max(o, c) + 1) * f,
                    adj_low=(min(o, c) - 1) * f,
                    adj_close=c * f,
                    adj_volume=v * vf,
                )
            )


@pytest.mark.parametrize("convention", ["vendor", "crsp"])
def test_check_adjustments_reports_the_convention_a_vendor_follows(
    adj_db: marketdb.MarketDB, convention: str
) -> None:
    _vendor_series(adj_db, "tiingo", convention)
    with Query(adj_db) as q:
        report = q.check_adjustments("XYZ", source="tiingo")
        other = "crsp" if convention == "vendor" else "vendor"
        forced = q.check_adjustments("XYZ", source="tiingo", dividends=other)  # type: ignore[arg-type]
    assert report.convention == convention
    assert report.ok, report.mismatches  # at the default tolerance
    assert report.within_rounding
    assert f"{convention} convention" in report.summary()
    assert report.by_convention[other] > 1e-4 > report.by_convention[convention]
    assert not forced.ok
    assert not forced.within_rounding


def test_adjusted_reads_take_the_convention_from_the_argument_or_the_settings(
    adj_db: marketdb.MarketDB, db_url: str, settings: marketdb.Settings
) -> None:
    with Query(adj_db) as q:
        crsp = q.bars("XYZ", "1d", adjusted=True)["close"].to_numpy()
        vendor = q.bars("XYZ", "1d", adjusted=True, dividends="vendor")["close"].to_numpy()
    ratio = vendor[:6] / crsp[:6]  # bars before the dividend
    assert np.allclose(ratio, (50.0 / 51.0) / 0.98, rtol=1e-12)
    assert vendor[6:].tolist() == crsp[6:].tolist()
    other = marketdb.connect(db_url, home=settings.home, dividend_convention="vendor")
    try:
        assert np.allclose(
            other.query.bars("XYZ", "1d", adjusted=True)["close"].to_numpy(), vendor, rtol=1e-12
        )
    finally:
        other.close()


def _hourly_xnys(days: int) -> pd.DataFrame:
    stamps = []
    for d in pd.bdate_range("2024-03-04", periods=days):
        # 1h bars of a 6.5-hour session: 7 bars a day (14:00 .. 20:00 UTC in winter)
        stamps += [d.tz_localize("UTC") + pd.Timedelta(hours=h) for h in range(14, 21)]
    n = len(stamps)
    price = 100 + np.arange(n) * 0.1
    return pd.DataFrame(
        {"open": price, "high": price + 0.5, "low": price - 0.5, "close": price + 0.2, "volume": 1000.0},
        index=pd.DatetimeIndex(stamps),
    )


def test_hourly_chart_labels_stay_at_the_same_time_of_day() -> None:
    bars = _hourly_xnys(12)
    ticks = tick_positions(pd.DatetimeIndex(bars.index), 10)
    times = {bars.index[i].strftime("%H:%M") for i in ticks}
    assert times == {"14:00"}  # one label per day (or every k-th day), never drifting an hour a day
    assert len(ticks) <= 10
    assert len({bars.index[i].date() for i in ticks}) == len(ticks)


def test_html_hourly_chart_uses_those_ticks(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    path = render_chart(_hourly_xnys(12), tmp_path / "h.html")
    html = path.read_text()
    found = re.search(r'"ticktext":(\[[^\]]*\])', html)
    assert found is not None
    labels = json.loads(found.group(1))
    assert labels
    assert {lab[-5:] for lab in labels} == {"14:00"}


def test_chart_defaults_to_adjusted_when_the_symbol_has_actions_and_says_so(
    seeded: str, tmp_path: Path
) -> None:
    pytest.importorskip("plotly")
    path = tmp_path / "acme.html"
    code, out = _run("chart", "ACME", "--interval", "1d", "--output", str(path), "--url", seeded)
    assert code == 0, out
    html = path.read_text()
    assert "ACME 1d (adjusted)" in html
    raw = tmp_path / "raw.html"
    code, out = _run("chart", "ACME", "--interval", "1d", "--raw", "--output", str(raw), "--url", seeded)
    assert code == 0, out
    assert "ACME 1d (raw, unadjusted)" in raw.read_text()
