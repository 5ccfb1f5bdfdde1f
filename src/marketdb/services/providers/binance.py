"""Binance spot: klines (any Binance interval) and aggregated trades.

Public market data needs no key; a key, when set, travels in ``X-MBX-APIKEY``.
Klines page by start time (1,000 per request), aggTrades by ``fromId``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from marketdb.errors import InvalidInput

from ._base import Page, Request, ms
from ._http import HttpClient, KeyPlace

__all__ = ["BASE_URL", "KEY", "Binance"]

BASE_URL = "https://api.binance.com"
KEY = KeyPlace(stored_as="binance_api_key", env="BINANCE_API_KEY", header="X-MBX-APIKEY")


def _utc_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


class Binance:
    """Binance REST adapter (see the module docstring)."""

    name = "binance"
    kinds = frozenset({"bars", "trades"})
    key_place: KeyPlace | None = KEY
    key_required = False

    def __init__(self, http: HttpClient, *, limit: int = 1000) -> None:
        self.http = http
        self.limit = limit

    def fetch(self, req: Request) -> Iterator[Page]:
        """Pages of ``req`` in time order."""
        if req.kind == "bars":
            yield from self._klines(req)
        elif req.kind == "trades":
            yield from self._agg_trades(req)
        else:
            raise InvalidInput(f"binance has no {req.kind!r} data", hint="kinds: bars, trades")

    def _klines(self, req: Request) -> Iterator[Page]:
        start, end = ms(req.start), ms(req.end)
        interval = (req.interval or "1d").replace("mo", "M")
        while start < end:
            body: list[list[Any]] = self.http.get("/api/v3/klines", {
                "symbol": req.symbol, "interval": interval, "startTime": start,
                "endTime": end - 1, "limit": self.limit})
            rows = [{"symbol": req.symbol, "ts": k[0], "open": k[1], "high": k[2], "low": k[3],
                     "close": k[4], "volume": k[5], "notional": k[7], "trade_count": k[8]}
                    for k in body if start <= int(k[0]) < end]
            if len(body) < self.limit or not rows:
                yield Page(rows, req.end, {"ts_unit": "ms"})
                return
            start = int(rows[-1]["ts"]) + 1
            yield Page(rows, _utc_ms(start), {"ts_unit": "ms"})

    def _agg_trades(self, req: Request) -> Iterator[Page]:
        start, end = ms(req.start), ms(req.end)
        params: dict[str, Any] = {"symbol": req.symbol, "startTime": start,
                                  "endTime": min(end - 1, start + 3_600_000 - 1),
                                  "limit": self.limit}
        while True:
            body: list[dict[str, Any]] = self.http.get("/api/v3/aggTrades", params)
            rows = [{"symbol": req.symbol, "ts": t["T"], "price": t["p"], "size": t["q"],
                     "trade_id": str(t["a"]), "buyer_maker": t["m"]}
                    for t in body if start <= int(t["T"]) < end]
            past_end = any(int(t["T"]) >= end for t in body)
            if past_end or not body or (len(body) < self.limit and "fromId" in params):
                yield Page(rows, req.end, {"ts_unit": "ms"})
                return
            if len(body) < self.limit:  # an hour window ran out: move to the next hour
                window_end = int(params["endTime"]) + 1
                yield Page(rows, _utc_ms(window_end), {"ts_unit": "ms"})
                if window_end >= end:
                    return
                params = {"symbol": req.symbol, "startTime": window_end,
                          "endTime": min(end - 1, window_end + 3_600_000 - 1),
                          "limit": self.limit}
                continue
            last_t = int(body[-1]["T"])
            yield Page(rows, _utc_ms(last_t), {"ts_unit": "ms"})
            params = {"symbol": req.symbol, "fromId": int(body[-1]["a"]) + 1, "limit": self.limit}
