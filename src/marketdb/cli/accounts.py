"""`marketdb users|secrets|keys|posts ...`: accounts and security from the shell.

Passwords are always prompted with hidden input (or read from stdin with
``--password-stdin`` for scripts), never taken as arguments, which would land
in shell history and ``ps``. Secret values are read from a hidden prompt or
from stdin. The CLI acts as the system actor ``cli:<os user>`` (no permission
checks), or with ``--as USER`` / ``MARKETDB_USER`` as that marketdb user, whose
permissions the services check; each command says which on stderr.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marketdb.cli._acting import acting_user, announce, operator_name, use_as_option
from marketdb.cli._common import connect_db, console, err_console, print_table
from marketdb.errors import InvalidInput

if TYPE_CHECKING:
    from marketdb.services.accounts import Accounts, Actor

__all__ = ["keys_app", "posts_app", "secrets_app", "users_app"]

users_app = typer.Typer(
    help="User accounts: create, list, roles, deactivate, passwords.", no_args_is_help=True
)
secrets_app = typer.Typer(
    help="A user's encrypted secrets (API keys, tokens). Values are never printed.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Master keys that seal secrets: generate, status, rotate.", no_args_is_help=True)
posts_app = typer.Typer(help="Users' posts: create, list, delete.", no_args_is_help=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts)."),
]


use_as_option(users_app, secrets_app, keys_app, posts_app)

_current: dict[str, Actor | None] = {"actor": None}


def _actor() -> Actor:
    """The actor of the running command: the ``--as`` user, or the system actor ``cli:<os user>``."""
    from marketdb import __version__
    from marketdb.services.accounts import Actor

    found = _current["actor"]
    if found is not None:
        return found
    return Actor(name=operator_name(), user_agent=f"marketdb-cli/{__version__}")


class _Session:
    """One CLI command's database connection and accounts service (acting as ``--as`` or system)."""

    def __init__(self, url: str | None) -> None:
        from marketdb import __version__

        self.db = connect_db(url)
        _current["actor"] = None
        user = acting_user()
        try:
            if user is None:
                self.accounts: Accounts = self.db.accounts
            else:
                self.accounts = self.db.accounts.as_user(user, user_agent=f"marketdb-cli/{__version__}")
                _current["actor"] = self.accounts.actor
        except BaseException:
            self.db.close()
            raise
        announce(user)

    def __enter__(self) -> Accounts:
        return self.accounts

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _read_password(from_stdin: bool, *, confirm: bool = True) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise InvalidInput("no password on stdin", hint="pipe the password as the first line of stdin")
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


def _read_secret(from_stdin: bool | None) -> str:
    use_stdin = from_stdin if from_stdin is not None else not sys.stdin.isatty()
    if use_stdin:
        value = sys.stdin.read()
        # One trailing newline comes from `echo` or a file; it is not part of the secret.
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
        if not value:
            raise InvalidInput("no secret on stdin", hint="pipe the secret value into the command")
        return value
    return str(typer.prompt("Secret value", hide_input=True))


# ----------------------------------------------------------------------- users


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Login name (unique, case-insensitive).")],
    email: Annotated[str, typer.Option("--email", "-e", help="Email (unique, case-insensitive).")],
    role: Annotated[str, typer.Option("--role", "-r", help="admin, trader, viewer, ...")] = "viewer",
    password_stdin: PasswordStdin = False,
    url: UrlOpt = None,
) -> None:
    """Create a user; the password is prompted (hidden, typed twice)."""
    from marketdb.services.accounts.passwords import validate_password

    password = _read_password(password_stdin)
    validate_password(password, context=(username, email))
    with _Session(url) as acc:
        user = acc.create_user(username, email, password, role=role, actor=_actor())
    console.print(f"created user [bold]{user.username}[/bold] ({user.role}) id {user.id}")


@users_app.command("list")
def users_list(
    active_only: Annotated[bool, typer.Option("--active", help="Only active users.")] = False,
    fmt: FormatOpt = "table",
    url: UrlOpt = None,
) -> None:
    """List users (never their password hashes)."""
    with _Session(url) as acc:
        users = acc.list_users(include_inactive=not active_only)
    rows = [
        {
            "username": u.username,
            "email": u.email,
            "role": u.role,
            "active": u.is_active,
            "last_login": u.last_login.isoformat(timespec="seconds") if u.last_login else None,
            "id": str(u.id),
        }
        for u in users
    ]
    print_table(rows, title="users", fmt=fmt)


@users_app.command("set-role")
def users_set_role(
    username: Annotated[str, typer.Argument(help="Username or id.")],
    role: Annotated[str, typer.Argument(help="The new role.")],
    url: UrlOpt = None,
) -> None:
    """Give a user another role."""
    with _Session(url) as acc:
        user = acc.set_role(username, role, actor=_actor())
    console.print(f"{user.username} is now [bold]{user.role}[/bold]")


@users_app.command("deactivate")
def users_deactivate(
    username: Annotated[str, typer.Argument(help="Username or id.")], url: UrlOpt = None
) -> None:
    """Deactivate a user: no logins, no permissions; data is kept."""
    with _Session(url) as acc:
        user = acc.deactivate(username, actor=_actor())
    console.print(f"{user.username} is deactivated")


@users_app.command("activate")
def users_activate(
    username: Annotated[str, typer.Argument(help="Username or id.")], url: UrlOpt = None
) -> None:
    """Reactivate a deactivated user."""
    with _Session(url) as acc:
        user = acc.activate(username, actor=_actor())
    console.print(f"{user.username} is active")


@users_app.command("passwd")
def users_passwd(
    username: Annotated[str, typer.Argument(help="Username or id.")],
    password_stdin: PasswordStdin = False,
    url: UrlOpt = None,
) -> None:
    """Set a user's password; the new password is prompted (hidden, typed twice)."""
    password = _read_password(password_stdin)
    with _Session(url) as acc:
        acc.change_password(username, password, actor=_actor())
    console.print(f"password changed for {username}")


@users_app.command("delete")
def users_delete(
    username: Annotated[str, typer.Argument(help="Username or id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: UrlOpt = None,
) -> None:
    """Delete a user with their posts, secrets, broker credentials and subscriptions."""
    if not yes:
        typer.confirm(f"Delete user {username!r} with their posts and secrets?", abort=True)
    with _Session(url) as acc:
        removed = acc.delete_user(username, actor=_actor())
    console.print(
        f"deleted {username}: {removed['posts']} posts, {removed['user_secrets']} secrets, "
        f"{removed['broker_credentials']} broker credentials, "
        f"{removed['subscriptions']} subscriptions"
    )


@users_app.command("roles")
def users_roles(fmt: FormatOpt = "table", url: UrlOpt = None) -> None:
    """List roles and what each may do ('*' matches anything)."""
    with _Session(url) as acc:
        perms = acc.list_permissions()
    rows = [{"role": p.role, "resource": p.resource, "action": p.action} for p in perms]
    print_table(rows, title="permissions", fmt=fmt)


# --------------------------------------------------------------------- secrets


@secrets_app.command("set")
def secrets_set(
    username: Annotated[str, typer.Argument(help="Owner: username or id.")],
    key_name: Annotated[str, typer.Argument(help="Name of the secret, e.g. tiingo_api_key.")],
    stdin: Annotated[
        bool | None,
        typer.Option(
            "--stdin/--prompt",
            help="Read the value from stdin or a hidden prompt (default: stdin when piped).",
        ),
    ] = None,
    url: UrlOpt = None,
) -> None:
    """Store a secret for a user, sealed with the primary master key."""
    value = _read_secret(stdin)
    with _Session(url) as acc:
        info = acc.set_secret(username, key_name, value, actor=_actor())
    console.print(f"stored secret {info.key_name!r} for {username} (master key {info.encryption_key_id})")


@secrets_app.command("list")
def secrets_list(
    username: Annotated[str, typer.Argument(help="Owner: username or id.")],
    fmt: FormatOpt = "table",
    url: UrlOpt = None,
) -> None:
    """List a user's secret names and master key ids (never the values)."""
    with _Session(url) as acc:
        infos = acc.list_secrets(username)
    rows = [
        {
            "key_name": s.key_name,
            "master_key": s.encryption_key_id,
            "updated_at": s.updated_at.isoformat(timespec="seconds"),
        }
        for s in infos
    ]
    print_table(rows, title=f"secrets of {username}", fmt=fmt)


@secrets_app.command("delete")
def secrets_delete(
    username: Annotated[str, typer.Argument(help="Owner: username or id.")],
    key_name: Annotated[str, typer.Argument(help="Name of the secret.")],
    url: UrlOpt = None,
) -> None:
    """Delete one of a user's secrets."""
    with _Session(url) as acc:
        acc.delete_secret(username, key_name, actor=_actor())
    console.print(f"deleted secret {key_name!r} of {username}")


# ------------------------------------------------------------------------ keys


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[str | None, typer.Option("--id", help="Key id (default: k<YYYYMMDD>).")] = None,
) -> None:
    """Print a new random 256-bit master key as 'id:base64' (store it; it is not saved)."""
    from marketdb.services.accounts.crypto import KEY_ID_PATTERN, generate_master_key

    kid = key_id or "k" + dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    if not KEY_ID_PATTERN.fullmatch(kid):
        raise InvalidInput(
            f"invalid key id {kid!r}",
            hint="use 1-50 characters of letters, digits, '.', '_' or '-'",
        )
    sys.stdout.write(f"{kid}:{generate_master_key()}\n")
    err_console.print(
        "[yellow]This is a secret.[/yellow] Add the line to the file named by "
        "MARKETDB_MASTER_KEY_FILE (chmod 600) or to MARKETDB_MASTER_KEYS, keep a backup "
        f"outside the database, then set MARKETDB_PRIMARY_KEY_ID={kid} and run "
        "`marketdb keys rotate` to re-wrap existing secrets."
    )


@keys_app.command("status")
def keys_status(fmt: FormatOpt = "table", url: UrlOpt = None) -> None:
    """Show configured and used master keys, the primary one, and rows per key."""
    with _Session(url) as acc:
        status = acc.key_status()
    rows: list[dict[str, Any]] = [
        {
            "key_id": s.key_id,
            "configured": s.configured,
            "primary": s.primary,
            "fingerprint": s.fingerprint or "",
            "user_secrets": s.user_secrets,
            "broker_credentials": s.broker_credentials,
        }
        for s in status
    ]
    print_table(rows, title="master keys", fmt=fmt)
    missing = [s.key_id for s in status if not s.configured and (s.user_secrets or s.broker_credentials)]
    if missing:
        err_console.print(
            f"[red]rows are sealed with keys that are not configured: {', '.join(missing)}[/red]"
        )
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate(
    to: Annotated[str | None, typer.Option("--to", help="Target key id (default: the primary key).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per transaction.")] = 100,
    url: UrlOpt = None,
) -> None:
    """Re-wrap every secret's data key under the primary (or --to) master key, online."""
    with _Session(url) as acc:
        report = acc.rotate(to, batch_size=batch_size, actor=_actor())
    console.print(
        f"rotated to [bold]{report.to_key_id}[/bold]: "
        f"{report.rewrapped['user_secrets']} user secrets, "
        f"{report.rewrapped['broker_credentials']} broker credentials re-wrapped"
    )
    for failure in report.failed:
        err_console.print(f"[red]failed[/red] {failure['table']} {failure['id']}: {failure['error']}")
    left = sum(report.remaining.values())
    if left:
        err_console.print(
            f"[red]{left} row(s) still use other keys[/red]; fix the failures above and run again"
        )
    if not report.complete:
        raise typer.Exit(1)
    console.print("every secret now uses this key; older keys can be retired")


# ----------------------------------------------------------------------- posts


@posts_app.command("create")
def posts_create(
    username: Annotated[str, typer.Argument(help="Author: username or id.")],
    text: Annotated[str | None, typer.Argument(help="Text (default: read stdin).")] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", help="Linked strategy id.")] = None,
    url: UrlOpt = None,
) -> None:
    """Publish a post as a user."""
    body = text if text is not None else sys.stdin.read()
    with _Session(url) as acc:
        post = acc.create_post(username, body, strategy_id=strategy, actor=_actor())
    console.print(f"posted {post.id}")


@posts_app.command("list")
def posts_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's posts.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    fmt: FormatOpt = "table",
    url: UrlOpt = None,
) -> None:
    """Show the newest posts (of everyone, or of one user)."""
    with _Session(url) as acc:
        posts = acc.list_posts(user, limit=limit) if user else acc.feed(limit=limit)
    rows = [
        {
            "created_at": p.created_at.isoformat(timespec="seconds"),
            "username": p.username,
            "text": p.text,
            "strategy": p.strategy_id,
            "id": str(p.id),
        }
        for p in posts
    ]
    print_table(rows, title="posts", fmt=fmt)


@posts_app.command("delete")
def posts_delete(post_id: Annotated[str, typer.Argument(help="Post id.")], url: UrlOpt = None) -> None:
    """Delete a post."""
    with _Session(url) as acc:
        acc.delete_post(post_id, actor=_actor())
    console.print(f"deleted post {post_id}")
