"""Market-data providers: fetch from vendor REST APIs into marketdb, only what is missing.

Public surface (``db.providers``):

* :class:`Providers` -- ``sync(provider, symbols, kind=..., interval=..., since=...,
  until=...)`` and ``open(provider)``;
* :class:`SyncReport`, :class:`SyncItem` -- what a sync fetched, skipped and failed;
* :class:`Provider`, :class:`Request`, :class:`Page` -- the adapter interface;
* :data:`PROVIDERS` -- the adapters by name (tiingo, polygon, binance, kraken).

See docs/providers.md.
"""

from __future__ import annotations

from ._base import KINDS, Page, Provider, Request
from ._service import PROVIDERS, Providers, SyncItem, SyncReport, open_provider

__all__ = ["KINDS", "PROVIDERS", "Page", "Provider", "Providers", "Request", "SyncItem",
           "SyncReport", "open_provider"]
