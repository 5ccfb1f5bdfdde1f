"""Engines and connections: one place that knows how marketdb reaches PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from marketdb.errors import ConfigurationError, MarketdbError, Unavailable
from marketdb.settings import Settings

__all__ = [
    "create_engine",
    "explain_driver_error",
    "libpq_uri",
    "raw_transaction",
    "session_options",
    "sqlalchemy_url",
]


def sqlalchemy_url(url: str) -> str:
    """Normalise a PostgreSQL URL to SQLAlchemy's psycopg 3 dialect."""
    u = make_url(url.replace("postgres://", "postgresql://", 1))
    if u.get_backend_name() != "postgresql":
        raise ConfigurationError(f"not a PostgreSQL URL: {u.render_as_string(hide_password=True)}")
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_uri(url: str) -> str:
    """The same URL as libpq (psql, ADBC, pg_dump) expects it."""
    u = make_url(sqlalchemy_url(url))
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def explain_driver_error(exc: BaseException) -> MarketdbError | None:
    """A marketdb error for a database-driver exception (None when ``exc`` is not one).

    The driver's text is kept (first line) and a hint says what to do: the server
    is unreachable, its disk is full, or it rejected a statement.
    """
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    if not isinstance(orig, psycopg.Error) and not isinstance(exc, sa.exc.SQLAlchemyError):
        return None
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if isinstance(orig, psycopg.errors.DiskFull):
        return Unavailable(
            f"the database server's disk is full: {text}",
            hint="free space on the volume holding the server's data directory (for the embedded "
            "server: MARKETDB_HOME/pgdata), or drop old data with retention policies, then retry; "
            "the failed statement was rolled back",
        )
    if isinstance(orig, psycopg.OperationalError | sa.exc.OperationalError | sa.exc.InterfaceError):
        return Unavailable(
            f"cannot reach PostgreSQL: {text}",
            hint="check DATABASE_URL (or --url) and that the server runs; unset DATABASE_URL to use "
            "the embedded server",
        )
    return MarketdbError(
        f"the database rejected the request: {text}",
        hint="nothing was committed by the failed statement; re-run with --debug for details",
    )


def session_options(settings: Settings) -> str:
    """The libpq ``options`` every marketdb session starts with: UTC, and the statement timeout."""
    options = "-c timezone=UTC"
    if settings.statement_timeout_ms:
        options += f" -c statement_timeout={int(settings.statement_timeout_ms)}"
    return options


def create_engine(url: str, settings: Settings, **kwargs: Any) -> sa.Engine:
    """A pooled SQLAlchemy engine on psycopg 3; every session runs in UTC."""
    low, high = settings.pool_min_size, settings.pool_max_size
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 10_000):
        raise ConfigurationError(
            "pool sizes must satisfy 1 <= pool_min_size <= pool_max_size <= 10000, "
            f"got min {low}, max {high}",
            hint="e.g. marketdb.connect(pool_min_size=5, pool_max_size=20) or MARKETDB_POOL_MAX_SIZE=20",
        )
    options = session_options(settings)
    engine = sa.create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        # Keep parameters (password hashes, ciphertext, emails) out of logs and exception texts.
        hide_parameters=True,
        pool_size=kwargs.pop("pool_size", low),
        max_overflow=kwargs.pop("max_overflow", high - low),
        connect_args={"options": options, "application_name": settings.application_name},
        **kwargs,
    )
    return engine


@contextmanager
def raw_transaction(engine: sa.Engine) -> Iterator[psycopg.Connection[Any]]:
    """A pooled psycopg connection inside a transaction: commit on exit, roll back on error."""
    try:
        sac = engine.connect()
    except sa.exc.OperationalError as exc:
        raise Unavailable(
            f"cannot reach PostgreSQL: {exc.orig}", hint="check DATABASE_URL and that the server runs"
        ) from exc
    with sac:
        raw = sac.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        try:
            yield raw
        except BaseException:
            # If the connection broke, rolling back fails too; keep the original error.
            if not raw.closed:
                raw.rollback()
            raise
        else:
            raw.commit()
