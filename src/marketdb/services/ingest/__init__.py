"""Market-data ingestion: normalise -> validate -> binary COPY -> INSERT .. ON CONFLICT.

Public surface:

* :class:`Ingest` -- ``db.ingest``: ``write_ticks``, ``write_candles``,
  ``write_order_books``, ``write_options_chain``, ``write_corporate_actions``,
  ``write_instruments``, ``rename_symbol``, ``delist``.
* :class:`IngestOptions` -- the options every writer takes (library and CLI).
* :class:`WriteResult`, :class:`Rejection` -- what every write returns.
* :class:`ValidationPolicy` -- plausible time window, crossed quotes, asset
  classes allowed non-positive prices.
* :class:`TradesHook` -- the callback type of ``Ingest.on_trades_inserted``.
* :func:`normalize_symbol`, :func:`normalize_interval` -- the spellings stored.

See docs/ingest.md for the formats accepted and every validation rule.
"""

from __future__ import annotations

from ._normalize import normalize_interval, normalize_symbol
from ._service import Ingest
from ._sources import DEFAULT_BATCH_SIZE
from ._validate import ValidationPolicy
from ._writer import TradesHook
from .options import IngestKwargs, IngestOptions, Progress
from .results import Rejection, WriteResult

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Ingest",
    "IngestKwargs",
    "IngestOptions",
    "Progress",
    "Rejection",
    "TradesHook",
    "ValidationPolicy",
    "WriteResult",
    "normalize_interval",
    "normalize_symbol",
]
