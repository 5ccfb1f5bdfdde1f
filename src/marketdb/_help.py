# ruff: noqa: E501  (help lines are kept whole so they compare equal to the Typer app's)
"""``marketdb --help`` without loading Typer, Rich and every command module.

The top-level help is the same every time, so :mod:`marketdb.__main__` prints it
from the tables below (about 0.03 s instead of ~0.4 s of CPU for building ~70
commands and rendering them with Rich). ``tests/cli/test_fast_help.py`` checks
that these tables equal what the Typer app registers, so a new command or a
changed help line fails a test until it is added here. Every other help
(``marketdb bars --help``, ``marketdb`` with no arguments) is Typer's.
"""

from __future__ import annotations

import os
import shutil
import textwrap

__all__ = ["COMMANDS", "DESCRIPTION", "OPTIONS", "render"]

DESCRIPTION = (
    'marketdb: the market-data and trading database for Python.',
    'With no DATABASE_URL it runs an embedded PostgreSQL under MARKETDB_HOME (started on first use, reused afterwards). Start with `marketdb demo`.',
)
"""Paragraphs of the app's help text."""

#: (option, help) of the top-level options, in Typer's order.
OPTIONS: tuple[tuple[str, str], ...] = (
    ('--version', 'Show the version and exit.'),
    ('--verbose, -v', 'Log what marketdb does.'),
    ('--debug', 'Print the full traceback when a command fails.'),
    ('--install-completion', 'Install completion for the current shell.'),
    ('--show-completion', 'Show completion for the current shell, to copy it or customize the installation.'),
    ('--help', 'Show this message and exit.'),
)

#: (command, first paragraph of its help), in the order Typer lists them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ('ticks', 'Show or save trades (or --quotes) with exact nanosecond timestamps.'),
    ('latest', 'Show the last trade, quote and bar of each symbol.'),
    ('chart', 'Draw candlesticks with volume to a PNG (matplotlib) or HTML (plotly) file.'),
    ('maintain', 'Create partitions ahead, apply retention, run the extra maintenance steps.'),
    ('backup', 'Back up the database with pg_dump (-Fc), plus FILE.manifest.json (size, SHA-256, row counts).'),
    ('restore', 'Restore an archive into a NEW database on the same server (never over an existing one).'),
    ('doctor', 'Check what is configured, what is reachable and what is wrong; exit 1 if anything is wrong.'),
    ('demo', 'Run the tour: database, ingest with continuous bars, bars, adjusted prices, a chart.'),
    ('sync', 'Fetch market data from a provider: only what is missing, resumable, rate-limit aware.'),
    ('quality', 'Data quality of one instrument: gaps, duplicates, outliers, vendor vs derived, staleness.'),
    ('serve', 'Serve the HTTP API (OpenAPI docs at /docs) on the embedded server or DATABASE_URL.'),
    ('db', 'Database server, schema migrations and the embedded PostgreSQL.'),
    ('ingest', 'Load market data from CSV, Parquet or JSON files: validated, deduplicated, all or nothing per batch. Re-running a file changes nothing.'),
    ('bars', 'Read bars (`marketdb bars AAPL --interval 5m`), or check them against the trades (`marketdb bars verify`, `--repair` to fix) and recompute them (`marketdb bars rebuild`).'),
    ('instruments', 'List, search and change instruments: `marketdb instruments list --prefix AA` shows what is stored for each (rows, first/last time, bar intervals, sources).'),
    ('policies', 'Partition size, compression and retention per table (time-series and ordinary tables).'),
    ('strategies', 'Strategies: create, update, enable/disable, list.'),
    ('signals', 'Signals: record, list active, execute, cancel, expire.'),
    ('orders', 'Orders: submit, accept, cancel, reject, expire, list, history.'),
    ('fills', 'Fills (executions): record and list.'),
    ('positions', 'Positions: list, mark to market, stop-loss and target.'),
    ('portfolio', 'Portfolio: value now, write a snapshot, show the series.'),
    ('seed', 'Load example data.'),
    ('users', 'User accounts: create, list, roles, deactivate, passwords.'),
    ('secrets', "A user's encrypted secrets (API keys, tokens). Values are never printed."),
    ('keys', 'Master keys that seal secrets: generate, status, rotate.'),
    ('posts', "Users' posts: create, list, delete."),
    ('clickhouse', 'The ClickHouse analytics tier: incremental sync from PostgreSQL, verify, status, DDL.'),
)


def _section(title: str, rows: tuple[tuple[str, str], ...], width: int) -> list[str]:
    """A titled box like Rich's help panels: name column, wrapped help column."""
    name_w = max(len(n) for n, _ in rows) + 2
    inner = width - 4  # "│ " and " │"
    text_w = max(20, inner - name_w)
    out = ["╭─ " + title + " " + "─" * max(0, width - len(title) - 5) + "╮"]
    for name, text in rows:
        wrapped = textwrap.wrap(text, text_w) or [""]
        for i, part in enumerate(wrapped):
            left = name if i == 0 else ""
            out.append("│ " + (left.ljust(name_w) + part).ljust(inner) + " │")
    out.append("╰" + "─" * (width - 2) + "╯")
    return out


def render(width: int | None = None) -> str:
    """The top-level help text, wrapped to ``width`` (default: the terminal, at most 120)."""
    if width is None:
        cols = os.environ.get("COLUMNS", "")
        width = int(cols) if cols.isdigit() else min(shutil.get_terminal_size((100, 24)).columns, 120)
    width = max(60, width)
    lines = ["", " Usage: marketdb [OPTIONS] COMMAND [ARGS]...", ""]
    for para in DESCRIPTION:
        lines.extend(" " + line for line in textwrap.wrap(para, width - 2))
        lines.append("")
    lines.extend(_section("Options", OPTIONS, width))
    lines.extend(_section("Commands", COMMANDS, width))
    return "\n".join(lines) + "\n"
