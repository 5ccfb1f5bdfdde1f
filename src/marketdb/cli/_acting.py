"""Who the trading and accounts commands act as: a configured user, or the system actor.

``--as USER`` on a command group (``marketdb orders --as alice submit ...``) or
``MARKETDB_USER=alice`` makes the command act for that marketdb user: the
services check the user's permissions and activity in the same transaction as
the change, and audit rows name the user. Without either, the command acts as
the *system actor* (the operator ``cli:<os user>``, no permission checks,
since whoever runs the CLI already holds the database credentials). Each
command says which on stderr.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from marketdb.cli._common import err_console

__all__ = ["AsOpt", "acting_user", "announce", "operator_name", "set_acting_user", "use_as_option"]

AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        envvar="MARKETDB_USER",
        help="Act as this marketdb user (permission-checked); default: the system actor.",
    ),
]

_acting: dict[str, str | None] = {"user": None}


def set_acting_user(user: str | None) -> None:
    """Remember the user the next command acts as (None: the system actor)."""
    _acting["user"] = user or None


def acting_user() -> str | None:
    """The user given with ``--as``/``MARKETDB_USER``, or None for the system actor."""
    return _acting["user"]


def operator_name() -> str:
    """``cli:<os user>``: the system actor's name in the audit log."""
    try:
        who = getpass.getuser()
    except Exception:  # no login name in some containers
        who = "unknown"
    return f"cli:{who}"


def announce(user: str | None) -> None:
    """Say on stderr who the command acts as."""
    if user is None:
        err_console.print(
            f"[dim]acting as the system actor ({operator_name()}); use --as USER to act as a user[/dim]"
        )
    else:
        err_console.print(f"[dim]acting as user {user}[/dim]")


def _callback(as_user: AsOpt = None) -> None:
    set_acting_user(as_user)


def use_as_option(*apps: typer.Typer) -> None:
    """Give each command group the ``--as USER`` option."""
    for app in apps:
        app.callback()(_callback)
