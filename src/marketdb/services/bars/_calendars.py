"""Which daily session a trade belongs to, from the instrument's exchange calendar.

Daily bars follow ``instruments.calendar`` through ``exchange_calendars``: sessions in the
exchange's own time zone, with its holidays, early closes and DST changes. ``NULL`` or
``'24/7'`` means UTC days. Each session is turned into one window ``[start, end)`` of UTC
epoch nanoseconds; a trade belongs to the session whose window holds it, and the bar is
labelled with the session date at 00:00 UTC.

Two session modes (``Calendars(session=...)``):

``"regular"`` (default)
    the window is the session's regular hours ``[open, close)`` as the calendar publishes them
    (9:30-16:00 New York time for XNYS, 13:00 on early-close days). Pre- and post-market
    trades are in the intraday bars but in no daily bar, so daily bars match the official
    session OHLC that exchanges and most vendors publish. Futures calendars (CMES opens the
    evening before) work unchanged. Lunch breaks (XHKG, XTKS) are inside the window.
``"extended"``
    the window also covers the hours around the session, up to local midnight on either side
    (but never into the neighbouring session): 04:00-20:00 New York trades of a session date
    all land in that day's bar. Trades on days that are not sessions (weekends, holidays) are
    in no daily bar.

Calendar objects are slow enough to build that they are cached, together with their window
arrays, for the life of the :class:`Calendars` object (and, being immutable, shared).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from marketdb.errors import ConfigurationError, InvalidInput
from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

__all__ = ["UTC_CALENDARS", "Calendars", "SessionMode", "SessionWindows"]

SessionMode = Literal["regular", "extended"]

#: ``instruments.calendar`` values that mean "UTC days" (besides NULL).
UTC_CALENDARS: frozenset[str] = frozenset({"24/7", "UTC"})

NS_PER_DAY = 86_400_000_000_000
#: Sentinel label for "in no session" (same value as NaT in numpy/pandas).
NO_SESSION = -(2**63)  # np.iinfo(np.int64).min, written out so numpy loads on first use


@dataclass(frozen=True, slots=True)
class SessionWindows:
    """Sorted, non-overlapping session windows of one calendar, as epoch-ns arrays."""

    start: np.ndarray  # int64, window start (inclusive)
    end: np.ndarray  # int64, window end (exclusive)
    label: np.ndarray  # int64, session date at 00:00 UTC
    first_day: int  # first session date covered, epoch ns
    last_day: int  # last session date covered, epoch ns

    def locate(self, ts_ns: np.ndarray) -> np.ndarray:
        """Session label (epoch ns) of each timestamp, or ``NO_SESSION`` outside every window."""
        idx = np.searchsorted(self.start, ts_ns, side="right") - 1
        safe = np.clip(idx, 0, len(self.start) - 1)
        inside = (idx >= 0) & (ts_ns < self.end[safe])
        return np.where(inside, self.label[safe], NO_SESSION)

    def sessions_between(self, start_ns: int, end_ns: int) -> np.ndarray:
        """Indexes of the sessions whose window intersects ``[start_ns, end_ns)``."""
        lo = np.searchsorted(self.end, start_ns, side="right")
        hi = np.searchsorted(self.start, end_ns, side="left")
        return np.arange(lo, hi)


def _windows_from_calendar(cal: object, mode: SessionMode) -> SessionWindows:
    sched = cal.schedule  # type: ignore[attr-defined]
    labels = pd.DatetimeIndex(sched.index).as_unit("ns").asi8
    opens = pd.DatetimeIndex(sched["open"]).tz_convert("UTC").as_unit("ns").asi8
    closes = pd.DatetimeIndex(sched["close"]).tz_convert("UTC").as_unit("ns").asi8
    if mode == "regular":
        start, end = opens, closes
    else:
        tz = cal.tz  # type: ignore[attr-defined]
        days = pd.DatetimeIndex(sched.index)
        mid = days.tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
        nxt = (days + pd.Timedelta(days=1)).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
        mid_ns = mid.tz_convert("UTC").as_unit("ns").asi8
        nxt_ns = nxt.tz_convert("UTC").as_unit("ns").asi8
        prev_close = np.concatenate(([np.iinfo(np.int64).min], closes[:-1]))
        next_open = np.concatenate((opens[1:], [np.iinfo(np.int64).max]))
        start = np.maximum(prev_close, np.minimum(opens, mid_ns))
        end = np.minimum(next_open, np.maximum(closes, nxt_ns))
    return SessionWindows(
        start=np.ascontiguousarray(start),
        end=np.ascontiguousarray(end),
        label=np.ascontiguousarray(labels),
        first_day=int(labels[0]),
        last_day=int(labels[-1]),
    )


@contextmanager
def _quiet_pandas() -> Iterator[None]:
    # exchange_calendars 4.x reads ``Series.values`` on tz-aware data, which pandas >= 3.1
    # deprecates; the values it gets are still right. Keep that noise out of users' logs
    # (and out of ``-W error`` test runs).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning", category=DeprecationWarning)
        yield


class Calendars:
    """Session lookup for daily bars, with a cache of ``exchange_calendars`` objects.

    One object is meant to live as long as the process (the :class:`~marketdb.services.bars.Bars`
    facade keeps one); it is thread-safe.
    """

    def __init__(self, *, session: SessionMode = "regular") -> None:
        if session not in ("regular", "extended"):
            raise ConfigurationError(
                f"unknown daily session mode {session!r}", hint="use 'regular' or 'extended'"
            )
        self.session: SessionMode = session
        self._lock = threading.Lock()
        self._windows: dict[str, SessionWindows] = {}

    @staticmethod
    def is_utc(calendar: str | None) -> bool:
        """True when ``calendar`` means UTC days (NULL, ``'24/7'`` or ``'UTC'``)."""
        return calendar is None or calendar.strip().upper() in UTC_CALENDARS

    def windows(self, calendar: str, lo_ns: int, hi_ns: int) -> SessionWindows:
        """Session windows of ``calendar`` covering at least epoch-ns range ``[lo_ns, hi_ns]``."""
        name = calendar.strip().upper()
        with self._lock:
            win = self._windows.get(name)
            # One spare day on each side: an overnight session may open the day before.
            if win is None or win.first_day > lo_ns - 2 * NS_PER_DAY or win.last_day < hi_ns + 2 * NS_PER_DAY:
                win = self._build(name, lo_ns, hi_ns, win)
                self._windows[name] = win
            return win

    def _build(self, name: str, lo_ns: int, hi_ns: int, old: SessionWindows | None) -> SessionWindows:
        import exchange_calendars as xcals

        try:
            with _quiet_pandas():
                default = xcals.get_calendar(name)
                win = _windows_from_calendar(default, self.session)
        except xcals.errors.InvalidCalendarName:
            raise InvalidInput(
                f"unknown exchange calendar {name!r} on an instrument",
                hint="set instruments.calendar to an exchange_calendars code such as XNYS, "
                "or NULL / '24/7' for UTC days",
            ) from None
        if win.first_day <= lo_ns - 2 * NS_PER_DAY and win.last_day >= hi_ns + 2 * NS_PER_DAY:
            return win
        first = min(lo_ns, win.first_day, old.first_day if old else lo_ns)
        last = max(hi_ns, win.last_day, old.last_day if old else hi_ns)
        start = pd.Timestamp(first - 10 * NS_PER_DAY, unit="ns").normalize()
        end = pd.Timestamp(last + 10 * NS_PER_DAY, unit="ns").normalize()
        try:
            with _quiet_pandas():
                cal = xcals.get_calendar(name, start=start.date(), end=end.date())
                return _windows_from_calendar(cal, self.session)
        except (ValueError, xcals.errors.CalendarError) as exc:
            raise InvalidInput(
                f"calendar {name} does not cover {start.date()}..{end.date()}: {exc}",
                hint="check the timestamps of the trades, or use a calendar that covers them",
            ) from None

    def session_labels(self, calendar: str | None, ts_ns: np.ndarray) -> np.ndarray:
        """Daily-bar label (session date at 00:00 UTC, epoch ns) of every timestamp.

        Timestamps in no session get ``NO_SESSION``.
        """
        ts_ns = np.asarray(ts_ns, dtype=np.int64)
        if self.is_utc(calendar):
            out: np.ndarray = ts_ns - ts_ns % NS_PER_DAY
            return out
        if ts_ns.size == 0:
            return ts_ns.copy()
        assert calendar is not None
        win = self.windows(calendar, int(ts_ns.min()), int(ts_ns.max()))
        return win.locate(ts_ns)

    def aligned(self, calendar: str | None, lo_ns: int, hi_ns: int, width_ns: int) -> bool:
        """True when every session window meeting ``[lo_ns, hi_ns]`` starts and ends on a
        multiple of ``width_ns``: then fixed buckets of that width lie wholly inside or
        wholly outside each session, and daily bars can be merged from them."""
        if self.is_utc(calendar):
            return NS_PER_DAY % width_ns == 0
        assert calendar is not None
        win = self.windows(calendar, lo_ns, hi_ns)
        idx = win.sessions_between(lo_ns, hi_ns + 1)
        return bool((win.start[idx] % width_ns == 0).all() and (win.end[idx] % width_ns == 0).all())

    def session_span(self, calendar: str | None, label_ns: int) -> tuple[int, int]:
        """Window ``[start, end)`` in epoch ns of the session labelled ``label_ns``."""
        if self.is_utc(calendar):
            return label_ns, label_ns + NS_PER_DAY
        assert calendar is not None
        win = self.windows(calendar, label_ns, label_ns)
        i = int(np.searchsorted(win.label, label_ns))
        if i >= len(win.label) or win.label[i] != label_ns:
            raise InvalidInput(f"{pd.Timestamp(label_ns, unit='ns').date()} is not a {calendar} session")
        return int(win.start[i]), int(win.end[i])

    def sessions_in(
        self, calendar: str | None, start_ns: int, end_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sessions whose window intersects ``[start_ns, end_ns)``: (labels, starts, ends)."""
        if self.is_utc(calendar):
            first = start_ns - start_ns % NS_PER_DAY
            labels = np.arange(first, end_ns, NS_PER_DAY, dtype=np.int64)
            return labels, labels, labels + NS_PER_DAY
        assert calendar is not None
        win = self.windows(calendar, start_ns, end_ns)
        idx = win.sessions_between(start_ns, end_ns)
        return win.label[idx], win.start[idx], win.end[idx]


def week_labels(day_ns: np.ndarray) -> np.ndarray:
    """Monday 00:00 UTC (epoch ns) of the ISO week of each session label; NO_SESSION kept."""
    days = day_ns // NS_PER_DAY
    # 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays.
    out = (days - (days + 3) % 7) * NS_PER_DAY
    return np.where(day_ns == NO_SESSION, NO_SESSION, out)


def month_labels(day_ns: np.ndarray, months: int) -> np.ndarray:
    """First day (00:00 UTC, epoch ns) of the ``months``-long bucket of each session label.

    Multi-month buckets are aligned to the calendar year (to January 1970 for whole years).
    """
    valid = day_ns != NO_SESSION
    month_index = np.where(valid, day_ns, 0).astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    # months divides 12 or is whole years, so buckets align to January (of 1970 for years).
    bucket = month_index - month_index % months
    out = bucket.astype("datetime64[M]").astype("datetime64[ns]").astype(np.int64)
    return np.where(valid, out, NO_SESSION)
