"""marketdb's canonical schema as SQLAlchemy Core tables (one MetaData)."""

from marketdb.store.schema import tables
from marketdb.store.schema._base import TIMESERIES_TABLES, metadata

__all__ = ["TIMESERIES_TABLES", "metadata", "tables"]
