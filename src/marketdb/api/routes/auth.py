"""Login, logout, the caller, API keys."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from marketdb.api.deps import Ctx, CurrentUser, State, client_ip, is_admin_for, require_owner
from marketdb.api.errors import TooManyRequests
from marketdb.api.formats import json_response
from marketdb.services.accounts.audit import Actor
from marketdb.services.accounts.users import AuthenticationFailed

router = APIRouter(tags=["auth"])


class LoginIn(BaseModel):
    """Username (or email) and password."""

    username: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


@router.post("/v1/auth/login")
async def login(body: LoginIn, request: Request, state: State) -> JSONResponse:
    """Exchange a password for an opaque session token (shown once).

    Unknown user, wrong password and deactivated account answer the same 401
    after the same hashing work; too many failures for the account name or
    the client address answer 429 whether or not the account exists.
    """
    ip = client_ip(request)
    rid = getattr(request.state, "request_id", None)
    actor = Actor(ip=ip, user_agent=request.headers.get("user-agent"))
    if state.throttle.blocked(body.username, ip):
        raise TooManyRequests("too many failed logins", hint="wait a few minutes and try again")
    try:
        user = await run_in_threadpool(
            state.db.accounts.authenticate, body.username, body.password, actor=actor
        )
    except AuthenticationFailed:
        state.throttle.failed(body.username, ip)
        raise
    state.throttle.succeeded(body.username)
    token, expires = await run_in_threadpool(
        state.auth.create_session,
        user.id,
        idle=state.settings.session_idle,
        absolute=state.settings.session_absolute,
        actor=Actor(user_id=user.id, ip=ip, user_agent=request.headers.get("user-agent")),
    )
    return json_response(
        {
            "token": token,
            "token_type": "bearer",
            "expires_at": expires,
            "idle_timeout_seconds": int(state.settings.session_idle.total_seconds()),
            "user": {"id": user.id, "username": user.username, "role": user.role},
            "request_id": rid,
        }
    )


@router.post("/v1/auth/logout")
def logout(user: CurrentUser, ctx: Ctx, state: State) -> JSONResponse:
    """End the current session (API keys are revoked with DELETE /v1/auth/keys/{id})."""
    ended = False
    if user.session_hash is not None:
        ended = state.auth.logout(user.session_hash, actor=ctx.actor)
        state.cache.delete("session:" + user.session_hash.hex())
    return json_response({"logged_out": ended})


@router.get("/v1/auth/me")
def me(user: CurrentUser, state: State) -> JSONResponse:
    """The caller: user, role, and the API key in use if any."""
    account = state.db.accounts.get_user(user.user_id)
    return json_response(
        {
            "id": account.id,
            "username": account.username,
            "email": account.email,
            "role": account.role,
            "api_key_id": user.key_id,
            "api_key_role": user.key_role,
        }
    )


class KeyIn(BaseModel):
    """A new API key."""

    name: str = Field(min_length=1, max_length=100)
    role: str | None = Field(default=None, description="default: your role; never higher than it")
    expires_at: dt.datetime | None = None


@router.get("/v1/auth/keys")
def list_keys(user: CurrentUser, state: State, all_users: bool = False) -> JSONResponse:
    """Your API keys (admins: ``all_users=true`` for everyone's), never their values."""
    owner = None if all_users and is_admin_for(state, user, "api_keys") else user.user_id
    return json_response({"items": state.auth.list_api_keys(owner)})


@router.post("/v1/auth/keys", status_code=201)
def create_key(body: KeyIn, user: CurrentUser, ctx: Ctx, state: State) -> JSONResponse:
    """Create an API key for yourself; the key is in the answer once and never again."""
    info, key = state.auth.create_api_key(
        user.user_id, body.name, role=body.role, expires_at=body.expires_at, actor=ctx.actor
    )
    return json_response({"key": key, "info": info}, 201)


@router.delete("/v1/auth/keys/{key_id}")
def revoke_key(key_id: uuid.UUID, user: CurrentUser, ctx: Ctx, state: State) -> JSONResponse:
    """Revoke one of your API keys (admins: anyone's); effective on the next request."""
    info = state.auth.get_api_key(key_id)
    require_owner(state, user, info.user_id, "api_keys")
    return json_response(state.auth.revoke_api_key(key_id, actor=ctx.actor))
