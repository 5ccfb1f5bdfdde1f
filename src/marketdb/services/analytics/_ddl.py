"""The ClickHouse tables marketdb keeps, and their DDL for one server or a cluster.

Every table is a ReplacingMergeTree with a ``version`` column (the
instrument's ``data_version`` the row was sent at), ordered by
``(instrument_id, ts, ...)``, times as ``DateTime64(9, 'UTC')`` and one
partition per month. A newer copy of a row (a correction) replaces the older
one at merge time and at once under ``FINAL``.

With a cluster name the same tables are created ``ON CLUSTER`` as
``<name>_local`` (ReplicatedReplacingMergeTree, one replica set per shard)
under a Distributed table of the plain name, sharded by ``instrument_id`` so
that each instrument lives on one shard and ``FINAL`` stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketdb.errors import InvalidInput
from marketdb.services.analytics._client import quote_ident

__all__ = ["TABLES", "ChTable", "create_statements", "drop_statements"]


@dataclass(frozen=True)
class ChTable:
    """One mirrored table: its ClickHouse columns and how PostgreSQL rows map to them."""

    name: str
    #: (column, ClickHouse type) without the trailing ``version``.
    columns: tuple[tuple[str, str], ...]
    #: Sorting key (also the replacing key).
    order_by: tuple[str, ...]
    #: PostgreSQL source table.
    source: str
    #: PostgreSQL select list, in ``columns`` order (``ts`` as timestamptz).
    pg_select: tuple[str, ...]
    #: The source keeps sub-microsecond nanoseconds in ``ts_nanos``.
    pg_nanos: bool = False
    #: Extra PostgreSQL filter on the source table.
    pg_where: str = "TRUE"
    #: Numeric columns folded into the per-day digest (as floor(x * 1e6)).
    digest_values: tuple[str, ...] = ()
    #: Integer key columns other than ts folded into the digest.
    digest_ints: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        """Column names including ``version``."""
        return [c for c, _ in self.columns] + ["version"]



TABLES: dict[str, ChTable] = {
    t.name: t
    for t in (
        ChTable(
            name="trades",
            columns=(
                ("instrument_id", "Int32"),
                ("ts", "DateTime64(9, 'UTC')"),
                ("seq", "Int64"),
                ("price", "Float64"),
                ("size", "Float64"),
                ("side", "Nullable(Int8)"),
                ("trade_id", "Nullable(String)"),
                ("exchange", "LowCardinality(Nullable(String))"),
                ("conditions", "Nullable(String)"),
                ("source", "LowCardinality(Nullable(String))"),
            ),
            order_by=("instrument_id", "ts", "seq"),
            source="trades",
            pg_select=(
                "instrument_id",
                "ts",
                "seq",
                "price",
                "size",
                "side",
                "trade_id",
                "exchange",
                "conditions",
                "source",
            ),
            digest_values=("price", "size"),
            digest_ints=("seq",),
            pg_nanos=True,
        ),
        ChTable(
            name="quotes",
            columns=(
                ("instrument_id", "Int32"),
                ("ts", "DateTime64(9, 'UTC')"),
                ("seq", "Int64"),
                ("bid", "Nullable(Float64)"),
                ("ask", "Nullable(Float64)"),
                ("bid_size", "Nullable(Float64)"),
                ("ask_size", "Nullable(Float64)"),
                ("exchange", "LowCardinality(Nullable(String))"),
                ("source", "LowCardinality(Nullable(String))"),
            ),
            order_by=("instrument_id", "ts", "seq"),
            source="quotes",
            pg_select=(
                "instrument_id",
                "ts",
                "seq",
                "bid",
                "ask",
                "bid_size",
                "ask_size",
                "exchange",
                "source",
            ),
            digest_values=("bid", "ask", "bid_size", "ask_size"),
            digest_ints=("seq",),
            pg_nanos=True,
        ),
        ChTable(
            name="candles",
            columns=(
                ("instrument_id", "Int32"),
                ("interval", "LowCardinality(String)"),
                ("source", "LowCardinality(String)"),
                ("ts", "DateTime64(9, 'UTC')"),
                ("open", "Float64"),
                ("high", "Float64"),
                ("low", "Float64"),
                ("close", "Float64"),
                ("volume", "Float64"),
                ("vwap", "Nullable(Float64)"),
                ("trade_count", "Nullable(Int64)"),
            ),
            order_by=("instrument_id", "interval", "source", "ts"),
            source="candles",
            pg_select=(
                "instrument_id",
                "interval",
                "source",
                "ts",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "vwap",
                "trade_count",
            ),
            digest_values=("open", "high", "low", "close", "volume"),
        ),
        # Seed 002's daily OHLCV: the daily bars, one row per (symbol, date).
        ChTable(
            name="daily_ohlcv",
            columns=(
                ("instrument_id", "Int32"),
                ("symbol", "LowCardinality(String)"),
                ("source", "LowCardinality(String)"),
                ("ts", "DateTime64(9, 'UTC')"),
                ("date", "Date"),
                ("open", "Float64"),
                ("high", "Float64"),
                ("low", "Float64"),
                ("close", "Float64"),
                ("volume", "Float64"),
            ),
            order_by=("instrument_id", "source", "ts"),
            source="candles",
            pg_select=(
                "instrument_id",
                "(SELECT symbol FROM instruments i WHERE i.id = instrument_id)",
                "source",
                "ts",
                "(ts AT TIME ZONE 'UTC')::date",
                "open",
                "high",
                "low",
                "close",
                "volume",
            ),
            pg_where="interval = '1d'",
            digest_values=("open", "high", "low", "close", "volume"),
        ),
    )
}


def _engine(table: ChTable, *, cluster: str | None, replicated: bool, database: str) -> str:
    if cluster and replicated:
        path = f"/clickhouse/tables/{{shard}}/{database}/{table.name}_local"
        return f"ReplicatedReplacingMergeTree('{path}', '{{replica}}', version)"
    return "ReplacingMergeTree(version)"


def create_statements(
    database: str,
    *,
    cluster: str | None = None,
    replicated: bool = True,
    on_cluster: bool = True,
    tables: tuple[str, ...] | None = None,
) -> list[str]:
    """``CREATE TABLE`` statements of the mirrored tables.

    Without ``cluster``: one ReplacingMergeTree per table. With ``cluster``:
    ``<table>_local`` on every node (``ON CLUSTER``; Replicated unless
    ``replicated=False``, for a cluster of unreplicated shards) and a
    Distributed ``<table>`` over them sharded by ``instrument_id``.
    ``on_cluster=False`` leaves out ``ON CLUSTER`` (run the statements on each
    node yourself, e.g. where there is no Keeper for distributed DDL).
    """
    names = tables or tuple(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        raise InvalidInput(f"unknown ClickHouse tables {unknown}", hint=f"use {', '.join(TABLES)}")
    db = quote_ident(database)
    on = f" ON CLUSTER {quote_ident(cluster)}" if cluster and on_cluster else ""
    out: list[str] = []
    for name in names:
        t = TABLES[name]
        local = f"{name}_local" if cluster else name
        cols = ",\n    ".join(f"{quote_ident(c)} {typ}" for c, typ in t.columns)
        # Plain tables deduplicate retried inserts by token only with a window.
        dedup = "" if cluster and replicated else "\nSETTINGS non_replicated_deduplication_window = 1000"
        out.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{quote_ident(local)}{on} (\n"
            f"    {cols},\n    `version` UInt64\n)\n"
            f"ENGINE = {_engine(t, cluster=cluster, replicated=replicated, database=database)}\n"
            f"PARTITION BY toYYYYMM(ts)\n"
            f"ORDER BY ({', '.join(quote_ident(c) for c in t.order_by)})"
            f"{dedup}"
        )
        if cluster:
            out.append(
                f"CREATE TABLE IF NOT EXISTS {db}.{quote_ident(name)}{on} "
                f"AS {db}.{quote_ident(local)}\n"
                f"ENGINE = Distributed({quote_ident(cluster)}, {quote_ident(database)}, "
                f"{quote_ident(local)}, intHash64(instrument_id))"
            )
    return out


def drop_statements(database: str, *, cluster: str | None = None) -> list[str]:
    """``DROP TABLE`` statements undoing :func:`create_statements`."""
    db = quote_ident(database)
    on = f" ON CLUSTER {quote_ident(cluster)}" if cluster else ""
    out = []
    for name in TABLES:
        out.append(f"DROP TABLE IF EXISTS {db}.{quote_ident(name)}{on} SYNC")
        if cluster:
            out.append(f"DROP TABLE IF EXISTS {db}.{quote_ident(name + '_local')}{on} SYNC")
    return out
