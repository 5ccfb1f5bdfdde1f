"""Malformed market-data inputs (issue 10 items 7/8): each one is a marketdb ``InvalidInput``
that names the rule and the field, and nothing is written.

Ticks, candles, order books, options chains, corporate actions and instruments; the trading
and accounts inputs have their own table.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

import marketdb
from marketdb.errors import InvalidInput

T = "2024-01-02T14:30:00Z"
NUL = "\x00"


def _digest(db: marketdb.MarketDB, table: str) -> tuple[int, str]:
    with db.raw() as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT t::text FROM {} t").format(psycopg.sql.Identifier(table))
        ).fetchall()
    return len(rows), hashlib.sha256("\n".join(sorted(r[0] for r in rows)).encode()).hexdigest()


def tick(**kw: Any) -> list[dict[str, Any]]:
    return [{"symbol": "AAA", "ts": T, "price": 10.0, "size": 1.0, **kw}]


def quote(**kw: Any) -> list[dict[str, Any]]:
    return [{"symbol": "AAA", "ts": T, "bid": 9.9, "ask": 10.1, **kw}]


def candle(**kw: Any) -> list[dict[str, Any]]:
    return [{"symbol": "AAA", "ts": T, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
             "volume": 100.0, **kw}]


def book(**kw: Any) -> list[dict[str, Any]]:
    return [{"symbol": "AAA", "ts": T, "bid_prices": [10.0, 9.9], "bid_sizes": [1.0, 2.0],
             "ask_prices": [10.1, 10.2], "ask_sizes": [1.0, 3.0], **kw}]


def option(**kw: Any) -> list[dict[str, Any]]:
    return [{"underlying": "AAA", "ts": "2024-01-02T20:00:00Z", "expiration": "2024-03-15",
             "strike": 10.0, "type": "call", "bid": 1.0, "ask": 1.1, **kw}]


def action(**kw: Any) -> list[dict[str, Any]]:
    return [{"symbol": "AAA", "type": "cash_dividend", "ex_date": "2024-01-02", "amount": 0.2,
             **kw}]


def instrument(**kw: Any) -> list[dict[str, Any]]:
    return [{"symbol": "NEW1", "name": "New One", **kw}]


def bad_utf8_csv(tmp: Path) -> Path:
    path = tmp / "latin1.csv"
    path.write_bytes(b"ts,symbol,price,size\n" + T.encode() + b",AAA,10.0,1\n"
                     + T.encode() + b",Z\xfcrich,10.0,1\n")
    return path


Make = Callable[[Path], Any]
# (id, table, writer, make input, rule, field)
CASES: list[tuple[str, str, str, Make, str, str]] = [
    # ---- ticks: trades and quotes
    ("NUL in trade_id", "trades", "write_ticks", lambda _: tick(trade_id=f"T{NUL}1"),
     "nul_character", "trade_id"),
    ("NUL in exchange", "trades", "write_ticks", lambda _: tick(exchange=f"XN{NUL}"),
     "nul_character", "exchange"),
    ("NUL in symbol", "trades", "write_ticks", lambda _: tick(symbol=f"AA{NUL}A"),
     "nul_character", "symbol"),
    ("NUL in conditions", "trades", "write_ticks", lambda _: tick(conditions=f"@{NUL}"),
     "nul_character", "conditions"),
    ("NUL in source", "trades", "write_ticks", lambda _: tick(source=f"feed{NUL}"),
     "nul_character", "source"),
    ("price 1e308", "trades", "write_ticks", lambda _: tick(price=1e308), "magnitude", "price"),
    ("price x size overflow", "trades", "write_ticks", lambda _: tick(price=1e16, size=1e16),
     "notional_overflow", "size"),
    ("size 1e19", "trades", "write_ticks", lambda _: tick(size=1e19), "magnitude", "size"),
    ("non-UTF-8 CSV", "trades", "write_ticks", bad_utf8_csv, "encoding", "symbol"),
    ("id of another instrument", "trades", "write_ticks",
     lambda _: tick(instrument_id="@BBB"), "instrument_mismatch", "instrument_id"),
    ("unknown instrument id", "trades", "write_ticks",
     lambda _: [{"instrument_id": 987654, "ts": T, "price": 1.0, "size": 1.0}],
     "unknown_symbol", "instrument_id"),
    ("trade id reused with another price", "trades", "write_ticks",
     lambda _: tick(trade_id="X") + tick(trade_id="X", price=10.5),
     "duplicate_key_conflict", "key"),
    ("unreadable time", "trades", "write_ticks", lambda _: tick(ts="yesterday"), "bad_value",
     "ts"),
    ("negative price", "trades", "write_ticks", lambda _: tick(price=-1.0),
     "non_positive_price", "price"),
    ("unknown side", "trades", "write_ticks", lambda _: tick(side="sideways"), "bad_value",
     "side"),
    ("quote bid 1e300", "quotes", "write_ticks", lambda _: quote(bid=1e300, ask=2e300),
     "magnitude", "bid"),
    ("negative bid size", "quotes", "write_ticks", lambda _: quote(bid_size=-5.0),
     "negative_size", "bid_size"),
    ("NaN ask", "quotes", "write_ticks",
     lambda _: pa.table({"symbol": ["AAA"], "ts": [T], "bid": [9.9], "ask": [math.nan]}),
     "not_finite", "ask"),
    # ---- candles
    ("vwap above high", "candles", "write_candles", lambda _: candle(vwap=11.5),
     "vwap_outside_range", "vwap"),
    ("vwap below low", "candles", "write_candles", lambda _: candle(vwap=8.0),
     "vwap_outside_range", "vwap"),
    ("open 1e308", "candles", "write_candles",
     lambda _: candle(open=1e308, high=1e308), "magnitude", "open"),
    ("negative volume", "candles", "write_candles", lambda _: candle(volume=-5.0),
     "negative_size", "volume"),
    ("negative trade count", "candles", "write_candles", lambda _: candle(trade_count=-1),
     "negative_count", "trade_count"),
    ("crossed closing quote", "candles", "write_candles", lambda _: candle(bid=10.6, ask=10.4),
     "crossed_quote", "bid"),
    ("candle id of another instrument", "candles", "write_candles",
     lambda _: candle(instrument_id="@BBB"), "instrument_mismatch", "instrument_id"),
    ("vendor instrument id", "candles", "write_candles",
     lambda _: [{k: v for k, v in candle(instrument_id=555_555)[0].items() if k != "symbol"}],
     "unknown_symbol", "instrument_id"),
    ("NUL in candle source", "candles", "write_candles", lambda _: candle(source=f"v{NUL}"),
     "nul_character", "source"),
    ("high below low", "candles", "write_candles", lambda _: candle(high=8.0, low=9.0),
     "high_below_low", "high"),
    # ---- order books
    ("NUL in book source", "order_book_snapshots", "write_order_books",
     lambda _: book(source=f"b{NUL}"), "nul_character", "source"),
    ("NaN book level", "order_book_snapshots", "write_order_books",
     lambda _: book(bid_prices=[math.nan, 9.9]), "not_finite", "bid_prices"),
    ("book level 1e300", "order_book_snapshots", "write_order_books",
     lambda _: book(ask_prices=[10.1, 1e300]), "magnitude", "ask_prices"),
    ("negative book size", "order_book_snapshots", "write_order_books",
     lambda _: book(bid_sizes=[1.0, -2.0]), "negative_size", "bid_sizes"),
    ("crossed book", "order_book_snapshots", "write_order_books",
     lambda _: book(bid_prices=[10.3, 9.9]), "crossed_book", "bid_prices"),
    ("book shape", "order_book_snapshots", "write_order_books",
     lambda _: book(ask_sizes=[1.0]), "book_shape", "ask_prices"),
    # ---- options chains
    ("negative strike", "options_chains", "write_options_chain", lambda _: option(strike=-10.0),
     "non_positive_price", "strike"),
    ("unknown option right", "options_chains", "write_options_chain",
     lambda _: option(type="straddle"), "bad_value", "option_right"),
    ("option bid 1e300", "options_chains", "write_options_chain",
     lambda _: option(bid=1e300, ask=2e300), "magnitude", "bid"),
    ("NaN delta", "options_chains", "write_options_chain",
     lambda _: pa.Table.from_pylist(option(delta=math.nan)), "not_finite", "delta"),
    ("NUL in option source", "options_chains", "write_options_chain",
     lambda _: option(source=f"o{NUL}"), "nul_character", "source"),
    ("negative implied vol", "options_chains", "write_options_chain",
     lambda _: option(iv=-0.1), "negative_iv", "implied_vol"),
    # ---- corporate actions
    ("unknown action type", "corporate_actions", "write_corporate_actions",
     lambda _: action(type="merger"), "bad_value", "action_type"),
    ("NUL in currency", "corporate_actions", "write_corporate_actions",
     lambda _: action(currency=f"U{NUL}SD"), "nul_character", "currency"),
    ("dividend 1e300", "corporate_actions", "write_corporate_actions",
     lambda _: action(amount=1e300), "magnitude", "amount"),
    ("impossible date", "corporate_actions", "write_corporate_actions",
     lambda _: action(ex_date="2024-13-45"), "bad_value", "ex_date"),
    ("action for unknown symbol", "corporate_actions", "write_corporate_actions",
     lambda _: action(symbol="NOPE"), "unknown_symbol", "symbol"),
    ("ex-date in 1800", "corporate_actions", "write_corporate_actions",
     lambda _: action(ex_date="1800-01-02"), "timestamp_range", "ex_date"),
    # ---- instruments
    ("NUL in instrument symbol", "instruments", "write_instruments",
     lambda _: instrument(symbol=f"N{NUL}1"), "nul_character", "symbol"),
    ("NUL in instrument name", "instruments", "write_instruments",
     lambda _: instrument(name=f"x{NUL}y"), "nul_character", "name"),
    ("NUL in instrument exchange", "instruments", "write_instruments",
     lambda _: instrument(exchange=f"X{NUL}"), "nul_character", "exchange"),
    ("empty symbol", "instruments", "write_instruments", lambda _: instrument(symbol=None),
     "missing_value", "symbol"),
    ("metadata not JSON", "instruments", "write_instruments",
     lambda _: instrument(metadata="{not json"), "bad_value", "metadata"),
    ("negative tick size", "instruments", "write_instruments",
     lambda _: instrument(tick_size=-0.01), "non_positive_price", "tick_size"),
]


@pytest.fixture
def seeded(db: marketdb.MarketDB) -> marketdb.MarketDB:
    db.ingest.write_instruments([{"symbol": "AAA"}, {"symbol": "BBB"}])
    t0 = "2024-01-01T14:30:00Z"
    db.ingest.write_ticks([{"symbol": "AAA", "ts": t0, "price": 10.0, "size": 1.0,
                            "bid": 9.9, "ask": 10.1}])
    db.ingest.write_candles(candle(ts=t0), interval="1m")
    db.ingest.write_order_books(book(ts=t0))
    db.ingest.write_options_chain(option(ts="2024-01-01T20:00:00Z"))
    db.ingest.write_corporate_actions(action(ex_date="2023-06-01"))
    return db


def _resolve_ids(db: marketdb.MarketDB, rows: Any) -> Any:
    """``"@SYM"`` in an instrument_id stands for that symbol's id (another instrument's)."""
    if not isinstance(rows, list):
        return rows
    with db.raw() as conn:
        ids = dict(conn.execute("SELECT symbol, id FROM instruments").fetchall())
    return [{k: (ids[v[1:]] if isinstance(v, str) and v.startswith("@") and k == "instrument_id"
                 else v) for k, v in r.items()} for r in rows]


def test_the_table_covers_every_kind_with_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert {c[1] for c in CASES} >= {"trades", "quotes", "candles", "order_book_snapshots",
                                     "options_chains", "corporate_actions", "instruments"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_a_clear_error_and_writes_nothing(
    seeded: marketdb.MarketDB, tmp_path: Path, case: tuple[str, str, str, Make, str, str]
) -> None:
    _, table, writer, make, rule, field = case
    db = seeded
    before = _digest(db, table)
    data = _resolve_ids(db, make(tmp_path))
    kw: dict[str, Any] = {"interval": "1m"} if writer == "write_candles" else {}
    with pytest.raises(InvalidInput) as err:
        getattr(db.ingest, writer)(data, **kw)
    message = str(err.value)
    details = err.value.details or {}
    named = [(r["rule"], r["field"]) for r in details.get("rejections", [])]
    named.append((details.get("rule"), details.get("field")))
    assert (rule, field) in named, (named, message)
    assert rule in message
    assert field in message
    assert "Traceback" not in message
    assert _digest(db, table) == before
    if isinstance(data, list) and writer != "write_instruments":
        # on_invalid="skip" returns the rejection instead of raising, still writing nothing
        res = getattr(db.ingest, writer)(data, on_invalid="skip", **kw)
        assert res.inserted == 0
        assert any(r.rule == rule and r.field == field for r in res.rejections)
        assert _digest(db, table) == before
