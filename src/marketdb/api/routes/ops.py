"""Health, readiness, status, doctor, maintenance, backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from marketdb.api.deps import Db, State
from marketdb.api.formats import json_response
from marketdb.store import migrate

router = APIRouter(tags=["ops"])


@router.get("/health")
def health(state: State) -> JSONResponse:
    """Liveness: the process answers. Reports the cache (Redis down = fallback, still healthy)."""
    return json_response({"status": "ok", "cache": state.cache.status()})


@router.get("/ready")
def ready(db: Db) -> JSONResponse:
    """Readiness: the database answers and its schema is at head (503 otherwise)."""
    try:
        current = migrate.current_revision(db.engine)
        head = migrate.head_revision(db.engine, db.settings)
    except Exception as exc:  # any failure here means "not ready", never a 500
        return JSONResponse(
            {"status": "unavailable", "detail": type(exc).__name__},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    if current != head:
        return JSONResponse(
            {"status": "migrating", "schema_revision": current, "schema_head": head},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return json_response({"status": "ready", "schema_revision": current})


@router.get("/v1/ops/status")
def status(db: Db) -> JSONResponse:
    """Server, version, extensions, schema revision."""
    return json_response(db.status())


@router.get("/v1/ops/doctor")
def doctor(db: Db, state: State) -> JSONResponse:
    """What is configured, reachable and wrong, plus the API's cache status."""
    report = db.ops.doctor()
    return json_response({"doctor": report, "api_cache": state.cache.status()})


class MaintainIn(BaseModel):
    """Nothing yet: runs every maintenance step once."""


@router.post("/v1/ops/maintain")
def maintain(body: MaintainIn, db: Db) -> JSONResponse:
    """Run maintenance once (partitions ahead, retention, roll-ups)."""
    result: Any = db.ops.maintain()
    return json_response(result)


class BackupIn(BaseModel):
    """A backup file name (no directories): written under the server's backup directory."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    verify: bool = False
    overwrite: bool = False
    tables: list[str] | None = Field(default=None, min_length=1)


@router.post("/v1/ops/backup", status_code=201)
def backup(body: BackupIn, db: Db, state: State) -> JSONResponse:
    """``pg_dump`` the database to ``<backup dir>/<name>`` plus a manifest (admin).

    The directory is ``ApiSettings.backup_dir`` (default ``<MARKETDB_HOME>/backups``);
    ``verify`` restores the dump into a scratch database and compares row counts.
    """
    directory = state.settings.backup_dir or Path(db.settings.home) / "backups"
    directory.mkdir(parents=True, exist_ok=True)
    result: Any = db.ops.backup(
        directory / body.name, verify=body.verify, overwrite=body.overwrite, tables=body.tables
    )
    return json_response(result, 201)
