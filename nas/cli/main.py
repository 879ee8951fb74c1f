"""Command line: `run_search.py [ACTION] ...` (or `spectrum-nas`); no action means search."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from nas.arch.schema import SchemaError

# action -> the nas.cli module whose main(argv) runs it; imported only when used, so
# `run_search.py --help` does not pay for torch, Ray or plotly.
ACTIONS = {action: f"nas.cli.{action}" for action in
           ("search", "dashboard", "export", "retrain", "study", "bench", "supernet")}


COMMANDS = ("run_search.py", "spectrum-nas")  # the two ways in; usage and errors name the one used


def program() -> str:
    """The command as the user typed it: `spectrum-nas` from the console script, else
    `run_search.py`."""
    name = Path(sys.argv[0]).name
    return name if name in COMMANDS else COMMANDS[0]


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the first word; errors are one line on stderr, exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    action = "search"
    if argv and not argv[0].startswith("-"):
        action, argv = argv[0], argv[1:]
        if action not in ACTIONS:
            print(f"{program()}: unknown action {action!r} (allowed: {', '.join(ACTIONS)};"
                  " none means search)", file=sys.stderr)
            return 2
    try:
        return importlib.import_module(ACTIONS[action]).main(argv)
    except (SchemaError, ValueError, FileNotFoundError) as err:
        print(f"{program()} {action}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only or vanished folder: the user's to fix
        where = f": {err.filename}" if err.filename else ""
        print(f"{program()} {action}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1
