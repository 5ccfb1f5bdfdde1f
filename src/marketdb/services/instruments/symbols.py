"""The one spelling marketdb stores for a symbol (shared by every service and interface)."""

from __future__ import annotations

import unicodedata

from marketdb.errors import InvalidInput

__all__ = ["normalize_symbol"]


def normalize_symbol(symbol: str) -> str:
    """The one spelling marketdb stores for a symbol: NFKC, no surrounding space, upper case.

    Punctuation is kept as given (``BRK.B`` and ``BRK-B`` stay different
    symbols), because providers disagree on it; record both as aliases in
    symbol history when you need both to resolve.
    """
    s = unicodedata.normalize("NFKC", str(symbol)).strip().upper()
    if not s:
        raise InvalidInput("a symbol must not be empty", hint="give a ticker such as 'AAPL'")
    return s
