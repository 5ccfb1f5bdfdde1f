"""`marketdb serve`: the HTTP API on uvicorn."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from marketdb.cli._common import connect_db, err_console


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    cors: Annotated[str, typer.Option(help="allowed CORS origins, comma-separated (default: off)")] = "",
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) on the embedded server or DATABASE_URL."""
    from marketdb.services.ops.scheduler import maintain_period

    maintain_period()  # a bad MARKETDB_MAINTAIN_EVERY is a clean error here, not a worker traceback
    # Migrate (embedded) or check the schema once, before any worker starts.
    db = connect_db()
    err_console.print(f"serving {db!r} on http://{host}:{port} (docs at /docs), {workers} worker(s)")
    db.close()
    if cors:
        os.environ["MARKETDB_API_CORS_ORIGINS"] = cors
    # uvicorn's own command line runs the worker processes (spawned workers of an
    # in-process uvicorn.run() die under a console-script __main__).
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "marketdb.api.server:build",
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--log-level", log_level, "--no-access-log",  # marketdb.api.access logs JSON lines instead
    ]
    os.execv(sys.executable, argv)  # noqa: S606 - fixed arguments, our own interpreter
