"""`marketdb clickhouse sync|verify|status|ddl` and the doctor's view of the tier."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import marketdb
from marketdb.cli.clickhouse import clickhouse_app
from marketdb.errors import Conflict, InvalidInput
from marketdb.services.analytics import connect_clickhouse
from marketdb.services.ops import Ops
from marketdb.testing import synthetic_trades


@pytest.fixture
def cli(db: marketdb.MarketDB, db_url: str, chdb_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(clickhouse_app, [*args, "--url", db_url, "--clickhouse", chdb_url])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    yield invoke
    connect_clickhouse(chdb_url).command("DROP DATABASE IF EXISTS marketdb SYNC")


def _rows(output: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {r["table"]: r for r in rows}


def test_sync_verify_status_from_the_command_line(cli: Any, db: marketdb.MarketDB, chdb_url: str) -> None:
    db.ingest.write_ticks(
        synthetic_trades(["AAA"], start="2024-03-04", days=2, trades_per_day=400), auto_register=True
    )
    before = _rows(cli("status", "-f", "json").output)
    assert before["trades"]["behind"] == 1
    assert before["trades"]["rows"] == 0
    out = cli("sync", "--batch-rows", "100").output
    assert "800 rows" in out or "trades 800" in out
    checked = _rows(cli("verify", "-f", "json").output)
    assert checked["trades"] == {"table": "trades", "postgres_rows": 800, "clickhouse_rows": 800, "ok": True}
    after = _rows(cli("status", "-f", "json").output)
    assert after["trades"]["in_sync"] == 1
    assert after["trades"]["data_up_to"] == "2024-03-05"
    # Damage ClickHouse: verify fails with exit 4 and names the day; a full sync repairs it.
    connect_clickhouse(chdb_url).command(
        "DELETE FROM marketdb.trades WHERE toDate(ts) = '2024-03-05'",
        settings={"lightweight_deletes_sync": 2},
    )
    # (The sub-app raises; `marketdb` maps Conflict to exit 4 and InvalidInput to 2.)
    bad = cli("verify", code=1)
    assert isinstance(bad.exception, Conflict)
    assert "2024-03-05" in bad.output
    cli("sync", "--full", "-q")
    cli("verify")
    assert isinstance(cli("sync", "--table", "nope", code=1).exception, InvalidInput)
    assert isinstance(cli("sync", "--batch-rows", "0", code=1).exception, InvalidInput)


def test_ddl_command_prints_cluster_tables() -> None:
    result = CliRunner().invoke(clickhouse_app, ["ddl", "--cluster", "prod", "--database", "mdb"])
    assert result.exit_code == 0, result.output
    assert "ON CLUSTER `prod`" in result.output
    assert "ENGINE = Distributed(`prod`, `mdb`, `trades_local`, intHash64(instrument_id))" in result.output


def test_doctor_reports_how_far_the_tier_is_synced(db: marketdb.MarketDB, db_url: str, chdb_url: str) -> None:
    db.ingest.write_ticks(
        synthetic_trades(["AAA"], start="2024-03-04", days=1, trades_per_day=100), auto_register=True
    )
    tier = marketdb.connect(db_url, redis_url=None, clickhouse_url=chdb_url)
    try:
        never = [c for c in Ops(tier).doctor().checks if c.name == "clickhouse sync"]
        assert [c.status for c in never] == ["warn"]
        assert "never synced" in never[0].detail
        assert tier.analytics is not None
        tier.analytics.sync()
        synced = [c for c in Ops(tier).doctor().checks if c.name == "clickhouse sync"]
        assert [c.status for c in synced] == ["ok"]
        assert "data up to 2024-03-04" in synced[0].detail
        assert "trades: 1 in sync, 0 behind" in synced[0].detail
        tier.analytics.ch.command("DROP DATABASE IF EXISTS marketdb SYNC")
    finally:
        tier.close()
