"""Every validation rule: a bad batch is refused with a clear error and the table is unchanged.

Plus Hypothesis properties: valid generated data is never rejected, and any single-field
corruption of a valid row is caught (with the row number).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketdb
from marketdb.errors import InvalidInput
from marketdb.services.ingest import ValidationPolicy
from marketdb.services.ingest._normalize import Normalizer
from marketdb.services.ingest._prepare import Preparer, SymbolSpan
from marketdb.services.ingest._schemas import CANDLES, TICKS

T0 = pd.Timestamp("2024-01-02T14:30:00Z")


def digest(db: marketdb.MarketDB, table: str) -> tuple[int, str]:
    with db.raw() as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT t::text FROM {} t").format(psycopg.sql.Identifier(table))
        ).fetchall()
    return len(rows), hashlib.sha256("\n".join(sorted(r[0] for r in rows)).encode()).hexdigest()


def ticks(n: int = 4, **over: Any) -> pd.DataFrame:
    df = pd.DataFrame({
        "symbol": ["AAA"] * n,
        "ts": [T0 + pd.Timedelta(seconds=i) for i in range(n)],
        "price": [10.0 + i for i in range(n)],
        "size": [1.0] * n,
    })
    for k, v in over.items():
        df[k] = v
    return df


def quotes(n: int = 3, **over: Any) -> pd.DataFrame:
    df = pd.DataFrame({"symbol": ["AAA"] * n, "ts": [T0 + pd.Timedelta(seconds=i) for i in range(n)],
                       "bid": [9.9] * n, "ask": [10.1] * n})
    for k, v in over.items():
        df[k] = v
    return df


def candles(n: int = 3, **over: Any) -> pd.DataFrame:
    df = pd.DataFrame({"symbol": ["AAA"] * n,
                       "ts": [T0 + pd.Timedelta(minutes=i) for i in range(n)],
                       "open": [10.0] * n, "high": [11.0] * n, "low": [9.0] * n, "close": [10.5] * n,
                       "volume": [100.0] * n})
    for k, v in over.items():
        df[k] = v
    return df


def with_row(df: pd.DataFrame, row: int, **values: Any) -> pd.DataFrame:
    df = df.copy()
    for k, v in values.items():
        if k not in df.columns:
            df[k] = None
        df[k] = df[k].astype(object)
        df.at[row, k] = v
    return df


def arrow_ticks(**cols: Any) -> pa.Table:
    """Arrow input: NaN stays NaN (pandas would turn it into 'missing')."""
    base = {"symbol": ["AAA", "AAA"], "ts": pa.array([T0.value, T0.value + 10**9],
                                                     pa.timestamp("ns", "UTC")),
            "price": [10.0, 11.0], "size": [1.0, 1.0]}
    base.update(cols)
    return pa.table(base)


# (id, table, writer, bad input, keyword options, rule, text that must appear)
Case = tuple[str, str, str, Callable[[], Any], dict[str, Any], str, str]
CASES: list[Case] = [
    ("missing column", "trades", "write_ticks", lambda: ticks().drop(columns=["size"]), {},
     "missing_column", "missing required column(s): size"),
    ("mistyped column", "trades", "write_ticks",
     lambda: arrow_ticks(price=pa.array([[1.0], [2.0]])), {}, "mistyped_column",
     "cannot hold numbers"),
    ("unreadable value", "trades", "write_ticks", lambda: with_row(ticks(), 2, price="ten"), {},
     "bad_value", "row 2 price='ten'"),
    ("naive timestamps", "trades", "write_ticks",
     lambda: ticks(ts=[T0.tz_localize(None) + pd.Timedelta(seconds=i) for i in range(4)]), {},
     "naive_timestamp", "without a time zone"),
    ("far past", "trades", "write_ticks",
     lambda: with_row(ticks(), 1, ts=pd.Timestamp("1971-01-01T00:00Z")), {}, "timestamp_range",
     "row 1 ts="),
    ("far future", "trades", "write_ticks",
     lambda: with_row(ticks(), 3, ts=pd.Timestamp("2199-01-01T00:00Z")), {}, "timestamp_range",
     "must be between 1990-01-01"),
    ("DST gap", "trades", "write_ticks",
     lambda: ticks(ts=["2021-03-14 01:59:00", "2021-03-14 02:30:00", "2021-03-14 03:01:00",
                       "2021-03-14 03:02:00"]), {"tz": "America/New_York"},
     "ambiguous_local_time", "row 1 ts='2021-03-14 02:30:00'"),
    ("NaN price", "trades", "write_ticks", lambda: arrow_ticks(price=[10.0, math.nan]), {},
     "not_finite", "row 1 price=nan"),
    ("Infinity size", "trades", "write_ticks", lambda: arrow_ticks(size=[math.inf, 1.0]), {},
     "not_finite", "row 0 size=inf"),
    ("zero price", "trades", "write_ticks", lambda: with_row(ticks(), 0, price=0.0), {},
     "non_positive_price", "row 0 price=0.0"),
    ("negative price", "trades", "write_ticks", lambda: with_row(ticks(), 2, price=-3.5), {},
     "non_positive_price", "row 2 price=-3.5"),
    ("negative size", "trades", "write_ticks", lambda: with_row(ticks(), 1, size=-1.0), {},
     "negative_size", "row 1 size=-1.0"),
    ("missing size", "trades", "write_ticks", lambda: with_row(ticks(), 1, size=None), {},
     "missing_value", "row 1 size=null"),
    ("empty tick", "trades", "write_ticks", lambda: with_row(ticks(), 3, price=None, size=None),
     {}, "empty_tick", "row 3"),
    ("bad side", "trades", "write_ticks", lambda: with_row(ticks(), 0, side="sideways"), {},
     "bad_value", "row 0 side='sideways'"),
    ("negative seq", "trades", "write_ticks", lambda: ticks(seq=[0, 0, -1, 0]), {},
     "negative_seq", "row 2 seq=-1"),
    ("in-batch duplicate key", "trades", "write_ticks",
     lambda: ticks(ts=[T0] * 4, seq=[0, 1, 1, 2]), {}, "duplicate_key_conflict",
     "row 1 key=(instrument_id="),
    ("crossed quote", "quotes", "write_ticks", lambda: with_row(quotes(), 1, bid=10.5), {},
     "crossed_quote", "row 1 bid=10.5 > ask=10.1"),
    ("unknown symbol", "trades", "write_ticks", lambda: with_row(ticks(), 2, symbol="NOPE"), {},
     "unknown_symbol", "unknown symbols: NOPE"),
    ("high below low", "candles", "write_candles", lambda: with_row(candles(), 1, high=8.0), {},
     "high_below_low", "row 1 high=8.0 (low=9.0)"),
    ("high below open/close", "candles", "write_candles",
     lambda: with_row(candles(), 0, close=11.5), {}, "high_below_open_close",
     "row 0 high=11.0 (open=10.0, close=11.5)"),
    ("low above open/close", "candles", "write_candles",
     lambda: with_row(candles(), 2, open=8.5), {}, "low_above_open_close",
     "row 2 low=9.0 (open=8.5, close=10.5)"),
    ("candle NaN", "candles", "write_candles",
     lambda: pa.table({"symbol": ["AAA"], "ts": pa.array([T0.value], pa.timestamp("ns", "UTC")),
                       "open": [1.0], "high": [math.nan], "low": [0.5], "close": [1.0]}), {},
     "not_finite", "row 0 high=nan"),
    ("candle duplicate", "candles", "write_candles",
     lambda: with_row(candles(), 1, ts=T0, close=10.4), {}, "duplicate_key_conflict",
     "row 0 key=(instrument_id="),
    ("crossed book", "order_book_snapshots", "write_order_books",
     lambda: [{"symbol": "AAA", "ts": "2024-01-02T14:30:00Z", "bid_prices": [10.2],
               "bid_sizes": [1.0], "ask_prices": [10.1], "ask_sizes": [1.0]}], {},
     "crossed_book", "row 0 bid_prices=10.2 > ask=10.1"),
    ("book shape", "order_book_snapshots", "write_order_books",
     lambda: [{"symbol": "AAA", "ts": "2024-01-02T14:30:00Z", "bid_prices": [10.0, 9.9],
               "bid_sizes": [1.0], "ask_prices": [10.1], "ask_sizes": [1.0]}], {},
     "book_shape", "row 0 bid_prices=2"),
    ("book order", "order_book_snapshots", "write_order_books",
     lambda: [{"symbol": "AAA", "ts": "2024-01-02T14:30:00Z", "bid_prices": [9.9, 10.0],
               "bid_sizes": [1.0, 1.0], "ask_prices": [10.1], "ask_sizes": [1.0]}], {},
     "book_order", "row 0 bid_prices="),
    ("option expired", "options_chains", "write_options_chain",
     lambda: [{"underlying": "AAA", "ts": "2024-01-02T20:00:00Z", "expiration": "2023-12-29",
               "strike": 10.0, "type": "call", "bid": 1.0, "ask": 1.1}], {},
     "expiration_before_ts", "row 0 expiration=2023-12-29"),
    ("negative iv", "options_chains", "write_options_chain",
     lambda: [{"underlying": "AAA", "ts": "2024-01-02T20:00:00Z", "expiration": "2024-03-15",
               "strike": 10.0, "type": "put", "iv": -0.2}], {}, "negative_iv",
     "row 0 implied_vol=-0.2"),
    ("negative option bid", "options_chains", "write_options_chain",
     lambda: [{"underlying": "AAA", "ts": "2024-01-02T20:00:00Z", "expiration": "2024-03-15",
               "strike": 10.0, "type": "put", "bid": -0.05}], {}, "negative_price",
     "row 0 bid=-0.05"),
    ("split without ratio", "corporate_actions", "write_corporate_actions",
     lambda: [{"symbol": "AAA", "type": "split", "ex_date": "2024-01-02"}], {},
     "missing_value", "a split needs its ratio"),
    ("zero split ratio", "corporate_actions", "write_corporate_actions",
     lambda: [{"symbol": "AAA", "type": "split", "ex_date": "2024-01-02", "ratio": 0.0}], {},
     "non_positive_ratio", "row 0 ratio=0.0"),
    ("pay before ex", "corporate_actions", "write_corporate_actions",
     lambda: [{"symbol": "AAA", "type": "dividend", "ex_date": "2024-01-02", "amount": 0.2,
               "pay_date": "2023-12-01"}], {}, "date_order", "row 0 pay_date=2023-12-01"),
    ("negative dividend", "corporate_actions", "write_corporate_actions",
     lambda: [{"symbol": "AAA", "type": "dividend", "ex_date": "2024-01-02", "amount": -0.2}], {},
     "negative_size", "row 0 amount=-0.2"),
]

_SEED: dict[str, tuple[str, Callable[[], Any]]] = {
    "trades": ("write_ticks", lambda: ticks(6).assign(ts=[T0 - pd.Timedelta(hours=1, seconds=i)
                                                          for i in range(6)])),
    "quotes": ("write_ticks", lambda: quotes(2).assign(ts=[T0 - pd.Timedelta(hours=1)] * 2,
                                                       bid=[9.0, 9.1])),
    "candles": ("write_candles", lambda: candles(2).assign(ts=[T0 - pd.Timedelta(days=1, minutes=i)
                                                               for i in range(2)])),
    "order_book_snapshots": ("write_order_books", lambda: [{
        "symbol": "AAA", "ts": "2024-01-01T14:30:00Z", "bid_prices": [10.0], "bid_sizes": [1.0],
        "ask_prices": [10.1], "ask_sizes": [1.0]}]),
    "options_chains": ("write_options_chain", lambda: [{
        "underlying": "AAA", "ts": "2024-01-01T20:00:00Z", "expiration": "2024-03-15",
        "strike": 10.0, "type": "call", "bid": 1.0, "ask": 1.1}]),
    "corporate_actions": ("write_corporate_actions", lambda: [{
        "symbol": "AAA", "type": "split", "ex_date": "2023-06-01", "ratio": 2.0}]),
}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_batch_is_refused_with_the_rule_and_rows_and_writes_nothing(
    db: marketdb.MarketDB, case: Case
) -> None:
    _, table, writer, make, options, rule, text = case
    db.ingest.write_instruments([{"symbol": "AAA"}])
    seed_writer, seed = _SEED[table]
    kw = {"interval": "1m"} if seed_writer == "write_candles" else {}
    assert getattr(db.ingest, seed_writer)(seed(), **kw).inserted > 0
    before = digest(db, table)
    opts = dict(options)
    if writer == "write_candles":
        opts.setdefault("interval", "1m")
    with pytest.raises(InvalidInput) as err:
        getattr(db.ingest, writer)(make(), **opts)
    message = str(err.value)
    assert rule in message or err.value.details.get("rule") == rule
    assert text in message, message
    if rule not in ("missing_column", "mistyped_column", "naive_timestamp"):
        assert "the batch was not written" in message
        assert any(r["rule"] == rule for r in err.value.details["rejections"])
    assert digest(db, table) == before


def test_non_positive_prices_are_allowed_for_configured_asset_classes(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "CL-SPREAD", "asset_class": "future"},
                                 {"symbol": "AAA", "asset_class": "stock"}])
    spread = ticks(2, symbol="CL-SPREAD", price=[-0.25, 0.0])
    with pytest.raises(InvalidInput, match="non_positive_price"):
        db.ingest.write_ticks(spread)
    ing = marketdb.services.ingest.Ingest(db, non_positive_prices={"future"})
    assert ing.write_ticks(spread).inserted == 2
    with pytest.raises(InvalidInput, match="non_positive_price"):
        ing.write_ticks(ticks(1, price=[-1.0]))  # still refused for stocks


def test_crossed_quotes_are_stored_when_the_policy_allows_them(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}])
    crossed = with_row(quotes(), 1, bid=10.5)
    assert db.ingest.write_ticks(crossed, crossed="allow").inserted == 3


def test_the_error_lists_each_rule_with_counts_and_the_first_rows(db: marketdb.MarketDB) -> None:
    db.ingest.write_instruments([{"symbol": "AAA"}])
    df = ticks(12, price=[-1.0] * 7 + [1.0] * 5)
    df.loc[9, "size"] = -2.0
    with pytest.raises(InvalidInput) as err:
        db.ingest.write_ticks(df)
    msg = str(err.value)
    assert "8 of 12 rows in this batch broke 2 validation rules" in msg
    assert "non_positive_price: 7 rows" in msg
    assert "(+2 more)" in msg
    assert "row 0 price=-1.0, row 1 price=-1.0" in msg
    assert "negative_size: 1 row" in msg
    assert "row 9 size=-2.0" in msg
    assert "on_invalid='skip'" in msg
    assert len(err.value.details["rejections"]) == 8  # the full list, not only the examples


# --------------------------------------------------------------- properties
SYMBOLS = ("AAA", "BBB", "CCC")
_SPANS = {s: [SymbolSpan(i + 1, None, None, "stock")] for i, s in enumerate(SYMBOLS)}
_LO = pd.Timestamp("2015-01-01T00:00Z").value
_HI = pd.Timestamp("2024-06-01T00:00Z").value

prices = st.floats(min_value=1e-4, max_value=1e6, allow_nan=False, allow_infinity=False)
sizes = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def tick_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {"symbol": draw(st.sampled_from(SYMBOLS)),
                           "ts": draw(st.integers(_LO, _HI))}
    kind = draw(st.sampled_from(["trade", "quote", "both"]))
    if kind in ("trade", "both"):
        row["price"] = draw(prices)
        row["size"] = draw(sizes)
        row["side"] = draw(st.sampled_from([1, -1, None]))
    if kind in ("quote", "both"):
        bid = draw(prices)
        row["bid"] = bid
        row["ask"] = bid + draw(st.floats(min_value=0.0, max_value=10.0))
        row["bid_size"] = draw(sizes)
    return row


def _tick_table(rows: list[dict[str, Any]]) -> pa.Table:
    cols = ("symbol", "ts", "price", "size", "side", "bid", "ask", "bid_size")
    data: dict[str, Any] = {c: [r.get(c) for r in rows] for c in cols}
    return pa.table({
        "symbol": pa.array(data["symbol"], pa.string()),
        "ts": pa.array(data["ts"], pa.timestamp("ns", "UTC")),
        **{c: pa.array(data[c], pa.float64()) for c in ("price", "size", "bid", "ask", "bid_size")},
        "side": pa.array(data["side"], pa.int8()),
    })


def _prepare(table: pa.Table) -> Any:
    norm = Normalizer(TICKS)
    prep = Preparer(TICKS, policy=ValidationPolicy(), resolver=lambda syms: {
        s: _SPANS[s] for s in syms if s in _SPANS})
    return prep(norm(table.to_batches()[0] if table.num_rows else table, 0))


@settings(max_examples=150, deadline=None)
@given(st.lists(tick_rows(), min_size=1, max_size=40))
def test_valid_generated_ticks_are_never_rejected(rows: list[dict[str, Any]]) -> None:
    prepared = _prepare(_tick_table(rows))
    assert not prepared.report, prepared.report.rules()
    n_trades = sum("price" in r for r in rows)
    n_quotes = sum("bid" in r for r in rows)
    assert prepared.tables["trades"].num_rows == n_trades
    assert prepared.tables["quotes"].num_rows == n_quotes


_CORRUPTIONS: dict[str, list[Any]] = {
    "price": [0.0, -1.0, math.nan, math.inf, -math.inf],
    "size": [-1.0, math.nan, math.inf],
    "bid": [math.nan, -2.0, 0.0, 1e12],  # 1e12 crosses the ask
    "ask": [math.nan, -0.5, 0.0],
    "bid_size": [-3.0, math.inf],
    "ts": [pd.Timestamp("1980-01-01T00:00Z").value, pd.Timestamp("2150-01-01T00:00Z").value, None],
    "symbol": ["NOPE", None],
    "side": [7],
}


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, str]:
    rows = draw(st.lists(tick_rows(), min_size=1, max_size=20))
    i = draw(st.integers(0, len(rows) - 1))
    fields = [f for f in _CORRUPTIONS if f in rows[i] or f in ("ts", "symbol")]
    field = draw(st.sampled_from(fields))
    rows[i] = {**rows[i], field: draw(st.sampled_from(_CORRUPTIONS[field]))}
    return rows, i, field


@settings(max_examples=200, deadline=None)
@given(corrupted())
def test_any_single_field_corruption_of_a_valid_row_is_caught(
    case: tuple[list[dict[str, Any]], int, str],
) -> None:
    rows, i, field = case
    prepared = _prepare(_tick_table(rows))
    flagged = {r.row for r in prepared.report.rejections()}
    assert i in flagged, (field, rows[i], prepared.report.rules())
    assert flagged == {i}  # and only that row
    kept = sum(t.num_rows for t in prepared.tables.values())
    assert kept == sum(("price" in r) + ("bid" in r) for j, r in enumerate(rows) if j != i)


@st.composite
def candle_rows(draw: st.DrawFn) -> dict[str, Any]:
    o, c = draw(prices), draw(prices)
    hi = max(o, c) + draw(st.floats(0, 100))
    lo = min(o, c) * draw(st.floats(0.01, 1.0))
    return {"symbol": draw(st.sampled_from(SYMBOLS)), "ts": draw(st.integers(_LO, _HI)),
            "open": o, "high": hi, "low": lo, "close": c, "volume": draw(sizes)}


@settings(max_examples=100, deadline=None)
@given(st.lists(candle_rows(), min_size=1, max_size=30, unique_by=lambda r: (r["symbol"], r["ts"])),
       st.data())
def test_candles_valid_pass_and_a_corrupted_field_is_caught(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    def run(rs: list[dict[str, Any]]) -> Any:
        t = pa.table({"symbol": [r["symbol"] for r in rs],
                      "ts": pa.array([r["ts"] for r in rs], pa.timestamp("ns", "UTC")),
                      **{k: pa.array([r[k] for r in rs], pa.float64())
                         for k in ("open", "high", "low", "close", "volume")}})
        prep = Preparer(CANDLES, policy=ValidationPolicy(min_ts=np.datetime64("1900-01-01", "ns")),
                        resolver=lambda syms: {s: _SPANS[s] for s in syms if s in _SPANS})
        return prep(Normalizer(CANDLES, interval="1m", default_source="t")(t.to_batches()[0], 0))

    assert not run(rows).report
    i = data.draw(st.integers(0, len(rows) - 1))
    r = rows[i]
    field, value = data.draw(st.sampled_from([
        ("high", min(r["open"], r["close"]) / 2), ("low", max(r["open"], r["close"]) * 2),
        ("open", r["high"] * 2 + 1), ("close", -1.0), ("volume", -5.0), ("open", math.nan),
    ]))
    bad = [dict(x) for x in rows]
    bad[i][field] = value
    assert i in {x.row for x in run(bad).report.rejections()}


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(corrupted())
def test_a_corrupted_batch_leaves_the_database_unchanged(
    db: marketdb.MarketDB, case: tuple[list[dict[str, Any]], int, str]
) -> None:
    db.ingest.write_instruments([{"symbol": s} for s in SYMBOLS])
    rows, _, _ = case
    before = (digest(db, "trades"), digest(db, "quotes"))
    with pytest.raises(InvalidInput):
        db.ingest.write_ticks(_tick_table(rows))
    assert (digest(db, "trades"), digest(db, "quotes")) == before
