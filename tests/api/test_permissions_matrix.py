"""Every route x method x role, generated from the app's route table.

A route missing from ROUTE_PERMISSIONS fails here; a denied request must
answer 401 (anonymous) or 403 and change nothing in the database.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.testclient import TestClient

import marketdb
from marketdb.api import create_app
from marketdb.api.app import api_routes
from marketdb.api.permissions import PUBLIC, ROUTE_PERMISSIONS, SELF
from marketdb.store.cache import NullCache
from marketdb.store.schema import metadata
from marketdb.store.schema.accounts import DEFAULT_PERMISSIONS
from tests.api.conftest import Api

ROLES = ("admin", "trader", "viewer", None)
#: Tables an authenticated request may touch without being a change (last-used stamps).
_VOLATILE = {"api_sessions", "api_keys"}
_SAMPLE = {
    "symbol": "ZZZNOPE",
    "ref": "ZZZNOPE",
    "underlying": "ZZZNOPE",
    "kind": "ticks",
    "strategy_id": "no-such-strategy",
    "signal_id": "00000000-0000-0000-0000-000000000001",
    "order_id": "00000000-0000-0000-0000-000000000001",
    "key_id": "00000000-0000-0000-0000-000000000001",
    "post_id": "00000000-0000-0000-0000-000000000001",
    "user": "nobody-here",
    "name": "nothing",
    "broker": "nobroker",
    "key": "no.such.key",
    "role": "no-such-role",
    "resource": "nothing",
    "action": "nothing",
}


def _granted(role: str, resource: str, action: str) -> bool:
    return any(
        r == role and res in (resource, "*") and act in (action, "*") for r, res, act in DEFAULT_PERMISSIONS
    )


def _routes(app: Any) -> list[tuple[str, str]]:
    return api_routes(app)


def fingerprint(db: marketdb.MarketDB) -> dict[str, str]:
    """A content hash of every table (except last-used stamps): any write changes it."""
    out = {}
    with db.transaction() as conn:
        for name in sorted(metadata.tables):
            if name in _VOLATILE:
                continue
            q = f'SELECT md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) FROM "{name}" x'
            out[name] = conn.execute(sa.text(q)).scalar_one()
    with db.transaction() as conn:
        keys = conn.execute(sa.text("SELECT id, revoked_at, role FROM api_keys ORDER BY id")).all()
        sessions = conn.execute(sa.text("SELECT token_hash, revoked_at FROM api_sessions ORDER BY 1")).all()
    out["_auth"] = hashlib.sha256(repr((keys, sessions)).encode()).hexdigest()
    return out


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _SAMPLE[m.group(1)], template)


def test_every_route_is_in_the_permission_table(api: Api) -> None:
    routes = set(_routes(api.app))
    missing = sorted(r for r in routes if r not in ROUTE_PERMISSIONS)
    stale = sorted(r for r in ROUTE_PERMISSIONS if r not in routes)
    assert not missing, f"routes without a permission entry: {missing}"
    assert not stale, f"permission entries without a route: {stale}"


def test_route_missing_from_the_table_is_denied_even_to_admin(db: marketdb.MarketDB, api: Api) -> None:
    extra = APIRouter()

    @extra.get("/v1/undeclared")
    def undeclared() -> dict[str, str]:
        return {"leak": "yes"}

    app = create_app(db, cache=NullCache(), routers=[extra])
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/undeclared", headers=api.headers("admin"))
        assert r.status_code == 403
        assert "declares no permission" in r.json()["detail"]
        assert (("GET", "/v1/undeclared")) in _routes(app)


def _expected_allowed(need: tuple[str, str], role: str | None) -> bool:
    if need == PUBLIC:
        return True
    if role is None:
        return False
    if need == SELF:
        return True
    return _granted(role, *need)


def test_route_x_method_x_role(api: Api) -> None:
    routes = _routes(api.app)
    # Logging out ends the caller's session: do it last.
    routes.sort(key=lambda r: r == ("POST", "/v1/auth/logout"))
    checked = denied = 0
    for role in ("viewer", "trader", None, "admin"):
        before = fingerprint(api.db)
        allowed_calls = []
        for method, template in routes:
            need = ROUTE_PERMISSIONS[(method, template)]
            expect = _expected_allowed(need, role)
            if expect:
                allowed_calls.append((method, template))
                continue
            r = api.client.request(method, _path(template), json={}, headers=api.headers(role))
            want = 401 if role is None else 403
            assert r.status_code == want, f"{role} {method} {template}: {r.status_code} {r.text[:200]}"
            assert r.headers["content-type"].startswith("application/problem+json")
            checked += 1
            denied += 1
        assert fingerprint(api.db) == before, f"a denied request of {role} changed the database"
        for method, template in allowed_calls:
            r = api.client.request(method, _path(template), json={}, headers=api.headers(role))
            where = f"{role} {method} {template}: {r.status_code} {r.text[:300]}"
            assert r.status_code not in (401, 403), where
            assert r.status_code < 500, where
            checked += 1
    assert denied > 50
    assert checked == 4 * len(routes)


def _setup_objects(api: Api) -> dict[str, str]:
    """Objects owned by 'other' (a trader): a post, an API key, a user signal."""
    other = api.headers("other")
    admin = api.headers("admin")
    api.client.post("/v1/instruments", json={"rows": [{"symbol": "AAPL"}]}, headers=admin)
    api.db.accounts.grant("trader", "signals", "create")
    post = api.client.post("/v1/posts", json={"text": "hello"}, headers=other).json()
    key = api.client.post("/v1/auth/keys", json={"name": "bot"}, headers=other).json()
    sig = api.client.post("/v1/me/signals", json={"symbol": "AAPL", "signal_type": "buy"}, headers=other)
    assert sig.status_code == 201, sig.text
    return {"post": post["id"], "key": key["info"]["id"], "api_key": key["key"], "signal": sig.json()["id"]}


@pytest.mark.parametrize(
    ("method", "template", "obj"),
    [
        ("DELETE", "/v1/posts/{}", "post"),
        ("DELETE", "/v1/auth/keys/{}", "key"),
        ("GET", "/v1/signals/{}", "signal"),
        ("POST", "/v1/signals/{}/cancel", "signal"),
    ],
)
def test_another_users_object_is_refused_without_side_effects(
    api: Api, method: str, template: str, obj: str
) -> None:
    ids = _setup_objects(api)
    before = fingerprint(api.db)
    for role in ("trader", "viewer"):
        r = api.client.request(method, template.format(ids[obj]), json={}, headers=api.headers(role))
        assert r.status_code in (403, 404), f"{role}: {r.status_code} {r.text[:200]}"
    assert fingerprint(api.db) == before
    # The owner's API key still works, and the owner (and an admin) may act.
    r = api.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {ids['api_key']}"})
    assert r.status_code == 200
    r = api.client.request(method, template.format(ids[obj]), json={}, headers=api.headers("admin"))
    assert r.status_code < 300, r.text
