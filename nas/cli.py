"""Command line: `run_search.py [ACTION] ...`; no action means search."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from nas.arch.schema import SchemaError

DEFAULT_SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "cifar_spectrum.toml"
# action -> "module:function" taking the remaining argv and returning an exit code; imported
# only when used, so `run_search.py --help` does not pay for Ray or plotly.
ACTIONS = {
    "search": "nas.cli:search_main",
    "dashboard": "nas.dashboard:main",
    "export": "nas.export:main",
    "retrain": "nas.retrain:main",
    "study": "nas.study:main",
}


def search_parser() -> argparse.ArgumentParser:
    """Flags of the search action."""
    p = argparse.ArgumentParser(
        prog="run_search.py",
        description="Search the convolution spectrum: Ray Tune schedules trials (ASHA), Optuna"
        " picks points. With no arguments: the default CIFAR-10 space, ~15 min on 2 CPU cores."
        " Other actions: dashboard, export, retrain, study (each has --help).")
    p.add_argument("--space", type=Path, default=DEFAULT_SPACE, help="search-space TOML file")
    p.add_argument("--dry-run", action="store_true",
                   help="print the space (dimensions, size, cost range, reference points);"
                   " train nothing")
    add_search_flags(p)
    return p


def add_search_flags(p: argparse.ArgumentParser) -> None:
    """The flags shared by the search and study actions: budget, resources, run folder."""
    p.add_argument("--trials", type=int,
                   help="trials to run (default: the space's [search].trials)")
    p.add_argument("--max-epochs", type=int, help="epochs a trial trains at most (ASHA's max_t)")
    p.add_argument("--concurrency", type=int, help="trials running at once")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPU cores per trial (also its torch threads)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPU share per trial, e.g. 0.25 packs 4 trials on a GPU (default: 0.25"
                   " when CUDA is present, which also grows the budget to the space's gpu_trials"
                   " / gpu_epochs; else 0)")
    p.add_argument("--data-dir", type=Path,
                   help="data location (CIFAR-10 batches, or an ImageFolder root); default"
                   " $NAS_DATA_DIR, then the per-user cache")
    p.add_argument("--name", help="run folder name under --results-dir (default: space-time)")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--seed", type=int, help="sampler and training seed (default: the space's)")
    p.add_argument("--resume", action="store_true", help="continue the run named by --name")
    p.add_argument("--address", help="join an existing Ray cluster (host:port) instead of a"
                   " local one")
    p.add_argument("--storage", help="SQLAlchemy URL of the Optuna study (default: SQLite in"
                   " the run folder)")


def options_from(args: argparse.Namespace, space: Path):
    """SearchOptions from parsed search flags."""
    from nas.search.engine import SearchOptions

    return SearchOptions(
        space=space, trials=args.trials, max_epochs=args.max_epochs,
        concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, data_dir=args.data_dir, name=args.name,
        seed=args.seed, resume=args.resume, address=args.address, storage=args.storage,
        results_dir=args.results_dir)


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


def search_main(argv: list[str]) -> int:
    """The search action."""
    return _search(search_parser().parse_args(argv))


def _search(args: argparse.Namespace) -> int:
    """The search action (or its dry run)."""
    from nas.search.engine import run_search
    from nas.search.report import describe_space, summarize
    from nas.search.space import load_space

    if args.dry_run:
        print(describe_space(load_space(args.space)))
        return 0
    outcome = run_search(options_from(args, args.space))
    print(summarize(outcome))
    return 130 if outcome.interrupted else 0
