"""Heavy third-party modules (pandas, numpy, pyarrow, polars) imported on first use.

Importing them costs ~2 s of CPU, which every CLI command paid before it did
anything (issue 15). A module that needs them at run time but not at import time
writes::

    from typing import TYPE_CHECKING

    from marketdb.lazy import lazy_module

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas")

mypy sees the real module; at run time ``pd`` is a stand-in that imports pandas
the first time an attribute is read (``pd.DataFrame``) and from then on holds the
real module's names, so behaviour is unchanged. Importing goes through
:func:`importlib.import_module` (thread-safe, unlike
:class:`importlib.util.LazyLoader` on Python 3.11). Module-level code that reads an
attribute (``SCHEMA = pa.schema(...)``) imports the module then, as before.
"""

from __future__ import annotations

import importlib
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["LazyMapping", "lazy_module", "preload"]

_lock = threading.Lock()
#: One import at a time through the stand-ins: two threads importing, say, pandas and
#: pyarrow at once (each imports the other) make Python hand one of them a partially
#: initialised module ("concurrent circular import"), whose names are then missing.
_load_lock = threading.RLock()
_proxies: dict[str, LazyModule] = {}


class LazyModule(types.ModuleType):
    """A stand-in for module ``name`` that imports it on first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_real"] = None

    def _lazy_load(self) -> types.ModuleType:
        real = self.__dict__["_lazy_real"]
        if real is not None:
            return real  # type: ignore[no-any-return]
        with _load_lock:
            real = self.__dict__["_lazy_real"]
            if real is not None:
                return real  # type: ignore[no-any-return]
            real = importlib.import_module(self.__name__)
            # Copy the namespace once: later reads are plain attribute hits.
            for key, value in real.__dict__.items():
                if key not in ("__name__", "__dict__"):
                    self.__dict__.setdefault(key, value)
            self.__dict__["_lazy_real"] = real
        return real

    def __getattr__(self, attr: str) -> Any:
        # Only called for names not (yet) copied: before the import, and for
        # attributes the real module gains later (submodules, module __getattr__).
        return getattr(self._lazy_load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._lazy_load())

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_lazy_real"] is not None else "not imported yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_module(name: str) -> Any:
    """The module ``name`` if it is imported already, else a stand-in that imports it on first use."""
    import sys

    real = sys.modules.get(name)
    if real is not None and not isinstance(real, LazyModule):
        return real
    with _lock:
        proxy = _proxies.get(name)
        if proxy is None:
            proxy = _proxies[name] = LazyModule(name)
        return proxy


def preload(*names: str) -> None:
    """Import heavy modules now, in this thread (servers call it at start-up, before
    request threads could race to import them)."""
    with _load_lock:
        for name in names:
            importlib.import_module(name)


K = TypeVar("K")
V = TypeVar("V")


class LazyMapping(Mapping[K, V]):
    """A read-only mapping built by ``build()`` on first use.

    For module-level tables of types (``{"ts": pa.timestamp("us", tz="UTC"), ...}``)
    that would otherwise import their library when the module is imported.
    """

    def __init__(self, build: Callable[[], Mapping[K, V]]) -> None:
        self._build = build
        self._items: Mapping[K, V] | None = None

    def _get(self) -> Mapping[K, V]:
        if self._items is None:
            self._items = self._build()
        return self._items

    def __getitem__(self, key: K) -> V:
        return self._get()[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
