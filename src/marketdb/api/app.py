"""The app factory: ``create_app(db, settings) -> FastAPI``.

Other interfaces plug in through ``routers=`` (or :func:`include`): e.g. the
WebSocket streams add their router and declare its permissions with
:func:`marketdb.api.permissions.register`; they authenticate connections with
:func:`marketdb.api.deps.authenticate` and authorize channels with
``state.auth.allows(principal, resource, action)``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketdb.api.deps import authenticate, enforce
from marketdb.api.errors import install_error_handlers
from marketdb.api.openapi import install_openapi
from marketdb.api.routes import accounts, auth, market, ops, stream, trading
from marketdb.api.state import ApiSettings, ApiState
from marketdb.client import MarketDB
from marketdb.store.cache import Cache, make_cache

__all__ = ["CORE_ROUTERS", "api_routes", "create_app", "include"]

access_log = logging.getLogger("marketdb.api.access")

#: The routers every app has; each route is listed in ROUTE_PERMISSIONS.
CORE_ROUTERS: tuple[APIRouter, ...] = (
    ops.router,
    auth.router,
    market.router,
    trading.router,
    accounts.router,
)


def include(app: FastAPI, router: APIRouter) -> None:
    """Mount ``router`` behind the permission check (deny by default)."""
    app.include_router(router, dependencies=[Depends(enforce)])
    mounted: list[tuple[str, str]] = getattr(app.state, "marketdb_routes", [])
    for route in router.routes:
        if isinstance(route, APIRoute):
            mounted.extend((method, route.path) for method in sorted(route.methods or ()))
        elif isinstance(route, APIWebSocketRoute):
            mounted.append(("WEBSOCKET", route.path))
    app.state.marketdb_routes = mounted


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) mounted with :func:`include` (what the permission table must cover)."""
    routes: list[tuple[str, str]] = list(getattr(app.state, "marketdb_routes", []))
    return routes


def create_app(
    db: MarketDB,
    settings: ApiSettings | None = None,
    *,
    cache: Cache | None = None,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """A FastAPI app serving ``db``.

    ``cache`` defaults to Redis when ``db.settings.redis_url`` is set (else no
    cache); ``routers`` are mounted after the core ones, behind the same
    permission check.
    """
    settings = settings or ApiSettings()
    # A server pays the heavy imports once at start-up rather than racing to import them
    # from concurrent request threads on the first requests.
    from marketdb.lazy import preload

    preload("numpy", "pyarrow", "pyarrow.compute", "pandas", "polars")
    state = ApiState(
        db=db, settings=settings, cache=cache if cache is not None else make_cache(db.settings.redis_url)
    )
    app = FastAPI(
        title="marketdb",
        version=_version(),
        description="Market data and trading records over HTTP. Authenticate with "
        "`Authorization: Bearer <session token or API key>` (POST /v1/auth/login).",
    )
    app.state.marketdb = state
    install_error_handlers(app)
    for router in (*CORE_ROUTERS, *routers):
        include(app, router)
    stream.install(app, authenticate=lambda token: authenticate(state, token), allows=state.auth.allows,
                   conninfo=db.url, include_pages=include)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        )
    install_openapi(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLog)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("marketdb")
    except Exception:  # pragma: no cover - not installed
        return "0"


class AccessLog:
    """Assigns a request id (or keeps a sane ``X-Request-ID``) and logs one JSON line per request.

    Logged: method, path (no query string: it may carry filters, never
    credentials), status, duration, client address, user id. Never headers or bodies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client")
            access_log.info(
                json.dumps(
                    {
                        "request_id": rid,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "ms": round((time.perf_counter() - start) * 1000, 2),
                        "client": client[0] if client else None,
                        "user_id": scope.get("state", {}).get("user_id"),
                    }
                )
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
                return text
    return uuid.uuid4().hex


class BodyLimit:
    """413 for bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _too_large(scope, send, self.max_bytes)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "type": "https://marketdb.dev/problems/too-large",
        "title": "Request body too large",
        "status": 413,
        "detail": f"request body over {limit} bytes",
        "hint": "send smaller batches",
        "request_id": scope.get("state", {}).get("request_id"),
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
