"""One small HTTP client for every provider: retries, Retry-After, backoff with jitter.

* 429 and 503 wait ``Retry-After`` seconds when the server says so (seconds or an
  HTTP date), otherwise an exponential backoff with full jitter, up to
  ``max_retries`` times; then :class:`~marketdb.errors.Unavailable`.
* Other 5xx and connection errors are retried the same way.
* 401/403 are a :class:`~marketdb.errors.ConfigurationError` naming the provider
  and where its key comes from (the secret name and the environment variable).
* The API key never appears in errors or logs: URLs are redacted before use.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marketdb.errors import ConfigurationError, InvalidInput, NotFound, Unavailable

log = logging.getLogger("marketdb.providers")

__all__ = ["HttpClient", "KeyPlace"]


@dataclass(frozen=True)
class KeyPlace:
    """Where a provider's API key goes and where a user sets it."""

    stored_as: str
    env: str
    param: str | None = None  # query parameter name
    header: str | None = None  # header name
    header_format: str = "{key}"


@dataclass
class HttpClient:
    """GET JSON from one provider's base URL with retries (see the module docstring)."""

    provider: str
    base_url: str
    key: str | None = None
    key_place: KeyPlace | None = None
    max_retries: int = 5
    backoff: float = 0.5
    max_wait: float = 60.0
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0
    retries: int = 0
    _client: Any = field(default=None, repr=False)

    def _http(self) -> Any:
        if self._client is None:
            try:
                import httpx
            except ImportError as e:  # pragma: no cover - a declared extra
                raise ConfigurationError(
                    "provider sync needs httpx", hint="pip install 'marketdb[providers]'") from e
            headers = {"User-Agent": "marketdb"}
            if self.key and self.key_place and self.key_place.header:
                headers[self.key_place.header] = self.key_place.header_format.format(key=self.key)
            self._client = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout,
                                        headers=headers)
        return self._client

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self.key, "***") if self.key else text

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                secs = float(retry_after)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(retry_after)
                secs = parsed.timestamp() - time.time() if parsed else 0.0
            return min(max(secs, 0.0), self.max_wait)
        # Exponential backoff with full jitter (AWS architecture blog): spreads retries.
        return float(random.uniform(0, min(self.max_wait, self.backoff * 2**attempt)))  # noqa: S311

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the base URL, or an absolute next-page URL); parsed JSON."""
        q = {k: v for k, v in (params or {}).items() if v is not None}
        if "?" in path:  # a next-page URL carries its cursor in its query: keep it
            path, _, query = path.partition("?")
            q = {**dict(urllib.parse.parse_qsl(query, keep_blank_values=True)), **q}
        if path.startswith(("http://", "https://")):
            # Next-page URLs name the vendor's host; the key must only go to the base URL.
            path = urllib.parse.urlsplit(path).path
        if self.key and self.key_place and self.key_place.param:
            q[self.key_place.param] = self.key
        http = self._http()
        attempt = 0
        while True:
            self.requests += 1
            try:
                resp = http.get(path, params=q)
            except Exception as e:  # httpx.TransportError and friends
                if attempt >= self.max_retries:
                    raise Unavailable(f"{self.provider}: cannot reach {self.redact(self.base_url)}: "
                                      f"{self.redact(str(e))}",
                                      hint="check the network or the base URL; sync resumes "
                                      "where it stopped") from None
                wait = self._wait(attempt, None)
            else:
                status = resp.status_code
                if status < 400:
                    try:
                        return resp.json()
                    except ValueError:
                        raise Unavailable(f"{self.provider}: {self.redact(str(resp.url))} did not "
                                          "return JSON") from None
                if status in (401, 403):
                    place = self.key_place
                    where = (f"store it as the user secret {place.stored_as!r} (marketdb secrets set "
                             f"USER {place.stored_as}) or set {place.env}") if place else "check it"
                    raise ConfigurationError(
                        f"{self.provider} rejected the API key (HTTP {status})",
                        hint=f"the {self.provider} API key is missing or wrong: {where}",
                        details={"provider": self.provider, "status": status,
                                 "secret": place.stored_as if place else None,
                                 "env": place.env if place else None})
                if status == 404:
                    raise NotFound(f"{self.provider}: {self.redact(str(resp.url))} not found",
                                   hint="check the symbol and the kind of data asked for")
                if status < 500 and status != 429:
                    raise InvalidInput(f"{self.provider} refused the request (HTTP {status}): "
                                       f"{self.redact(resp.text[:300])}")
                if attempt >= self.max_retries:
                    raise Unavailable(
                        f"{self.provider}: HTTP {status} after {attempt + 1} attempts",
                        hint="the provider is rate limiting or failing; run the same sync "
                        "again later, it resumes where it stopped",
                        details={"provider": self.provider, "status": status})
                wait = self._wait(attempt, resp.headers.get("Retry-After"))
                log.info("%s: HTTP %s, retrying in %.2fs", self.provider, status, wait)
            attempt += 1
            self.retries += 1
            self.sleep(wait)
