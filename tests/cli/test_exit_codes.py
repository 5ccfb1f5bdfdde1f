"""Issue 10 item 3 / issue 15 item 1: one error boundary, honest exit codes.

Everything here goes through ``marketdb.cli._run``, the code behind the
``marketdb`` script's ``main()`` (not Typer's test runner, which exits
differently), so a dropped exit code shows up.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import typer

import marketdb
from marketdb.cli import EXIT_CODES, _run, app
from marketdb.store.schema import tables as t

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nowhere"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("MARKETDB_HOME", str(tmp_path / "home"))
    for var in ("REDIS_URL", "CLICKHOUSE_URL", "MARKETDB_MASTER_KEY_FILE", "MARKETDB_PRIMARY_KEY_ID"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, stdin: str = "") -> Result:
        import io
        import sys

        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = _run(list(args), False)
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


def _leaves() -> Iterator[tuple[str, ...]]:
    def walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path

    yield from walk(typer.main.get_command(app), ())


def _args(path: tuple[str, ...], tmp: Path) -> list[str]:
    """The command with dummy values for its required parameters."""
    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    csv = tmp / "in.csv"
    csv.write_text("symbol,timestamp,price,size\nA,2024-01-02T00:00:00Z,1,1\n")
    values = {
        "paths": str(csv),
        "file": str(tmp / "new.dump"),
        "start": "2024-01-01",
        "quantity": "1",
        "price": "1",
        "side": "buy",
        "email": "a@example.com",
        "reason": "x",
        "database": "restored",
        "output": str(tmp / "chart.png"),
    }
    args = list(path)
    for p in cmd.params:
        if p.required:
            value = values.get(p.name, "X")
            args += [p.opts[0], value] if p.param_type_name == "option" else [value]
    flags = {p.opts[0] for p in cmd.params if p.param_type_name == "option"}
    args += [f for f in ("--yes", "--password-stdin") if f in flags]
    return args


#: Commands that do not need the database, or stop before it: their code and the reason.
NOT_UNAVAILABLE = {
    ("db", "stop"): 0,  # only the embedded server: nothing to stop
    ("keys", "generate"): 0,  # prints a new key, no database
    ("doctor",): 1,  # reports the unreachable server as a problem
    ("restore",): 3,  # no such archive file
    ("clickhouse", "ddl"): 0,  # prints the DDL it would run; no database
    ("ingest", "book-deltas"): 2,  # reads and checks its input (a CSV here, not a feed) before connecting
}


@pytest.mark.parametrize("path", list(_leaves()), ids=" ".join)
def test_every_command_with_an_unreachable_database(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: tuple[str, ...]
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    res = cli(*_args(path, tmp_path), stdin="Secret-Pass-1234\n")
    expected = NOT_UNAVAILABLE.get(path, 6)
    assert res.code == expected, (res.out, res.err)
    assert "Traceback" not in res.err
    if expected == 6:
        assert res.err.startswith("error: cannot reach PostgreSQL"), res.err
        assert "hint:" in res.err
        assert len(res.err.splitlines()) <= 6, res.err
    assert res.code in EXIT_CODES


def test_debug_adds_the_traceback(cli: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    code = _run(["--debug", "db", "status"], True)
    err = capsys.readouterr().err
    assert code == 6
    assert "Traceback" in err
    assert "error: cannot reach PostgreSQL" in err


def test_read_only_commands_refuse_to_create_a_database(cli: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args in (
        ["db", "status"],
        ["db", "check"],
        ["bars", "show", "AAPL"],
        ["latest", "AAPL"],
        ["backup", str(tmp_path / "b.dump")],
        ["maintain"],
        ["policies", "list"],
    ):
        res = cli(*args)
        assert res.code == 5, (args, res.err)
        assert f"nomarketdbdatabaseexistsatMARKETDB_HOME={home}" in "".join(res.err.split())
        assert "marketdb db upgrade" in res.err
    doctor = cli("doctor")
    assert doctor.code == 1
    assert "no marketdb database exists" in " ".join(doctor.out.split())
    assert str(home) in "".join(doctor.out.split())
    assert not home.exists() or not (home / "pgdata").exists()


# -------------------------------------------------- failing situations
def test_db_check_with_drift_exits_1(cli: Any, db_url: str) -> None:
    assert cli("db", "check", "--url", db_url).code == 0
    db = marketdb.connect(db_url)
    with db.transaction() as conn:
        conn.execute(sa.text("ALTER TABLE strategies ADD COLUMN not_in_the_model int"))
    db.close()
    res = cli("db", "check", "--url", db_url)
    assert res.code == 1
    assert "not_in_the_model" in res.out


def test_application_tables_are_not_marketdb_drift(cli: Any, db_url: str) -> None:
    db = marketdb.connect(db_url)
    with db.transaction() as conn:
        conn.execute(sa.text("CREATE TABLE app_notes (id int PRIMARY KEY, body text)"))
    db.close()
    assert cli("db", "check", "--url", db_url).code == 0


def test_doctor_with_a_problem_exits_1(cli: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    res = cli("doctor", "--url", db_url)
    assert res.code == 1
    assert "problem" in res.out


def test_bars_verify_with_differences_exits_1(cli: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli("bars", "verify").code == 0
    db = marketdb.connect(db_url)
    with db.transaction() as conn:
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="VRFY", asset_class="stock").returning(t.instruments.c.id)
        ).scalar_one()
    trades = pd.DataFrame(
        {
            "symbol": ["VRFY"] * 3,
            "ts": pd.to_datetime(["2024-03-15 14:31", "2024-03-15 14:32", "2024-03-15 14:33"], utc=True),
            "price": [10.0, 11.0, 10.5],
            "size": [100.0, 50.0, 25.0],
        }
    )
    db.ingest.write_ticks(trades)
    assert cli("bars", "verify").code == 0
    with db.raw() as raw:  # a stored bar that no longer matches its trades
        raw.execute("UPDATE candles SET high = high + 1 WHERE instrument_id = %s AND interval = '1h'", [iid])
    db.close()
    res = cli("bars", "verify")
    assert res.code == 1, res.err
    assert "1 difference" in res.out, res.out
    assert cli("bars", "verify", "--repair").code == 0


def test_maintain_with_a_failed_step_exits_1(cli: Any, db_url: str) -> None:
    db = marketdb.connect(db_url)
    with db.transaction() as conn:  # a policy whose table was dropped behind marketdb's back
        conn.execute(sa.text("CREATE TABLE app_log (at timestamptz)"))
        conn.execute(
            sa.insert(t.retention_policies).values(table_name="app_log", time_column="at", retain_for="1 day")
        )
        conn.execute(sa.text("DROP TABLE app_log"))
    db.close()
    res = cli("maintain", "--url", db_url)
    assert res.code == 1, (res.out, res.err)


def test_keys_status_and_rotate_failures_exit_1(
    cli: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    k1 = base64.b64encode(os.urandom(32)).decode()
    k2 = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k1:{k1}")
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert (
        cli(
            "users",
            "create",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
            stdin="Secret-Pass-1234\n",
        ).code
        == 0
    )
    assert cli("secrets", "set", "alice", "api", stdin="value").code == 0
    assert cli("keys", "status").code == 0
    monkeypatch.setenv("MARKETDB_MASTER_KEYS", f"k2:{k2}")  # k1 is gone: its secret cannot be opened
    assert cli("keys", "status").code == 1
    assert cli("keys", "rotate").code == 1


def test_usage_errors_exit_2(cli: Any) -> None:
    res = cli("db", "status", "--no-such-option")
    assert res.code == 2
    assert "No such option" in res.err


def test_db_status_shows_when_each_revision_was_applied(cli: Any, empty_db_url: str) -> None:
    """Seed 003 asks for a migration log with applied-at times."""
    from marketdb.store.migrate import history

    db = marketdb.connect(empty_db_url, migrate_schema=True)
    try:
        rows = history(db.engine, db.settings)
        with db.transaction() as conn:
            logged = conn.execute(sa.select(t.migration_log.c.revision, t.migration_log.c.direction)).all()
    finally:
        db.close()
    assert rows
    assert all(r["applied"] for r in rows)
    # Revisions after the log table exists carry a time; the first ones applied before it do not.
    assert rows[-1]["applied_at"] is not None
    assert rows[0]["applied_at"] is None
    assert ("0008", "upgrade") in logged
    res = cli("db", "status", "--url", empty_db_url)
    assert res.code == 0, res.err
    assert "migrations" in res.out
    assert "0008" in res.out
    assert "UTC" in res.out
    assert "before the log" in res.out


def test_backup_and_restore_report_progress(cli: Any, db_url: str, tmp_path: Path, pg_server: Any) -> None:
    archive = tmp_path / "all.dump"
    res = cli("backup", str(archive), "--url", db_url)
    assert res.code == 0, res.err
    assert "backup took" in res.err
    name = "marketdb progress restore"
    pg_server.drop_database(name)
    try:
        res = cli("restore", str(archive), "--database", name, "--url", db_url)
        assert res.code == 0, res.err
        assert "restore took" in res.err
        assert cli("restore", str(archive), "--database", name, "--url", db_url).code == 4  # exists
    finally:
        pg_server.drop_database(name)
