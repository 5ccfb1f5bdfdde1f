"""What the query service needs from other services, as protocols (wired in ``marketdb.client``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol

from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import pyarrow as pa
else:
    pa = lazy_module("pyarrow")

__all__ = ["Rollup"]


class Rollup(Protocol):
    """Bars of any interval on demand (the bars service is one).

    Used for intervals that are not stored: ``rollup(instrument_id, interval,
    start, end, source=...)`` returns an Arrow table with ``ts`` and the candle
    columns (``source`` optional) for labels in ``[start, end)``.
    """

    def rollup(
        self,
        instrument_id: int,
        interval: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        source: str = ...,
    ) -> pa.Table:
        """Bars of one instrument at ``interval``."""
        ...
