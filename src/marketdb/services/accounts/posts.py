"""Posts: short texts users share (document 000), listed per user and as a feed.

``posts.username`` is denormalised for cheap feeds; :func:`~.users.rename_user`
keeps it in step in the rename's transaction. Posts go with their user
(``ON DELETE CASCADE``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.accounts.users import UserRef, get_user, resolve_user
from marketdb.store.schema import tables as t

__all__ = ["Post", "create_post", "delete_post", "feed", "get_post", "list_posts"]

ps = t.posts
_MAX_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Post:
    """One post."""

    id: uuid.UUID
    user_id: uuid.UUID
    username: str
    text: str
    strategy_id: str | None
    created_at: dt.datetime


def _post(row: Any) -> Post:
    return Post(row.id, row.user_id, row.username, row.text, row.strategy_id, row.created_at)


def create_post(
    conn: sa.Connection,
    user: UserRef,
    text: str,
    *,
    strategy_id: str | None = None,
    actor: Actor | None = None,
) -> Post:
    """Publish ``text`` as ``user``, optionally linked to a strategy.

    Raises:
        InvalidInput: empty or over-long text, or an unknown strategy id.
        NotFound: no such user.
    """
    author = get_user(conn, user)
    text = v.body_text("post text", text)
    if strategy_id is not None:
        strategy_id = v.name_text("strategy id", strategy_id, max_len=100)
        exists = conn.execute(sa.select(t.strategies.c.id).where(t.strategies.c.id == strategy_id)).first()
        if exists is None:
            raise InvalidInput(f"no strategy {strategy_id!r}", hint="link an existing strategy id, or none")
    row = conn.execute(
        sa.insert(ps)
        .values(user_id=author.id, username=author.username, text=text, strategy_id=strategy_id)
        .returning(ps)
    ).one()
    post = _post(row)
    new = {"user_id": post.user_id, "text": post.text, "strategy_id": post.strategy_id}
    audit_as(conn, actor, "post.create", "post", post.id, None, new)
    return post


def get_post(conn: sa.Connection, post_id: uuid.UUID | str) -> Post:
    """One post by id."""
    pid = v.as_uuid("post id", post_id)
    row = conn.execute(sa.select(ps).where(ps.c.id == pid)).first()
    if row is None:
        raise NotFound(f"no post {pid}", hint="it may have been deleted")
    return _post(row)


def _page(stmt: sa.Select[Any], limit: int, before: dt.datetime | None) -> sa.Select[Any]:
    if not 1 <= limit <= _MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {_MAX_PAGE}, got {limit}", hint="page with `before`")
    if before is not None:
        if before.tzinfo is None:
            raise InvalidInput("before must be timezone-aware", hint="use tzinfo=datetime.UTC")
        stmt = stmt.where(ps.c.created_at < before)
    return stmt.order_by(ps.c.created_at.desc(), ps.c.id.desc()).limit(limit)


def list_posts(
    conn: sa.Connection, user: UserRef, *, limit: int = 50, before: dt.datetime | None = None
) -> list[Post]:
    """The user's posts, newest first; pass ``before`` (a created_at) for the next page."""
    user_id = resolve_user(conn, user)
    stmt = _page(sa.select(ps).where(ps.c.user_id == user_id), limit, before)
    return [_post(r) for r in conn.execute(stmt)]


def feed(conn: sa.Connection, *, limit: int = 50, before: dt.datetime | None = None) -> list[Post]:
    """Everyone's posts, newest first; pass ``before`` for the next page."""
    return [_post(r) for r in conn.execute(_page(sa.select(ps), limit, before))]


def delete_post(conn: sa.Connection, post_id: uuid.UUID | str, *, actor: Actor | None = None) -> None:
    """Delete a post (who may is decided by the interface: the author or an admin)."""
    pid = v.as_uuid("post id", post_id)
    row = conn.execute(sa.delete(ps).where(ps.c.id == pid).returning(ps)).first()
    if row is None:
        raise NotFound(f"no post {pid}", hint="it may have been deleted already")
    post = _post(row)
    old = {"user_id": post.user_id, "text": post.text, "strategy_id": post.strategy_id}
    audit_as(conn, actor, "post.delete", "post", post.id, old, None)
