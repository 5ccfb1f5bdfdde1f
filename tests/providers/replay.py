"""A local HTTP server that replays recorded provider responses (never the internet).

``Replay.route(path, handler)`` answers GETs of ``path`` with ``handler(query,
headers) -> (status, headers, body)``; every request is logged in ``requests``.
``faults`` injects status codes (429/500) before the real answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], Any]
Handler = Callable[[dict[str, str], dict[str, str]], Answer]


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: str


@dataclass
class Replay:
    """Routes, injected faults and the request log of one server."""

    url: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    faults: list[Callable[[Seen], Answer | None]] = field(default_factory=list)

    def route(self, path: str, handler: Handler | Any) -> None:
        """Serve ``path`` with ``handler`` (a callable, or a fixed JSON body)."""
        if callable(handler):
            self.routes[path] = handler
        else:
            body = handler
            self.routes[path] = lambda q, h: (200, {}, body)

    def answer(self, seen: Seen) -> Answer:
        for fault in self.faults:
            out = fault(seen)
            if out is not None:
                return out
        handler = self.routes.get(seen.path)
        if handler is None:
            return 404, {}, {"error": f"no route {seen.path}"}
        return handler(seen.query, seen.headers)


@contextmanager
def serve() -> Iterator[Replay]:
    """A replay server on 127.0.0.1 at a free port, stopped on exit."""
    replay = Replay()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            seen = Seen(parts.path, query, dict(self.headers.items()), self.path)
            replay.requests.append(seen)
            status, headers, body = replay.answer(seen)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
