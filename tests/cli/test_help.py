"""Issue 15 items 3, 5 and 6: help and hints in CLI syntax, a quiet and light start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from marketdb.cli import _run
from marketdb.cli._common import cli_syntax, fail
from marketdb.cli.ingest import HELP_BATCH_SIZE
from marketdb.errors import InvalidInput
from marketdb.services.ingest import DEFAULT_BATCH_SIZE


def test_batch_size_help_matches_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert HELP_BATCH_SIZE == DEFAULT_BATCH_SIZE
    assert _run(["ingest", "ticks", "--help"], False) == 0
    assert f"default {DEFAULT_BATCH_SIZE:,}" in " ".join(capsys.readouterr().out.split())


def test_bars_help_shows_the_read_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["bars", "--help"], False) == 0
    out = capsys.readouterr().out
    for option in ("--interval", "--start", "--end", "--adjusted", "verify", "rebuild"):
        assert option in out


def test_hints_use_cli_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    text = "fix these rows, or pass on_invalid='skip' (CLI: --on-invalid skip); or columns={...}"
    assert cli_syntax(text) == "fix these rows, or pass --on-invalid skip; or --column INPUT=FIELD"
    err = InvalidInput(
        "2 rows rejected", hint="pass auto_register=True", details={"unknown_symbols": ["ZZZ"]}
    )
    assert fail(err).exit_code == 2
    shown = " ".join(capsys.readouterr().err.split())
    assert "--auto-register" in shown
    assert "marketdb ingest instruments" in shown
    assert "auto_register=True" not in shown


def test_version_and_help_load_neither_pandas_nor_the_database_stack() -> None:
    code = (
        "import sys\n"
        "from marketdb.__main__ import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "names = ('pandas', 'numpy', 'sqlalchemy', 'psycopg', 'alembic', 'pyarrow')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    for args in (["--version"], ["--help"], ["bars", "--help"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
        assert "HEAVY []" in proc.stdout, (args, proc.stdout[-300:])
        assert "Warning" not in proc.stderr, proc.stderr  # e.g. platformdirs' RuntimeDirWarning
    version = subprocess.run(
        [sys.executable, "-m", "marketdb", "--version"], capture_output=True, text=True, env=env, check=True
    )
    assert version.stdout.startswith("marketdb ")
