"""Filters that keep Alembic's autogenerate/check focused on marketdb's own tables."""

from __future__ import annotations

import re
from typing import Any

from marketdb.store.schema import TIMESERIES_TABLES

_PARTITION = re.compile(r"^(" + "|".join(TIMESERIES_TABLES) + r")_(p\d{8}|default)$")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Skip native partitions (managed by marketdb.store.timeseries) and views."""
    if type_ == "table" and name is not None:
        return not _PARTITION.match(name)
    if type_ == "schema":
        return name is None  # only the default schema
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Keep the comparison to marketdb's own objects.

    Skips partition-local indexes that PostgreSQL names after the partition,
    and tables that exist only in the database: those belong to the
    application (its own tables and Alembic version table, docs/operations.md),
    not to marketdb, so they are never reported as drift nor dropped.
    """
    if type_ == "table" and reflected and compare_to is None:
        return False
    return not (type_ == "index" and name is not None and _PARTITION.match(name.rsplit("_", 1)[0]))
