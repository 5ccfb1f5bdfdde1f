"""Polygon.io (Massive): aggregates at any timespan, trades, quotes (v3, ns times),
splits and dividends, reference tickers (FIGI, CIK).

Every list endpoint pages with ``next_url``; the key is the ``apiKey`` query
parameter (added to every request, ``next_url`` included, and redacted from errors).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from marketdb.errors import InvalidInput, Unavailable

from ._base import Page, Request, from_ns, ms, ns, parse_interval
from ._http import HttpClient, KeyPlace

__all__ = ["BASE_URL", "KEY", "Polygon"]

BASE_URL = "https://api.polygon.io"
KEY = KeyPlace(stored_as="polygon_api_key", env="POLYGON_API_KEY", param="apiKey")
_TIMESPAN = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month"}
_REFERENCE_FIELDS = ("name", "market", "locale", "primary_exchange", "type", "active",
                     "currency_name", "cik", "composite_figi", "share_class_figi", "market_cap",
                     "weighted_shares_outstanding", "list_date", "delisted_utc",
                     "last_updated_utc")


class Polygon:
    """Polygon REST adapter (see the module docstring)."""

    name = "polygon"
    kinds = frozenset({"bars", "trades", "quotes", "actions", "reference"})
    key_place: KeyPlace | None = KEY
    key_required = True

    def __init__(self, http: HttpClient, *, limit: int = 50_000) -> None:
        self.http = http
        self.limit = limit

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[tuple[list[dict[str, Any]],
                                                                           bool]]:
        """(results, is_last) per page, following ``next_url``."""
        body = self.http.get(path, params)
        seen: set[str] = set()
        while True:
            results = list(body.get("results") or []) if isinstance(body, dict) else []
            nxt = body.get("next_url") if isinstance(body, dict) else None
            if nxt in seen:
                raise Unavailable(f"polygon: next_url repeats ({self.http.redact(str(nxt))})",
                                  hint="the provider is paging in a loop; try again later")
            yield results, not nxt
            if not nxt:
                return
            seen.add(nxt)
            body = self.http.get(nxt)

    def fetch(self, req: Request) -> Iterator[Page]:
        """Pages of ``req`` in time order."""
        if req.kind == "bars":
            yield from self._bars(req)
        elif req.kind in ("trades", "quotes"):
            yield from self._ticks(req)
        elif req.kind == "actions":
            yield from self._actions(req)
        elif req.kind == "reference":
            body = self.http.get(f"/v3/reference/tickers/{req.symbol}")
            res = body.get("results") or {}
            rec = {"symbol": req.symbol, **{k: res[k] for k in _REFERENCE_FIELDS if k in res}}
            yield Page([rec], req.end)
        else:
            raise InvalidInput(f"polygon has no {req.kind!r} data")

    def _bars(self, req: Request) -> Iterator[Page]:
        n, unit = parse_interval(req.interval or "1d")
        path = (f"/v2/aggs/ticker/{req.symbol}/range/{n}/{_TIMESPAN[unit]}/"
                f"{ms(req.start)}/{ms(req.end) - 1}")
        opts = {"ts_unit": "ms", "tz": "America/New_York"}  # daily bars: t is NY midnight
        for results, last in self._pages(path, {"adjusted": "true", "sort": "asc",
                                                "limit": self.limit}):
            rows = [{"symbol": req.symbol, "ts": r["t"], "open": r["o"], "high": r["h"],
                     "low": r["l"], "close": r["c"], "volume": r.get("v"), "vwap": r.get("vw"),
                     "trade_count": r.get("n")} for r in results]
            rows = [r for r in rows if ms(req.start) <= r["ts"] < ms(req.end)]
            done = req.end if last or not rows else dt.datetime.fromtimestamp(
                (rows[-1]["ts"] + 1) / 1000, dt.UTC)
            yield Page(rows, done, opts)

    def _ticks(self, req: Request) -> Iterator[Page]:
        params = {"timestamp.gte": ns(req.start), "timestamp.lt": ns(req.end), "order": "asc",
                  "sort": "timestamp", "limit": self.limit}
        for results, last in self._pages(f"/v3/{req.kind}/{req.symbol}", params):
            if req.kind == "trades":
                rows = [{"symbol": req.symbol, "ts": r["sip_timestamp"], "price": r["price"],
                         "size": r.get("size", 0), "exchange": r.get("exchange"),
                         "trade_id": r.get("id"), "conditions": r.get("conditions")}
                        for r in results]
            else:
                rows = [{"symbol": req.symbol, "ts": r["sip_timestamp"],
                         "bid": r.get("bid_price"), "ask": r.get("ask_price"),
                         "bid_size": r.get("bid_size"), "ask_size": r.get("ask_size")}
                        for r in results]
            # The last instant of a page may continue on the next one: not complete yet.
            done = req.end if last or not rows else from_ns(int(rows[-1]["ts"]))
            yield Page(rows, done, {"ts_unit": "ns", "crossed": "allow"})

    def _actions(self, req: Request) -> Iterator[Page]:
        lo, hi = req.start.date().isoformat(), req.end.date().isoformat()
        rows: list[dict[str, Any]] = []
        for results, _ in self._pages("/v3/reference/splits",
                                      {"ticker": req.symbol, "execution_date.gte": lo,
                                       "execution_date.lt": hi, "limit": 1000}):
            rows.extend({"symbol": req.symbol, "action_type": "split",
                         "ex_date": r["execution_date"], "split_from": r["split_from"],
                         "split_to": r["split_to"]} for r in results)
        divs: list[dict[str, Any]] = []
        for results, _ in self._pages("/v3/reference/dividends",
                                      {"ticker": req.symbol, "ex_dividend_date.gte": lo,
                                       "ex_dividend_date.lt": hi, "limit": 1000}):
            divs.extend({"symbol": req.symbol, "action_type": "cash_dividend",
                         "ex_date": r["ex_dividend_date"], "amount": r["cash_amount"],
                         "record_date": r.get("record_date"), "pay_date": r.get("pay_date"),
                         "declared_date": r.get("declaration_date"),
                         "currency": r.get("currency")} for r in results)
        if rows:
            yield Page(rows, req.start)
        yield Page(divs, req.end)
