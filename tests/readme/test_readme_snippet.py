"""The README's "Using it" Python snippet runs, and runs again unchanged (issue 15).

A user pastes it, runs it, edits something and runs it again: the second run must
not fail on what the first one created (instruments, ticks, strategy, order, fill
are all get-or-create or idempotent). The snippet is taken from README.md itself,
so a README edit that breaks re-running fails here.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pandas as pd
import pytest

import marketdb

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> str:
    """The first ```python block after the "## Using it" heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's 'Using it' section has no python block"
    return match.group(1)


def write_trades(path: Path) -> int:
    """A small trades.parquet for the snippet's ``write_ticks("trades.parquet")``."""
    ts = pd.date_range("2024-03-04 14:30", periods=30, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": ["AAPL"] * len(ts),
            "ts": ts,
            "price": [187.0 + i / 100 for i in range(len(ts))],
            "size": [100] * len(ts),
        }
    )
    frame.to_parquet(path)
    return len(frame)


def run_snippet(code: str) -> str:
    """Execute the snippet as a script would (closing its ``db`` as the script's exit
    would); return what it printed."""
    out = io.StringIO()
    namespace: dict[str, object] = {"__name__": "__main__"}
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(README) + ":Using it", "exec"), namespace)  # noqa: S102
    finally:
        db = namespace.get("db")
        if isinstance(db, marketdb.MarketDB):
            db.close()
    return out.getvalue()


def test_readme_snippet_runs_twice(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = readme_snippet()
    assert "create_strategy" in code  # the snippet this test is about
    assert "write_ticks" in code
    rows = write_trades(tmp_path / "trades.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MARKETDB_HOME", str(tmp_path / "home"))

    first = run_snippet(code)
    second = run_snippet(code)  # raised Conflict: strategy 'mean_rev' already exists, before

    # First run inserts the trades, the second finds them all already stored.
    assert first.splitlines()[0] == f"{rows} 0 0"
    assert second.splitlines()[0] == f"0 {rows} 0"
    with marketdb.connect(db_url) as check:
        assert [s["id"] for s in check.trading.strategies()] == ["mean_rev"]
        orders = check.trading.orders()
        assert len(orders) == 1
        assert orders[0]["client_order_id"] == "mr-1"
        positions = check.trading.positions()
        assert len(positions) == 1
        assert positions[0]["quantity"] == 100  # one fill, not two
