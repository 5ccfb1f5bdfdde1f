"""An in-process LRU of fetched Arrow tables, keyed by the instrument's data version.

Every committed market-data write through marketdb bumps
``instruments.data_version`` in the same transaction (``services/ingest``).
Reads already look that row up to resolve the symbol, so a cached result is
valid exactly while the version it was read at is still current: the check
costs nothing extra. Writes that bypass marketdb (hand-written SQL) do not
bump the version, which is why the cache is off unless asked for
(``Query(db, cache_mb=...)``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING

from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import pyarrow as pa
else:
    pa = lazy_module("pyarrow")

__all__ = ["ArrowCache"]


class ArrowCache:
    """A thread-safe LRU of ``pyarrow.Table`` bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[Hashable, pa.Table] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        """False when the budget is zero (the default)."""
        return self.max_bytes > 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: Hashable) -> pa.Table | None:
        """The table stored under ``key``, or None."""
        if not self.enabled:
            return None
        with self._lock:
            table = self._items.get(key)
            if table is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return table

    def put(self, key: Hashable, table: pa.Table) -> None:
        """Store ``table`` (Arrow tables are immutable, so sharing it is safe)."""
        size = table.nbytes
        if not self.enabled or size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = table
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
