"""`run_search.py supernet SPACE.toml`: train a supernet, score every point, verify the top k."""

from __future__ import annotations

import argparse

from nas.cli.flags import add_search_flags, search_options
from nas.cli.main import program
from nas.search.space.load import space_file
from nas.supernet.run import (
    CALIBRATION_IMAGES,
    SANDWICH,
    SCORE_TRIALS,
    TOP_K,
    UNIFORM_PATHS,
    SupernetRequest,
    run_supernet,
)
from nas.supernet.score import RANKINGS, SCORE_BY


def parser() -> argparse.ArgumentParser:
    """Flags of the supernet action: the search's, plus the supernet's own."""
    p = argparse.ArgumentParser(
        prog=f"{program()} supernet",
        description="Train one weight-sharing supernet over a spectrum space (single-path"
        " sampling, optionally with the sandwich rule), score every point with BN recalibrated per"
        " sub-network (enumerable spaces whole, larger ones by Optuna), then train the top-k"
        " stand-alone through the usual Ray Tune pipeline into the same run folder.")
    p.add_argument("space", help="search-space TOML file (spectrum blocks), or a bundled"
                   " space's name")
    p.add_argument("--epochs", type=int, help="supernet training epochs (default: the space's"
                   " [train] epochs)")
    p.add_argument("--top-k", type=int, default=TOP_K, help="points verified stand-alone"
                   f" (default {TOP_K}; 0 scores only)")
    p.add_argument("--rank", choices=RANKINGS, default="supernet",
                   help="what scores the points: the supernet, a zero-cost proxy of the untrained"
                   " network, or #params (default supernet)")
    p.add_argument("--sandwich", action=argparse.BooleanOptionalAction,
                   help="also train the smallest and largest path every step (BigNAS); default"
                   f" {'on' if SANDWICH else 'off'}: on the spectrum bench it ranked worse")
    p.add_argument("--uniform-paths", type=int, help="uniformly sampled"
                   f" paths per step (default {UNIFORM_PATHS})")
    p.add_argument("--score-by", choices=SCORE_BY, help="a sub-network's score: its"
                   f" validation accuracy or negated loss (default {SCORE_BY[0]})")
    p.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                   help="training images that re-estimate each sub-network's BN statistics"
                   f" (default {CALIBRATION_IMAGES})")
    p.add_argument("--score-trials", type=int, default=SCORE_TRIALS, help="a space with more"
                   " points than this is scored by this many Optuna trials instead of whole")
    p.add_argument("--latency", metavar="latency_ms@RUNTIME:bBATCH",
                   help="add each scored point's latency on that runtime and batch, predicted"
                   " by the latency table in the user's cache (its missing rows measured first),"
                   " and its accuracy/latency front; e.g. latency_ms@onnxruntime:b1")
    p.add_argument("--pareto", action="store_true", help="with --latency: rank (and verify)"
                   " front by front, the best score first within a front, instead of by score")
    add_search_flags(p)
    return p


def main(argv: list[str]) -> int:
    """The supernet action: 0 when done, 130 when the verification was interrupted."""
    args = parser().parse_args(argv)
    args.space = space_file(args.space)
    return run_supernet(SupernetRequest(
        args.space, search_options(args, args.space), args.epochs, args.top_k, args.rank,
        args.sandwich, args.uniform_paths, args.score_by, args.calibration_images,
        args.score_trials, args.latency, args.pareto))
