"""The narrow handle services receive: :class:`Database`.

A service needs settings, transactions (SQLAlchemy for composed SQL, psycopg
for COPY), Arrow reads and the server's URL -- never the other services.
:class:`Database` is exactly that; :class:`marketdb.MarketDB` is a
``Database`` plus the services, wired in one place (``marketdb.client``).
Services are typed against ``Database`` and the collaborator protocols they
use, so none of them can reach another through the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
import sqlalchemy as sa

from marketdb.settings import Settings
from marketdb.store.db import create_engine, libpq_uri, raw_transaction, session_options
from marketdb.store.embedded import EmbeddedServer, ServerInfo
from marketdb.store.errors import translate

__all__ = ["Database", "open_database"]


class Database:
    """Settings, one engine, transactions, COPY and Arrow reads of one marketdb database.

    ``transaction()`` (SQLAlchemy) and ``raw()`` (psycopg, for COPY) share the
    engine's pool and its session options (UTC, ``statement_timeout``,
    ``application_name``); so does :meth:`arrow_connect` and :attr:`arrow_url`
    for ADBC reads. Connection failures become :class:`~marketdb.errors.Unavailable`
    in both; ``transaction(translate_errors=True)`` also turns constraint and
    bad-value errors into marketdb errors by SQLSTATE (see :mod:`marketdb.store.errors`).
    """

    def __init__(self, settings: Settings, engine: sa.Engine, server: ServerInfo | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.server = server

    @property
    def url(self) -> str:
        """The database URL in libpq form (for psql, pg_dump). Contains the password if any."""
        return libpq_uri(self.engine.url.render_as_string(hide_password=False))

    @property
    def arrow_url(self) -> str:
        """:attr:`url` with the engine's session options, for drivers that connect on their own (ADBC).

        Reads through it run in UTC and under ``Settings.statement_timeout_ms``,
        like every other session of this database.
        """
        options = quote(session_options(self.settings), safe="")
        app = quote(self.settings.application_name, safe="")
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options={options}&application_name={app}"

    @contextmanager
    def transaction(self, *, translate_errors: bool = False) -> Iterator[sa.Connection]:
        """A SQLAlchemy connection inside a transaction (commit on exit, rollback on error).

        A lost or refused connection raises :class:`~marketdb.errors.Unavailable`.
        ``translate_errors`` also maps constraint violations and bad values
        escaping the block to :class:`~marketdb.errors.InvalidInput`,
        :class:`~marketdb.errors.Conflict` or :class:`~marketdb.errors.NotFound`
        by SQLSTATE; without it they escape as SQLAlchemy errors.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise _unavailable(exc) from exc
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            mapped = translate(exc) if translate_errors else None
            if mapped is None:
                raise
            raise mapped from exc

    @contextmanager
    def raw(self) -> Iterator[psycopg.Connection[Any]]:
        """A psycopg connection inside a transaction, for COPY and hand-written SQL."""
        with raw_transaction(self.engine) as conn:
            yield conn

    def arrow_driver(self) -> Any:
        """The ADBC PostgreSQL DB-API module (:class:`~marketdb.errors.ConfigurationError` if missing)."""
        from marketdb.errors import ConfigurationError

        try:
            import adbc_driver_postgresql.dbapi as adbc
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ConfigurationError(
                "the ADBC PostgreSQL driver is not installed",
                hint="pip install adbc-driver-postgresql, or read with transport='copy'",
            ) from exc
        return adbc

    def arrow_connect(self, *, autocommit: bool = True) -> Any:
        """A new ADBC PostgreSQL connection with this database's session options.

        Raises :class:`~marketdb.errors.ConfigurationError` when the driver is
        missing and :class:`~marketdb.errors.Unavailable` when the server
        cannot be reached. The caller closes it.
        """
        from marketdb.errors import Unavailable

        adbc = self.arrow_driver()
        try:
            return adbc.connect(self.arrow_url, autocommit=autocommit)
        except Exception as exc:
            raise Unavailable(
                f"ADBC cannot connect to PostgreSQL: {exc}",
                hint="check that the server runs; or read with transport='copy'",
            ) from exc

    def close(self) -> None:
        """Return pooled connections (the embedded server keeps running)."""
        self.engine.dispose()

    def handle(self) -> Database:
        """This database as a plain :class:`Database` (what services are given)."""
        return Database(self.settings, self.engine, self.server)


def _unavailable(exc: sa.exc.OperationalError) -> Exception:
    from marketdb.errors import Unavailable

    return Unavailable(f"database error: {exc.orig}", hint="is the server running?")


def open_database(settings: Settings) -> Database:
    """A :class:`Database` on ``settings.database_url``, or on the embedded server (started if needed).

    No schema check: :func:`marketdb.connect` adds that (and the services).
    """
    server: ServerInfo | None = None
    if settings.database_url:
        db_url = settings.database_url
    else:
        server = EmbeddedServer(settings.home).ensure_running()
        db_url = server.url
    return Database(settings, create_engine(db_url, settings), server)
