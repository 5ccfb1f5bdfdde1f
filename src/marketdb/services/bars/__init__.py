"""Continuous bars: exact OHLCV bars at every interval, kept up to date at ingest time.

The service object is :class:`Bars` (``db.bars``). The ingest writer calls
:func:`update_bars` (or ``db.bars.update``) inside its transaction right after inserting a
trade batch; every bar bucket the batch touched, at every stored interval, is then exact.
See ``docs/bars.md`` for the design, the session rules of daily bars and the merge algebra.

Public names:

* :class:`Bars` -- the service: ``update``, ``rollup``/``compute`` (any interval on
  demand), ``verify``/``repair``/``rebuild``; :func:`maintenance_hook` for ``maintain``.
* :func:`update_bars`, :class:`BarUpdate` -- the ingest hook.
* :func:`compute_bars`, :func:`rollup_sql`, :func:`activity_bars` -- on-demand bars.
* :func:`parse_interval`, :class:`Interval`, :func:`rollup_source`, :func:`stored_intervals`.
* :class:`Calendars` -- exchange sessions for daily bars (cached ``exchange_calendars``).
* :func:`trades_frame`, :func:`aggregate`, :func:`aggregate_many`, :func:`merge_partials`,
  :func:`relabel`, :func:`finalize` -- the in-memory mergeable aggregation (polars).
* :class:`VerifyReport`, :class:`BarDifference`, :class:`RebuildReport`.
"""

from __future__ import annotations

from marketdb.services.bars._aggregate import (
    BAR_FIELDS,
    aggregate,
    aggregate_many,
    finalize,
    merge_partials,
    relabel,
    trades_frame,
)
from marketdb.services.bars._calendars import Calendars, SessionMode
from marketdb.services.bars._facade import Bars, maintenance_hook
from marketdb.services.bars._intervals import Interval, parse_interval, rollup_source, stored_intervals
from marketdb.services.bars._ondemand import BAR_OUTPUT, activity_bars, compute_bars, rollup_sql
from marketdb.services.bars._recompute import BarDifference, RebuildReport, VerifyReport
from marketdb.services.bars._refresh import BarRefresher, RefreshReport, Touched, parse_payload
from marketdb.services.bars._store import DERIVED_SOURCE
from marketdb.services.bars._update import BarUpdate, update_bars

__all__ = [
    "BAR_FIELDS",
    "BAR_OUTPUT",
    "DERIVED_SOURCE",
    "BarDifference",
    "BarRefresher",
    "BarUpdate",
    "Bars",
    "Calendars",
    "Interval",
    "RebuildReport",
    "RefreshReport",
    "SessionMode",
    "Touched",
    "VerifyReport",
    "activity_bars",
    "aggregate",
    "aggregate_many",
    "compute_bars",
    "finalize",
    "maintenance_hook",
    "merge_partials",
    "parse_interval",
    "parse_payload",
    "relabel",
    "rollup_source",
    "rollup_sql",
    "stored_intervals",
    "trades_frame",
    "update_bars",
]
