"""The OpenAPI document: problem responses, bearer security and table formats on every route.

FastAPI documents only the happy path; marketdb adds what every route can
answer (the problem+json statuses of :mod:`.errors`), the bearer scheme on
every route that is not PUBLIC, and the CSV / Arrow media types of table
reads, so clients and schemathesis see the API as it behaves.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from marketdb.api.errors import PROBLEM_JSON
from marketdb.api.formats import ARROW, CSV
from marketdb.api.permissions import PUBLIC, ROUTE_PERMISSIONS

__all__ = ["install_openapi"]

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "hint": {"type": ["string", "null"]},
        "request_id": {"type": ["string", "null"]},
        "rejections": {"type": "array", "items": {"type": "object"}},
    },
}
_STATUSES = {
    "401": "Not authenticated (no, invalid, expired or revoked token)",
    "403": "Forbidden (the role lacks the permission)",
    "404": "Not found",
    "409": "Conflict with the current state",
    "413": "Request body too large",
    "422": "Invalid input (rejected rows listed with rule/field/value)",
    "429": "Too many failed logins",
    "503": "Database busy or unreachable (Retry-After)",
}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the completed document (built once, cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = doc.setdefault("components", {})
        comps.setdefault("schemas", {})["Problem"] = _PROBLEM_SCHEMA
        comps.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "session token (POST /v1/auth/login) or API key",
        }
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, item in doc.get("paths", {}).items():
            for method, op in item.items():
                need = ROUTE_PERMISSIONS.get((method.upper(), path))
                responses = op.setdefault("responses", {})
                for status, text in _STATUSES.items():
                    responses[status] = {"description": text, "content": problem}
                if need is not None and need != PUBLIC:
                    op["security"] = [{"bearer": []}]
                if any(
                    p.get("name") == "format" and p.get("in") == "query" for p in op.get("parameters", [])
                ):
                    for status, resp in responses.items():
                        if status.startswith("2"):
                            content = resp.setdefault("content", {})
                            content.setdefault("application/json", {"schema": {}})
                            content[CSV] = {"schema": {"type": "string"}}
                            content[ARROW] = {"schema": {"type": "string", "format": "binary"}}
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
