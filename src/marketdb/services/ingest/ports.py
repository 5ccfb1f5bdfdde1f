"""What the ingest writer needs from other services, as protocols (wired in ``marketdb.client``)."""

from __future__ import annotations

from typing import Any, Protocol

import psycopg
import pyarrow as pa

__all__ = ["BarsSink"]


class BarsSink(Protocol):
    """Keeps derived bars in step with stored trades (the bars service is one).

    ``update`` runs inside each batch's transaction, on its connection, right
    after the batch's trades were inserted, with exactly the rows stored; it
    has the contract of :class:`~marketdb.services.ingest.TradesHook`.
    Raising aborts the batch.
    """

    def update(
        self,
        conn: psycopg.Connection[Any],
        batch: pa.Table,
        /,
        *,
        inserted: int,
        received: int,
        replaced: bool,
    ) -> object:
        """Fold (or recompute) the bars ``batch`` touched."""
        ...

    def update_candles(self, conn: psycopg.Connection[Any], candles: pa.Table, /) -> object:
        """Roll the provider candles just written (in ``conn``'s transaction) up into the
        coarser stored intervals of their source."""
        ...
