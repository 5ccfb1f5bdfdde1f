"""marketdb: the market-data and trading database for Python.

>>> import marketdb
>>> db = marketdb.connect()          # embedded PostgreSQL, or DATABASE_URL
>>> db.status()["server_version"]    # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marketdb.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    MarketdbError,
    NotFound,
    PermissionDenied,
    Unavailable,
)

if TYPE_CHECKING:
    from marketdb.client import MarketDB, connect
    from marketdb.settings import Settings

__version__ = "0.1.0"

# Imported on first use: `marketdb --version` and `--help` must not pay for
# SQLAlchemy, psycopg, pydantic and Alembic (issue 15, bench/cli.py).
_LAZY = {"MarketDB": "marketdb.client", "connect": "marketdb.client", "Settings": "marketdb.settings"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'marketdb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "ConfigurationError",
    "Conflict",
    "InvalidInput",
    "MarketDB",
    "MarketdbError",
    "NotFound",
    "PermissionDenied",
    "Settings",
    "Unavailable",
    "__version__",
    "connect",
]
