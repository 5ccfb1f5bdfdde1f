"""Human durations for policies and loops: ``30d``, ``5 years``, ``12h``, ``1 month``.

A year is 365 days and a month 30 days: retention and compression windows are
about "roughly this old", and PostgreSQL intervals read back through psycopg
as :class:`datetime.timedelta` the same way.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from marketdb.errors import InvalidInput

__all__ = ["format_interval", "parse_interval", "parse_partition_interval"]

_UNITS: Final[dict[str, dt.timedelta]] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), dt.timedelta(seconds=1)),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), dt.timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), dt.timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), dt.timedelta(days=1)),
    **dict.fromkeys(("w", "wk", "week", "weeks"), dt.timedelta(weeks=1)),
    **dict.fromkeys(("mo", "mon", "mons", "month", "months"), dt.timedelta(days=30)),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), dt.timedelta(days=365)),
}
_PATTERN: Final = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
_EXAMPLES: Final = "e.g. 30d, 12h, 2w, 6mo, 5y or '30 days', '1 year'"


def parse_interval(value: str | dt.timedelta, *, what: str = "interval") -> dt.timedelta:
    """A duration from text (``30d``, ``5 years``, ``12h``) or a timedelta.

    Raises:
        InvalidInput: the text is not ``<number> <unit>`` with a known unit.
    """
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text or a timedelta, got {type(value).__name__}")
    m = _PATTERN.match(value.lower())
    if m is None or m.group(2) not in _UNITS:
        hint = f"write a number and a unit, {_EXAMPLES}"
        if m is not None and m.group(2) == "m":
            hint = "'m' is ambiguous: write 'min' for minutes or 'mo' for months"
        raise InvalidInput(f"cannot read {what} {value!r}", hint=hint)
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_partition_interval(value: str) -> str:
    """Normalise a partition size to what ``timeseries_policies`` stores.

    ``1d``, ``1 day`` -> ``'1 day'``; ``7d``, ``1w`` -> ``'7 days'``;
    ``1mo``, ``1 month`` -> ``'1 month'``. Between 1 and 366 days, or one month.
    """
    text = value.strip().lower() if isinstance(value, str) else ""
    if text == "month":
        text = "1 month"
    m = _PATTERN.match(text)
    months = m is not None and _UNITS.get(m.group(2)) == _UNITS["month"]
    if months and m is not None and m.group(1) == "1":
        return "1 month"
    td = parse_interval(value, what="partition interval")
    if months or td.total_seconds() % 86400 or not 1 <= td.days <= 366:
        raise InvalidInput(
            f"unsupported partition interval {value!r}",
            hint="use a whole number of days from 1 to 366 (e.g. '1 day', '7 days') or '1 month'",
        )
    return "1 day" if td.days == 1 else f"{td.days} days"


def format_interval(td: dt.timedelta | None) -> str | None:
    """Short readable text of a duration: ``5 years``, ``30 days``, ``12 hours``."""
    if td is None:
        return None
    secs = int(td.total_seconds())
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs and secs % size == 0:
            n = secs // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{secs} seconds"
