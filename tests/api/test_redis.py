"""Redis: sessions, per-user signals and bar reads cached with the seed-002 key patterns,
invalidated by data version; Redis stopped mid-run changes no answer and causes no 5xx."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

import marketdb
from marketdb.store.cache import RedisCache
from tests.api.conftest import Api, make_api

redis = pytest.importorskip("redis")

SHARED = "redis://127.0.0.1:6379/0"


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except Exception:
        return False


@pytest.fixture
def shared_redis() -> Iterator[RedisCache]:
    if not _reachable(SHARED):
        pytest.skip("no Redis at 127.0.0.1:6379 (start one, or set up the CI service)")
    prefix = f"mdbtest:{uuid.uuid4().hex[:12]}:"
    cache = RedisCache(SHARED, prefix=prefix, socket_timeout=0.5)
    yield cache
    raw = redis.Redis.from_url(SHARED)
    keys = list(raw.scan_iter(match=prefix + "*"))
    if keys:
        raw.delete(*keys)
    raw.close()
    cache.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _reachable(url):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _keys(cache: RedisCache, pattern: str) -> list[str]:
    raw = redis.Redis.from_url(cache.url)
    try:
        return [k.decode()[len(cache.prefix) :] for k in raw.scan_iter(match=cache.prefix + pattern)]
    finally:
        raw.close()


def _seed(api: Api) -> None:
    admin = api.headers("admin")
    api.client.post("/v1/instruments", json={"rows": [{"symbol": "AAPL"}]}, headers=admin)
    rows = [
        {"symbol": "AAPL", "ts": f"2024-01-02T15:{m:02d}:00Z", "price": 100 + m, "size": 10} for m in range(5)
    ]
    assert api.client.post("/v1/ingest/ticks", json={"rows": rows}, headers=admin).status_code == 200
    api.db.accounts.grant("viewer", "signals", "create")


def test_cache_keys_and_invalidation_by_data_version(db: marketdb.MarketDB, shared_redis: RedisCache) -> None:
    api = make_api(db, cache=shared_redis)
    with api.client:
        _seed(api)
        viewer = api.headers("viewer")
        first = api.client.get("/v1/bars/AAPL", params={"interval": "1m"}, headers=viewer).json()
        assert any(k.startswith("ohlcv:AAPL:1m:") for k in _keys(shared_redis, "ohlcv:*"))
        assert _keys(shared_redis, "session:*")
        again = api.client.get("/v1/bars/AAPL", params={"interval": "1m"}, headers=viewer).json()
        assert again == first
        # New ticks bump the data version: the cached answer is not served.
        more = [{"symbol": "AAPL", "ts": "2024-01-02T15:10:00Z", "price": 200, "size": 1}]
        api.client.post("/v1/ingest/ticks", json={"rows": more}, headers=api.headers("admin"))
        after = api.client.get("/v1/bars/AAPL", params={"interval": "1m"}, headers=viewer).json()
        assert after["count"] == first["count"] + 1
        assert (
            after["rows"]
            == api.client.get("/v1/bars/AAPL", params={"interval": "1m"}, headers=viewer).json()["rows"]
        )
        # Per-user signals under signals:{user_id}; a new signal invalidates the list.
        uid = api.user_ids["viewer"]
        assert api.client.get("/v1/me/signals", headers=viewer).json()["items"] == []
        assert _keys(shared_redis, f"signals:{uid}")
        r = api.client.post("/v1/me/signals", json={"symbol": "AAPL", "signal_type": "buy"}, headers=viewer)
        assert r.status_code == 201, r.text
        assert len(api.client.get("/v1/me/signals", headers=viewer).json()["items"]) == 1
        # Logout removes the cached session; the token stops working at once.
        assert api.client.post("/v1/auth/logout", headers=viewer).status_code == 200
        assert api.client.get("/v1/auth/me", headers=viewer).status_code == 401
        # A cached session does not outlive a deactivation.
        trader = api.headers("trader")
        assert api.client.get("/v1/auth/me", headers=trader).status_code == 200
        db.accounts.deactivate("tina")
        assert api.client.get("/v1/auth/me", headers=trader).status_code == 401
        assert api.client.get("/v1/bars/AAPL", headers=trader).status_code == 403


def test_redis_killed_mid_run_gives_identical_answers_and_no_5xx(
    db: marketdb.MarketDB, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = own_redis
    cache = RedisCache(url, prefix="t:", socket_timeout=0.05, backoff=0.2)
    api = make_api(db, cache=cache)
    requests = [
        ("GET", "/v1/bars/AAPL", {"interval": "1m"}),
        ("GET", "/v1/bars/AAPL", {"interval": "5m", "format": "csv"}),
        ("GET", "/v1/ticks/AAPL", {}),
        ("GET", "/v1/me/signals", {}),
        ("GET", "/v1/auth/me", {}),
        ("GET", "/v1/instruments", {}),
    ]
    with api.client:
        _seed(api)
        viewer = api.headers("viewer")

        def answers() -> list[tuple[int, str]]:
            out = []
            for method, path, params in requests:
                r = api.client.request(method, path, params=params, headers=viewer)
                out.append((r.status_code, r.text))
            return out

        warm = answers()
        assert answers() == warm  # served from Redis now
        assert cache.status()["ok"] is True
        proc.kill()
        proc.wait()
        for _ in range(3):
            assert answers() == warm
        statuses = [s for s, _ in answers()]
        assert all(s < 500 for s in statuses), statuses
        # A fresh login works (sessions fall back to PostgreSQL) and health says so.
        r = api.client.post(
            "/v1/auth/login", json={"username": "vic", "password": "correct horse battery staple 42"}
        )
        assert r.status_code == 200
        assert (
            api.client.get(
                "/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['token']}"}
            ).status_code
            == 200
        )
        health = api.client.get("/health").json()
        assert health["status"] == "ok"
        assert health["cache"]["ok"] is False
        assert "PostgreSQL" in health["cache"]["fallback"]
        assert cache.failures > 0
