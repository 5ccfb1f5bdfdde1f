"""Binary COPY of fixed-width bar and trade rows: the store's one codec (:mod:`marketdb.store.copy`)."""

from __future__ import annotations

from marketdb.store.copy import PG_EPOCH_US, copy_in, copy_out

__all__ = ["PG_EPOCH_US", "copy_in", "copy_out"]
