"""Engines and connections: one place that knows how marketdb reaches PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from marketdb.errors import ConfigurationError, Unavailable
from marketdb.settings import Settings

__all__ = ["create_engine", "libpq_uri", "raw_transaction", "session_options", "sqlalchemy_url"]


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


def session_options(settings: Settings) -> str:
    """The libpq ``options`` every marketdb session starts with: UTC, and the statement timeout."""
    options = "-c timezone=UTC"
    if settings.statement_timeout_ms:
        options += f" -c statement_timeout={int(settings.statement_timeout_ms)}"
    return options


def create_engine(url: str, settings: Settings, **kwargs: Any) -> sa.Engine:
    """A pooled SQLAlchemy engine on psycopg 3; every session runs in UTC."""
    options = session_options(settings)
    engine = sa.create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        # Keep parameters (password hashes, ciphertext, emails) out of logs and exception texts.
        hide_parameters=True,
        pool_size=kwargs.pop("pool_size", 5),
        max_overflow=kwargs.pop("max_overflow", 10),
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
