"""What the app holds: the database, API settings, auth, cache and login throttle."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from marketdb.client import MarketDB
from marketdb.services.accounts.tokens import ApiAuth
from marketdb.store.cache import Cache, NullCache

__all__ = ["ApiSettings", "ApiState", "LoginThrottle"]


@dataclass(frozen=True)
class ApiSettings:
    """HTTP-only settings (the database's own settings stay in ``db.settings``)."""

    #: Largest request body accepted (bytes); larger bodies get 413.
    max_body_bytes: int = 256 * 1024 * 1024
    #: Origins allowed by CORS; empty = CORS off.
    cors_origins: tuple[str, ...] = ()
    session_idle: dt.timedelta = dt.timedelta(hours=2)
    session_absolute: dt.timedelta = dt.timedelta(hours=24)
    #: Failed logins per account (or per client address) within ``login_window`` before 429.
    login_max_failures: int = 5
    login_window: dt.timedelta = dt.timedelta(minutes=15)
    #: TTL of cached bar reads and session lookups in Redis.
    bars_ttl_seconds: float = 300.0
    session_ttl_seconds: float = 30.0
    signals_ttl_seconds: float = 60.0
    #: Largest page of a list.
    max_page: int = 1000
    #: Where POST /v1/ops/backup writes (None = ``<MARKETDB_HOME>/backups``).
    backup_dir: Path | None = None


class LoginThrottle:
    """Failed logins per account name and per client address, in a sliding window.

    Keys are the *attempted* login text (lower-cased), never a user id, so the
    throttle behaves the same for accounts that exist and those that do not.
    """

    def __init__(self, max_failures: int, window: dt.timedelta) -> None:
        self.max_failures = max_failures
        self.window = window.total_seconds()
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, login: str, ip: str | None) -> bool:
        """True when the account or the address has too many recent failures."""
        now = time.monotonic()
        with self._lock:
            keys = ["acct:" + login.strip().lower()] + ([f"ip:{ip}"] if ip else [])
            return any(len(self._recent(k, now)) >= self.max_failures for k in keys)

    def failed(self, login: str, ip: str | None) -> None:
        """Count one failure for the account and the address."""
        now = time.monotonic()
        with self._lock:
            self._recent("acct:" + login.strip().lower(), now).append(now)
            if ip:
                self._recent(f"ip:{ip}", now).append(now)

    def succeeded(self, login: str) -> None:
        """Forget the account's failures (the address keeps its count)."""
        with self._lock:
            self._fails.pop("acct:" + login.strip().lower(), None)


@dataclass
class ApiState:
    """Everything a request handler needs, held on ``app.state.marketdb``."""

    db: MarketDB
    settings: ApiSettings = field(default_factory=ApiSettings)
    cache: Cache = field(default_factory=NullCache)
    auth: ApiAuth = field(init=False)
    throttle: LoginThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.auth = ApiAuth(self.db)
        self.throttle = LoginThrottle(self.settings.login_max_failures, self.settings.login_window)
