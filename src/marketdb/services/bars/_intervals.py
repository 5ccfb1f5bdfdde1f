"""Bar intervals: parsing, canonical names and which stored interval a query can roll up from.

Four kinds of time interval exist, because they bucket time in different ways:

``fixed``   a whole number of milliseconds, seconds, minutes or hours (``"250ms"``,
            ``"30s"``, ``"1m"``, ``"90m"``, ``"2h"``); buckets are aligned to the Unix epoch in
            UTC, so a ``5m`` bucket always starts at a multiple of 300 s since 1970-01-01.
``session`` ``"1d"``: one exchange session of the instrument's calendar (UTC days for 24/7
            instruments); labelled with the session date at 00:00 UTC.
``week``    ``"1w"``: the sessions of one ISO week (Monday to Sunday, by session date),
            labelled with the Monday at 00:00 UTC.
``month``   ``"1mo"``, ``"3mo"``, ``"6mo"``, ``"1y"``: sessions by calendar month of the
            session date; multi-month buckets are aligned to the calendar year (``3mo`` buckets
            start in January, April, July and October; ``1y`` is ``12mo``), labelled with the
            first day of the bucket at 00:00 UTC.

And three kinds of activity bar, computed on demand from trades: ``"tick:500"`` (every 500
trades), ``"volume:10000"`` (a bar closes with the trade that brings its volume to 10,000 or
more), ``"dollar:1e6"`` (the same with price times size).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from marketdb.errors import ConfigurationError, InvalidInput

__all__ = ["Interval", "parse_interval", "rollup_source", "stored_intervals"]

IntervalKind = Literal["fixed", "session", "week", "month", "tick", "volume", "dollar"]

_NS_PER: dict[str, int] = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_UNIT_ALIASES: dict[str, str] = {
    "ms": "ms",
    "s": "s",
    "sec": "s",
    "m": "m",
    "min": "m",
    "h": "h",
    "hr": "h",
    "d": "d",
    "w": "w",
    "wk": "w",
    "mo": "mo",
    "q": "q",
    "y": "y",
}
_TIME_RE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
_ACTIVITY_RE = re.compile(r"^\s*(tick|volume|dollar)\s*:\s*([0-9.eE+_]+)\s*$")
_HELP = (
    "use a number and a unit: 250ms, 30s, 1m, 5m, 15m, 1h, 1d, 1w, 1mo, 3mo, 1y; "
    "or an activity bar: tick:500, volume:10000, dollar:1e6"
)


@dataclass(frozen=True, slots=True)
class Interval:
    """A parsed bar interval.

    ``n`` is the width in nanoseconds for ``fixed``, the number of months for ``month``, 1 for
    ``session`` and ``week``, and the threshold (trades, volume or notional) for activity bars.
    ``name`` is the canonical spelling stored in ``candles.interval``.
    """

    kind: IntervalKind
    n: float
    name: str

    @property
    def width_ns(self) -> int:
        """Width in nanoseconds of a ``fixed`` interval."""
        if self.kind != "fixed":
            raise InvalidInput(f"interval {self.name!r} has no fixed width")
        return int(self.n)

    @property
    def is_time(self) -> bool:
        """True for time intervals (fixed, session, week, month), False for activity bars."""
        return self.kind in ("fixed", "session", "week", "month")

    @property
    def is_calendar(self) -> bool:
        """True when buckets follow the exchange calendar (session, week, month)."""
        return self.kind in ("session", "week", "month")

    def __str__(self) -> str:
        return self.name


def _fixed_name(width_ns: int) -> str:
    for unit in ("h", "m", "s", "ms"):
        if width_ns % _NS_PER[unit] == 0:
            return f"{width_ns // _NS_PER[unit]}{unit}"
    raise InvalidInput(f"interval of {width_ns} ns is not a whole number of milliseconds")


def parse_interval(text: str | Interval) -> Interval:
    """Parse ``text`` (``"5m"``, ``"1d"``, ``"1mo"``, ``"tick:500"`` ...) into an :class:`Interval`.

    Spellings that mean the same bucketing get the same canonical name (``"60m"`` and ``"1h"``
    are both ``"1h"``; ``"1q"`` is ``"3mo"``; ``"1y"`` is ``"12mo"``). ``m`` is minutes and
    ``mo`` months. Raises :class:`~marketdb.errors.InvalidInput` for anything else.
    """
    if isinstance(text, Interval):
        return text
    if not isinstance(text, str):
        raise InvalidInput(f"interval must be a string, got {type(text).__name__}", hint=_HELP)
    raw = text.strip()
    low = raw.lower()
    act = _ACTIVITY_RE.match(low)
    if act:
        kind: IntervalKind = act.group(1)  # type: ignore[assignment]
        try:
            threshold = float(act.group(2).replace("_", ""))
        except ValueError:
            raise InvalidInput(f"cannot parse interval {text!r}", hint=_HELP) from None
        if not threshold > 0 or threshold != threshold or threshold == float("inf"):
            raise InvalidInput(f"interval {text!r} needs a positive threshold", hint=_HELP)
        if kind == "tick" and threshold != int(threshold):
            raise InvalidInput(f"tick bars need a whole number of trades, got {text!r}")
        canon = int(threshold) if threshold == int(threshold) and threshold < 2**53 else threshold
        return Interval(kind, threshold, f"{kind}:{canon}")
    if raw.endswith("M"):
        # "1M" is minutes in some libraries and months in others: refuse to guess.
        raise InvalidInput(f"interval {text!r} is ambiguous", hint="write 1m for minutes or 1mo for months")
    m = _TIME_RE.match(low)
    if not m:
        raise InvalidInput(f"cannot parse interval {text!r}", hint=_HELP)
    count, unit_raw = int(m.group(1)), m.group(2)
    unit = _UNIT_ALIASES.get(unit_raw)
    if unit is None:
        raise InvalidInput(f"unknown unit {unit_raw!r} in interval {text!r}", hint=_HELP)
    if count <= 0:
        raise InvalidInput(f"interval {text!r} must be positive", hint=_HELP)
    if unit in _NS_PER:
        width = count * _NS_PER[unit]
        return Interval("fixed", width, _fixed_name(width))
    if unit == "d":
        if count != 1:
            raise InvalidInput(
                f"interval {text!r}: only 1d (one session) is supported",
                hint="use 1w or 1mo for longer bars, or 24h for fixed UTC days",
            )
        return Interval("session", 1, "1d")
    if unit == "w":
        if count != 1:
            raise InvalidInput(f"interval {text!r}: only 1w is supported", hint="use 1mo or 3mo")
        return Interval("week", 1, "1w")
    months = count * {"mo": 1, "q": 3, "y": 12}[unit]
    if 12 % months != 0 and months % 12 != 0:
        raise InvalidInput(
            f"interval {text!r}: months must divide a year (1, 2, 3, 4, 6, 12) or be whole years"
        )
    return Interval("month", months, f"{months}mo")


def rollup_source(target: Interval, stored: list[Interval] | tuple[Interval, ...]) -> Interval | None:
    """The stored interval a ``target`` bar can be rolled up from, or None to use trades.

    Picks the coarsest stored interval whose buckets tile the target's buckets exactly (the
    fewest rows to read): a fixed interval whose width divides the target's (both are aligned
    to the epoch), or ``1d`` for weeks and months. A stored interval equal to the target is
    returned as is (no rollup needed).
    """
    if not target.is_time:
        return None
    if target in stored:
        return target
    tiling = [s for s in stored if _tiles(s, target)]
    # Coarsest first: fixed < session < month, and wider before narrower.
    return max(tiling, key=lambda s: (_KIND_ORDER[s.kind], s.n), default=None)


_KIND_ORDER = {"fixed": 0, "session": 1, "week": 2, "month": 3}


def _tiles(small: Interval, big: Interval) -> bool:
    """True when every bucket of ``big`` is a union of whole buckets of ``small``."""
    if big.kind == "fixed":
        return small.kind == "fixed" and big.width_ns % small.width_ns == 0
    if big.kind in ("week", "month") and small.kind == "session":
        return True
    return big.kind == "month" and small.kind == "month" and int(big.n) % int(small.n) == 0


def stored_intervals(names: Sequence[str | Interval]) -> tuple[Interval, ...]:
    """Validate the intervals to keep up to date at ingest (``Settings.bar_intervals``).

    They must be time intervals of whole seconds or calendar intervals (``candles.interval``
    holds ``<n>s|m|h|d|w|mo``); duplicates are dropped, order is finest first.
    """
    out: dict[str, Interval] = {}
    for name in names:
        iv = parse_interval(name)
        if not iv.is_time:
            raise ConfigurationError(
                f"bar_intervals: {iv.name} bars are computed on demand and cannot be stored",
                hint="keep time intervals such as 1m, 5m, 1h, 1d in bar_intervals",
            )
        if iv.kind == "fixed" and iv.width_ns % _NS_PER["s"] != 0:
            raise ConfigurationError(
                f"bar_intervals: {iv.name} is not a whole number of seconds",
                hint="store 1s or coarser; finer bars are computed on demand",
            )
        out[iv.name] = iv
    order = {"fixed": 0, "session": 1, "week": 2, "month": 3}
    return tuple(sorted(out.values(), key=lambda i: (order[i.kind], i.n)))
