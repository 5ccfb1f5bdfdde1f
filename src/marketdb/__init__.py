"""marketdb: the market-data and trading database for Python.

>>> import marketdb
>>> db = marketdb.connect()          # embedded PostgreSQL, or DATABASE_URL
>>> db.status()["server_version"]    # doctest: +SKIP
"""

from marketdb.client import MarketDB, connect
from marketdb.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    MarketdbError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from marketdb.settings import Settings

__version__ = "0.1.0"

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
