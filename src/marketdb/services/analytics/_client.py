"""One small client over ClickHouse: a server (clickhouse-connect over HTTP) or chdb in-process.

``CLICKHOUSE_URL`` picks the engine:

* ``http://user:pass@host:8123/db`` (or ``https://``, ``clickhouse://``): a
  server or a cluster node, through clickhouse-connect's HTTP client;
* ``chdb:///path/to/dir`` (or ``chdb:PATH``): the in-process ClickHouse engine
  (chdb) keeping its data under ``PATH``, through clickhouse-connect's chdb
  backend (clickhouse-connect >= 1.6). chdb allows one engine per process, so
  clients to the same path share it.

Everything above this module talks to :class:`ClickHouse`, a Protocol of
five methods, so the sync, verify and routed reads run unchanged on both.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

import pyarrow as pa

from marketdb.errors import ConfigurationError, Unavailable

__all__ = ["ClickHouse", "ConnectClient", "connect_clickhouse", "is_chdb_url"]


class ClickHouse(Protocol):
    """What marketdb needs from ClickHouse."""

    #: Database holding marketdb's tables.
    database: str

    def command(self, sql: str, *, settings: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing worth reading (DDL, DELETE)."""

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""

    def arrow(self, sql: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        """Run a query and return an Arrow table."""

    def insert_arrow(self, table: str, data: pa.Table, *, settings: dict[str, Any] | None = None) -> None:
        """Insert an Arrow table (columns by name) into ``table``."""

    def close(self) -> None:
        """Release the connection."""


def is_chdb_url(url: str) -> bool:
    """True when ``url`` names the in-process engine."""
    return url.startswith("chdb:")


def _chdb_path(url: str) -> str:
    rest = url[len("chdb:") :]
    if rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise ConfigurationError(
            "CLICKHOUSE_URL=chdb: names no directory", hint="use chdb:///absolute/path/to/dir"
        )
    return rest


_CHDB_LOCK = threading.Lock()
_CHDB_CLIENTS: dict[str, Any] = {}


class ConnectClient:
    """:class:`ClickHouse` over a clickhouse-connect client (HTTP server or chdb backend)."""

    def __init__(self, client: Any, database: str, *, shared: bool = False) -> None:
        self._client = client
        self.database = database
        self._shared = shared
        self._lock = threading.Lock()

    def command(self, sql: str, *, settings: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing worth reading (DDL, DELETE)."""
        with self._lock:
            self._client.command(sql, settings=settings)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        with self._lock:
            return [tuple(r) for r in self._client.query(sql, parameters=parameters).result_rows]

    def arrow(self, sql: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        """Run a query and return an Arrow table."""
        with self._lock:
            table: pa.Table = self._client.query_arrow(sql, parameters=parameters)
        return table

    def insert_arrow(self, table: str, data: pa.Table, *, settings: dict[str, Any] | None = None) -> None:
        """Insert an Arrow table (columns by name) into ``table``."""
        with self._lock:
            self._client.insert_arrow(table, data, database=self.database, settings=settings)

    def close(self) -> None:
        """Release the connection (the shared in-process engine stays up for the process)."""
        if not self._shared:
            self._client.close()


def connect_clickhouse(url: str, *, database: str = "marketdb") -> ClickHouse:
    """A :class:`ClickHouse` for ``url`` (see the module docstring), creating ``database``.

    Raises ConfigurationError when the extra is not installed or the URL is
    malformed, Unavailable when the server cannot be reached.
    """
    try:
        import clickhouse_connect
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "CLICKHOUSE_URL is set but clickhouse-connect is not installed",
            hint="pip install 'marketdb[clickhouse]'",
        ) from exc
    if is_chdb_url(url):
        path = _chdb_path(url)
        with _CHDB_LOCK:
            client = _CHDB_CLIENTS.get(path)
            if client is None:
                if _CHDB_CLIENTS:
                    other = next(iter(_CHDB_CLIENTS))
                    raise ConfigurationError(
                        f"chdb runs one engine per process; it is already open at {other}",
                        hint="use the same chdb path in one process, or a ClickHouse server",
                    )
                try:
                    client = clickhouse_connect.get_client(interface="chdb", path=path)
                except ImportError as exc:
                    raise ConfigurationError(
                        "CLICKHOUSE_URL names the in-process engine but chdb is not installed",
                        hint="pip install 'marketdb[clickhouse]'",
                    ) from exc
                _CHDB_CLIENTS[path] = client
        ch: ConnectClient = ConnectClient(client, database, shared=True)
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "clickhouse", "clickhouses"):
            raise ConfigurationError(
                f"CLICKHOUSE_URL has an unknown scheme {parts.scheme!r}",
                hint="use http://host:8123, https://host:8443 or chdb:///path",
            )
        dsn = url.replace("clickhouses://", "https://", 1).replace("clickhouse://", "http://", 1)
        try:
            client = clickhouse_connect.get_client(dsn=dsn)
        except Exception as exc:
            raise Unavailable(
                f"cannot reach ClickHouse at {parts.hostname}:{parts.port}: {exc}",
                hint="start ClickHouse or fix CLICKHOUSE_URL (chdb:///path runs it in-process)",
            ) from exc
        ch = ConnectClient(client, database)
    ch.command(f"CREATE DATABASE IF NOT EXISTS {quote_ident(database)}")
    return ch


def quote_ident(name: str) -> str:
    """A ClickHouse identifier in backquotes."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
