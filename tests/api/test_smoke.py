"""Basic behaviour of the app: health, login, problem bodies, formats."""

from __future__ import annotations

import pyarrow as pa

from tests.api.conftest import Api


def test_health_ready_and_request_id(api: Api) -> None:
    r = api.client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.headers["x-request-id"]
    r = api.client.get("/ready", headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert r.headers["x-request-id"] == "abc-123"


def test_bad_login_is_the_same_for_unknown_and_wrong_password(api: Api) -> None:
    a = api.client.post("/v1/auth/login", json={"username": "tina", "password": "nope"})
    b = api.client.post("/v1/auth/login", json={"username": "nobody", "password": "nope"})
    assert a.status_code == b.status_code == 401
    ja, jb = a.json(), b.json()
    ja.pop("request_id"), jb.pop("request_id")
    assert ja == jb


def test_instruments_ingest_and_bars_in_three_formats(api: Api) -> None:
    admin = api.headers("admin")
    r = api.client.post(
        "/v1/instruments", json={"rows": [{"symbol": "AAPL", "name": "Apple"}]}, headers=admin
    )
    assert r.status_code == 200, r.text
    rows = [
        {"symbol": "AAPL", "ts": f"2024-01-02T15:{m:02d}:00Z", "price": 100 + m, "size": 10} for m in range(5)
    ]
    r = api.client.post("/v1/ingest/ticks", json={"rows": rows}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 5
    viewer = api.headers("viewer")
    r = api.client.get("/v1/bars/AAPL", params={"interval": "1m"}, headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 5
    r = api.client.get("/v1/bars/AAPL", params={"interval": "1m", "format": "csv"}, headers=viewer)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert len(r.text.strip().splitlines()) == 6
    r = api.client.get(
        "/v1/bars/AAPL",
        params={"interval": "1m"},
        headers={**viewer, "Accept": "application/vnd.apache.arrow.stream"},
    )
    table = pa.ipc.open_stream(r.content).read_all()
    expected = api.db.query.bars("AAPL", "1m", output="arrow")
    assert table.equals(expected)


def test_invalid_rows_answer_422_with_rejections_and_write_nothing(api: Api) -> None:
    admin = api.headers("admin")
    api.client.post("/v1/instruments", json={"rows": [{"symbol": "MSFT"}]}, headers=admin)
    rows = [
        {"symbol": "MSFT", "ts": "2024-01-02T15:00:00Z", "price": 10, "size": 1},
        {"symbol": "MSFT", "ts": "2024-01-02T15:01:00Z", "price": -5, "size": 1},
    ]
    r = api.client.post("/v1/ingest/ticks", json={"rows": rows}, headers=admin)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["type"].endswith("invalid-input")
    assert any(x["field"] == "price" and x["row"] == 1 for x in body["rejections"])
    assert api.db.query.ticks("MSFT", output="arrow").num_rows == 0
