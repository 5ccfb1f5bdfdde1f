"""The ClickHouse analytics tier: a client (server or chdb), DDL, incremental sync, verify, routed reads.

``db.analytics`` (None without ``CLICKHOUSE_URL``) or ``Analytics(db, url)``;
CLI ``marketdb clickhouse sync|verify|status``. See docs/scale-out.md.
"""

from marketdb.services.analytics._client import ClickHouse, connect_clickhouse, is_chdb_url
from marketdb.services.analytics._ddl import TABLES, ChTable, create_statements, drop_statements
from marketdb.services.analytics._sync import DayDiff, SyncProgress, SyncReport, VerifyReport
from marketdb.services.analytics.service import (
    Analytics,
    Route,
    TableStatus,
    maintenance_hook,
    route_allows,
)

__all__ = [
    "TABLES",
    "Analytics",
    "ChTable",
    "ClickHouse",
    "DayDiff",
    "Route",
    "SyncProgress",
    "SyncReport",
    "TableStatus",
    "VerifyReport",
    "connect_clickhouse",
    "create_statements",
    "drop_statements",
    "is_chdb_url",
    "maintenance_hook",
    "route_allows",
]
