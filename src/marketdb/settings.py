"""Typed settings, built once (``Settings.from_env()``) and passed in explicitly.

Nothing reads the environment at import time. Every field can be given as a
keyword to :func:`marketdb.connect` or through the environment variable named
in its description.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_BAR_INTERVALS", "Settings"]

#: Bar intervals kept up to date at ingest time unless configured otherwise.
DEFAULT_BAR_INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "1h", "1d")


def _default_home() -> Path:
    home = Path(platformdirs.user_data_dir("marketdb", appauthor=False))
    # As root the embedded server runs as the system user 'marketdb', which cannot
    # enter root's 0700 home directory, and marketdb never loosens directories it
    # did not create: new installations use /var/lib/marketdb instead.
    if os.name == "posix" and os.geteuid() == 0 and not home.exists():
        return Path("/var/lib/marketdb")
    return home


class Settings(BaseSettings):
    """Configuration of one marketdb client.

    Environment variables (all optional):

    ``DATABASE_URL``      PostgreSQL to use; unset means the embedded server.
    ``MARKETDB_HOME``     where the embedded server keeps its data (per user).
    ``REDIS_URL``         Redis for caching; unset or unreachable means no cache.
    ``CLICKHOUSE_URL``    ClickHouse analytics tier; ``chdb:PATH`` for in-process.
    ``MARKETDB_TIMESCALEDB`` ``auto`` (use it when installed), ``on`` or ``off``.
    ``MARKETDB_MASTER_KEYS`` ``id1:base64key,id2:base64key`` master keys for secrets.
    ``MARKETDB_MASTER_KEY_FILE`` a file with one ``id:base64key`` per line.
    ``MARKETDB_PRIMARY_KEY_ID`` which master key seals new secrets.
    """

    model_config = SettingsConfigDict(env_prefix="MARKETDB_", extra="ignore", frozen=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    home: Path = Field(default_factory=_default_home)
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    clickhouse_url: str | None = Field(default=None, validation_alias="CLICKHOUSE_URL")
    timescaledb: Literal["auto", "on", "off"] = "auto"
    master_keys: SecretStr | None = None
    master_key_file: Path | None = None
    #: Accept a master key file that group or others can access (refused by default).
    allow_shared_key_file: bool = False
    primary_key_id: str | None = None
    bar_intervals: tuple[str, ...] = DEFAULT_BAR_INTERVALS
    #: Daily bars over the regular session only, or the extended (local-day) session.
    bar_session: Literal["regular", "extended"] = "regular"
    #: Order in which bar sources are preferred when a read names none (None: 'trades' first).
    bar_source_preference: tuple[str, ...] | None = None
    #: Dividend adjustment convention of adjusted reads: ``"crsp"`` (``1 - D/P_prev``) or
    #: ``"vendor"`` (``P_prev/(P_prev + D)``, Tiingo and Quandl); ``MARKETDB_DIVIDEND_CONVENTION``.
    dividend_convention: Literal["crsp", "vendor"] = "crsp"
    #: In-process cache of reads keyed by the instrument's data version; 0 disables it.
    query_cache_mb: float = 0
    statement_timeout_ms: int = 0
    #: Connections the pool keeps open, and the most it opens under load
    #: (``marketdb.connect(pool_min_size=5, pool_max_size=20)``).
    pool_min_size: int = 5
    pool_max_size: int = 15
    application_name: str = "marketdb"

    @field_validator("database_url", "redis_url", "clickhouse_url", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v in ("", None) else v

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            from marketdb.errors import ConfigurationError

            raise ConfigurationError(
                "DATABASE_URL must be a PostgreSQL URL",
                hint="use postgresql://user:password@host:5432/dbname, or unset it for the embedded server",
            )
        return v

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from the environment, with explicit keyword overrides winning."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "MARKETDB_HOME" in os.environ and "home" not in clean:
            clean["home"] = Path(os.environ["MARKETDB_HOME"]).expanduser()
        return cls(**clean)  # type: ignore[arg-type]

    @property
    def embedded(self) -> bool:
        """True when no DATABASE_URL is set and the embedded server is used."""
        return self.database_url is None
