"""A small cache backend: nothing, or Redis (``REDIS_URL``).

The cache only ever speeds things up. Every call swallows Redis errors and
timeouts (short socket timeouts, then a short back-off during which Redis is
not tried at all), so with Redis down or slow callers get a miss and read
PostgreSQL: identical answers, never an error. ``status()`` says what
happened for ``doctor`` and the health route.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Protocol, runtime_checkable

__all__ = ["Cache", "NullCache", "RedisCache", "make_cache"]

log = logging.getLogger(__name__)


@runtime_checkable
class Cache(Protocol):
    """Bytes by key with a TTL; misses and failures look the same to the caller."""

    enabled: bool

    def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None (absent, expired or backend unreachable)."""
        ...

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (best effort)."""
        ...

    def delete(self, *keys: str) -> None:
        """Drop ``keys`` (best effort)."""
        ...

    def status(self) -> dict[str, Any]:
        """Backend, reachability and the last error, for doctor/health."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class NullCache:
    """No cache: every get misses."""

    enabled = False

    def get(self, key: str) -> bytes | None:
        """Always None."""
        return None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Does nothing."""

    def delete(self, *keys: str) -> None:
        """Does nothing."""

    def status(self) -> dict[str, Any]:
        """``{"backend": "none"}``."""
        return {"backend": "none", "ok": True}

    def close(self) -> None:
        """Does nothing."""


class RedisCache:
    """Redis through redis-py with short timeouts and a back-off after failures.

    ``prefix`` is put in front of every key (tests use a unique one).
    """

    enabled = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        socket_timeout: float = 0.05,
        backoff: float = 2.0,
    ) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.backoff = backoff
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._down_until = 0.0
        self._last_error: str | None = None
        self._lock = threading.Lock()
        self.failures = 0

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self.failures += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._down_until = time.monotonic() + self.backoff
        log.warning("redis unavailable, serving from PostgreSQL: %s", self._last_error)

    def get(self, key: str) -> bytes | None:
        """See :meth:`Cache.get`."""
        if not self._usable():
            return None
        try:
            value = self._client.get(self.prefix + key)
        except Exception as exc:  # any redis/socket failure is a miss
            self._failed(exc)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """See :meth:`Cache.set`."""
        if not self._usable():
            return
        try:
            self._client.set(self.prefix + key, value, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._failed(exc)

    def delete(self, *keys: str) -> None:
        """See :meth:`Cache.delete`."""
        if not keys or not self._usable():
            return
        try:
            self._client.delete(*(self.prefix + k for k in keys))
        except Exception as exc:
            self._failed(exc)

    def status(self) -> dict[str, Any]:
        """Pings Redis (unless backing off) and reports."""
        ok = False
        if self._usable():
            try:
                ok = bool(self._client.ping())
            except Exception as exc:
                self._failed(exc)
        return {
            "backend": "redis",
            "ok": ok,
            "fallback": None if ok else "PostgreSQL sessions and uncached reads",
            "last_error": self._last_error,
            "failures": self.failures,
        }

    def close(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(Exception):  # closing a dead connection is not worth an error
            self._client.close()


def make_cache(redis_url: str | None, *, prefix: str = "") -> Cache:
    """A :class:`RedisCache` when ``redis_url`` is set (and redis-py installed), else :class:`NullCache`."""
    if not redis_url:
        return NullCache()
    try:
        return RedisCache(redis_url, prefix=prefix)
    except ImportError:
        log.warning("REDIS_URL is set but redis-py is not installed (pip install 'marketdb[redis]')")
        return NullCache()
