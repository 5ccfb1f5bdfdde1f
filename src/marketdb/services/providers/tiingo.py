"""Tiingo: end-of-day prices with adjusted columns, dividends and splits; IEX intraday;
crypto (symbols written ``X:BTCUSD``); ticker metadata.

Tiingo answers a date range in one response (no pagination), so a sync asks for
at most a year (daily) or a month (intraday) at a time and records each as done.
The key travels in the ``Authorization: Token ...`` header, never in URLs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from marketdb.errors import InvalidInput

from ._base import Page, Request, parse_interval
from ._http import HttpClient, KeyPlace

__all__ = ["BASE_URL", "KEY", "Tiingo"]

BASE_URL = "https://api.tiingo.com"
KEY = KeyPlace(stored_as="tiingo_api_key", env="TIINGO_API_KEY", header="Authorization",
               header_format="Token {key}")
_DAILY_CHUNK = dt.timedelta(days=366)
_INTRADAY_CHUNK = dt.timedelta(days=31)


def _crypto(symbol: str) -> str | None:
    return symbol[2:].lower() if symbol.upper().startswith("X:") else None


def _resample(interval: str) -> str:
    n, unit = parse_interval(interval)
    if unit == "m":
        return f"{n}min"
    if unit == "h":
        return f"{n}hour"
    if unit == "d":
        return f"{n}day"
    raise InvalidInput(f"tiingo has no {interval} bars", hint="use minutes, hours or 1d")


def _chunks(start: dt.datetime, end: dt.datetime, size: dt.timedelta
            ) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    lo = start
    while lo < end:
        hi = min(lo + size, end)
        yield lo, hi
        lo = hi


class Tiingo:
    """Tiingo REST adapter (see the module docstring)."""

    name = "tiingo"
    kinds = frozenset({"bars", "actions", "reference"})
    key_place: KeyPlace | None = KEY
    key_required = True

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def fetch(self, req: Request) -> Iterator[Page]:
        """Pages of ``req``: one per date chunk."""
        if req.kind == "reference":
            yield self._reference(req)
            return
        interval = req.interval or "1d"
        daily = interval in ("1d", "1w", "1mo")
        crypto = _crypto(req.symbol)
        if req.kind == "actions" and crypto:
            raise InvalidInput("tiingo has no corporate actions for crypto")
        for lo, hi in _chunks(req.start, req.end, _DAILY_CHUNK if daily else _INTRADAY_CHUNK):
            if crypto:
                rows = self._crypto(crypto, lo, hi, interval)
            elif daily and req.kind in ("bars", "actions"):
                rows = self._daily(req.symbol, lo, hi, interval)
            else:
                rows = self._iex(req.symbol, lo, hi, interval)
            if req.kind == "actions":
                yield Page(self._actions(req.symbol, rows), hi)
                continue
            for r in rows:
                r["symbol"] = req.symbol
            # Intraday: drop bars a chunk edge would repeat outside [lo, hi).
            if not daily:
                rows = [r for r in rows if lo.isoformat() <= _iso(r["date"]) < hi.isoformat()]
            yield Page(rows, hi)

    def _daily(self, symbol: str, lo: dt.datetime, hi: dt.datetime,
               interval: str) -> list[dict[str, Any]]:
        last = (hi - dt.timedelta(days=1)).date()
        freq = {"1d": "daily", "1w": "weekly", "1mo": "monthly"}[interval]
        body = self.http.get(f"/tiingo/daily/{symbol.lower()}/prices",
                             {"startDate": lo.date().isoformat(), "endDate": last.isoformat(),
                              "format": "json", "resampleFreq": freq})
        return list(body or [])

    def _iex(self, symbol: str, lo: dt.datetime, hi: dt.datetime,
             interval: str) -> list[dict[str, Any]]:
        body = self.http.get(f"/iex/{symbol.lower()}/prices",
                             {"startDate": lo.date().isoformat(),
                              "endDate": hi.date().isoformat(),
                              "resampleFreq": _resample(interval), "columns":
                              "open,high,low,close,volume"})
        return list(body or [])

    def _crypto(self, ticker: str, lo: dt.datetime, hi: dt.datetime,
                interval: str) -> list[dict[str, Any]]:
        body = self.http.get("/tiingo/crypto/prices",
                             {"tickers": ticker, "startDate": lo.isoformat(),
                              "endDate": hi.isoformat(), "resampleFreq": _resample(interval)})
        rows: list[dict[str, Any]] = []
        for item in body or []:
            rows.extend(dict(p) for p in item.get("priceData", []))
        return [r for r in rows if lo.isoformat() <= _iso(r["date"]) < hi.isoformat()]

    @staticmethod
    def _actions(symbol: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for r in rows:
            day = str(r["date"])[:10]
            div = r.get("divCash") or 0.0
            split = r.get("splitFactor")
            if div:
                out.append({"symbol": symbol, "action_type": "cash_dividend", "ex_date": day,
                            "amount": div})
            if split not in (None, 1, 1.0, 0, 0.0):
                out.append({"symbol": symbol, "action_type": "split", "ex_date": day,
                            "ratio": split})
        return out

    def _reference(self, req: Request) -> Page:
        crypto = _crypto(req.symbol)
        if crypto:
            body = self.http.get("/tiingo/crypto", {"tickers": crypto})
            meta = (body or [{}])[0]
            rec = {"symbol": req.symbol, "name": meta.get("name") or meta.get("description"),
                   "asset_class": "crypto", "currency": meta.get("quoteCurrency"),
                   "calendar": "24/7"}
        else:
            meta = self.http.get(f"/tiingo/daily/{req.symbol.lower()}")
            rec = {"symbol": req.symbol, "name": meta.get("name"),
                   "exchange": meta.get("exchangeCode"), "listed_at": meta.get("startDate"),
                   "metadata": {"description": meta.get("description"),
                                "tiingo_end_date": meta.get("endDate")}}
        return Page([{k: v for k, v in rec.items() if v is not None}], req.end)


def _iso(value: object) -> str:
    """Tiingo times as comparable ISO text in UTC (``...Z`` and ``+00:00`` alike)."""
    s = str(value).replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(s).astimezone(dt.UTC).isoformat()
    except ValueError:
        return s
