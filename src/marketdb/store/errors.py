"""Database errors -> marketdb errors, by SQLSTATE: the one translation every layer uses.

PostgreSQL names every error with a five-character SQLSTATE; its first two
characters are the class (``23`` integrity, ``22`` data, ``08`` connection ...).
:func:`translate` reads it from a psycopg error, a SQLAlchemy ``DBAPIError``
wrapping one, or an ADBC error (all three carry ``sqlstate``), so no caller
matches on message text.
"""

from __future__ import annotations

from typing import Final

from marketdb.errors import Conflict, InvalidInput, MarketdbError, NotFound, Unavailable

__all__ = ["CONNECTION_STATES", "sqlstate", "translate"]

#: Server gone, shutting down or refusing: retry later.
CONNECTION_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300"})
_INVALID: Final = frozenset({"23502", "23514", "22003", "22P02", "22023", "22007", "22008", "22001"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of ``exc`` (or of the driver error it wraps), if it has one."""
    for candidate in (exc, getattr(exc, "orig", None)):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return None


def _where(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    table = getattr(diag, "table_name", None)
    return f" ({table}.{constraint})" if table and constraint else ""


def translate(exc: BaseException, *, connection_only: bool = False) -> MarketdbError | None:
    """The marketdb error for a database error, or None when it has no translation.

    Class ``08`` and server shutdown -> :class:`Unavailable`; with
    ``connection_only`` that is all. Otherwise a check, not-null or bad value
    -> :class:`InvalidInput`, a unique violation -> :class:`Conflict`, a
    missing referenced row -> :class:`NotFound`. The message keeps the
    server's text (never parameters: engines hide them).
    """
    state = sqlstate(exc)
    orig = getattr(exc, "orig", None) or exc
    if state is None:
        return None
    if state.startswith("08") or state in CONNECTION_STATES:
        return Unavailable(f"database unavailable: {orig}", hint="is the server running? retry later")
    if connection_only:
        return None
    where = _where(exc)
    if state == "23505":
        return Conflict(f"duplicate{where}: {orig}")
    if state == "23503":
        return NotFound(f"a referenced row does not exist{where}: {orig}")
    if state == "23514":
        return InvalidInput(f"value rejected by a database check{where}: {orig}")
    if state in _INVALID:
        return InvalidInput(f"invalid value{where}: {orig}")
    return None
