"""Sessions, API keys, throttling, secrets, audit and operational limits."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

import marketdb
from marketdb.api import ApiSettings, create_app
from marketdb.store.cache import NullCache
from marketdb.store.db import create_engine
from tests.api.conftest import PASSWORD, Api, make_api


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    key = api.client.post("/v1/auth/keys", json={"name": "bot"}, headers=api.headers("trader")).json()["key"]
    with api.db.transaction() as conn:
        blob = repr(conn.execute(sa.text("SELECT * FROM api_sessions")).all())
        blob += repr(conn.execute(sa.text("SELECT * FROM api_keys")).all())
    for secret in (*api.tokens.values(), key):
        assert secret not in blob
        assert secret[5:] not in blob
    assert len(api.tokens["trader"]) >= 5 + 43  # 256 random bits, url-safe base64


def test_role_change_deactivation_and_key_revocation_apply_to_the_next_request(api: Api) -> None:
    trader = api.headers("trader")
    created = api.client.post("/v1/auth/keys", json={"name": "bot"}, headers=trader).json()
    key = _bearer(created["key"])
    assert api.client.get("/v1/orders", headers=key).status_code == 200
    api.db.accounts.set_role("tina", "viewer")
    assert api.client.get("/v1/orders", headers=trader).status_code == 403
    assert api.client.get("/v1/orders", headers=key).status_code == 403  # owner's role bounds the key
    api.db.accounts.set_role("tina", "trader")
    assert api.client.get("/v1/orders", headers=key).status_code == 200
    assert api.client.delete(f"/v1/auth/keys/{created['info']['id']}", headers=trader).status_code == 200
    assert api.client.get("/v1/orders", headers=key).status_code == 401
    api.db.accounts.deactivate("tina")
    assert api.client.get("/v1/orders", headers=trader).status_code == 401
    audit = [e.action for e in api.db.accounts.audit_log(resource_type="api_key")]
    assert "api_key.revoke" in audit
    assert "api_key.create" in audit


def test_api_key_role_is_never_higher_than_the_owners(api: Api) -> None:
    r = api.client.post("/v1/auth/keys", json={"name": "x", "role": "admin"}, headers=api.headers("trader"))
    assert r.status_code == 403
    r = api.client.post("/v1/auth/keys", json={"name": "ro", "role": "viewer"}, headers=api.headers("trader"))
    assert r.status_code == 201
    ro = _bearer(r.json()["key"])
    assert api.client.get("/v1/orders", headers=ro).status_code == 403  # viewer key: no orders
    assert api.client.get("/v1/bars/NOPE", headers=ro).status_code == 404  # market data allowed


def test_expired_sessions_are_refused(api: Api) -> None:
    with api.db.transaction() as conn:
        conn.execute(sa.text("UPDATE api_sessions SET last_used_at = now() - interval '3 hours'"))
    assert api.client.get("/v1/auth/me", headers=api.headers("viewer")).status_code == 401
    r = api.client.post("/v1/auth/login", json={"username": "vic", "password": PASSWORD})
    with api.db.transaction() as conn:
        conn.execute(sa.text("UPDATE api_sessions SET expires_at = now() - interval '1 second'"))
    assert api.client.get("/v1/auth/me", headers=_bearer(r.json()["token"])).status_code == 401


def test_failed_logins_are_throttled_per_account_and_address_alike(db: marketdb.MarketDB) -> None:
    api = make_api(db, settings=ApiSettings(login_max_failures=3))
    with api.client:
        answers = {}
        for name in ("tina", "ghost"):  # an account that exists, one that does not
            codes = [
                api.client.post("/v1/auth/login", json={"username": name, "password": "bad"}).status_code
                for _ in range(4)
            ]
            answers[name] = codes
        assert answers["tina"] == answers["ghost"] == [401, 401, 401, 429]
        r = api.client.post("/v1/auth/login", json={"username": "tina", "password": PASSWORD})
        assert r.status_code == 429  # even the right password, while throttled
        assert r.headers["retry-after"]


def test_secrets_are_never_listed_and_reveal_is_audited(api: Api) -> None:
    trader = api.headers("trader")
    r = api.client.put("/v1/me/secrets/broker", json={"value": "s3cr3t-value"}, headers=trader)
    assert r.status_code == 200, r.text
    listed = api.client.get("/v1/me/secrets", headers=trader)
    assert "s3cr3t-value" not in listed.text
    assert listed.json()["items"][0]["key_name"] == "broker"
    assert "s3cr3t-value" not in api.client.get("/v1/me/secrets", headers=api.headers("other")).text
    r = api.client.post("/v1/me/secrets/broker/reveal", headers=trader)
    assert r.json()["value"] == "s3cr3t-value"
    reveal = api.db.accounts.audit_log(action="secret.reveal")
    assert len(reveal) == 1
    assert reveal[0].actor == "tina"
    assert api.client.post("/v1/me/secrets/broker/reveal", headers=api.headers("other")).status_code == 404


def test_body_limit_and_cors_off_by_default(db: marketdb.MarketDB) -> None:
    api = make_api(db, settings=ApiSettings(max_body_bytes=1000, login_max_failures=100))
    with api.client:
        r = api.client.post(
            "/v1/ingest/ticks",
            content=b"x" * 5000,
            headers={**api.headers("admin"), "Content-Type": "text/csv"},
        )
        assert r.status_code == 413
        r = api.client.options(
            "/v1/bars/AAPL", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in r.headers


def test_pool_exhaustion_answers_503_with_retry_after(db: marketdb.MarketDB) -> None:
    api = make_api(db)
    url = db.engine.url.render_as_string(hide_password=False)
    small = marketdb.MarketDB(
        db.settings, create_engine(url, db.settings, pool_size=1, max_overflow=0, pool_timeout=0.2)
    )
    small.__dict__["accounts"] = db.accounts
    app = create_app(small, cache=NullCache())
    try:
        with TestClient(app, raise_server_exceptions=False) as client, small.engine.connect():
            r = client.get("/v1/auth/me", headers=api.headers("viewer"))
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json()["type"].endswith("unavailable")
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/v1/auth/me", headers=api.headers("viewer")).status_code == 200
    finally:
        small.engine.dispose()
