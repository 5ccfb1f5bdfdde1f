"""The object users work through: :class:`MarketDB`, returned by :func:`connect`."""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from marketdb.errors import ConfigurationError, Unavailable
from marketdb.settings import Settings
from marketdb.store import migrate
from marketdb.store.database import Database, open_database
from marketdb.store.db import explain_driver_error
from marketdb.store.embedded import ServerInfo

if TYPE_CHECKING:
    from marketdb.services.accounts import Accounts
    from marketdb.services.analytics import Analytics
    from marketdb.services.bars import Bars
    from marketdb.services.ingest import Ingest
    from marketdb.services.instruments import Instruments
    from marketdb.services.ops import Ops
    from marketdb.services.providers import Providers
    from marketdb.services.quality import Quality
    from marketdb.services.query import Query
    from marketdb.services.trading import Trading

__all__ = ["MarketDB", "connect"]


class MarketDB(Database):
    """A connection to a marketdb database: engine, settings and the services.

    Create it with :func:`marketdb.connect`. Services are attributes
    (``db.ingest``, ``db.query``, ``db.bars``, ``db.trading``, ``db.accounts``,
    ``db.instruments``, ``db.ops``), built on first use. Use it as a context
    manager or call :meth:`close`.

    ``MarketDB`` is a :class:`~marketdb.store.database.Database` (settings,
    ``transaction()``, ``raw()``, Arrow reads) plus the services. This class is
    the one place services are wired together: each gets a plain ``Database``
    handle and the collaborators it uses (e.g. the bars service as the ingest
    writer's ``BarsSink`` and as the query service's ``Rollup``).
    """

    def __init__(self, settings: Settings, engine: sa.Engine, server: ServerInfo | None = None) -> None:
        super().__init__(settings, engine, server)
        self._handle = self.handle()

    def close(self) -> None:
        """Return pooled connections. The embedded server keeps running for the next process."""
        query = self.__dict__.get("query")
        if query is not None:
            query.close()  # pooled ADBC connections
        analytics = self.__dict__.get("analytics")
        if analytics is not None:
            analytics.close()
        self.engine.dispose()

    def __enter__(self) -> MarketDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"embedded at {self.server.pgdata}" if self.server else "DATABASE_URL"
        return f"<MarketDB {self.engine.url.render_as_string(hide_password=True)} ({where})>"

    # ------------------------------------------------------------ migrations
    def upgrade(self, revision: str = "head") -> None:
        """Apply schema migrations up to ``revision``."""
        migrate.upgrade(self.engine, self.settings, revision)

    def downgrade(self, revision: str = "-1") -> None:
        """Revert schema migrations down to ``revision`` (``base`` drops everything)."""
        migrate.downgrade(self.engine, self.settings, revision)

    def status(self) -> dict[str, Any]:
        """Which server, version, extensions, schema revision and data location."""
        from marketdb.store.timeseries import current_backend

        try:
            return self._status(current_backend)
        except sa.exc.OperationalError as exc:
            raise explain_driver_error(exc) or Unavailable(str(exc)) from exc

    def _status(self, current_backend: Any) -> dict[str, Any]:
        with self.engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            extensions = [r[0] for r in conn.execute(sa.text("SELECT extname FROM pg_extension ORDER BY 1"))]
            data_dir = None
            try:
                data_dir = conn.execute(sa.text("SHOW data_directory")).scalar_one()
            except sa.exc.DBAPIError:  # needs superuser or pg_read_all_settings
                conn.rollback()
            size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
            revision = migrate.current_revision(self.engine)
            backend = current_backend(conn) if revision else None
        return {
            "mode": "embedded" if self.server else "DATABASE_URL",
            "url": self.engine.url.render_as_string(hide_password=True),
            "server_version": version,
            "extensions": extensions,
            "data_directory": str(self.server.pgdata) if self.server else data_dir,
            "database_size_bytes": size,
            "schema_revision": revision,
            "schema_head": migrate.head_revision(self.engine, self.settings),
            "timeseries_backend": backend,
        }

    # -------------------------------------------------------------- services
    @cached_property
    def ingest(self) -> Ingest:
        """Validated, idempotent writers for market data."""
        # Continuous bars: every committed batch of trades folds into the stored bars
        # in the same transaction.
        from marketdb.services.ingest import Ingest

        return Ingest(self._handle, bars=self.bars if self.settings.bar_intervals else None)

    @cached_property
    def instruments(self) -> Instruments:
        """Instruments and their symbol history: resolve, list, search, add, rename, delist."""
        from marketdb.services.instruments import Instruments

        return Instruments(self._handle)

    @cached_property
    def bars(self) -> Bars:
        """Continuous bars: stored intervals, on-demand roll-ups, verify and repair."""
        from marketdb.services.bars import Bars

        return Bars(self._handle)

    @cached_property
    def query(self) -> Query:
        """Reads into pandas, polars or Arrow."""
        from marketdb.services.query import Query

        return Query(self._handle, rollup=self.bars, analytics=lambda: self.analytics)

    @cached_property
    def trading(self) -> Trading:
        """Strategies, signals, orders, fills, positions, portfolio."""
        from marketdb.services.trading import Trading

        return Trading(self._handle)

    @cached_property
    def ops(self) -> Ops:
        """Maintenance, time-series and retention policies, backup/restore, doctor."""
        from marketdb.services.ops import Ops

        return Ops(self._handle, analytics=lambda: self.analytics)

    @cached_property
    def analytics(self) -> Analytics | None:
        """The ClickHouse analytics tier (sync, verify, routed reads), or None without CLICKHOUSE_URL."""
        from marketdb.services.analytics import Analytics

        return Analytics(self._handle) if self.settings.clickhouse_url else None

    @cached_property
    def accounts(self) -> Accounts:
        """Users, roles, secrets, audit log, posts, subscriptions, configuration."""
        from marketdb.services.accounts import Accounts

        return Accounts(self._handle)

    @cached_property
    def providers(self) -> Providers:
        """Vendor adapters (Tiingo, Polygon, Binance, Kraken) and the incremental sync."""
        from marketdb.services.providers import Providers

        return Providers(self._handle, ingest=self.ingest, accounts=self.accounts)

    @cached_property
    def quality(self) -> Quality:
        """Data-quality checks: gaps, duplicates, outliers, vendor vs derived bars, staleness."""
        from marketdb.services.quality import Quality

        return Quality(self._handle)


def connect(
    url: str | None = None,
    *,
    migrate_schema: bool | None = None,
    check_schema: bool = True,
    settings: Settings | None = None,
    **overrides: Any,
) -> MarketDB:
    """Connect to marketdb.

    With ``url`` (or ``DATABASE_URL``) marketdb uses that PostgreSQL server.
    With neither, it starts (or reuses) the embedded server under
    ``MARKETDB_HOME``. ``migrate_schema`` defaults to True for the embedded
    server (zero configuration) and False for your own server, where an
    out-of-date schema raises :class:`ConfigurationError` telling you to run
    ``marketdb db upgrade``. ``check_schema=False`` skips that check (for
    tools that manage migrations themselves, like ``marketdb db upgrade``).

    Keyword ``overrides`` set any :class:`~marketdb.settings.Settings` field,
    e.g. ``connect(home="/data/mdb", redis_url="redis://localhost")``.
    """
    if settings is None:
        settings = Settings.from_env(**({"database_url": url} if url else {}), **overrides)
    elif url or overrides:
        settings = settings.model_copy(update={"database_url": url or settings.database_url, **overrides})
    handle = open_database(settings)
    db = MarketDB(settings, handle.engine, handle.server)
    if migrate_schema is None:
        migrate_schema = db.server is not None
    if check_schema or migrate_schema:
        try:
            _check_schema(db, migrate_schema)
        except BaseException:
            db.close()
            raise
    return db


def _check_schema(db: MarketDB, migrate_schema: bool) -> None:
    for attempt in range(3):
        try:
            current = migrate.current_revision(db.engine)
            break
        except sa.exc.OperationalError as exc:
            if attempt == 2:
                raise Unavailable(
                    f"cannot reach PostgreSQL: {exc.orig}",
                    hint="check DATABASE_URL, or unset it to use the embedded server",
                ) from exc
            time.sleep(0.5)
    head = migrate.head_revision(db.engine, db.settings)
    if current == head:
        return
    if migrate_schema:
        db.upgrade("head")
        return
    raise ConfigurationError(
        f"the database schema is at revision {current or 'none'}, marketdb needs {head}",
        hint="run `marketdb db upgrade` (or connect(..., migrate_schema=True))",
    )
