"""Cursor pagination for lists: opaque cursors, bounded pages."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from marketdb.api.formats import to_jsonable
from marketdb.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor", "page"]


def encode_cursor(state: dict[str, Any]) -> str:
    """An opaque cursor for ``state``."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    """The state inside a cursor ({} for none); :class:`InvalidInput` when it is not ours."""
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid", hint="pass next_cursor from the previous page") from None
    if not isinstance(state, dict):
        raise InvalidInput("cursor is not valid", hint="pass next_cursor from the previous page")
    return state


def page(items: Sequence[Any], cursor: str | None, limit: int) -> dict[str, Any]:
    """One page of an in-memory list: ``{"items": [...], "next_cursor": str | None}``."""
    state = decode_cursor(cursor)
    offset = state.get("o", 0)
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("cursor is not valid", hint="pass next_cursor from the previous page")
    chunk = items[offset : offset + limit]
    more = offset + limit < len(items)
    return {
        "items": to_jsonable(list(chunk)),
        "next_cursor": encode_cursor({"o": offset + limit}) if more else None,
    }
