"""Bars in memory (no database): intervals, sessions, the aggregation and its merge algebra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketdb.errors import InvalidInput
from marketdb.services.bars import (
    Calendars,
    aggregate,
    aggregate_many,
    merge_partials,
    parse_interval,
    relabel,
    rollup_source,
    trades_frame,
)
from marketdb.services.bars._calendars import NO_SESSION, month_labels, week_labels
from marketdb.services.bars.testing import bar_differences, reference_bars

NS = 1_000_000_000


def ns(text: str) -> int:
    return pd.Timestamp(text).value


# ---------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("1m", "fixed", "1m"),
        ("5m", "fixed", "5m"),
        ("60m", "fixed", "1h"),
        ("90m", "fixed", "90m"),
        (" 2H ", "fixed", "2h"),
        ("30s", "fixed", "30s"),
        ("120s", "fixed", "2m"),
        ("250ms", "fixed", "250ms"),
        ("1min", "fixed", "1m"),
        ("24h", "fixed", "24h"),
        ("1d", "session", "1d"),
        ("1w", "week", "1w"),
        ("1mo", "month", "1mo"),
        ("1M", "month", "1mo"),  # the M rule: capital M is a month, lower-case m a minute
        ("3mo", "month", "3mo"),
        ("1q", "month", "3mo"),
        ("12mo", "month", "12mo"),
        ("1y", "month", "12mo"),
        ("tick:500", "tick", "tick:500"),
        ("volume:1e4", "volume", "volume:10000"),
        ("dollar:2.5e6", "dollar", "dollar:2500000"),
        ("dollar:0.5", "dollar", "dollar:0.5"),
    ],
)
def test_parse_interval(text: str, kind: str, name: str) -> None:
    iv = parse_interval(text)
    assert (iv.kind, iv.name) == (kind, name)
    assert parse_interval(iv.name) == iv


def test_fixed_width() -> None:
    assert parse_interval("15m").width_ns == 15 * 60 * NS
    with pytest.raises(InvalidInput):
        _ = parse_interval("1d").width_ns


@pytest.mark.parametrize(
    "text", ["", "5", "m", "0m", "-1m", "2d", "2w", "5mo", "1x", "tick:0", "tick:1.5", "volume:-3", 5]
)
def test_parse_interval_rejects(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_interval(text)  # type: ignore[arg-type]


def test_rollup_source_picks_coarsest_tiling_interval() -> None:
    stored = [parse_interval(i) for i in ("1m", "5m", "15m", "1h", "1d")]

    def src(text: str) -> str | None:
        s = rollup_source(parse_interval(text), stored)
        return None if s is None else s.name

    assert src("3m") == "1m"
    assert src("10m") == "5m"
    assert src("30m") == "15m"
    assert src("2h") == "1h"
    assert src("4h") == "1h"
    assert src("1h") == "1h"
    assert src("90s") is None
    assert src("30s") is None
    assert src("1w") == "1d"
    assert src("1mo") == "1d"
    assert src("tick:100") is None


# ---------------------------------------------------------------- calendars


def test_xnys_sessions_dst_early_close_holiday() -> None:
    cals = Calendars()
    points = {
        # Friday before the 2024-03-10 DST change: EST, session 14:30-21:00 UTC.
        "2024-03-08T14:29:59.999999999Z": None,
        "2024-03-08T14:30:00Z": "2024-03-08",
        "2024-03-08T20:59:59.999999999Z": "2024-03-08",
        "2024-03-08T21:00:00Z": None,
        # Monday after: EDT, session 13:30-20:00 UTC.
        "2024-03-11T13:29:59Z": None,
        "2024-03-11T13:30:00Z": "2024-03-11",
        "2024-03-11T19:59:59Z": "2024-03-11",
        "2024-03-11T20:00:00Z": None,
        # Weekend.
        "2024-03-09T15:00:00Z": None,
        # Independence Day is a holiday.
        "2024-07-04T15:00:00Z": None,
        "2024-07-03T16:59:59Z": "2024-07-03",  # early close 13:00 EDT
        "2024-07-03T17:00:00Z": None,
        # Day after Thanksgiving closes at 13:00 EST = 18:00 UTC.
        "2024-11-29T17:59:59.999Z": "2024-11-29",
        "2024-11-29T18:00:00Z": None,
        "2024-11-29T20:00:00Z": None,
    }
    ts = np.array([ns(p) for p in points], dtype=np.int64)
    got = cals.session_labels("XNYS", ts)
    want = [NO_SESSION if d is None else ns(d + "T00:00Z") for d in points.values()]
    assert got.tolist() == want


def test_extended_sessions_follow_local_dates() -> None:
    cals = Calendars(session="extended")
    points = {
        "2024-03-08T09:00:00Z": "2024-03-08",  # 04:00 EST pre-market
        "2024-03-09T00:59:59Z": "2024-03-08",  # 19:59 EST post-market
        "2024-03-09T05:00:00Z": None,  # Saturday 00:00 EST
        "2024-03-11T04:00:00Z": "2024-03-11",  # Monday 00:00 EDT
        "2024-03-11T03:59:59Z": None,  # Sunday 23:59 EDT
        "2024-11-29T20:00:00Z": "2024-11-29",  # after the early close
        "2024-07-04T15:00:00Z": None,  # holiday
    }
    ts = np.array([ns(p) for p in points], dtype=np.int64)
    got = cals.session_labels("XNYS", ts)
    want = [NO_SESSION if d is None else ns(d + "T00:00Z") for d in points.values()]
    assert got.tolist() == want


def test_overnight_futures_sessions() -> None:
    # CME Globex: the 2024-03-11 session opens Sunday 17:00 CT (22:00 UTC, CDT).
    for mode in ("regular", "extended"):
        cals = Calendars(session=mode)  # type: ignore[arg-type]
        ts = np.array([ns("2024-03-10T22:00:00Z"), ns("2024-03-11T12:00:00Z")], dtype=np.int64)
        assert cals.session_labels("CMES", ts).tolist() == [ns("2024-03-11T00:00Z")] * 2


def test_utc_calendar_and_unknown_calendar() -> None:
    cals = Calendars()
    ts = np.array([ns("2024-03-09T23:59:59.999999999Z"), ns("2024-03-10T00:00Z")], dtype=np.int64)
    want = [ns("2024-03-09T00:00Z"), ns("2024-03-10T00:00Z")]
    assert cals.session_labels(None, ts).tolist() == want
    assert cals.session_labels("24/7", ts).tolist() == want
    with pytest.raises(InvalidInput, match="unknown exchange calendar"):
        cals.session_labels("NOPE", ts)


def test_calendar_extends_beyond_default_bounds() -> None:
    cals = Calendars()
    ts = np.array([ns("1999-12-31T15:00:00Z")], dtype=np.int64)
    assert cals.session_labels("XNYS", ts).tolist() == [ns("1999-12-31T00:00Z")]


def test_week_and_month_labels() -> None:
    days = np.array(
        [ns("2024-03-04"), ns("2024-03-08"), ns("2024-03-10"), ns("2024-03-11"), NO_SESSION],
        dtype=np.int64,
    )
    assert week_labels(days).tolist() == [ns("2024-03-04")] * 3 + [ns("2024-03-11"), NO_SESSION]
    assert month_labels(days, 1).tolist() == [ns("2024-03-01")] * 4 + [NO_SESSION]
    assert month_labels(days, 3).tolist() == [ns("2024-01-01")] * 4 + [NO_SESSION]
    assert month_labels(days, 12).tolist() == [ns("2024-01-01")] * 4 + [NO_SESSION]


def test_unknown_session_mode() -> None:
    from marketdb.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        Calendars(session="overnight")  # type: ignore[arg-type]


# ---------------------------------------------------------------- aggregation

CALENDAR_OF = {1: "XNYS", 2: None}
INTERVALS = ("1m", "5m", "15m", "1h", "1d", "1w", "1mo")

# Timestamps concentrate around XNYS session edges (DST week of March 2024) so buckets and
# sessions are cut in every way; a small pool makes equal timestamps (ties on seq) common.
_EDGES = [
    ns(t)
    for t in (
        "2024-03-08T14:30:00Z",
        "2024-03-08T21:00:00Z",
        "2024-03-11T13:30:00Z",
        "2024-03-11T20:00:00Z",
        "2024-03-10T23:59:59.999999999Z",
        "2024-03-29T16:00:00Z",
        "2024-04-01T14:00:00Z",
    )
]
_ts = st.one_of(
    st.sampled_from(_EDGES),
    st.builds(lambda e, d: e + d, st.sampled_from(_EDGES), st.integers(-120 * NS, 120 * NS)),
    st.integers(ns("2024-03-07T00:00Z"), ns("2024-03-13T00:00Z")),
)
_trade = st.tuples(
    st.sampled_from([1, 2]),
    _ts,
    st.integers(0, 3),
    st.sampled_from([99.5, 100.0, 100.25, 101.125]) | st.floats(1.0, 500.0),
    st.sampled_from([1.0, 100.0]) | st.floats(0.001, 1e4),
    st.sampled_from([1, -1, None]),
)
trade_lists = st.lists(_trade, min_size=1, max_size=60, unique_by=lambda t: (t[0], t[1], t[2]))


def _frame(rows: list[tuple[int, int, int, float, float, int | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instrument_id": pd.array([r[0] for r in rows], dtype="int32"),
            "ts": pd.to_datetime([r[1] for r in rows], unit="ns", utc=True),
            "seq": pd.array([r[2] for r in rows], dtype="int32"),
            "price": [r[3] for r in rows],
            "size": [r[4] for r in rows],
            "side": pd.array([r[5] for r in rows], dtype="Int8"),
        }
    )


def _pl(df: pd.DataFrame) -> pl.DataFrame:
    import pyarrow as pa

    return trades_frame(pa.Table.from_pandas(df, preserve_index=False))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=trade_lists, shuffle_seed=st.integers(0, 2**32 - 1))
def test_aggregate_many_equals_pandas_reference(rows: list, shuffle_seed: int) -> None:  # type: ignore[type-arg]
    df = _frame(rows)
    # Row order must not matter: shuffle before aggregating.
    shuffled = df.sample(frac=1.0, random_state=shuffle_seed % 2**32)
    got = aggregate_many(_pl(shuffled), INTERVALS, calendars=Calendars(), calendar_of=CALENDAR_OF)
    for name in INTERVALS:
        want = reference_bars(df, name, calendar_of=CALENDAR_OF)
        assert bar_differences(got[name], want) == [], name


@settings(max_examples=80, deadline=None)
@given(rows=trade_lists, parts=st.lists(st.integers(0, 3), min_size=60, max_size=60))
def test_merge_of_partials_equals_bar_of_union(rows: list, parts: list[int]) -> None:  # type: ignore[type-arg]
    df = _pl(_frame(rows))
    part = pl.Series(parts[: df.height])
    cals = Calendars()
    for name in ("1m", "1h", "1d"):
        whole = aggregate(df, name, calendars=cals, calendar_of=CALENDAR_OF)
        pieces = pl.concat(
            [aggregate(df.filter(part == p), name, calendars=cals, calendar_of=CALENDAR_OF) for p in range(4)]
        )
        assert bar_differences(merge_partials(pieces), whole) == [], name


def test_tie_on_timestamp_breaks_by_seq_and_sides() -> None:
    t = ns("2024-03-08T15:00:00Z")
    df = _frame(
        [
            (1, t, 7, 10.0, 1.0, None),
            (1, t, 3, 11.0, 2.0, None),
            (1, t + 1, 0, 12.0, 3.0, None),
            (1, t + 1, 9, 9.0, 4.0, None),
        ]
    )
    bar = aggregate(_pl(df), "1m").row(0, named=True)
    assert (bar["open"], bar["close"], bar["high"], bar["low"]) == (11.0, 9.0, 12.0, 9.0)
    assert (bar["first_seq"], bar["last_seq"], bar["trade_count"]) == (3, 9, 4)
    assert bar["buy_volume"] is None
    assert bar["sell_volume"] is None
    df.loc[0, "side"] = -1
    bar = aggregate(_pl(df), "1m").row(0, named=True)
    assert (bar["buy_volume"], bar["sell_volume"]) == (0.0, 1.0)


def test_relabel_fixed_and_empty_input() -> None:
    t = ns("2024-03-08T15:00:00Z")
    df = _pl(_frame([(1, t + i * 60 * NS, 0, 100.0 + i, 1.0, 1) for i in range(10)]))
    five = relabel(aggregate(df, "1m"), "5m").sort("ts")
    assert five.get_column("open").to_list() == [100.0, 105.0]
    assert five.get_column("close").to_list() == [104.0, 109.0]
    assert five.get_column("trade_count").to_list() == [5, 5]
    empty = aggregate(df.head(0), "1m")
    assert empty.height == 0
    assert aggregate_many(df.head(0), ["1m", "1d"])["1d"].height == 0


def test_trades_frame_validates_columns() -> None:
    import pyarrow as pa

    with pytest.raises(InvalidInput, match="lacks column"):
        trades_frame(pa.table({"instrument_id": [1], "ts": [1]}))
    with pytest.raises(InvalidInput, match="ts has type"):
        trades_frame(pa.table({"instrument_id": [1], "ts": ["x"], "seq": [0], "price": [1.0], "size": [1.0]}))


def test_daily_needs_calendar_of_instrument() -> None:
    df = _pl(_frame([(5, ns("2024-03-08T15:00:00Z"), 0, 1.0, 1.0, None)]))
    with pytest.raises(InvalidInput, match="no calendar known"):
        aggregate(df, "1d", calendar_of={})


@settings(max_examples=30, deadline=None)
@given(rows=trade_lists)
def test_extended_sessions_equal_the_local_date_rule(rows: list) -> None:  # type: ignore[type-arg]
    df = _frame(rows)
    cals = Calendars(session="extended")
    for name in ("1d", "1w"):
        got = aggregate(_pl(df), name, calendars=cals, calendar_of=CALENDAR_OF)
        want = reference_bars(df, name, calendar_of=CALENDAR_OF, session="extended")
        assert bar_differences(got, want) == [], name
