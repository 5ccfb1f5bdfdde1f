"""The one mapping from marketdb's error tree to HTTP: status + a JSON problem body.

Body (RFC 9457 style)::

    {"type": "https://marketdb.dev/problems/invalid-input", "title": "Invalid input",
     "status": 422, "detail": "...", "hint": "...", "request_id": "...",
     "rejections": [{"row": 3, "rule": "...", "field": "price", "value": "-1", "message": "..."}]}

Unexpected exceptions answer 500 with no internals (they are logged with the
request id); a full connection pool or an unreachable database answers 503
with ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketdb.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    MarketdbError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from marketdb.services.accounts.users import AuthenticationFailed

__all__ = ["PROBLEM_JSON", "NotAuthenticated", "TooManyRequests", "install_error_handlers", "problem"]

log = logging.getLogger("marketdb.api")

PROBLEM_JSON: Final = "application/problem+json"
_BASE: Final = "https://marketdb.dev/problems/"
RETRY_AFTER_SECONDS: Final = 1


class NotAuthenticated(PermissionDenied):
    """No valid session token or API key: log in (401)."""

    http_status = 401


class TooManyRequests(PermissionDenied):
    """Too many failed logins from this account or address (429)."""

    http_status = 429


#: error class -> (status, type slug, title); the first match in MRO order wins.
_MAP: Final[tuple[tuple[type[BaseException], int, str, str], ...]] = (
    (TooManyRequests, 429, "too-many-requests", "Too many requests"),
    (NotAuthenticated, 401, "not-authenticated", "Not authenticated"),
    (AuthenticationFailed, 401, "not-authenticated", "Not authenticated"),
    (PermissionDenied, 403, "forbidden", "Forbidden"),
    (InvalidInput, 422, "invalid-input", "Invalid input"),
    (NotFound, 404, "not-found", "Not found"),
    (Conflict, 409, "conflict", "Conflict"),
    (Unavailable, 503, "unavailable", "Service unavailable"),
    (ConfigurationError, 500, "configuration", "Server misconfigured"),
    (MarketdbError, 500, "internal", "Internal error"),
)


def _request_id(request: Request) -> str | None:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else None


def problem(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    hint: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": _BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "hint": hint,
        "request_id": _request_id(request),
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _rejections(details: Any) -> list[dict[str, Any]] | None:
    """Rejected rows (rule/field/value) from an ingest error's details, JSON-safe."""
    from marketdb.api.formats import to_jsonable

    rows: Any = None
    if isinstance(details, Mapping):
        rows = details.get("rejections")
    elif isinstance(details, Sequence) and not isinstance(details, str):
        rows = details
    if rows is None:
        return None
    out = []
    for r in rows:
        as_dict = getattr(r, "as_dict", None)
        out.append(as_dict() if callable(as_dict) else to_jsonable(r))
    return out


def marketdb_error_response(request: Request, exc: MarketdbError) -> JSONResponse:
    """The response for any :class:`MarketdbError` (the one mapping)."""
    status, slug, title = next(((st, sl, ti) for cls, st, sl, ti in _MAP if isinstance(exc, cls)),
                               (500, "internal", "Internal error"))
    extra: dict[str, Any] = {}
    rejections = _rejections(exc.details)
    if rejections is not None:
        extra["rejections"] = rejections
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if status >= 500:
        log.error("request %s failed: %s", _request_id(request), exc)
    message = exc.message if status < 500 or status == 503 else "the server could not complete the request"
    return problem(request, status, slug, title, message, hint=exc.hint, extra=extra, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``."""

    async def on_marketdb(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MarketdbError)
        return marketdb_error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "row": None,
                "rule": e.get("type"),
                "field": ".".join(str(x) for x in e.get("loc", ())),
                "value": _safe_value(e.get("input")),
                "message": e.get("msg"),
            }
            for e in exc.errors()
        ]
        return problem(
            request,
            422,
            "invalid-input",
            "Invalid input",
            "the request does not match the API schema",
            hint="see /docs for the expected parameters",
            extra={"rejections": errors},
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(exc.status_code, "http")
        return problem(
            request,
            exc.status_code,
            slug,
            str(exc.detail),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    async def on_pool(request: Request, exc: Exception) -> JSONResponse:
        log.warning("request %s: database busy or unreachable: %s", _request_id(request), type(exc).__name__)
        return problem(
            request,
            503,
            "unavailable",
            "Service unavailable",
            "the database is busy or unreachable",
            hint="retry after a moment",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def on_other(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s: unexpected error", _request_id(request), exc_info=exc)
        return problem(
            request,
            500,
            "internal",
            "Internal error",
            "the server could not complete the request",
            hint="report this with the request_id",
        )

    app.add_exception_handler(MarketdbError, on_marketdb)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(sa.exc.TimeoutError, on_pool)
    app.add_exception_handler(sa.exc.OperationalError, on_pool)
    app.add_exception_handler(Exception, on_other)


def _safe_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value if not isinstance(value, str) else value[:200]
    return str(value)[:200]
