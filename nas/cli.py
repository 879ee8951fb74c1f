"""Command line: `run_search.py [ACTION] ...`; no action means search."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from nas.arch.schema import SchemaError
from nas.search.flags import add_search_flags, options_from

DEFAULT_SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "cifar_spectrum.toml"
# action -> "module:function" taking the remaining argv and returning an exit code; imported
# only when used, so `run_search.py --help` does not pay for Ray or plotly.
ACTIONS = {
    "search": "nas.cli:search_main",
    "dashboard": "nas.dashboard:main",
    "export": "nas.export:main",
    "retrain": "nas.retrain:main",
    "study": "nas.study:main",
    "bench": "nas.bench.run:main",
    "supernet": "nas.supernet.run:main",
}


def search_parser() -> argparse.ArgumentParser:
    """Flags of the search action."""
    p = argparse.ArgumentParser(
        prog="run_search.py",
        description="Search the convolution spectrum: Ray Tune schedules trials (ASHA), Optuna"
        " picks points. With no arguments: the default CIFAR-10 space, about 8 min on 2 CPU cores."
        " Other actions: dashboard, export, retrain, study, bench, supernet (each has --help).")
    p.add_argument("--space", type=Path, default=DEFAULT_SPACE, help="search-space TOML file")
    p.add_argument("--dry-run", action="store_true",
                   help="print the space (dimensions, size, cost range, reference points);"
                   " train nothing")
    p.add_argument("--replay", type=Path, metavar="BENCH_DIR",
                   help="replay the search against a bench folder (run_search.py bench):"
                   " trials read each point's measured curves instead of training")
    p.add_argument("--replay-speed", type=float, default=100.0,
                   help="a replayed epoch takes its measured seconds / this (default 100)")
    add_search_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the first word; errors are one line on stderr, exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    action = "search"
    if argv and not argv[0].startswith("-"):
        action, argv = argv[0], argv[1:]
        if action not in ACTIONS:
            print(f"run_search.py: unknown action {action!r} (allowed: {', '.join(ACTIONS)};"
                  " none means search)", file=sys.stderr)
            return 2
    module, function = ACTIONS[action].split(":")
    try:
        return getattr(importlib.import_module(module), function)(argv)
    except (SchemaError, ValueError, FileNotFoundError) as err:
        print(f"run_search.py {action}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only or vanished folder: the user's to fix
        where = f": {err.filename}" if err.filename else ""
        print(f"run_search.py {action}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1


def search_main(argv: list[str]) -> int:
    """The search action."""
    return _search(search_parser().parse_args(argv))


def _search(args: argparse.Namespace) -> int:
    """The search action (or its dry run)."""
    from nas.search.engine import run_search
    from nas.search.report import describe_space, summarize
    from nas.search.space.load import load_space

    if args.dry_run:
        print(describe_space(load_space(args.space)))
        return 0
    if args.replay is None:
        outcome = run_search(options_from(args, args.space))
    else:
        from nas.bench.replay import Replay

        outcome = run_search(options_from(args, args.space),
                             source=Replay(args.replay, args.replay_speed))
    print(summarize(outcome))
    if args.replay is not None and "simulated_s" in outcome.table:
        print(f"Simulated compute: {outcome.table['simulated_s'].sum():,.0f} s of measured"
              f" training replayed from {args.replay}")
    return 130 if outcome.interrupted else 0
