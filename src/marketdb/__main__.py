"""``python -m marketdb`` and the ``marketdb`` script.

``marketdb --version`` and ``marketdb --help`` answer here without loading the
command line (Typer, Rich and every command module; the help text comes from
:mod:`marketdb._help`); everything else goes to
:func:`marketdb.cli.main`, the one error boundary of every command.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the ``marketdb`` command line with ``argv`` (default: ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from marketdb import __version__

        sys.stdout.write(f"marketdb {__version__}\n")
        raise SystemExit(0)
    if args == ["--help"]:
        from marketdb._help import render

        sys.stdout.write(render())
        raise SystemExit(0)
    from marketdb.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
