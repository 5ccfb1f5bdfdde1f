"""The /ws endpoint of the API app: authentication, per-channel authorization, delivery, idle timeout."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from starlette.websockets import WebSocketDisconnect

import marketdb
from tests.api.conftest import PASSWORD, Api, make_api


@pytest.fixture
def api(db: marketdb.MarketDB) -> Any:
    a = make_api(db)
    db.ingest.write_instruments([{"symbol": "AAPL"}])
    db.accounts.create_role("nothing", "no permissions at all")
    db.accounts.create_user("nobody", "nobody@example.com", PASSWORD, role="nothing")
    r = a.client.post("/v1/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert r.status_code == 200, r.text
    a.tokens["nothing"] = r.json()["token"]
    with a.client:
        yield a


def _login(ws: Any, token: str) -> dict[str, Any]:
    ws.send_json({"op": "auth", "token": token})
    msg: dict[str, Any] = ws.receive_json()
    return msg


def _subscribe(ws: Any, *channels: str) -> list[dict[str, Any]]:
    ws.send_json({"op": "subscribe", "channels": list(channels)})
    return [ws.receive_json() for _ in channels]


def test_a_bad_token_is_refused(api: Api) -> None:
    with api.client.websocket_connect("/ws") as ws:
        msg = _login(ws, "mdbs_not-a-token")
        assert msg["type"] == "error"
        assert msg["status"] == 401
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 4401


def test_a_permissionless_user_is_refused_every_channel(api: Api) -> None:
    with api.client.websocket_connect("/ws") as ws:
        assert _login(ws, api.tokens["nothing"])["type"] == "welcome"
        answers = _subscribe(ws, "trades:AAPL", "bars:AAPL:1m", "orders:s1", "patterns:AAPL")
        assert [(a["type"], a["status"]) for a in answers] == [("error", 403)] * 4


def test_channels_follow_the_http_permissions_and_ownership(api: Api) -> None:
    with api.client.websocket_connect("/ws") as ws:
        assert _login(ws, api.tokens["viewer"])["type"] == "welcome"
        own, other, orders, bars = _subscribe(
            ws, f"signals:{api.user_ids['viewer']}", f"signals:{api.user_ids['trader']}", "orders:s1",
            "bars:AAPL:1m")
        assert own == {"type": "subscribed", "channel": f"signals:{api.user_ids['viewer']}"}
        assert other["status"] == 403  # another user's signals: only with signals:admin
        assert orders["status"] == 403  # viewers cannot read orders over HTTP either
        assert bars["type"] == "subscribed"
        bad, missing = _subscribe(ws, "bars:AAPL", "trades:NOPE")
        assert bad["status"] == 422
        assert missing["status"] == 404
    with api.client.websocket_connect("/ws") as ws:
        assert _login(ws, api.tokens["admin"])["type"] == "welcome"
        assert _subscribe(ws, f"signals:{api.user_ids['trader']}")[0]["type"] == "subscribed"


def test_an_api_key_in_the_header_streams_committed_trades(api: Api) -> None:
    r = api.client.post("/v1/auth/keys", json={"name": "feed", "role": "viewer"},
                        headers=api.headers("viewer"))
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    with api.client.websocket_connect("/ws", headers={"Authorization": f"Bearer {key}"}) as ws:
        assert ws.receive_json()["type"] == "welcome"
        assert _subscribe(ws, "trades:aapl") == [{"type": "subscribed", "channel": "trades:AAPL"}]
        api.db.ingest.write_ticks(pd.DataFrame({
            "symbol": ["AAPL", "AAPL"],
            "ts": pd.to_datetime(["2026-03-02 15:00:00", "2026-03-02 15:00:01"], utc=True),
            "price": [10.0, 11.0], "size": [1.0, 2.0]}))
        msg = ws.receive_json()
        assert msg["channel"] == "trades:AAPL"
        assert msg["seq"] == 1
        assert [r["price"] for r in msg["rows"]] == [10.0, 11.0]
        ws.send_json({"op": "unsubscribe", "channels": ["trades:AAPL"]})
        assert ws.receive_json() == {"type": "unsubscribed", "channel": "trades:AAPL", "was_subscribed": True}


def test_idle_connections_are_pinged_then_closed(api: Api) -> None:
    cfg = api.client.app.state.marketdb_streams  # type: ignore[attr-defined]
    cfg.ping_seconds, cfg.idle_seconds = 0.2, 1.0
    with api.client.websocket_connect("/ws") as ws:
        assert _login(ws, api.tokens["viewer"])["type"] == "welcome"
        assert ws.receive_json() == {"type": "ping"}
        ws.send_json({"op": "pong"})
        assert ws.receive_json() == {"type": "ping"}
        seen, code = [], None
        try:
            while True:  # silent from now on: more pings, then the close
                seen.append(ws.receive_json())
        except WebSocketDisconnect as exc:
            code = exc.code
        assert code == 4408
        assert seen
        assert all(m == {"type": "ping"} for m in seen)
