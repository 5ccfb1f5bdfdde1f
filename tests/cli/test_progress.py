"""Issue 15 item 5: `bars verify` and `maintain` report progress (done/total, elapsed, ETA).

The services call ``progress(done, total, ...)``; the CLI shows a Rich bar on a
terminal and plain lines otherwise (cron logs), always ending with the last count.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import marketdb
from marketdb.cli import _common, _run
from marketdb.services.ops import MaintainContext, Ops

NOW = dt.datetime(2024, 6, 3, 12, tzinfo=dt.UTC)


def _trades(symbols: list[str]) -> pd.DataFrame:
    ts = pd.to_datetime(["2024-03-15 14:31", "2024-03-15 14:32", "2024-03-15 14:33"], utc=True)
    return pd.DataFrame(
        {
            "symbol": [s for s in symbols for _ in ts],
            "ts": list(ts) * len(symbols),
            "price": [10.0, 11.0, 10.5] * len(symbols),
            "size": [100.0, 50.0, 25.0] * len(symbols),
        }
    )


def _instruments(db: marketdb.MarketDB, symbols: list[str]) -> None:
    db.ingest.write_instruments([{"symbol": s, "asset_class": "stock"} for s in symbols])
    db.ingest.write_ticks(_trades(symbols))


def test_verify_reports_each_instrument(db: marketdb.MarketDB) -> None:
    _instruments(db, ["PRA", "PRB", "PRC"])
    calls: list[tuple[int, int]] = []
    report = db.bars.verify(progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert report.bars_checked > 0
    calls.clear()
    db.bars.verify("PRB", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 1), (1, 1)]


def test_maintain_reports_each_phase(db: marketdb.MarketDB) -> None:
    calls: list[tuple[int, int, str]] = []

    def first(ctx: MaintainContext) -> str:
        return "one"

    def second(ctx: MaintainContext) -> str:
        return "two"

    ops = Ops(db)
    ops.hooks[:] = [first, second]
    report = ops.maintain(now=NOW, dry_run=True, progress=lambda d, t, what: calls.append((d, t, what)))
    total = calls[0][1]
    # partitions + one per retention policy + the two hooks; counted up by one each phase
    assert total >= 3
    assert [c[0] for c in calls] == list(range(total + 1))
    assert {c[1] for c in calls} == {total}
    assert calls[0][2] == "partitions"
    assert [c[2] for c in calls[-3:]] == ["hook first", "hook second", "done"]
    assert [s.action for s in report.steps if s.step == "hook"] == ["first", "second"]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("MARKETDB_HOME", str(tmp_path / "home"))
    for var in ("REDIS_URL", "CLICKHOUSE_URL"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = _run(list(args), False)
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run


LINE = re.compile(r"^(\w+): (\d+)/(\d+) (\w+), [\d.,]+ s elapsed(, ETA [\d.,]+ s)?( \(next: .*\))?$")


def _progress_lines(err: str, what: str) -> list[tuple[int, int]]:
    out = []
    for line in err.splitlines():
        m = LINE.match(line.strip())
        if m and m.group(1) == what:
            out.append((int(m.group(2)), int(m.group(3))))
    return out


def test_cli_verify_and_maintain_print_progress_lines(
    cli: Any, db: marketdb.MarketDB, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _instruments(db, ["PRA", "PRB"])
    monkeypatch.setenv("DATABASE_URL", db_url)
    code, out, err = cli("bars", "verify")
    assert code == 0, err
    lines = _progress_lines(err, "verify")
    assert lines[0] == (0, 2)  # the first line comes at once: how much there is to do
    assert lines[-1] == (2, 2), err  # the last line always: how far it got
    assert "checked" in out

    code, out, err = cli("maintain", "--dry-run", "--url", db_url)
    assert code == 0, err
    lines = _progress_lines(err, "maintain")
    assert lines[0][0] == 0
    assert lines[-1][0] == lines[-1][1] > 0, err


def test_step_progress_eta_and_throttling(capsys: pytest.CaptureFixture[str]) -> None:
    # update(0) check + line, update(1), eta(), update(2), update(3) check + line + eta, final line + eta
    clock = iter([0.0, 0.0, 2.0, 4.0, 5.0, 30.0, 30.0, 30.0, 31.0, 31.0])
    progress = _common.StepProgress("verify", "instruments", every=10.0)
    progress._clock = lambda: next(clock)  # a fake monotonic clock: no sleeping in tests
    progress._t0 = 0.0
    with progress:
        progress.update(0, 4)  # t=0: printed (first)
        progress.update(1, 4)  # t=2: not yet 10 s since the last line
        assert progress.eta() == pytest.approx(4 * 3 / 1)  # 4 s per instrument, 3 left (t=4)
        progress.update(2, 4)  # t=5: throttled
        progress.update(3, 4)  # t=30: printed
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("verify:")]
    assert len(lines) == 3, err
    assert lines[0].startswith("verify: 0/4 instruments, 0.0 s elapsed")
    assert lines[1].startswith("verify: 3/4 instruments, 30.0 s elapsed, ETA 10.0 s")
    assert lines[2] == "verify: 3/4 instruments, 31.0 s elapsed"  # the final line, no ETA
