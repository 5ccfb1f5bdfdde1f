"""The PostgreSQL server a benchmark creates its databases on (shared by bench/*.py).

With no URL, a scratch embedded server in a temporary ``MARKETDB_HOME`` that
``close()`` stops and removes; with a URL, that server (it needs CREATEDB).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from marketdb.store.db import libpq_uri
from marketdb.store.embedded import EmbeddedServer

_ADMIN_DB = "postgres"


class BenchServer:
    """Create, drop and name databases on the benchmark's PostgreSQL server."""

    def __init__(self, url: str | None, prefix: str = "marketdb-bench-") -> None:
        self.home = Path(tempfile.mkdtemp(prefix=prefix))
        self.home.chmod(0o711)  # as root the server runs as user 'marketdb', which must traverse it
        self.embedded: EmbeddedServer | None = None
        if url is None:
            self.embedded = EmbeddedServer(self.home)
            self.base = self.embedded.ensure_running().libpq_uri()
        else:
            self.base = libpq_uri(url)

    def url_for(self, name: str) -> str:
        """The libpq URL of database ``name`` on this server."""
        return make_url(self.base).set(database=name).render_as_string(hide_password=False)

    def create_database(self, name: str, template: str | None = None) -> str:
        """(Re)create database ``name``, optionally as a copy of ``template``; returns its URL."""
        self.drop(name)
        with psycopg.connect(self.url_for(_ADMIN_DB), autocommit=True) as c:
            if template:
                c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)))
            else:
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop(self, name: str) -> None:
        """Drop database ``name`` if it exists (disconnecting its sessions)."""
        with psycopg.connect(self.url_for(_ADMIN_DB), autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        """Stop a scratch embedded server and remove its files."""
        if self.embedded is not None:
            self.embedded.stop(mode="fast")
        shutil.rmtree(self.home, ignore_errors=True)
