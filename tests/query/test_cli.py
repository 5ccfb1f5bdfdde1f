"""`marketdb bars | ticks | latest | chart` against a real database."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

import marketdb
from marketdb.cli import query as cli
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

UTC = dt.UTC
DAYS = pd.bdate_range("2024-01-02", periods=30, tz="UTC")


def _app() -> typer.Typer:
    """The commands mounted the way the lead mounts them (bars beside a verify subcommand)."""
    app = typer.Typer()
    bars_app = typer.Typer(cls=cli.DefaultCommandGroup)
    bars_app.command("show")(cli.bars)

    @bars_app.command("verify")
    def verify() -> None:
        typer.echo("verify called")

    app.add_typer(bars_app, name="bars")
    app.command("ticks")(cli.ticks)
    app.command("latest")(cli.latest)
    app.command("chart")(cli.chart)
    return app


@pytest.fixture
def seeded(db: marketdb.MarketDB, db_url: str) -> str:
    with db.transaction() as conn:
        ensure_partitions(conn, "candles", DAYS[0].date(), DAYS[-1].date())
        ensure_partitions(conn, "trades", DAYS[-1].date(), DAYS[-1].date())
        iid = conn.execute(
            sa.insert(t.instruments).values(symbol="ACME", calendar="XNYS").returning(t.instruments.c.id)
        ).scalar_one()
        rows = []
        for k, day in enumerate(DAYS):
            o = 100.0 + k
            c = o + (1.5 if k % 3 else -1.0)
            rows.append({"instrument_id": iid, "interval": "1d", "ts": day.to_pydatetime(),
                         "source": "trades", "open": o, "high": max(o, c) + 1, "low": min(o, c) - 1,
                         "close": c, "volume": 1000.0 + 10 * k})
        conn.execute(sa.insert(t.candles), rows)
        conn.execute(sa.insert(t.corporate_actions).values(
            instrument_id=iid, action_type="split", ex_date=DAYS[10].date(), ratio=2.0,
            known_at=DAYS[5].to_pydatetime(), source="manual"))
        ts = DAYS[-1].to_pydatetime() + dt.timedelta(hours=15)
        conn.execute(sa.insert(t.trades), [
            {"instrument_id": iid, "ts": ts, "ts_nanos": 7, "seq": 0, "price": 130.0, "size": 5.0},
            {"instrument_id": iid, "ts": ts, "ts_nanos": 8, "seq": 1, "price": 130.5, "size": 1.0},
        ])
    return db_url


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_bars_table_and_the_verify_subcommand_coexist(seeded: str) -> None:
    code, out = _run("bars", "ACME", "--interval", "1d", "--start", "2024-01-02", "--end", "2024-01-05",
                     "--url", seeded)
    assert code == 0, out
    assert "ACME 1d, times in UTC (4 rows)" in out
    assert "2024-01-05" in out
    code, out = _run("bars", "verify")
    assert (code, out.strip()) == (0, "verify called")


def test_bars_csv_json_and_parquet(seeded: str, tmp_path: Path) -> None:
    code, out = _run("bars", "ACME", "--adjusted", "--format", "csv", "--url", seeded)
    assert code == 0, out
    df = pd.read_csv(pd.io.common.StringIO(out))
    assert len(df) == 30
    assert df["close"].iloc[0] == pytest.approx((100.0 - 1.0) / 2)  # before the 2:1 split
    assert df["volume"].iloc[0] == pytest.approx(2000.0)
    code, out = _run("bars", "ACME", "--adjusted", "--as-of", "2024-01-03", "--format", "json",
                     "--url", seeded)
    first = json.loads(out.splitlines()[0])
    assert first["close"] == 99.0  # split not known yet
    assert first["source"] == "trades"
    path = tmp_path / "bars.parquet"
    code, out = _run("bars", "ACME", "--format", "parquet", "--output", str(path), "--url", seeded)
    assert code == 0, out
    table = pq.read_table(path)
    assert table.num_rows == 30
    assert str(table.schema.field("ts").type) == "timestamp[ns, tz=UTC]"


def test_ticks_and_latest(seeded: str) -> None:
    code, out = _run("ticks", "ACME", "--start", str(DAYS[-1].date()), "--format", "json", "--url", seeded)
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["price"] for r in rows] == [130.0, 130.5]
    assert rows[0]["ts"].endswith("T15:00:00.000000007Z")
    code, out = _run("latest", "ACME", "--format", "json", "--url", seeded)
    latest = json.loads(out.splitlines()[0])
    assert latest["symbol"] == "ACME"
    assert latest["price"] == 130.5
    assert latest["bar_interval"] == "1d"


def test_errors_exit_with_their_code_and_a_hint(seeded: str) -> None:
    result = CliRunner().invoke(_app(), ["bars", "NOPE", "--url", seeded])
    assert isinstance(result.exception, marketdb.NotFound)
    result = CliRunner().invoke(_app(), ["bars", "ACME", "--format", "parquet", "--url", seeded])
    assert isinstance(result.exception, marketdb.InvalidInput)
    assert "--output" in str(result.exception)


def test_chart_png(seeded: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "acme.png"
    code, out = _run("chart", "ACME", "--interval", "1d", "--adjusted", "--output", str(path),
                     "--url", seeded)
    assert code == 0, out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1200, 700)
