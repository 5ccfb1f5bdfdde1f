"""Request dependencies as ``Annotated`` aliases: ``Db``, ``State``, ``CurrentUser``, ``Ctx``.

Authentication: ``Authorization: Bearer <session token or API key>`` (or
``X-API-Key: <key>``). Authorization: :func:`enforce` runs on every router and
checks the matched route's entry in :data:`~.permissions.ROUTE_PERMISSIONS`
against the accounts permissions, re-read on every request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from marketdb.api.errors import NotAuthenticated
from marketdb.api.permissions import PUBLIC, ROUTE_PERMISSIONS, SELF
from marketdb.api.state import ApiState
from marketdb.client import MarketDB
from marketdb.errors import PermissionDenied
from marketdb.services.accounts.audit import Actor
from marketdb.services.accounts.tokens import Principal, hash_token
from marketdb.services.trading import Trading

__all__ = [
    "Ctx",
    "CurrentUser",
    "Db",
    "RequestContext",
    "State",
    "actor_of",
    "authenticate",
    "client_ip",
    "enforce",
    "require_owner",
    "trading_for",
]


def get_state(request: Request) -> ApiState:
    """The app's :class:`ApiState`."""
    state: ApiState = request.app.state.marketdb
    return state


State = Annotated[ApiState, Depends(get_state)]


def get_db(state: State) -> MarketDB:
    """The app's database."""
    return state.db


Db = Annotated[MarketDB, Depends(get_db)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _cached_session(state: ApiState, token: str) -> Principal | None:
    if not token.startswith("mdbs_"):
        return None
    cache_key = "session:" + hash_token(token).hex()
    hit = state.cache.get(cache_key)
    if hit is None:
        return None
    try:
        d = json.loads(hit)
        return Principal(uuid.UUID(d["user_id"]), d["username"], d["role"], session_hash=hash_token(token))
    except (ValueError, KeyError, TypeError):
        state.cache.delete(cache_key)
        return None


def _remember_session(state: ApiState, principal: Principal) -> None:
    if principal.session_hash is None:
        return
    payload = {"user_id": str(principal.user_id), "username": principal.username, "role": principal.role}
    state.cache.set(
        "session:" + principal.session_hash.hex(),
        json.dumps(payload).encode(),
        state.settings.session_ttl_seconds,
    )


def authenticate(state: ApiState, token: str) -> Principal | None:
    """A session token or API key -> its live principal (Redis first for sessions), or None.

    Shared with the WebSocket endpoint: call it with the token sent on connect,
    then ``state.auth.allows(principal, resource, action)`` per channel.
    """
    cached = _cached_session(state, token)
    if cached is not None:
        return cached
    principal = state.auth.resolve(token)
    if principal is not None:
        _remember_session(state, principal)
    return principal


def enforce(request: Request, state: State) -> Principal | None:
    """Deny by default: the matched route must be in the permission table and allowed.

    One database transaction per request: resolve the token (unless Redis holds
    the session) and check the permission against the user's current role and
    activity (and the API key's role).
    """
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    need = ROUTE_PERMISSIONS.get((request.method, path)) if isinstance(path, str) else None
    if need is None:
        raise PermissionDenied(
            f"{request.method} {path} declares no permission",
            hint="add the route to marketdb.api.permissions.ROUTE_PERMISSIONS",
        )
    if need == PUBLIC:
        return None
    token = _bearer(request)
    if token is None:
        raise NotAuthenticated(
            "authentication required", hint="send Authorization: Bearer <token or API key>"
        )
    cached = _cached_session(state, token)
    resource, action = (None, None) if need == SELF else need
    principal, allowed = state.auth.check(token, cached, resource, action)
    if principal is None:
        raise NotAuthenticated(
            "the session token or API key is invalid, expired or revoked",
            hint="log in again (POST /v1/auth/login) or use a live API key",
        )
    if cached is None:
        _remember_session(state, principal)
    request.state.user_id = str(principal.user_id)
    if not allowed:
        if need == SELF:
            raise NotAuthenticated("the account is deactivated", hint="ask an admin to reactivate it")
        raise PermissionDenied(
            f"not allowed to {action} {resource}", hint="ask an admin for a role that grants it"
        )
    return principal


def current_user(principal: Annotated[Principal | None, Depends(enforce)]) -> Principal:
    """The authenticated principal (routes that are not PUBLIC always have one)."""
    if principal is None:
        raise NotAuthenticated("authentication required", hint="send Authorization: Bearer <token>")
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


@dataclass(frozen=True)
class RequestContext:
    """Who acts and from where, for audit rows."""

    principal: Principal | None
    ip: str | None
    user_agent: str | None
    request_id: str | None

    @property
    def actor(self) -> Actor:
        """The audit :class:`Actor` of this request."""
        return Actor(
            user_id=None if self.principal is None else self.principal.user_id,
            ip=self.ip,
            user_agent=_agent(self.user_agent, self.request_id),
        )


def _agent(user_agent: str | None, request_id: str | None) -> str | None:
    # The audit table has no request-id column; keep the id next to the agent text.
    if request_id is None:
        return user_agent
    return f"{user_agent or '-'} [request {request_id}]"


def client_ip(request: Request) -> str | None:
    """The peer address when it is an IP address (test clients and sockets may have other names)."""
    import ipaddress

    host = request.client.host if request.client else None
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def request_context(
    request: Request, principal: Annotated[Principal | None, Depends(enforce)]
) -> RequestContext:
    """This request's :class:`RequestContext`."""
    rid = getattr(request.state, "request_id", None)
    return RequestContext(
        principal=principal,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=rid if isinstance(rid, str) else None,
    )


Ctx = Annotated[RequestContext, Depends(request_context)]


def actor_of(ctx: RequestContext) -> Actor:
    """The audit actor of a request."""
    return ctx.actor


def trading_for(db: MarketDB, ctx: RequestContext) -> Trading:
    """The trading service acting as the request's user (the ONE place to switch to ``as_user``)."""
    return db.trading.as_actor(ctx.actor)


def is_admin_for(state: ApiState, principal: Principal, resource: str) -> bool:
    """Does the principal hold ``(resource, "admin")`` (admins hold ``*``)?"""
    return state.auth.allows(principal, resource, "admin")


def require_owner(state: ApiState, principal: Principal, owner_id: Any, resource: str) -> None:
    """Owner-only access unless the principal holds the resource's admin permission.

    Answers 404 (not 403) so ids of other users' objects are not confirmed.
    """
    if owner_id is not None and str(owner_id) == str(principal.user_id):
        return
    if is_admin_for(state, principal, resource):
        return
    from marketdb.errors import NotFound

    raise NotFound(f"no {resource} with that id", hint="you can only act on your own objects")
