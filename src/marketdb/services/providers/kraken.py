"""Kraken spot: OHLC (``interval`` in minutes) and public trades.

Kraken reports errors inside a 200 response (``{"error": ["EAPI:Rate limit
exceeded"]}``); rate-limit errors are retried like a 429. OHLC pages with
``since`` (seconds), trades with ``since`` (the ``last`` nanosecond cursor).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from marketdb.errors import ConfigurationError, InvalidInput, Unavailable

from ._base import Page, Request, from_ns, interval_seconds, ns
from ._http import HttpClient, KeyPlace

__all__ = ["BASE_URL", "KEY", "Kraken"]

BASE_URL = "https://api.kraken.com"
KEY = KeyPlace(stored_as="kraken_api_key", env="KRAKEN_API_KEY", header="API-Key")


class Kraken:
    """Kraken REST adapter (see the module docstring)."""

    name = "kraken"
    kinds = frozenset({"bars", "trades"})
    key_place: KeyPlace | None = KEY
    key_required = False

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def _get(self, path: str, params: dict[str, Any]) -> tuple[list[list[Any]], Any]:
        for attempt in range(self.http.max_retries + 1):
            body = self.http.get(path, params)
            errors = body.get("error") or []
            if not errors:
                result = body.get("result") or {}
                rows = next((v for k, v in result.items() if k != "last" and isinstance(v, list)),
                            [])
                return rows, result.get("last")
            text = "; ".join(errors)
            if "Invalid key" in text or "Permission denied" in text:
                raise ConfigurationError(f"kraken rejected the API key: {text}",
                                         hint="store it as the user secret 'kraken_api_key' or "
                                         "set KRAKEN_API_KEY")
            if "Rate limit" in text or "Too many requests" in text or "EService" in text:
                self.http.retries += 1
                self.http.sleep(self.http._wait(attempt, None))
                continue
            raise InvalidInput(f"kraken refused the request: {text}",
                               hint="check the pair (e.g. XBTUSD) and the interval")
        raise Unavailable("kraken: rate limited after retries",
                          hint="run the same sync again later; it resumes where it stopped")

    def fetch(self, req: Request) -> Iterator[Page]:
        """Pages of ``req`` in time order."""
        if req.kind == "bars":
            yield from self._ohlc(req)
        elif req.kind == "trades":
            yield from self._trades(req)
        else:
            raise InvalidInput(f"kraken has no {req.kind!r} data", hint="kinds: bars, trades")

    def _ohlc(self, req: Request) -> Iterator[Page]:
        step = interval_seconds(req.interval or "1d")
        since = int(req.start.timestamp()) - 1
        end = req.end.timestamp()
        while True:
            rows, last = self._get("/0/public/OHLC", {"pair": req.symbol,
                                                      "interval": step // 60, "since": since})
            recs = [{"symbol": req.symbol, "ts": int(r[0]), "open": r[1], "high": r[2],
                     "low": r[3], "close": r[4], "vwap": r[5], "volume": r[6],
                     "trade_count": r[7]} for r in rows
                    if req.start.timestamp() <= int(r[0]) < end]
            newest = max((int(r[0]) for r in rows), default=None)
            if newest is None or newest + step >= end or last is None or int(last) <= since:
                yield Page(recs, req.end, {"ts_unit": "s"})
                return
            since = int(last)
            yield Page(recs, dt.datetime.fromtimestamp(newest + 1, dt.UTC), {"ts_unit": "s"})

    def _trades(self, req: Request) -> Iterator[Page]:
        since = ns(req.start)
        end = ns(req.end)
        while True:
            rows, last = self._get("/0/public/Trades", {"pair": req.symbol, "since": since})
            recs = [{"symbol": req.symbol, "ts": float(r[2]), "price": r[0], "size": r[1],
                     "side": {"b": "buy", "s": "sell"}.get(r[3]),
                     "trade_id": str(r[6]) if len(r) > 6 else None} for r in rows
                    if ns(req.start) <= int(float(r[2]) * 1e9) < end]
            cursor = int(last) if last is not None else since
            if not rows or cursor >= end or cursor <= since:
                yield Page(recs, req.end, {"ts_unit": "s"})
                return
            since = cursor
            yield Page(recs, from_ns(cursor), {"ts_unit": "s"})
