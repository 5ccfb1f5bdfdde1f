"""Reads: bars, ticks, quotes, latest, order books, options chains, as-of joins.

The query service is the only way the library reads market data, so the
physical layout of the time-series tables stays behind it (``DESIGN.md``).
Start with :class:`Query`::

    from marketdb.services.query import Query
    q = Query(db)
    q.bars("AAPL", "5m", start, end, adjusted=True)

Pure building blocks (adjustment math, frame conversion, as-of merge, charts)
are exported too, for tests and for users with their own data.
"""

from marketdb.services.query._adjust import (
    ADJUSTED_PRICE_COLUMNS,
    ADJUSTED_VOLUME_COLUMNS,
    AdjustmentFactors,
    CorporateAction,
    actions_known_at,
    adjust_bars,
    adjustment_factors,
)
from marketdb.services.query._asof import asof_merge
from marketdb.services.query._chart import CHART_FORMATS, render_chart
from marketdb.services.query._frames import (
    OUTPUTS,
    Output,
    convert,
    reconstruct_ns,
    split_ns,
)
from marketdb.services.query._service import (
    DEFAULT_BAR_COLUMNS,
    DEFAULT_SOURCE_PREFERENCE,
    AdjustmentCheck,
    Query,
)

__all__ = [
    "ADJUSTED_PRICE_COLUMNS",
    "ADJUSTED_VOLUME_COLUMNS",
    "CHART_FORMATS",
    "DEFAULT_BAR_COLUMNS",
    "DEFAULT_SOURCE_PREFERENCE",
    "OUTPUTS",
    "AdjustmentCheck",
    "AdjustmentFactors",
    "CorporateAction",
    "Output",
    "Query",
    "actions_known_at",
    "adjust_bars",
    "adjustment_factors",
    "asof_merge",
    "convert",
    "reconstruct_ns",
    "render_chart",
    "split_ns",
]
