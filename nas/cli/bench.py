"""`run_search.py bench SPACE.toml`: train every point of an enumerable space, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.bench.run import BenchRequest, run_bench
from nas.cli.flags import add_search_flags, search_options
from nas.cli.main import program


def parser() -> argparse.ArgumentParser:
    """Flags of the bench action: the search's, with the space positional."""
    p = argparse.ArgumentParser(
        prog=f"{program()} bench",
        description="Train every point of an enumerable space (each [search].repeats seeds,"
        " the whole [train] schedule, no early stopping) into one run folder: a ground truth"
        " to replay searches against. Resumable with --resume --name NAME.")
    p.add_argument("space", type=Path, nargs="?", help="the bench space (.toml), or a bench"
                   " folder to tabulate again (bench.md, bench.html); omitted with --resume,"
                   " which reads the run folder's own copy")
    p.add_argument("--reuse", type=Path, metavar="BENCH_DIR", help="copy the completed points"
                   " of another bench whose space differs only in a setting those points cannot"
                   " feel (e.g. zero_init_residual, for points without a residual) instead of"
                   " training them again; each copied row names its bench")
    add_search_flags(p)
    return p


def main(argv: list[str]) -> int:
    """The bench action: 0 when every point is done, 130 when interrupted."""
    args = parser().parse_args(argv)
    return run_bench(BenchRequest(args.space, search_options(args, args.space), args.reuse))
