"""`marketdb ingest ...` against a real database (the sub-app mounted as the lead mounts it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import typer
from typer.testing import CliRunner

from marketdb.cli.ingest import ingest_app
from marketdb.errors import InvalidInput


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(ingest_app, name="ingest")
    return app


def _ticks_csv(path: Path, rows: int = 5, bad_row: int | None = None) -> Path:
    df = pd.DataFrame({
        "timestamp": [f"2024-01-02 14:30:{i:02d}.000000123" for i in range(rows)],
        "price": [100.0 + i for i in range(rows)],
        "qty": [1.0] * rows,
    })
    if bad_row is not None:
        df.loc[bad_row, "price"] = -1.0
    df.to_csv(path, index=False)
    return path


def _count(db_url: str, table: str) -> int:
    with psycopg.connect(db_url) as c:
        return int(c.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
            psycopg.sql.Identifier(table))).fetchone()[0])


def test_ingest_ticks_prints_a_summary_and_reruns_as_duplicates(db_url: str, tmp_path: Path) -> None:
    path = _ticks_csv(tmp_path / "eurusd.csv")
    args = ["ingest", "ticks", str(path), "--url", db_url, "--symbol", "eurusd", "--tz", "UTC",
            "--auto-register", "--source", "histdata", "--json"]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert (row["received"], row["inserted"], row["duplicates"], row["rejected"]) == (5, 5, 0, 0)
    again = CliRunner().invoke(_app(), args)
    assert json.loads(again.stdout.strip().splitlines()[-1])["duplicates"] == 5
    assert _count(db_url, "trades") == 5
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT DISTINCT ts_nanos, source FROM trades").fetchall() == [
            (123, "histdata")]


def test_on_invalid_skip_writes_valid_rows_and_the_rejects_file(db_url: str, tmp_path: Path) -> None:
    path = _ticks_csv(tmp_path / "t.csv", bad_row=2)
    rejects = tmp_path / "rejects.csv"
    r = CliRunner().invoke(_app(), [
        "ingest", "ticks", str(path), "--url", db_url, "--symbol", "X", "--tz", "UTC",
        "--auto-register", "--on-invalid", "skip", "--rejects", str(rejects), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["inserted"], summary["rejected"]) == (4, 1)
    assert _count(db_url, "trades") == 4
    with rejects.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(x["row"], x["rule"], x["field"], x["value"]) for x in rows] == [
        ("2", "non_positive_price", "price", "-1.0")]


def test_a_bad_file_raises_the_validation_error_and_writes_nothing(db_url: str,
                                                                   tmp_path: Path) -> None:
    path = _ticks_csv(tmp_path / "t.csv", bad_row=1)
    r = CliRunner().invoke(_app(), ["ingest", "ticks", str(path), "--url", db_url, "--symbol", "X",
                                    "--tz", "UTC", "--auto-register"])
    assert isinstance(r.exception, InvalidInput)
    assert "non_positive_price" in str(r.exception)
    assert "row 1 price=-1.0" in str(r.exception)
    assert _count(db_url, "trades") == 0


def test_candles_instruments_and_actions_commands(db_url: str, tmp_path: Path) -> None:
    inst = tmp_path / "instruments.csv"
    pd.DataFrame({"ticker": ["KO"], "name": ["Coca-Cola"], "assetType": ["Stock"],
                  "exchange": ["NYSE"]}).to_csv(inst, index=False)
    r = CliRunner().invoke(_app(), ["ingest", "instruments", str(inst), "--url", db_url])
    assert r.exit_code == 0, r.output
    bars = tmp_path / "KO.csv"
    pd.DataFrame({"date": ["2012-08-10", "2012-08-13"], "open": [76.0, 38.0],
                  "high": [77.0, 38.5], "low": [75.5, 37.8], "close": [76.5, 38.2],
                  "volume": [1e6, 2e6], "dividend": [0.0, 0.0], "split": [1.0, 2.0]}
                 ).to_csv(bars, index=False)
    r = CliRunner().invoke(_app(), ["ingest", "candles", str(bars), "--url", db_url,
                                    "--symbol", "KO", "--interval", "1d"])
    assert r.exit_code == 0, r.output
    actions = tmp_path / "splits.json"
    actions.write_text(json.dumps({"results": [
        {"ticker": "KO", "execution_date": "2012-08-13", "split_from": 1, "split_to": 2}]}))
    r = CliRunner().invoke(_app(), ["ingest", "actions", str(actions), "--url", db_url,
                                    "--source", "polygon"])
    assert r.exit_code == 0, r.output
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT source, count(*) FROM candles WHERE rolled_from IS NULL "
                         "GROUP BY 1").fetchall() == [("csv", 2)]  # not the 1w/1mo roll-ups
        # the candles' split column is an action of their source too (same ratio: no conflict)
        assert c.execute("SELECT action_type, ratio, source FROM corporate_actions "
                         "ORDER BY source").fetchall() == [("split", 2.0, "csv"),
                                                           ("split", 2.0, "polygon")]
        assert c.execute("SELECT name, asset_class FROM instruments").fetchall() == [
            ("Coca-Cola", "stock")]


@pytest.mark.parametrize("kind", ["ticks", "candles", "books", "options", "actions",
                                  "instruments"])
def test_every_command_has_help(kind: str) -> None:
    r = CliRunner().invoke(_app(), ["ingest", kind, "--help"])
    assert r.exit_code == 0
    assert "--url" in r.stdout
