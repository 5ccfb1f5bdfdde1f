"""ClickHouse DDL: single server and cluster, generated and accepted by the engine."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from marketdb.errors import InvalidInput
from marketdb.services.analytics import TABLES, create_statements

CLUSTER_XML = """<clickhouse>
  <remote_servers>
    <two_local_shards>
      <shard><replica><host>localhost</host><port>9000</port></replica></shard>
      <shard><replica><host>localhost</host><port>9000</port></replica></shard>
    </two_local_shards>
  </remote_servers>
</clickhouse>
"""


def test_single_server_ddl() -> None:
    stmts = create_statements("mdb")
    assert len(stmts) == len(TABLES)
    for name, stmt in zip(TABLES, stmts, strict=True):
        assert stmt.startswith(f"CREATE TABLE IF NOT EXISTS `mdb`.`{name}` (")
        assert "ENGINE = ReplacingMergeTree(version)" in stmt
        assert "PARTITION BY toYYYYMM(ts)" in stmt
        assert "ORDER BY (`instrument_id`, " in stmt
        assert "`ts` DateTime64(9, 'UTC')" in stmt
        assert "`version` UInt64" in stmt
        assert "non_replicated_deduplication_window" in stmt
        assert "ON CLUSTER" not in stmt


def test_cluster_ddl_is_replicated_and_distributed() -> None:
    stmts = create_statements("mdb", cluster="prod")
    assert len(stmts) == 2 * len(TABLES)
    for n, name in enumerate(TABLES):
        local, dist = stmts[2 * n], stmts[2 * n + 1]
        assert local.startswith(f"CREATE TABLE IF NOT EXISTS `mdb`.`{name}_local` ON CLUSTER `prod` (")
        path = f"/clickhouse/tables/{{shard}}/mdb/{name}_local"
        assert f"ReplicatedReplacingMergeTree('{path}', '{{replica}}', version)" in local
        assert dist == (
            f"CREATE TABLE IF NOT EXISTS `mdb`.`{name}` ON CLUSTER `prod` AS `mdb`.`{name}_local`\n"
            f"ENGINE = Distributed(`prod`, `mdb`, `{name}_local`, intHash64(instrument_id))"
        )
    plain = create_statements("mdb", cluster="prod", replicated=False, on_cluster=False)
    assert all("ON CLUSTER" not in s and "Replicated" not in s for s in plain)
    with pytest.raises(InvalidInput, match="unknown ClickHouse tables"):
        create_statements("mdb", tables=("nope",))


def test_cluster_ddl_runs_on_chdb_with_two_local_shards(tmp_path: Path) -> None:
    """In a fresh process (chdb: one engine per process) with a two-shard remote_servers config."""
    config = tmp_path / "config.xml"
    config.write_text(CLUSTER_XML)
    script = textwrap.dedent(
        f"""
        import json, clickhouse_connect
        from marketdb.services.analytics import create_statements
        c = clickhouse_connect.get_client(
            interface="chdb", path={str(tmp_path / "data")!r}, chdb_options={{"config-file": {str(config)!r}}}
        )
        c.command("CREATE DATABASE mdb")
        for stmt in create_statements("mdb", cluster="two_local_shards", replicated=False, on_cluster=False):
            c.command(stmt)
        shards = c.query("SELECT count() FROM system.clusters WHERE cluster = 'two_local_shards'").result_rows
        engines = c.query("SELECT name, engine FROM system.tables WHERE database = 'mdb' ORDER BY name")
        print(json.dumps({{"shards": shards[0][0], "tables": [list(r) for r in engines.result_rows]}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["shards"] == 2
    engines = dict(got["tables"])
    for name in TABLES:
        assert engines[name] == "Distributed"
        assert engines[f"{name}_local"] == "ReplacingMergeTree"
