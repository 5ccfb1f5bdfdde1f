"""The routes that completed issue 11's list: model parameters, position stops and marks,
backup, roles and grants, subscriptions, deleting configurations and broker credentials,
a user's posts. Each: the happy path (compared with the library / the audit log) and a
denial that changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.api import ApiSettings
from marketdb.errors import ConfigurationError
from marketdb.services.ops.backup import find_tool
from tests.api.conftest import Api, make_api
from tests.api.test_permissions_matrix import fingerprint

TS = "2024-03-04T15:00:00Z"


def _audit_actions(api: Api, user_key: str) -> list[str]:
    rows = api.db.accounts.audit_log(user=api.user_ids[user_key], limit=1000)
    return [r.action for r in rows]


def _instruments(api: Api, *symbols: str) -> None:
    r = api.client.post(
        "/v1/instruments", json={"rows": [{"symbol": s} for s in symbols]}, headers=api.headers("admin")
    )
    assert r.status_code < 300, r.text


# --------------------------------------------------------------- model parameters
HESTON = {"symbol": "SPY", "ts": TS, "kappa": 2.0, "theta": 0.04, "sigma": 0.3, "rho": -0.7, "v0": 0.05}


def test_heston_record_and_latest(api: Api) -> None:
    _instruments(api, "SPY")
    before = fingerprint(api.db)
    for role, want in (("trader", 403), ("viewer", 403), (None, 401)):
        r = api.client.post("/v1/models/heston", json=HESTON, headers=api.headers(role))
        assert r.status_code == want, f"{role}: {r.text}"
    assert fingerprint(api.db) == before

    r = api.client.post("/v1/models/heston", json=HESTON, headers=api.headers("admin"))
    assert r.status_code == 201, r.text
    # 2 * 2.0 * 0.04 = 0.16 > 0.09: Feller holds (computed by PostgreSQL, not sent)
    assert r.json()["feller_satisfied"] is True

    lib = api.db.trading.latest_heston("SPY")
    assert lib is not None
    r = api.client.get("/v1/models/heston/SPY/latest", headers=api.headers("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert float(body["kappa"]) == float(lib["kappa"]) == 2.0
    assert float(body["rho"]) == float(lib["rho"]) == -0.7
    assert "heston_parameters.record" in _audit_actions(api, "admin")

    # as_of before the calibration: none -> 404 problem
    r = api.client.get(
        "/v1/models/heston/SPY/latest",
        params={"as_of": "2024-01-01T00:00:00Z"},
        headers=api.headers("viewer"),
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert api.client.get("/v1/models/heston/SPY/latest").status_code == 401

    # Domain rule from the service: rho outside [-1, 1] -> 422, nothing written
    before = fingerprint(api.db)
    r = api.client.post("/v1/models/heston", json={**HESTON, "rho": 1.5}, headers=api.headers("admin"))
    assert r.status_code == 422, r.text
    assert "rho" in r.json()["detail"]
    assert fingerprint(api.db) == before


def test_sabr_record_and_latest(api: Api) -> None:
    _instruments(api, "SPY")
    slices = [
        {"maturity": 0.25, "alpha": 0.2, "beta": 0.5, "rho": -0.3, "nu": 0.4},
        {"maturity": 1.0, "alpha": 0.25, "beta": 0.5, "rho": -0.2, "nu": 0.35, "rmse": 0.01},
    ]
    body = {"symbol": "SPY", "ts": TS, "slices": slices}
    before = fingerprint(api.db)
    assert api.client.post("/v1/models/sabr", json=body, headers=api.headers("trader")).status_code == 403
    assert fingerprint(api.db) == before
    r = api.client.post("/v1/models/sabr", json=body, headers=api.headers("admin"))
    assert r.status_code == 201, r.text
    assert len(r.json()["items"]) == 2

    r = api.client.get("/v1/models/sabr/SPY/latest", headers=api.headers("trader"))
    assert r.status_code == 200, r.text
    got = sorted((float(s["maturity"]), float(s["nu"])) for s in r.json()["items"])
    lib = sorted((float(s["maturity"]), float(s["nu"])) for s in api.db.trading.latest_sabr("SPY"))
    assert got == lib == [(0.25, 0.4), (1.0, 0.35)]


def test_ou_record_and_latest(api: Api) -> None:
    _instruments(api, "KO", "PEP")
    body = {
        "asset1": "KO",
        "asset2": "PEP",
        "ts": TS,
        "hedge_ratio": 0.8,
        "theta": 5.0,
        "mu": 0.1,
        "sigma": 0.2,
    }
    before = fingerprint(api.db)
    assert api.client.post("/v1/models/ou", json=body, headers=api.headers("viewer")).status_code == 403
    assert fingerprint(api.db) == before
    r = api.client.post("/v1/models/ou", json=body, headers=api.headers("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["pair_id"] == "KO/PEP"

    r = api.client.get("/v1/models/ou/latest", params={"pair_id": "KO/PEP"}, headers=api.headers("viewer"))
    assert r.status_code == 200, r.text
    lib = api.db.trading.latest_ou("KO/PEP")
    assert lib is not None
    assert float(r.json()["half_life"]) == pytest.approx(float(lib["half_life"]))
    assert float(r.json()["half_life"]) == pytest.approx(0.6931471805599453 / 5.0)
    r = api.client.get("/v1/models/ou/latest", params={"pair_id": "A/B"}, headers=api.headers("viewer"))
    assert r.status_code == 404


# ---------------------------------------------------------- position stops, marks
@pytest.fixture
def position(api: Api) -> dict[str, Any]:
    """A long 10 AAPL @ 100 position of strategy s1, opened by the trader."""
    _instruments(api, "AAPL")
    r = api.client.post(
        "/v1/strategies", json={"strategy_id": "s1", "name": "S1"}, headers=api.headers("admin")
    )
    assert r.status_code == 201, r.text
    trader = api.headers("trader")
    order = api.client.post(
        "/v1/orders",
        json={"strategy_id": "s1", "symbol": "AAPL", "side": "buy", "quantity": "10"},
        headers=trader,
    )
    assert order.status_code == 201, order.text
    fill = api.client.post(
        f"/v1/orders/{order.json()['id']}/fills", json={"quantity": "10", "price": "100"}, headers=trader
    )
    assert fill.status_code == 201, fill.text
    created: dict[str, Any] = order.json()
    return created


def test_set_stops(api: Api, position: dict[str, Any]) -> None:
    before = fingerprint(api.db)
    for role, want in (("viewer", 403), (None, 401)):
        r = api.client.put("/v1/positions/s1/AAPL/stops", json={"stop_loss": "95"}, headers=api.headers(role))
        assert r.status_code == want, r.text
    assert fingerprint(api.db) == before

    r = api.client.put(
        "/v1/positions/s1/AAPL/stops",
        json={"stop_loss": "95", "target": "120"},
        headers=api.headers("trader"),
    )
    assert r.status_code == 200, r.text
    pos = api.db.trading.position("s1", "AAPL")
    assert pos is not None
    assert pos.stop_loss_price == Decimal("95")
    assert pos.target_price == Decimal("120")
    assert Decimal(r.json()["stop_loss_price"]) == Decimal("95")

    # Only stop_loss sent: target stays; null clears
    r = api.client.put("/v1/positions/s1/AAPL/stops", json={"stop_loss": None}, headers=api.headers("trader"))
    assert r.status_code == 200, r.text
    pos = api.db.trading.position("s1", "AAPL")
    assert pos is not None
    assert pos.stop_loss_price is None
    assert pos.target_price == Decimal("120")
    assert _audit_actions(api, "trader").count("position.set_stops") == 2

    assert (
        api.client.put("/v1/positions/s1/AAPL/stops", json={}, headers=api.headers("trader")).status_code
        == 422
    )
    r = api.client.put("/v1/positions/s1/MSFT/stops", json={"stop_loss": "1"}, headers=api.headers("trader"))
    assert r.status_code == 404, r.text


def test_mark_to_market(api: Api, position: dict[str, Any]) -> None:
    before = fingerprint(api.db)
    r = api.client.post("/v1/positions/mark", json={"prices": {"AAPL": "110"}}, headers=api.headers("viewer"))
    assert r.status_code == 403
    assert fingerprint(api.db) == before

    r = api.client.post(
        "/v1/positions/mark",
        json={"strategy_id": "s1", "prices": {"AAPL": "110"}},
        headers=api.headers("trader"),
    )
    assert r.status_code == 200, r.text
    [row] = r.json()["items"]
    assert Decimal(row["unrealized_pnl"]) == Decimal("100")  # 10 x (110 - 100)
    pos = api.db.trading.position("s1", "AAPL")
    assert pos is not None
    assert Decimal(str(pos["unrealized_pnl"])) == Decimal("100")

    r = api.client.post("/v1/positions/mark", json={"prices": {"AAPL": "-1"}}, headers=api.headers("trader"))
    assert r.status_code == 422


# -------------------------------------------------------------------------- backup
@pytest.fixture
def backup_api(db: marketdb.MarketDB, tmp_path: Path) -> Iterator[Api]:
    with db.engine.connect() as conn:
        major = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    try:
        find_tool("pg_dump", min_major=major, prefer_wheel=True)
    except ConfigurationError as exc:
        pytest.skip(f"no pg_dump for PostgreSQL {major}: {exc.message}")
    a = make_api(db, settings=ApiSettings(login_max_failures=1000, backup_dir=tmp_path / "backups"))
    with a.client:
        yield a


def test_backup_admin_only(backup_api: Api, tmp_path: Path) -> None:
    api = backup_api
    for role, want in (("trader", 403), ("viewer", 403), (None, 401)):
        r = api.client.post("/v1/ops/backup", json={"name": "x.dump"}, headers=api.headers(role))
        assert r.status_code == want, r.text
    assert not (tmp_path / "backups").exists()

    for bad in ("../escape.dump", "/etc/x", ".hidden", "a/b"):
        r = api.client.post("/v1/ops/backup", json={"name": bad}, headers=api.headers("admin"))
        assert r.status_code == 422, f"{bad}: {r.text}"
    assert not (tmp_path / "escape.dump").exists()

    r = api.client.post("/v1/ops/backup", json={"name": "nightly.dump"}, headers=api.headers("admin"))
    assert r.status_code == 201, r.text
    out = tmp_path / "backups" / "nightly.dump"
    assert out.is_file()
    assert out.stat().st_size == r.json()["size_bytes"] > 0
    # Same name again without overwrite: a conflict, the file untouched
    r = api.client.post("/v1/ops/backup", json={"name": "nightly.dump"}, headers=api.headers("admin"))
    assert r.status_code == 409, r.text


# ------------------------------------------------------------------- roles, grants
def test_create_role_grant_and_revoke(api: Api) -> None:
    before = fingerprint(api.db)
    for role in ("trader", "viewer"):
        assert (
            api.client.post("/v1/roles", json={"name": "analyst"}, headers=api.headers(role)).status_code
            == 403
        )
        r = api.client.post(
            "/v1/roles/viewer/permissions",
            json={"resource": "orders", "action": "create"},
            headers=api.headers(role),
        )
        assert r.status_code == 403
        assert (
            api.client.delete(
                "/v1/roles/viewer/permissions/signals/read", headers=api.headers(role)
            ).status_code
            == 403
        )
    assert fingerprint(api.db) == before

    admin = api.headers("admin")
    r = api.client.post("/v1/roles", json={"name": "analyst", "description": "reads models"}, headers=admin)
    assert r.status_code == 201, r.text
    r = api.client.post(
        "/v1/roles/analyst/permissions", json={"resource": "models", "action": "create"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["granted"] is True
    r = api.client.post(
        "/v1/roles/analyst/permissions", json={"resource": "models", "action": "create"}, headers=admin
    )
    assert r.json()["granted"] is False
    assert ("models", "create") in {
        (p.resource, p.action) for p in api.db.accounts.list_permissions("analyst")
    }

    # The grant applies on the very next request of a user moved to the role.
    assert api.client.put("/v1/users/vic/role", json={"role": "analyst"}, headers=admin).status_code == 200
    _instruments(api, "SPY")
    r = api.client.post("/v1/models/heston", json=HESTON, headers=api.headers("viewer"))
    assert r.status_code == 201, r.text

    r = api.client.delete("/v1/roles/analyst/permissions/models/create", headers=admin)
    assert r.status_code == 200
    assert r.json()["revoked"] is True
    r = api.client.post("/v1/models/heston", json=HESTON, headers=api.headers("viewer"))
    assert r.status_code == 403

    # The role is held: deleting it conflicts; once free, it goes.
    assert api.client.delete("/v1/roles/analyst", headers=admin).status_code == 409
    assert api.client.put("/v1/users/vic/role", json={"role": "viewer"}, headers=admin).status_code == 200
    assert api.client.delete("/v1/roles/analyst", headers=admin).status_code == 200
    assert "analyst" not in {r.name for r in api.db.accounts.list_roles()}
    actions = _audit_actions(api, "admin")
    for a in ("role.create", "permission.grant", "permission.revoke", "role.delete"):
        assert a in actions, actions

    # Admins cannot lock themselves out over HTTP.
    r = api.client.delete("/v1/roles/admin/permissions/*/*", headers=admin)
    assert r.status_code == 409
    assert ("*", "*") in {(p.resource, p.action) for p in api.db.accounts.list_permissions("admin")}


# ------------------------------------------------------------------- subscriptions
def test_create_subscription(api: Api) -> None:
    body = {"user": "tina", "plan": "pro", "start_date": "2020-01-01"}
    before = fingerprint(api.db)
    for role, want in (("trader", 403), ("viewer", 403), (None, 401)):
        assert api.client.post("/v1/subscriptions", json=body, headers=api.headers(role)).status_code == want
    assert fingerprint(api.db) == before
    assert api.client.get("/v1/me/subscriptions", headers=api.headers("trader")).json()["active"] is False

    r = api.client.post("/v1/subscriptions", json=body, headers=api.headers("admin"))
    assert r.status_code == 201, r.text
    mine = api.client.get("/v1/me/subscriptions", headers=api.headers("trader")).json()
    assert mine["active"] is True
    assert [s["plan"] for s in mine["items"]] == ["pro"]
    assert api.db.accounts.is_subscription_active(api.user_ids["trader"])
    # Someone else's list is unchanged
    assert api.client.get("/v1/me/subscriptions", headers=api.headers("viewer")).json()["items"] == []
    r = api.client.post("/v1/subscriptions", json={**body, "user": "nobody"}, headers=api.headers("admin"))
    assert r.status_code == 404


# ------------------------------------------------------------------ configurations
def test_delete_configuration(api: Api) -> None:
    admin = api.headers("admin")
    assert api.client.put("/v1/configurations/risk.max", json={"value": 5}, headers=admin).status_code == 200
    before = fingerprint(api.db)
    for role, want in (("trader", 403), ("viewer", 403), (None, 401)):
        assert api.client.delete("/v1/configurations/risk.max", headers=api.headers(role)).status_code == want
    assert fingerprint(api.db) == before

    r = api.client.delete("/v1/configurations/risk.max", headers=admin)
    assert r.status_code == 200, r.text
    assert [c.key for c in api.db.accounts.list_configs("risk.")] == []
    assert "configuration.delete" in _audit_actions(api, "admin")
    assert api.client.delete("/v1/configurations/risk.max", headers=admin).status_code == 404


# -------------------------------------------------------------- broker credentials
def test_delete_my_broker_credential(api: Api) -> None:
    cred = {"api_key": "AK-123", "secret": "very-secret"}
    r = api.client.put("/v1/me/broker-credentials/alpaca", json=cred, headers=api.headers("trader"))
    assert r.status_code == 200, r.text
    before = fingerprint(api.db)
    # Another user (and even an admin: this is /v1/me) has no such credential: 404, nothing deleted.
    for role in ("other", "viewer", "admin"):
        r = api.client.delete("/v1/me/broker-credentials/alpaca", headers=api.headers(role))
        assert r.status_code == 404, f"{role}: {r.text}"
    assert api.client.delete("/v1/me/broker-credentials/alpaca").status_code == 401
    assert fingerprint(api.db) == before

    r = api.client.delete(
        "/v1/me/broker-credentials/alpaca", params={"label": "other-label"}, headers=api.headers("trader")
    )
    assert r.status_code == 404
    r = api.client.delete("/v1/me/broker-credentials/alpaca", headers=api.headers("trader"))
    assert r.status_code == 200, r.text
    assert api.db.accounts.list_broker_credentials(api.user_ids["trader"]) == []
    assert api.client.get("/v1/me/broker-credentials", headers=api.headers("trader")).json()["items"] == []
    assert "broker_credential.delete" in _audit_actions(api, "trader")


# -------------------------------------------------------------------- user's posts
def test_posts_of_one_user(api: Api) -> None:
    for key, text in (("trader", "tina one"), ("other", "otto one"), ("trader", "tina two")):
        r = api.client.post("/v1/posts", json={"text": text}, headers=api.headers(key))
        assert r.status_code == 201, r.text
    r = api.client.get("/v1/users/tina/posts", headers=api.headers("viewer"))
    assert r.status_code == 200, r.text
    assert [p["text"] for p in r.json()["items"]] == ["tina two", "tina one"]
    lib = api.db.accounts.list_posts("tina")
    assert [p.text for p in lib] == ["tina two", "tina one"]
    by_id = api.client.get(f"/v1/users/{api.user_ids['other']}/posts", headers=api.headers("trader"))
    assert [p["text"] for p in by_id.json()["items"]] == ["otto one"]
    r = api.client.get("/v1/users/tina/posts", params={"limit": 1}, headers=api.headers("viewer"))
    assert [p["text"] for p in r.json()["items"]] == ["tina two"]
    assert api.client.get("/v1/users/tina/posts").status_code == 401
    assert api.client.get("/v1/users/nobody-here/posts", headers=api.headers("viewer")).status_code == 404
