"""`marketdb --help` is printed without Typer, Rich or any command module (issue 15),
and says what Typer's help says."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import typer.main

from marketdb import _help
from marketdb.cli import app


def _typer_root() -> tuple[Any, Any]:
    cmd: Any = typer.main.get_command(app)
    return cmd, cmd.make_context("marketdb", [], resilient_parsing=True)


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


def test_fast_help_lists_every_command_with_its_help() -> None:
    root, ctx = _typer_root()
    registered = []
    for name in root.list_commands(ctx):
        sub = root.get_command(ctx, name)
        assert sub is not None
        registered.append((name, _first_paragraph(sub.help)))
    assert list(_help.COMMANDS) == registered


def test_fast_help_has_the_apps_description_and_options() -> None:
    root, ctx = _typer_root()
    assert tuple(" ".join(p.split()) for p in (root.help or "").split("\n\n")) == _help.DESCRIPTION
    options = [(", ".join(p.opts), getattr(p, "help", None)) for p in root.get_params(ctx)]
    assert list(_help.OPTIONS) == options


def test_help_loads_no_command_module_typer_or_rich() -> None:
    code = (
        "import sys\n"
        "from marketdb.__main__ import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('typer', 'click', 'rich', 'marketdb.cli', 'pandas', 'sqlalchemy')"
        " if m in sys.modules)\n"
        "print('LOADED', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"COLUMNS": "100"}
    )
    assert "LOADED []" in proc.stderr
    for name, _ in _help.COMMANDS:
        assert f"│ {name} " in proc.stdout
    assert "Usage: marketdb [OPTIONS] COMMAND [ARGS]..." in proc.stdout
    width = {len(line) for line in proc.stdout.splitlines() if line.startswith(("│", "╭", "╰"))}
    assert width == {100}


def test_render_wraps_long_help_within_the_width() -> None:
    text = _help.render(60)
    boxed = [line for line in text.splitlines() if line.startswith("│")]
    assert all(len(line) == 60 for line in boxed)
    # A long help line continues on the next line, indented under the help column.
    joined = " ".join(line.strip("│ ").strip() for line in boxed)
    assert "Re-running a file changes nothing." in " ".join(joined.split())
