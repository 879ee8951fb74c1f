"""`run_search.py [--space SPACE.toml] ...`: the search (or its dry run, or a bench replay)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.flags import add_search_flags, search_options
from nas.cli.main import program
from nas.results.meta import installed_version

DEFAULT_SPACE = "cifar_spectrum"  # a bundled space (nas.spaces), found wherever nas is installed


def parser() -> argparse.ArgumentParser:
    """Flags of the search action."""
    p = argparse.ArgumentParser(
        prog=program(),
        description="Search the convolution spectrum: Ray Tune schedules trials (ASHA), Optuna"
        " picks points, then the space's [verify] race retrains the close ones with fresh seeds."
        " With no arguments: the default CIFAR-10 space."
        " Other actions: dashboard, export, retrain, study, bench, supernet (each has --help).")
    p.add_argument("--version", action="version",
                   version=f"spectrum-nas {installed_version() or 'unknown'}")
    p.add_argument("--space", default=DEFAULT_SPACE,
                   help="search-space TOML file, or a bundled space's name (default"
                   f" {DEFAULT_SPACE}; the repository's search_spaces/ lists them)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the space (dimensions, size, cost range, reference points);"
                   " train nothing")
    p.add_argument("--replay", type=Path, metavar="BENCH_DIR",
                   help="replay the search against a bench folder (run_search.py bench):"
                   " trials read each point's measured curves instead of training")
    p.add_argument("--replay-speed", type=float, default=100.0,
                   help="a replayed epoch takes its measured seconds / this (default 100)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the space's [verify] race: the answer rests on the front end's"
                   " seeds alone")
    add_search_flags(p)
    return p


def main(argv: list[str]) -> int:
    """The search action (or its dry run): every flag is checked before either."""
    args = parser().parse_args(argv)  # --help and --version end here, before torch loads
    from nas.search.engine import Training, check_options, search
    from nas.search.memory import memory_share
    from nas.search.report import describe_space, summarize
    from nas.search.space.load import load_space, space_file
    from nas.search.storage import check_storage

    args.space = space_file(args.space)
    opts = search_options(args, args.space)
    check_options(opts)
    source = Training()
    if args.replay is not None:
        from nas.bench.replay import Replay

        source = Replay(args.replay, args.replay_speed)
    if args.dry_run:
        check_storage(opts.storage)
        space = load_space(args.space)
        share = None if (args.gpus_per_trial or 0) > 0 else memory_share(
            args.concurrency or space.search.concurrency)  # CPU trials: the machine's memory
        print(describe_space(space, memory=share))
        return 0
    outcome = search(opts, source=source)
    print(summarize(outcome))
    if args.replay is not None and "simulated_s" in outcome.table:
        print(f"Simulated compute: {outcome.table['simulated_s'].sum():,.0f} s of measured"
              f" training replayed from {args.replay}")
    if outcome.interrupted:
        return 130
    return _answer(outcome.run_dir, opts, race=not args.no_verify and args.replay is None)


def _answer(run_dir: Path, opts, race: bool) -> int:
    """Race the front end ([verify]) and print the answer last."""
    from nas.answer.render import render_console
    from nas.results.names import ANSWER_MD
    from nas.search.conclude import conclude
    from nas.search.report import resume_command

    answer, interrupted = conclude(run_dir, race=race, address=opts.address,
                                   data_dir=opts.data_dir)
    if interrupted:
        print(f"Verification interrupted; resume with: {resume_command(run_dir)}")
        return 130
    if answer is not None:
        print(render_console(answer))
        print(f"Answer: {run_dir / ANSWER_MD} (+ answer.json; the dashboard shows it first)")
    return 0
