"""`marketdb instruments ...` and every CLI hint naming a command that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import marketdb
from marketdb.cli import app

SRC = Path(marketdb.__file__).parent
_RUN = CliRunner()


def _run(*args: str) -> tuple[int, str, BaseException | None]:
    result = _RUN.invoke(app, list(args))
    return result.exit_code, result.output, result.exception


def _json(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_instruments_commands_end_to_end(db: marketdb.MarketDB, db_url: str) -> None:
    code, out, exc = _run("instruments", "add", "fb", "--name", "Facebook", "--exchange", "XNAS",
                          "--listed", "2012-05-18", "--url", db_url, "--json")
    assert code == 0, (out, exc)
    assert _json(out)[0]["symbol"] == "FB"
    db.ingest.write_ticks(pd.DataFrame({"symbol": ["FB"] * 3, "price": [1.0, 2.0, 3.0], "size": [1.0] * 3,
                                        "ts": pd.date_range("2022-06-01T14:30Z", periods=3, freq="s")}))
    code, out, exc = _run("instruments", "rename", "FB", "META", "--effective", "2022-06-09", "--url", db_url)
    assert code == 0, (out, exc)
    assert "FB -> META" in out
    code, out, _ = _run("instruments", "list", "--prefix", "me", "--url", db_url, "--json")
    [row] = _json(out)
    assert (row["symbol"], row["active"]) == ("META", True)
    assert row["rows"] >= 3  # the trades, and the bars kept from them
    assert str(row["first_ts"]).startswith("2022-06-01")  # the daily bar's label, then the trades
    code, out, _ = _run("instruments", "show", "FB", "--url", db_url, "--json")
    shown = _json(out)[0]
    assert shown["symbol"] == "META"
    trades = [d for d in shown["data"] if d["table"] == "trades"]  # type: ignore[attr-defined]
    assert [(d["rows"], d["first_ts"]) for d in trades] == [(3, "2022-06-01 14:30:00+00:00")]
    code, out, _ = _run("instruments", "history", "META", "--url", db_url, "--json")
    assert [(h["symbol"], h["reason"]) for h in _json(out)] == [("FB", "listing"), ("META", "rename")]
    code, out, exc = _run("instruments", "delist", "META", "--at", "2024-01-02", "--url", db_url)
    assert code == 0, (out, exc)
    code, out, _ = _run("instruments", "list", "--inactive", "--no-counts", "--url", db_url, "--json")
    assert [r["symbol"] for r in _json(out)] == ["META"]
    assert "rows" not in _json(out)[0]


def test_instruments_errors_are_marketdb_errors(db_url: str) -> None:
    _, _, exc = _run("instruments", "show", "NOPE", "--url", db_url)
    assert isinstance(exc, marketdb.NotFound)
    assert "marketdb instruments add" in (exc.hint or "")
    _, _, exc = _run("instruments", "rename", "A", "B", "--effective", "June 9", "--url", db_url)
    assert isinstance(exc, marketdb.InvalidInput)
    assert "YYYY-MM-DD" in (exc.hint or "")


def test_bars_of_an_unknown_symbol_hints_at_a_command_that_exists(db_url: str) -> None:
    _, _, exc = _run("bars", "NOPE", "--url", db_url)
    assert isinstance(exc, marketdb.NotFound)
    hint = exc.hint or ""
    assert "marketdb instruments add" in hint
    _assert_commands_exist(re.findall(r"`(marketdb [^`]+)`", hint))


def test_unknown_symbol_on_ingest_does_not_suggest_skip(db: marketdb.MarketDB) -> None:
    frame = pd.DataFrame({"symbol": ["NOPE"], "ts": ["2024-01-02T14:30:00Z"], "price": [1.0], "size": [1.0]})
    with pytest.raises(marketdb.InvalidInput) as err:
        db.ingest.write_ticks(frame)
    hint = err.value.hint or ""
    assert "--on-invalid skip" not in hint
    assert "marketdb instruments add" in hint
    assert "--auto-register" in hint


# ------------------------------------------------------------ every hint
def _commands(text: str) -> list[list[str]]:
    """Command lines in a backticked `marketdb ...` text: alternatives a|b and && expanded."""
    text = text.replace(" | ", "|")
    lines: list[list[str]] = []
    for part in text.split("&&"):
        words = part.split()
        if words and words[0] == "marketdb":
            words = words[1:]
        if words and words[0].startswith("-"):
            continue  # a top-level option (`marketdb --help`, `marketdb --version`)
        choices: list[list[str]] = [[]]
        for w in words:
            alts = w.strip("{}").split("|") if "|" in w else [w]
            choices = [[*c, a] for c in choices for a in alts]
        lines.extend(choices)
    return lines


def _assert_commands_exist(texts: list[str]) -> None:
    root: Any = typer.main.get_command(app)
    ctx = root.make_context("marketdb", [], resilient_parsing=True)
    for text in texts:
        for words in _commands(text):
            cmd = root
            for w in words:
                # typer may vendor click, so groups are recognised by what they do
                if not hasattr(cmd, "get_command") or not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                sub = cmd.get_command(ctx, w)
                if sub is None:
                    # a group with a default command (``bars SYMBOL``) takes arguments here
                    assert type(cmd).__name__ == "DefaultCommandGroup", f"{text!r}: no command {w!r}"
                    break
                cmd = sub
            assert cmd is not root, f"{text!r} names no command"


def test_every_backticked_marketdb_command_in_the_code_exists() -> None:
    texts = sorted({m for p in SRC.rglob("*.py") for m in re.findall(r"`(marketdb [^`]+)`", p.read_text())})
    assert len(texts) > 20  # the scan finds the hints
    _assert_commands_exist(texts)
