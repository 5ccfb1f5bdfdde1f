"""Instruments: the security master and its symbol history, the hub every service resolves through.

Start from :class:`Instruments` (``db.instruments``). Modules:

* :mod:`.lookup` -- :func:`resolve` ids or symbols (current or former, at a
  time) to instruments; :func:`symbol_spans` for per-row resolution (ingest).
* :mod:`.history` -- rename, delist, register, and the spans they leave.
* :mod:`.catalog` -- list and search, with the data stored per instrument.
* :mod:`.symbols` -- :func:`normalize_symbol`, the one stored spelling.
"""

from __future__ import annotations

from .catalog import DataCount, InstrumentInfo
from .history import SymbolChange
from .lookup import UNKNOWN_HINT, InstrumentRef, Resolved, SymbolSpan, resolve, resolve_one
from .service import Instruments
from .symbols import normalize_symbol

__all__ = [
    "UNKNOWN_HINT",
    "DataCount",
    "InstrumentInfo",
    "InstrumentRef",
    "Instruments",
    "Resolved",
    "SymbolChange",
    "SymbolSpan",
    "normalize_symbol",
    "resolve",
    "resolve_one",
]
