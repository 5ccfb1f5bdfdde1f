"""A small Python client for ``marketdb serve``: the library's read and write calls over HTTP.

Switch an application from in-process to remote by changing one line::

    db = marketdb.connect()                                                # in-process
    db = marketdb.remote.connect("http://127.0.0.1:8000", token="mdbk_...")  # over HTTP

    df = db.query.bars("AAPL", "1m", "2024-01-02", "2024-01-03")   # same pandas frame
    tbl = db.query.ticks("AAPL", output="arrow")                    # same Arrow table
    db.ingest.write_ticks(frame)                                    # same validation, WriteResult as dict
    db.trading.submit_order("s1", "AAPL", "buy", 10)                # dict, JSON types

Reads travel as Arrow IPC streams and are converted exactly like the library
does (same dtypes, same index). Trading and account calls return the JSON
answer (Decimals as strings, datetimes as ISO-8601 UTC text). Errors come
back as the same marketdb exceptions (InvalidInput, NotFound, ...), with
``details["rejections"]`` for rejected rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from marketdb import errors as err
from marketdb.services.query._frames import Output, convert

__all__ = ["RemoteDB", "connect"]

ARROW = "application/vnd.apache.arrow.stream"
_STATUS: dict[int, type[err.MarketdbError]] = {
    401: err.PermissionDenied,
    403: err.PermissionDenied,
    404: err.NotFound,
    409: err.Conflict,
    413: err.InvalidInput,
    422: err.InvalidInput,
    429: err.Unavailable,
    503: err.Unavailable,
}


class _Http:
    def __init__(self, client: httpx.Client, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        try:
            r = self.client.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise err.Unavailable(
                f"cannot reach the marketdb server: {exc}", hint="is `marketdb serve` running?"
            ) from exc
        if r.status_code >= 400:
            _raise(r)
        return r

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    def table(self, path: str, params: Mapping[str, Any]) -> pa.Table:
        clean = {k: _param(v) for k, v in params.items() if v is not None}
        r = self.request("GET", path, params=clean, headers={"Accept": ARROW})
        return pa.ipc.open_stream(pa.BufferReader(r.content)).read_all()


def _param(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _raise(r: httpx.Response) -> None:
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text[:500]}
    cls = _STATUS.get(r.status_code, err.MarketdbError)
    details = {"status": r.status_code, "request_id": body.get("request_id")}
    if "rejections" in body:
        details["rejections"] = body["rejections"]
    raise cls(
        str(body.get("detail") or body.get("title") or r.reason_phrase),
        hint=body.get("hint"),
        details=details,
    )


def _symbols(symbols: str | Sequence[str]) -> tuple[str, bool]:
    if isinstance(symbols, str):
        return symbols, False
    return ",".join(symbols), True


class RemoteQuery:
    """Reads, returning pandas / polars / Arrow like :class:`marketdb.services.query.Query`."""

    def __init__(self, http: _Http) -> None:
        self._http = http

    def bars(
        self,
        symbols: str | Sequence[str],
        interval: str = "1d",
        start: object = None,
        end: object = None,
        *,
        adjusted: bool = False,
        as_of: object = None,
        source: str | None = None,
        output: Output = "pandas",
    ) -> Any:
        """OHLCV bars (see ``Query.bars``)."""
        path, _ = _symbols(symbols)
        t = self._http.table(
            f"/v1/bars/{path}",
            {
                "interval": interval,
                "start": start,
                "end": end,
                "adjusted": adjusted,
                "as_of": as_of,
                "source": source,
            },
        )
        return convert(t, output)

    def ticks(
        self,
        symbols: str | Sequence[str],
        start: object = None,
        end: object = None,
        *,
        columns: Sequence[str] | None = None,
        output: Output = "pandas",
    ) -> Any:
        """Trades with nanosecond timestamps (see ``Query.ticks``)."""
        path, _ = _symbols(symbols)
        t = self._http.table(f"/v1/ticks/{path}", {"start": start, "end": end, "columns": columns})
        return convert(t, output)

    def quotes(
        self,
        symbols: str | Sequence[str],
        start: object = None,
        end: object = None,
        *,
        columns: Sequence[str] | None = None,
        output: Output = "pandas",
    ) -> Any:
        """Top-of-book quotes (see ``Query.quotes``)."""
        path, _ = _symbols(symbols)
        t = self._http.table(f"/v1/quotes/{path}", {"start": start, "end": end, "columns": columns})
        return convert(t, output)

    def latest(self, symbols: str | Sequence[str], *, output: Output = "pandas") -> Any:
        """Last trade, quote and bar per symbol."""
        path, _ = _symbols(symbols)
        return convert(self._http.table("/v1/latest", {"symbols": path}), output, index="symbol")

    def order_books(
        self,
        symbols: str,
        start: object = None,
        end: object = None,
        *,
        depth: int | None = None,
        output: Output = "pandas",
    ) -> Any:
        """Order-book snapshots."""
        t = self._http.table(f"/v1/order-books/{symbols}", {"start": start, "end": end, "depth": depth})
        return convert(t, output)

    def options_chain(
        self, underlying: str, at: object = None, expiration: object = None, *, output: Output = "pandas"
    ) -> Any:
        """The options chain as of ``at``."""
        t = self._http.table(f"/v1/options/{underlying}", {"at": at, "expiration": expiration})
        return convert(t, output, index=None)

    def corporate_actions(self, symbols: str, *, as_of: object = None, output: Output = "pandas") -> Any:
        """Splits and dividends known at ``as_of``."""
        return convert(self._http.table(f"/v1/corporate-actions/{symbols}", {"as_of": as_of}), output)


class RemoteIngest:
    """Writers (see :class:`marketdb.services.ingest.Ingest`); results are ``WriteResult`` dicts."""

    def __init__(self, http: _Http) -> None:
        self._http = http

    def _write(self, kind: str, data: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        params = {k: _param(v) for k, v in options.items() if v is not None}
        if isinstance(data, str | Path):
            path = Path(data)
            ctype = {
                ".csv": "text/csv",
                ".parquet": "application/vnd.apache.parquet",
                ".jsonl": "application/x-ndjson",
                ".ndjson": "application/x-ndjson",
                ".json": "application/json",
            }.get(path.suffix.lower())
            if ctype is None:
                raise err.InvalidInput(
                    f"cannot upload {path.name}", hint="use a .csv, .parquet, .jsonl or .json file"
                )
            return dict(
                self._http.json(
                    "POST",
                    f"/v1/ingest/{kind}",
                    params=params,
                    content=path.read_bytes(),
                    headers={"Content-Type": ctype},
                )
            )
        if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
            body = json.dumps({"rows": data}, default=str).encode()
            return dict(
                self._http.json(
                    "POST",
                    f"/v1/ingest/{kind}",
                    params=params,
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            )
        table = _to_arrow(data)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return dict(
            self._http.json(
                "POST",
                f"/v1/ingest/{kind}",
                params=params,
                content=sink.getvalue(),
                headers={"Content-Type": ARROW},
            )
        )

    def write_ticks(self, data: Any, **options: Any) -> dict[str, Any]:
        """Trades and/or quotes."""
        return self._write("ticks", data, options)

    def write_candles(self, data: Any, **options: Any) -> dict[str, Any]:
        """OHLCV bars of any interval."""
        return self._write("candles", data, options)

    def write_order_books(self, data: Any, **options: Any) -> dict[str, Any]:
        """Order-book snapshots."""
        return self._write("order_books", data, options)

    def write_options_chain(self, data: Any, **options: Any) -> dict[str, Any]:
        """Options chains."""
        return self._write("options_chain", data, options)

    def write_corporate_actions(self, data: Any, **options: Any) -> dict[str, Any]:
        """Splits and dividends."""
        return self._write("corporate_actions", data, options)

    def write_instruments(
        self, rows: Sequence[Mapping[str, Any]], *, replace_metadata: bool = False
    ) -> dict[str, Any]:
        """Upsert instruments by symbol."""
        return dict(
            self._http.json(
                "POST",
                "/v1/instruments",
                json={"rows": [dict(r) for r in rows], "replace_metadata": replace_metadata},
            )
        )


def _to_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    to_arrow = getattr(data, "to_arrow", None)  # polars
    if callable(to_arrow):
        table: pa.Table = to_arrow()
        return table
    raise err.InvalidInput(
        f"cannot send {type(data).__name__}", hint="pass a DataFrame, Arrow table, rows or a file"
    )


class RemoteTrading:
    """Trading calls (see :class:`marketdb.services.trading.Trading`); answers are JSON dicts."""

    def __init__(self, http: _Http) -> None:
        self._http = http

    def create_strategy(self, strategy_id: str, name: str, **fields: Any) -> dict[str, Any]:
        """Create a strategy."""
        return dict(
            self._http.json(
                "POST", "/v1/strategies", json=_j({"strategy_id": strategy_id, "name": name, **fields})
            )
        )

    def strategy(self, strategy_id: str) -> dict[str, Any]:
        """One strategy."""
        return dict(self._http.json("GET", f"/v1/strategies/{strategy_id}"))

    def strategies(self) -> list[dict[str, Any]]:
        """All strategies."""
        return self._all("/v1/strategies", {})

    def submit_order(
        self, strategy_id: str, symbol: str, side: str, quantity: Any, **fields: Any
    ) -> dict[str, Any]:
        """Submit an order; idempotent by ``client_order_id``."""
        body = {"strategy_id": strategy_id, "symbol": symbol, "side": side, "quantity": quantity, **fields}
        return dict(self._http.json("POST", "/v1/orders", json=_j(body)))

    def order(self, order_id: str) -> dict[str, Any]:
        """One order."""
        return dict(self._http.json("GET", f"/v1/orders/{order_id}"))

    def orders(self, *, strategy_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Orders, newest first."""
        return self._all("/v1/orders", {"strategy_id": strategy_id, "status": status})

    def cancel_order(self, order_id: str, *, reason: str | None = None) -> dict[str, Any]:
        """Cancel an order."""
        return dict(self._http.json("POST", f"/v1/orders/{order_id}/cancel", json={"reason": reason}))

    def record_fill(self, order_id: str, quantity: Any, price: Any, **fields: Any) -> dict[str, Any]:
        """Record an execution."""
        body = {"quantity": quantity, "price": price, **fields}
        return dict(self._http.json("POST", f"/v1/orders/{order_id}/fills", json=_j(body)))

    def fills(self, *, order_id: str | None = None, strategy_id: str | None = None) -> list[dict[str, Any]]:
        """Executions, oldest first."""
        return self._all("/v1/fills", {"order_id": order_id, "strategy_id": strategy_id})

    def positions(self, *, strategy_id: str | None = None, status: str = "open") -> list[dict[str, Any]]:
        """Positions with P&L."""
        return self._all("/v1/positions", {"strategy_id": strategy_id, "status": status})

    def value_portfolio(self, *, portfolio: str = "default") -> dict[str, Any]:
        """A portfolio valuation."""
        return dict(self._http.json("GET", "/v1/portfolio/value", params={"portfolio": portfolio}))

    def create_signal(self, symbol: str, signal_type: str, **fields: Any) -> dict[str, Any]:
        """Record a strategy signal."""
        return dict(
            self._http.json(
                "POST", "/v1/signals", json=_j({"symbol": symbol, "signal_type": signal_type, **fields})
            )
        )

    def _all(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        clean = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self._http.json(
                "GET", path, params={**clean, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            )
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out


def _j(body: Mapping[str, Any]) -> Any:
    from marketdb.api.formats import to_jsonable

    return to_jsonable(dict(body))


class RemoteDB:
    """What :func:`connect` returns: ``query``, ``ingest``, ``trading`` over HTTP."""

    def __init__(self, client: httpx.Client, token: str | None) -> None:
        self._client = client
        self._http = _Http(client, token)
        self.query = RemoteQuery(self._http)
        self.ingest = RemoteIngest(self._http)
        self.trading = RemoteTrading(self._http)

    def get(self, path: str, **params: Any) -> Any:
        """GET any route (JSON answer)."""
        return self._http.json("GET", path, params={k: _param(v) for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        """POST JSON to any route."""
        return self._http.json("POST", path, json=_j(body or {}))

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> RemoteDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 60.0,
    client: httpx.Client | None = None,
) -> RemoteDB:
    """Connect to ``marketdb serve`` at ``url`` with an API key / session ``token``, or log in.

    ``client`` lets tests pass an ``httpx.Client`` (e.g. FastAPI's TestClient).
    """
    http = client or httpx.Client(base_url=url, timeout=timeout)
    if token is None and username is not None:
        r = http.post("/v1/auth/login", json={"username": username, "password": password or ""})
        if r.status_code >= 400:
            _raise(r)
        token = r.json()["token"]
    return RemoteDB(http, token)
