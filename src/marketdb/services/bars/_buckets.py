"""Where bar buckets lie in time: the span of a bucket, and ranges closed under buckets.

A bucket's *span* is the epoch-ns range ``[lo, hi)`` of the trades that belong to it: for a
fixed interval ``[label, label + width)``; for a session its window (see ``_calendars``);
for a week or month the range from the first session window's start to the last session
window's end. A time range is *closed* when every bucket (of every interval considered) that
has a trade inside the range lies wholly inside it: bars recomputed from the trades of a
closed range are complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from marketdb.lazy import lazy_module
from marketdb.services.bars._calendars import (
    NO_SESSION,
    NS_PER_DAY,
    Calendars,
    month_labels,
    week_labels,
)
from marketdb.services.bars._intervals import Interval

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

__all__ = [
    "bucket_labels",
    "bucket_spans",
    "closed_range",
    "label_range",
    "merge_spans",
    "next_label",
]


def bucket_labels(iv: Interval, ts_ns: np.ndarray, calendar: str | None, calendars: Calendars) -> np.ndarray:
    """Bucket label of each timestamp (``NO_SESSION`` for trades outside every session)."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if iv.kind == "fixed":
        fixed: np.ndarray = ts_ns - ts_ns % iv.width_ns
        return fixed
    day = calendars.session_labels(calendar, ts_ns)
    if iv.kind == "session":
        return day
    if iv.kind == "week":
        return week_labels(day)
    return month_labels(day, int(iv.n))


def next_label(iv: Interval, label: np.ndarray) -> np.ndarray:
    """Label of the bucket after each week/month label (UTC days for sessions)."""
    if iv.kind == "session":
        return label + NS_PER_DAY
    if iv.kind == "week":
        return label + 7 * NS_PER_DAY
    months = label.astype("datetime64[ns]").astype("datetime64[M]") + np.timedelta64(int(iv.n), "M")
    return months.astype("datetime64[ns]").astype(np.int64)


def bucket_spans(
    iv: Interval, labels: np.ndarray, calendar: str | None, calendars: Calendars
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` epoch-ns arrays: the time span of the bucket of each label."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return labels.copy(), labels.copy()
    if iv.kind == "fixed":
        return labels, labels + iv.width_ns
    if Calendars.is_utc(calendar):
        if iv.kind == "session":
            return labels, labels + NS_PER_DAY
        return labels, next_label(iv, labels)
    assert calendar is not None
    lo_all = int(labels.min()) - 40 * NS_PER_DAY
    hi_all = (
        int(next_label(iv, labels).max()) + 40 * NS_PER_DAY if iv.kind != "session" else int(labels.max())
    )
    win = calendars.windows(calendar, lo_all, hi_all + 2 * NS_PER_DAY)
    if iv.kind == "session":
        i = np.clip(np.searchsorted(win.label, labels), 0, len(win.label) - 1)
        found = win.label[i] == labels
        # A label that is no session (a stray stored bar) spans its UTC day.
        return np.where(found, win.start[i], labels), np.where(found, win.end[i], labels + NS_PER_DAY)
    first = np.searchsorted(win.label, labels, side="left")
    last = np.searchsorted(win.label, next_label(iv, labels), side="left") - 1
    empty = last < first
    first_c = np.clip(first, 0, len(win.label) - 1)
    last_c = np.clip(last, 0, len(win.label) - 1)
    lo = np.where(empty, labels, win.start[first_c])
    hi = np.where(empty, labels, win.end[last_c])
    return lo, hi


def merge_spans(lo: np.ndarray, hi: np.ndarray) -> list[tuple[int, int]]:
    """Union of ``[lo, hi)`` spans as a sorted list of disjoint ``(lo, hi)`` pairs."""
    if len(lo) == 0:
        return []
    order = np.argsort(lo, kind="stable")
    out: list[tuple[int, int]] = []
    cur_lo, cur_hi = int(lo[order[0]]), int(hi[order[0]])
    for k in order[1:]:
        a, b = int(lo[k]), int(hi[k])
        if a <= cur_hi:
            cur_hi = max(cur_hi, b)
        else:
            out.append((cur_lo, cur_hi))
            cur_lo, cur_hi = a, b
    out.append((cur_lo, cur_hi))
    return out


def _containing_span(
    iv: Interval, x: int, calendar: str | None, calendars: Calendars
) -> tuple[int, int] | None:
    """Span of the bucket of ``iv`` whose span contains time ``x``, if any."""
    if iv.kind == "fixed":
        lo = x - x % iv.width_ns
        return lo, lo + iv.width_ns
    if Calendars.is_utc(calendar):
        day = x - x % NS_PER_DAY
        utc_label = bucket_labels(iv, np.array([day]), None, calendars)
        utc_lo, utc_hi = bucket_spans(iv, utc_label, None, calendars)
        return int(utc_lo[0]), int(utc_hi[0])
    assert calendar is not None
    win = calendars.windows(calendar, x - 40 * NS_PER_DAY, x + 400 * NS_PER_DAY)
    nxt = int(np.searchsorted(win.end, x, side="right"))  # first session ending after x
    if nxt < len(win.start) and win.start[nxt] <= x:
        label = np.array([win.label[nxt]])
    elif iv.kind == "session" or nxt == 0 or nxt >= len(win.start):
        return None
    else:
        # x is in a gap between sessions: inside a week/month span only when both
        # neighbours belong to the same bucket.
        prev_l = bucket_labels(iv, np.array([win.start[nxt - 1]]), calendar, calendars)
        next_l = bucket_labels(iv, np.array([win.start[nxt]]), calendar, calendars)
        if prev_l[0] != next_l[0]:
            return None
        label = np.array([win.label[nxt]])
    if iv.kind != "session":
        label = week_labels(label) if iv.kind == "week" else month_labels(label, int(iv.n))
    span_lo, span_hi = bucket_spans(iv, label, calendar, calendars)
    return int(span_lo[0]), int(span_hi[0])


def closed_range(
    lo: int, hi: int, intervals: Sequence[Interval], calendar: str | None, calendars: Calendars
) -> tuple[int, int]:
    """The smallest range containing ``[lo, hi)`` that is closed under the buckets of
    ``intervals`` (see the module docstring)."""
    while True:
        new_lo, new_hi = lo, hi
        for iv in intervals:
            a = _containing_span(iv, lo, calendar, calendars)
            if a is not None:
                new_lo = min(new_lo, a[0])
            b = _containing_span(iv, hi - 1, calendar, calendars)
            if b is not None:
                new_hi = max(new_hi, b[1])
        if (new_lo, new_hi) == (lo, hi):
            return lo, hi
        lo, hi = new_lo, new_hi


def label_range(
    iv: Interval, lo: int, hi: int, calendar: str | None, calendars: Calendars
) -> tuple[int, int] | None:
    """``[first, last]`` labels (inclusive) of the buckets of ``iv`` inside closed ``[lo, hi)``,
    or None when there are none."""
    if iv.kind == "fixed":
        first = lo + (-lo) % iv.width_ns
        last = (hi - 1) - (hi - 1) % iv.width_ns
        return (first, last) if first <= last else None
    labels, _starts, _ends = calendars.sessions_in(calendar, lo, hi)
    if labels.size == 0:
        return None
    if iv.kind == "week":
        labels = week_labels(labels)
    elif iv.kind == "month":
        labels = month_labels(labels, int(iv.n))
    labels = labels[labels != NO_SESSION]
    return (int(labels.min()), int(labels.max())) if labels.size else None
