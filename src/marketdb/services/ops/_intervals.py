"""Durations for policies and loops: the store's one interval module (:mod:`marketdb.store.intervals`).

``parse_interval`` / ``format_interval`` / ``parse_partition_interval`` are the
names ops has always used for :func:`~marketdb.store.intervals.parse_duration`,
:func:`~marketdb.store.intervals.format_duration` and
:func:`~marketdb.store.intervals.normalize_partition_interval`.
"""

from __future__ import annotations

from marketdb.store.intervals import format_duration as format_interval
from marketdb.store.intervals import normalize_partition_interval as parse_partition_interval
from marketdb.store.intervals import parse_duration as parse_interval

__all__ = ["format_interval", "parse_interval", "parse_partition_interval"]
