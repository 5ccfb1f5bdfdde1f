"""Binary COPY encoding for the ingest writer: the store's one codec (:mod:`marketdb.store.copy`)."""

from __future__ import annotations

from marketdb.store.copy import HEADER, TRAILER, Column, encode_rows

__all__ = ["HEADER", "TRAILER", "Column", "encode_rows"]
