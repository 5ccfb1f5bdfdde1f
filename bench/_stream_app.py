"""The app ``bench/stream.py`` serves with uvicorn in a child process.

Only the streaming part of ``marketdb serve``: ``/ws`` from
``marketdb.api.routes.stream`` on a bare FastAPI app. Authentication is a
fixed bench token (``MARKETDB_BENCH_TOKEN``) and every channel is allowed: the
benchmark measures the path commit -> NOTIFY -> read back -> fan-out ->
WebSocket frame, not the login (done once per connection).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from marketdb.api.routes.stream import install


@dataclass(frozen=True)
class BenchPrincipal:
    """The one principal of the benchmark."""

    user_id: str = "00000000-0000-0000-0000-000000000000"
    username: str = "bench"
    role: str = "admin"


def create() -> FastAPI:
    """The app (uvicorn ``--factory``); DB URL from ``MARKETDB_BENCH_URL``."""
    token = os.environ["MARKETDB_BENCH_TOKEN"]

    def authenticate(sent: str) -> BenchPrincipal | None:
        return BenchPrincipal() if secrets.compare_digest(sent, token) else None

    def allows(principal: Any, resource: str, action: str) -> bool:
        return True

    app = FastAPI()
    install(app, authenticate=authenticate, allows=allows, conninfo=os.environ["MARKETDB_BENCH_URL"],
            queue_size=int(os.environ.get("MARKETDB_BENCH_QUEUE", "1000")))
    return app
