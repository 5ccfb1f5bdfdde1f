"""The WebSocket endpoint ``/ws`` and the dashboard page ``/``.

Protocol (JSON text frames; see docs/realtime.md):

* authenticate first: ``{"op": "auth", "token": "<session token or API key>"}``
  (or send ``Authorization: Bearer ...`` with the upgrade request); the server
  answers ``{"type": "welcome", ...}`` or closes with code 4401;
* ``{"op": "subscribe", "channels": [...]}`` / ``{"op": "unsubscribe", ...}``:
  each channel is authorized with the same permission as its HTTP read
  (:data:`CHANNEL_PERMISSIONS`) and answered ``subscribed`` or ``error``
  (status 403 / 404 / 422, like the HTTP problem body);
* the server sends ``{"type": "ping"}`` every ``ping_seconds``; any client
  frame (``{"op": "pong"}`` will do) counts as activity; a connection silent
  for ``idle_seconds`` is closed with code 4408.

The stream hub (one LISTEN connection) is shared by every connection of the
process: started with the first connection, stopped with the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from marketdb.api.permissions import PUBLIC, register
from marketdb.errors import InvalidInput, MarketdbError, NotFound
from marketdb.services.streams import Channel, StreamHub, Subscription, parse_channel

__all__ = ["CHANNEL_PERMISSIONS", "StreamConfig", "install", "router"]

STATIC = Path(__file__).resolve().parent.parent / "static"

#: channel kind -> the (resource, action) of its HTTP read
CHANNEL_PERMISSIONS: dict[str, tuple[str, str]] = {
    "trades": ("market_data", "read"),  # GET /v1/ticks/{symbol}
    "quotes": ("market_data", "read"),  # GET /v1/quotes/{symbol}
    "bars": ("market_data", "read"),  # GET /v1/bars/{symbol}
    "orders": ("orders", "read"),  # GET /v1/orders
    "fills": ("orders", "read"),  # GET /v1/fills
    "signals": ("signals", "read"),  # GET /v1/me/signals (others' only with signals:admin)
    "patterns": ("signals", "read"),  # GET /v1/patterns
}


class Principal(Protocol):
    """What the endpoint needs of an authenticated principal."""

    @property
    def user_id(self) -> Any:
        """The user's id."""

    @property
    def username(self) -> str:
        """The user's name."""

    @property
    def role(self) -> str:
        """The user's role."""


Authenticate = Callable[[str], "Principal | None"]
Allows = Callable[[Any, str, str], bool]


@dataclass
class StreamConfig:
    """Per-app settings and the shared hub."""

    authenticate: Authenticate
    allows: Allows
    conninfo: str
    ping_seconds: float = 20.0
    idle_seconds: float = 60.0
    auth_seconds: float = 10.0
    queue_size: int = 1000
    max_channels: int = 200
    hub: StreamHub | None = None
    users: int = 0
    lock: asyncio.Lock | None = None

    async def acquire(self) -> StreamHub:
        """The shared hub, started on first use."""
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            if self.hub is None:
                hub = StreamHub(self.conninfo, queue_size=self.queue_size)
                await hub.start()
                self.hub = hub
            self.users += 1
            return self.hub

    async def release(self) -> None:
        """Stop the hub when its last connection goes."""
        assert self.lock is not None
        async with self.lock:
            self.users -= 1
            if self.users == 0 and self.hub is not None:
                hub, self.hub = self.hub, None
                await hub.stop()


router = APIRouter()  # the dashboard page and its assets (HTTP); /ws is added by install()
register({("GET", "/"): PUBLIC, ("GET", "/static/{path:path}"): PUBLIC})


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The dashboard page (static; it logs in and reads through the HTTP API and /ws)."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


_ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "vendor/lightweight-charts/lightweight-charts.standalone.production.js": "text/javascript",
    "vendor/lightweight-charts/LICENSE": "text/plain",
    "vendor/lightweight-charts/VERSION": "text/plain",
}


@router.get("/static/{path:path}", include_in_schema=False)
def static_asset(path: str) -> Response:
    """Dashboard assets (a fixed list: no directory walking)."""
    media = _ASSETS.get(path)
    if media is None:
        raise NotFound(f"no static asset {path!r}", hint="the dashboard is at /")
    return FileResponse(STATIC / path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


def _problem(status: int, title: str, exc: MarketdbError | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "status": status, "title": title}
    if exc is not None:
        body["detail"] = exc.message if hasattr(exc, "message") else str(exc)
        if exc.hint:
            body["hint"] = exc.hint
    body.update(extra)
    return body


def _owner_ok(cfg: StreamConfig, principal: Principal, channel: Channel) -> bool:
    if channel.kind != "signals" or channel.key == str(principal.user_id):
        return True
    return cfg.allows(principal, "signals", "admin")


async def _authorize(cfg: StreamConfig, principal: Principal, channel: Channel) -> bool:
    resource, action = CHANNEL_PERMISSIONS[channel.kind]
    if not await run_in_threadpool(cfg.allows, principal, resource, action):
        return False
    return await run_in_threadpool(_owner_ok, cfg, principal, channel)


def _bearer(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = ws.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


async def _handle(cfg: StreamConfig, ws: WebSocket, sub: Subscription, principal: Principal,
                  frame: dict[str, Any]) -> None:
    op = frame.get("op")
    if op in ("pong", "ping"):
        if op == "ping":
            await ws.send_text(json.dumps({"type": "pong"}))
        return
    if op not in ("subscribe", "unsubscribe"):
        await ws.send_text(json.dumps(_problem(
            422, f"unknown op {op!r}", hint="use auth, subscribe, unsubscribe, ping or pong")))
        return
    names = frame.get("channels")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        await ws.send_text(json.dumps(_problem(422, "channels must be a list of channel names")))
        return
    for name in names:
        if op == "unsubscribe":
            removed = sub.unsubscribe(name)
            await ws.send_text(json.dumps(
                {"type": "unsubscribed", "channel": name, "was_subscribed": removed}))
            continue
        try:
            channel = parse_channel(name)
            if len(sub.channels) >= cfg.max_channels:
                raise InvalidInput(f"at most {cfg.max_channels} channels per connection",
                                   hint="open another connection or unsubscribe first")
            if not await _authorize(cfg, principal, channel):
                resource, action = CHANNEL_PERMISSIONS[channel.kind]
                await ws.send_text(json.dumps(_problem(
                    403, f"not allowed to {action} {resource}", channel=name,
                    hint="ask an admin for a role that grants it")))
                continue
            channel = await sub.subscribe(name)
        except InvalidInput as exc:
            await ws.send_text(json.dumps(_problem(422, "invalid channel", exc, channel=name)))
            continue
        except NotFound as exc:
            await ws.send_text(json.dumps(_problem(404, "not found", exc, channel=name)))
            continue
        await ws.send_text(json.dumps({"type": "subscribed", "channel": channel.name}))


async def _login(cfg: StreamConfig, ws: WebSocket) -> Principal | None:
    token = _bearer(ws)
    if token is None:
        try:
            text = await asyncio.wait_for(ws.receive_text(), cfg.auth_seconds)
            frame = json.loads(text)
        except (TimeoutError, ValueError):
            return None
        if not isinstance(frame, dict) or frame.get("op") != "auth" \
                or not isinstance(frame.get("token"), str):
            return None
        token = frame["token"]
    principal: Principal | None = await run_in_threadpool(cfg.authenticate, token)
    return principal


async def stream(ws: WebSocket) -> None:
    """Authenticate, then subscribe/unsubscribe and receive messages (see the module doc)."""
    cfg: StreamConfig = ws.app.state.marketdb_streams
    await ws.accept()
    principal = await _login(cfg, ws)
    if principal is None:
        await ws.send_text(json.dumps(_problem(
            401, "authentication failed",
            hint='send {"op": "auth", "token": "<session token or API key>"} first')))
        await ws.close(code=4401)
        return
    hub = await cfg.acquire()
    sub = hub.subscription(cfg.queue_size)
    await ws.send_text(json.dumps({
        "type": "welcome", "user": {"id": str(principal.user_id), "username": principal.username,
                                    "role": principal.role},
        "ping_seconds": cfg.ping_seconds, "idle_seconds": cfg.idle_seconds}))
    last_seen = time.monotonic()

    async def pump() -> None:
        last_ping = time.monotonic()
        while True:
            msg = await sub.get(timeout=min(cfg.ping_seconds, 1.0))
            if msg is not None:
                await ws.send_text(msg.to_json())
            now = time.monotonic()
            if now - last_seen > cfg.idle_seconds:
                await ws.close(code=4408, reason="idle timeout")
                return
            if now - last_ping >= cfg.ping_seconds:
                last_ping = now
                await ws.send_text('{"type":"ping"}')

    sender = asyncio.create_task(pump())
    try:
        while True:
            receiver = asyncio.ensure_future(ws.receive_text())
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                receiver.cancel()
                with contextlib.suppress(BaseException):
                    await receiver
                break
            last_seen = time.monotonic()
            try:
                frame = json.loads(receiver.result())
            except ValueError:
                await ws.send_text(json.dumps(_problem(422, "frames must be JSON objects")))
                continue
            if isinstance(frame, dict):
                await _handle(cfg, ws, sub, principal, frame)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        sub.close()
        await cfg.release()


def install(app: FastAPI, *, authenticate: Authenticate, allows: Allows, conninfo: str,
            ping_seconds: float = 20.0, idle_seconds: float = 60.0, queue_size: int = 1000,
            include_pages: Callable[[FastAPI, APIRouter], None] | None = None) -> StreamConfig:
    """Add ``/ws`` and the dashboard to ``app``; returns the config (tests tune timeouts on it).

    ``include_pages`` mounts the dashboard's HTTP routes (the API passes its
    permission-checking ``include``; they are PUBLIC); ``/ws`` authenticates
    and authorizes by itself, per connection and per channel.
    """
    cfg = StreamConfig(authenticate=authenticate, allows=allows, conninfo=conninfo,
                       ping_seconds=ping_seconds, idle_seconds=idle_seconds, queue_size=queue_size)
    app.state.marketdb_streams = cfg
    if include_pages is None:
        app.include_router(router)
    else:
        include_pages(app, router)
    app.add_api_websocket_route("/ws", stream)
    return cfg
