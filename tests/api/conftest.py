"""Fixtures for the HTTP API tests: an app on a fresh database with one user per role."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import marketdb
from marketdb.api import ApiSettings, create_app
from marketdb.services.accounts import Accounts, KeyRing
from marketdb.store.cache import Cache, NullCache

PASSWORD = "correct horse battery staple 42"


@dataclass
class Api:
    """A test client plus one bearer token per role."""

    db: marketdb.MarketDB
    client: TestClient
    tokens: dict[str, str]
    user_ids: dict[str, str]
    app: FastAPI

    def headers(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_api(db: marketdb.MarketDB, cache: Cache | None = None, settings: ApiSettings | None = None) -> Api:
    db.__dict__["accounts"] = Accounts(db, keyring=KeyRing({"k1": os.urandom(32)}, "k1"))
    users = {
        "admin": ("root", "admin"),
        "trader": ("tina", "trader"),
        "viewer": ("vic", "viewer"),
        "other": ("otto", "trader"),
    }
    ids = {}
    for key, (name, role) in users.items():
        ids[key] = str(db.accounts.create_user(name, f"{name}@example.com", PASSWORD, role=role).id)
    app = create_app(db, settings or ApiSettings(login_max_failures=1000), cache=cache or NullCache())
    client = TestClient(app, raise_server_exceptions=False)
    tokens = {}
    for key, (name, _) in users.items():
        r = client.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        tokens[key] = r.json()["token"]
    return Api(db, client, tokens, ids, app)


@pytest.fixture
def api(db: marketdb.MarketDB) -> Iterator[Api]:
    """An app on a fresh database with users admin/root, trader/tina, viewer/vic, other/otto."""
    a = make_api(db)
    with a.client:
        yield a
