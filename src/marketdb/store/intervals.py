"""Time intervals, one module: bar intervals (how bars bucket time) and durations (how long).

Two distinct types, because they answer different questions:

* :class:`BarInterval` -- from :func:`parse_bar_interval`: ``"5m"``, ``"1d"``,
  ``"1mo"``, ``"tick:500"``. Calendar-aware (a ``1mo`` bar is a calendar month
  of sessions). :func:`normalize_interval` gives the label of a stored candle
  from a provider's spelling (``"1Min"``, ``"daily"``).
* :class:`datetime.timedelta` -- from :func:`parse_duration`: ``"30d"``,
  ``"5 years"``, ``"12h"`` for retention, compression and loop periods. A
  month is 30 days and a year 365 ("roughly this old"); PostgreSQL intervals
  read back through psycopg the same way.

**The M rule** (one rule everywhere): in an interval, a capital ``M`` alone is
a *month* (``1M`` = ``1mo``, as Binance, TradingView and pandas write it) and a
lower-case ``m`` a *minute*. Durations are case-insensitive, so there ``m`` is
refused as ambiguous: write ``min`` or ``mo``.

Bar-interval kinds, because they bucket time in different ways:

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

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from marketdb.errors import ConfigurationError, InvalidInput

__all__ = [
    "BarInterval",
    "format_duration",
    "normalize_interval",
    "normalize_partition_interval",
    "parse_bar_interval",
    "parse_duration",
    "rollup_source",
    "split_interval",
    "stored_intervals",
]

IntervalKind = Literal["fixed", "session", "week", "month", "tick", "volume", "dollar"]

_NS_PER: dict[str, int] = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
#: Every spelling of a bar-interval unit (providers' too) -> the canonical unit.
_UNIT_ALIASES: dict[str, str] = {
    "ms": "ms", "msec": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m", "t": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d", "daily": "d",
    "w": "w", "wk": "w", "week": "w", "weeks": "w", "weekly": "w",
    "mo": "mo", "mon": "mo", "month": "mo", "months": "mo", "monthly": "mo",
    "q": "q", "quarter": "q", "quarterly": "q",
    "y": "y", "yr": "y", "year": "y", "years": "y", "yearly": "y", "annual": "y",
}  # fmt: skip
_TIME_RE = re.compile(r"^\s*(\d*)\s*([A-Za-z]+)\s*$")
_ACTIVITY_RE = re.compile(r"^\s*(tick|volume|dollar)\s*:\s*([0-9.eE+_]+)\s*$")
_HELP = (
    "use a number and a unit: 250ms, 30s, 1m, 5m, 15m, 1h, 1d, 1w, 1mo, 3mo, 1y; "
    "or an activity bar: tick:500, volume:10000, dollar:1e6"
)


@dataclass(frozen=True, slots=True)
class BarInterval:
    """A parsed bar interval (how bars bucket time); durations are :class:`datetime.timedelta`.

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


def split_interval(text: str, *, hint: str = _HELP) -> tuple[int, str]:
    """``"5Min"`` -> ``(5, "m")``, ``"daily"`` -> ``(1, "d")``, ``"1M"`` -> ``(1, "mo")``.

    The one reading of interval spellings (see the module docstring for the ``M``
    rule). Quarters and years come back as ``"q"`` and ``"y"``. Raises
    :class:`~marketdb.errors.InvalidInput` for an unknown unit or a count below 1.
    """
    m = _TIME_RE.match(str(text))
    if not m:
        raise InvalidInput(f"cannot parse interval {text!r}", hint=hint)
    count = int(m.group(1) or 1)
    raw_unit = m.group(2)
    unit = "mo" if raw_unit == "M" else _UNIT_ALIASES.get(raw_unit.lower())
    if unit is None:
        raise InvalidInput(f"unknown unit {raw_unit!r} in interval {text!r}", hint=hint)
    if count <= 0:
        raise InvalidInput(f"interval {text!r} must be positive", hint=hint)
    return count, unit


def normalize_interval(text: str) -> str:
    """The label of a stored candle: ``"1Min"`` -> ``"1m"``, ``"daily"`` -> ``"1d"``, ``"1M"`` -> ``"1mo"``.

    Any count is kept as written (``"60m"`` stays ``"60m"``: it is the provider's
    bar); quarters and years become ``3mo`` and ``12mo``. For intervals marketdb
    computes, use :func:`parse_bar_interval`.
    """
    count, unit = split_interval(text, hint="write intervals like 1m, 5m, 1h, 1d, 1w, 1mo")
    if unit == "q":
        return f"{count * 3}mo"
    if unit == "y":
        return f"{count * 12}mo"
    return f"{count}{unit}"


def parse_bar_interval(text: str | BarInterval) -> BarInterval:
    """Parse ``text`` (``"5m"``, ``"1d"``, ``"1mo"``, ``"tick:500"`` ...) into a :class:`BarInterval`.

    Spellings that mean the same bucketing get the same canonical name (``"60m"`` and ``"1h"``
    are both ``"1h"``; ``"1q"`` is ``"3mo"``; ``"1y"`` is ``"12mo"``). ``m`` is minutes,
    ``M`` and ``mo`` months. Raises :class:`~marketdb.errors.InvalidInput` for anything else.
    """
    if isinstance(text, BarInterval):
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
        return BarInterval(kind, threshold, f"{kind}:{canon}")
    if not raw[:1].isdigit():
        raise InvalidInput(f"cannot parse interval {text!r}", hint=_HELP)
    count, unit = split_interval(raw, hint=_HELP)
    if unit in _NS_PER:
        width = count * _NS_PER[unit]
        return BarInterval("fixed", width, _fixed_name(width))
    if unit == "d":
        if count != 1:
            raise InvalidInput(
                f"interval {text!r}: only 1d (one session) is supported",
                hint="use 1w or 1mo for longer bars, or 24h for fixed UTC days",
            )
        return BarInterval("session", 1, "1d")
    if unit == "w":
        if count != 1:
            raise InvalidInput(f"interval {text!r}: only 1w is supported", hint="use 1mo or 3mo")
        return BarInterval("week", 1, "1w")
    months = count * {"mo": 1, "q": 3, "y": 12}[unit]
    if 12 % months != 0 and months % 12 != 0:
        raise InvalidInput(
            f"interval {text!r}: months must divide a year (1, 2, 3, 4, 6, 12) or be whole years"
        )
    return BarInterval("month", months, f"{months}mo")


def rollup_source(
    target: BarInterval, stored: list[BarInterval] | tuple[BarInterval, ...]
) -> BarInterval | None:
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


def _tiles(small: BarInterval, big: BarInterval) -> bool:
    """True when every bucket of ``big`` is a union of whole buckets of ``small``."""
    if big.kind == "fixed":
        return small.kind == "fixed" and big.width_ns % small.width_ns == 0
    if big.kind in ("week", "month") and small.kind == "session":
        return True
    return big.kind == "month" and small.kind == "month" and int(big.n) % int(small.n) == 0


def stored_intervals(names: Sequence[str | BarInterval]) -> tuple[BarInterval, ...]:
    """Validate the intervals to keep up to date at ingest (``Settings.bar_intervals``).

    They must be time intervals of whole seconds or calendar intervals (``candles.interval``
    holds ``<n>s|m|h|d|w|mo``); duplicates are dropped, order is finest first.
    """
    out: dict[str, BarInterval] = {}
    for name in names:
        iv = parse_bar_interval(name)
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


# ------------------------------------------------------------------ durations
_DURATION_UNITS: Final[dict[str, dt.timedelta]] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), dt.timedelta(seconds=1)),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), dt.timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), dt.timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), dt.timedelta(days=1)),
    **dict.fromkeys(("w", "wk", "week", "weeks"), dt.timedelta(weeks=1)),
    **dict.fromkeys(("mo", "mon", "mons", "month", "months"), dt.timedelta(days=30)),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), dt.timedelta(days=365)),
}
_DURATION_RE: Final = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
_EXAMPLES: Final = "e.g. 30d, 12h, 2w, 6mo, 5y or '30 days', '1 year'"


def parse_duration(value: str | dt.timedelta, *, what: str = "duration") -> dt.timedelta:
    """A duration from text (``30d``, ``5 years``, ``12h``) or a timedelta.

    Raises:
        InvalidInput: the text is not ``<number> <unit>`` with a known unit.
    """
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text or a timedelta, got {type(value).__name__}")
    m = _DURATION_RE.match(value.lower())
    if m is None or m.group(2) not in _DURATION_UNITS:
        hint = f"write a number and a unit, {_EXAMPLES}"
        if m is not None and m.group(2) == "m":
            hint = "'m' is ambiguous: write 'min' for minutes or 'mo' for months"
        raise InvalidInput(f"cannot read {what} {value!r}", hint=hint)
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


def normalize_partition_interval(value: str) -> str:
    """Normalise a partition size to what ``timeseries_policies`` stores.

    ``1d``, ``1 day`` -> ``'1 day'``; ``7d``, ``1w`` -> ``'7 days'``;
    ``1mo``, ``1 month`` -> ``'1 month'``. Between 1 and 366 days, or one month.
    """
    text = value.strip().lower() if isinstance(value, str) else ""
    if text == "month":
        text = "1 month"
    m = _DURATION_RE.match(text)
    months = m is not None and _DURATION_UNITS.get(m.group(2)) == _DURATION_UNITS["month"]
    if months and m is not None and m.group(1) == "1":
        return "1 month"
    td = parse_duration(value, what="partition interval")
    if months or td.total_seconds() % 86400 or not 1 <= td.days <= 366:
        raise InvalidInput(
            f"unsupported partition interval {value!r}",
            hint="use a whole number of days from 1 to 366 (e.g. '1 day', '7 days') or '1 month'",
        )
    return "1 day" if td.days == 1 else f"{td.days} days"


def format_duration(td: dt.timedelta | None) -> str | None:
    """Short readable text of a duration: ``5 years``, ``30 days``, ``12 hours``."""
    if td is None:
        return None
    secs = int(td.total_seconds())
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs and secs % size == 0:
            n = secs // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{secs} seconds"
