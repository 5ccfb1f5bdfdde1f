"""The one small interface every provider adapter implements, and what flows through it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from marketdb.errors import InvalidInput

from ._http import HttpClient, KeyPlace

__all__ = ["KINDS", "Page", "Provider", "Request", "ms", "ns", "parse_interval"]

#: What ``sync`` can fetch, and the writer each kind goes to.
KINDS = ("bars", "trades", "quotes", "actions", "reference")

_INTERVAL_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_interval(interval: str) -> tuple[int, str]:
    """``"5m"`` -> ``(5, "m")``; units s, m, h, d, w, mo."""
    s = interval.strip().lower()
    for unit in ("mo", "s", "m", "h", "d", "w"):
        if s.endswith(unit) and s[: -len(unit)].isdigit() and int(s[: -len(unit)]) > 0:
            return int(s[: -len(unit)]), unit
    raise InvalidInput(f"cannot read interval {interval!r}", hint="use e.g. 1m, 5m, 1h, 1d, 1w")


def interval_seconds(interval: str) -> int:
    """Length of a fixed interval in seconds (a month counts 31 days)."""
    n, unit = parse_interval(interval)
    return n * (31 * 86400 if unit == "mo" else _INTERVAL_SECONDS[unit])


def ms(t: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(t.timestamp() * 1000)


def ns(t: dt.datetime) -> int:
    """Epoch nanoseconds of an aware datetime (microsecond precision)."""
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_ns(value: int) -> dt.datetime:
    """Aware UTC datetime of epoch nanoseconds (microsecond precision)."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value // 1000)


@dataclass(frozen=True)
class Request:
    """One instrument, one kind, one interval, the half-open range ``[start, end)`` in UTC."""

    symbol: str
    kind: str
    start: dt.datetime
    end: dt.datetime
    interval: str | None = None


@dataclass
class Page:
    """Records of one response in the writer's field names.

    ``complete_until``: everything of the request before this instant has now been
    returned (the sync state advances to it once the page is stored). ``options``
    are writer options these records need (``ts_unit``, ``tz``...).
    """

    records: list[dict[str, Any]]
    complete_until: dt.datetime
    options: Mapping[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """A market-data vendor: fetch one request as pages, oldest first."""

    #: Provider name; also the ``source`` of the rows it writes.
    name: str
    #: Kinds this provider supplies (a subset of :data:`KINDS`).
    kinds: frozenset[str]
    #: Where the API key goes and how a user sets it (None: no key needed).
    key_place: KeyPlace | None
    #: Whether requests without a key are refused.
    key_required: bool
    #: The HTTP client (base URL, retries, request counter).
    http: HttpClient

    def fetch(self, req: Request) -> Iterator[Page]:
        """Pages covering ``req`` in time order; the last one completes it."""
        ...
