"""The ops CLI (mounted on a local Typer app the way the lead mounts it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

import marketdb
from marketdb.cli import ops as cli
from marketdb.errors import ConfigurationError
from marketdb.services.ops.backup import find_tool
from marketdb.store.schema import tables as t

app = typer.Typer()
app.add_typer(cli.policies_app, name="policies")
app.command("maintain")(cli.maintain)
app.command("backup")(cli.backup)
app.command("restore")(cli.restore)
app.command("doctor")(cli.doctor)


@pytest.fixture
def run(db_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, [*args, "--url", db_url])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return invoke


def _json(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_policies_set_and_list(run: Any, db_url: str) -> None:
    run("policies", "set", "signals", "--retain-for", "5y")
    run("policies", "set", "trades", "--retain-for", "30d", "--compress-after", "off")
    rows = {r["table"]: r for r in _json(run("policies", "list", "-f", "json").output)}
    assert rows["signals"]["kind"] == "rows"
    assert rows["signals"]["retain_for"] == "5 years"
    assert rows["trades"]["retain_for"] == "30 days"
    assert rows["trades"]["compress_after"] == "off"
    out = run("policies", "set", "signals", "--retain-for", "off").output
    assert "removed" in out
    db = marketdb.connect(db_url)
    try:
        with db.transaction() as conn:
            actors = set(
                conn.execute(sa.select(t.audit_logs.c.actor).where(t.audit_logs.c.resource_type == "policy"))
                .scalars()
                .all()
            )
    finally:
        db.close()
    assert len(actors) == 1
    assert next(iter(actors)).startswith("cli:")


def test_bad_policy_input_is_an_error(run: Any) -> None:
    result = run("policies", "set", "trades", "--retain-for", "soon", code=1)
    assert isinstance(result.exception, marketdb.InvalidInput)


def test_maintain_dry_run_and_run(run: Any) -> None:
    out = run("maintain", "--dry-run", "--now", "2024-03-10T12:00", "-f", "json").output
    steps = _json(out)
    assert steps
    statuses = {s["status"] for s in steps}
    # TimescaleDB creates chunks and runs retention itself: its partitions step is "skipped".
    assert "planned" in statuses
    assert statuses <= {"planned", "skipped"}
    table = run("maintain", "--now", "2024-03-10T12:00").output
    assert "maintain" in table
    assert "error(s)" in table


def test_maintain_every_rejects_a_too_short_period(run: Any) -> None:
    result = run("maintain", "--every", "10s", code=1)
    assert isinstance(result.exception, marketdb.InvalidInput)


def test_doctor_exit_code_follows_health(run: Any, db_url: str) -> None:
    out = run("doctor").output
    assert "✓" in out
    assert "healthy" in out
    db = marketdb.connect(db_url)
    try:
        db.downgrade("0001")
    finally:
        db.close()
    broken = run("doctor", code=1).output
    assert "✗" in broken
    assert "marketdb db upgrade" in broken


def test_backup_and_restore_commands(run: Any, db_url: str, tmp_path: Path, pg_server: Any) -> None:
    try:
        find_tool("pg_dump", min_major=14, prefer_wheel=True)
    except ConfigurationError as exc:
        pytest.skip(exc.message)
    archive = tmp_path / "cli.dump"
    out = run("backup", str(archive), "--verify").output
    assert "verified" in out
    assert archive.is_file()
    name = "marketdb_cli_restored"
    pg_server.drop_database(name)
    try:
        out = run("restore", str(archive), "--database", name).output
        assert "restored" in out
        from importlib import resources

        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(resources.files("marketdb.store") / "migrations"))
        assert ScriptDirectory.from_config(cfg).get_current_head() in out
    finally:
        pg_server.drop_database(name)


def test_backup_works_on_an_outdated_schema(run: Any, db_url: str, tmp_path: Path) -> None:
    """A backup is what you take before `marketdb db upgrade`, so it must not demand one."""
    try:
        find_tool("pg_dump", min_major=14, prefer_wheel=True)
    except ConfigurationError as exc:
        pytest.skip(exc.message)
    db = marketdb.connect(db_url)
    try:
        db.downgrade("0001")
    finally:
        db.close()
    archive = tmp_path / "before-upgrade.dump"
    run("backup", str(archive))
    manifest = json.loads(archive.with_name("before-upgrade.dump.manifest.json").read_text())
    assert manifest["schema_revision"] == "0001"
    maintain = run("maintain", code=1)  # main() maps it to exit 5
    assert isinstance(maintain.exception, ConfigurationError)
