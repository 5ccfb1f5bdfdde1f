"""Build the app for uvicorn from the environment (``marketdb serve`` and ``--workers N``).

Each worker process calls :func:`build`: it connects like ``marketdb.connect()``
(``DATABASE_URL`` or the embedded server), with a short pool timeout so a
saturated pool answers 503 + Retry-After instead of hanging.

Environment: ``MARKETDB_API_CORS_ORIGINS`` (comma-separated; empty = CORS
off), ``MARKETDB_API_MAX_BODY_MB`` (default 256), ``MARKETDB_API_POOL_SIZE``
(default 10), ``MARKETDB_API_POOL_TIMEOUT`` seconds (default 5),
``MARKETDB_API_ACCESS_LOG=0`` turns the JSON access log off.

Background upkeep (docs/operations.md, "Scheduler"): every worker starts the
maintenance scheduler (``MARKETDB_MAINTAIN_EVERY``, default ``1h``; ``off``
disables it; an advisory lock lets exactly one run at a time across processes
and machines, the others record ``skipped``) and the bar refresher that folds
rows written by other programs (plain SQL, COPY, other languages) into the
stored bars as they commit (``MARKETDB_BAR_REFRESHER=off`` disables it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from fastapi import FastAPI

import marketdb
from marketdb.api.app import create_app
from marketdb.api.state import ApiSettings
from marketdb.client import MarketDB
from marketdb.store.db import create_engine

__all__ = ["build", "connect_for_api", "settings_from_env"]


def settings_from_env() -> ApiSettings:
    """:class:`ApiSettings` from ``MARKETDB_API_*`` variables."""
    raw = os.environ.get("MARKETDB_API_CORS_ORIGINS", "")
    origins = tuple(o.strip() for o in raw.split(",") if o.strip())
    max_mb = float(os.environ.get("MARKETDB_API_MAX_BODY_MB", "256"))
    return ApiSettings(cors_origins=origins, max_body_bytes=int(max_mb * 1024 * 1024))


def connect_for_api() -> MarketDB:
    """``marketdb.connect()`` with an API-sized pool that fails fast when exhausted."""
    db = marketdb.connect()
    size = int(os.environ.get("MARKETDB_API_POOL_SIZE", "10"))
    timeout = float(os.environ.get("MARKETDB_API_POOL_TIMEOUT", "5"))
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    db.engine = create_engine(url, db.settings, pool_size=size, max_overflow=size, pool_timeout=timeout)
    return db


def build() -> FastAPI:
    """The uvicorn factory: ``uvicorn --factory marketdb.api.server:build``."""
    access = logging.getLogger("marketdb.api.access")
    if not access.handlers and os.environ.get("MARKETDB_API_ACCESS_LOG", "1") != "0":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    db = connect_for_api()
    app = create_app(db, settings_from_env())
    start_upkeep(db)
    return app


def start_upkeep(db: MarketDB) -> list[threading.Thread]:
    """Start the maintenance scheduler and the bar refresher on daemon threads (see the module doc)."""
    from marketdb.services.ops.scheduler import Scheduler, maintain_period

    log = logging.getLogger("marketdb.api.upkeep")
    threads: list[threading.Thread] = []
    period = maintain_period()
    if period is not None:
        threads.append(Scheduler(db.ops, every=period).start())
    if os.environ.get("MARKETDB_BAR_REFRESHER", "on").strip().lower() not in ("0", "off", "no", "false"):
        refresher = db.bars.refresher()

        def listen_forever() -> None:
            while True:
                try:
                    refresher.listen()
                    return  # stopped
                except Exception:  # the server restarting: listen again shortly
                    log.exception("bar refresher: listening failed; retrying in 5 s")
                    time.sleep(5)

        thread = threading.Thread(target=listen_forever, name="marketdb-bar-refresher", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
