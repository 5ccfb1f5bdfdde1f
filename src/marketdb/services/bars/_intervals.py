"""Bar intervals for the bars service: the store's one interval module (:mod:`marketdb.store.intervals`).

``Interval`` and ``parse_interval`` are the names the bars and query code use for
:class:`~marketdb.store.intervals.BarInterval` and
:func:`~marketdb.store.intervals.parse_bar_interval`.
"""

from __future__ import annotations

from marketdb.store.intervals import BarInterval, rollup_source, stored_intervals
from marketdb.store.intervals import parse_bar_interval as parse_interval

__all__ = ["Interval", "parse_interval", "rollup_source", "stored_intervals"]

Interval = BarInterval
