"""`run_search.py retrain RUN_DIR`: the top architectures trained from scratch and tested."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from nas.cli.main import program
from nas.results.names import RETRAIN_CSV, RETRAIN_JSON
from nas.retrain import ALL_IMAGES, RetrainRequest, read_rows, retrain, table
from nas.train.config import PRECISIONS


def parser() -> argparse.ArgumentParser:
    """Flags of the retrain action."""
    p = argparse.ArgumentParser(
        prog=f"{program()} retrain",
        description="Train the search's top architectures from scratch on train+validation"
        " and report held-out test accuracy (mean ± std over seeds). Finished runs are kept in"
        f" the run folder ({RETRAIN_CSV}, {RETRAIN_JSON}) and not repeated.")
    p.add_argument("run", type=Path, help="the search run folder (results/<name>)")
    p.add_argument("--top", type=int, default=RetrainRequest.top,
                   help=f"distinct architectures to retrain, best first (default"
                   f" {RetrainRequest.top})")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the space's [train])")
    p.add_argument("--seeds", type=int, default=RetrainRequest.seeds,
                   help=f"seeds 0..S-1 per architecture (default {RetrainRequest.seeds})")
    p.add_argument("--best-reference", action="store_true",
                   help="also retrain the best reference point (if not in the top K): the"
                   " yardstick the search's find is measured against")
    p.add_argument("--data-dir", type=Path, help="data location, as for the search")
    p.add_argument("--train-size", type=_train_size, metavar=f"{{{ALL_IMAGES},N}}",
                   help=f"train on '{ALL_IMAGES}' the data's training images, or a stratified N"
                   " of them (default: the search's train + validation splits); with --data-dir"
                   " at the complete CIFAR-10, 'all' is its 50,000")
    p.add_argument("--cpus", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="training and test precision (default: the search's; 'auto' is bf16"
                   " where the device computes it natively, else fp32)")
    return p


def _train_size(value: str) -> int | str:
    """--train-size: 'all' or a count (RetrainRequest checks its range)."""
    if value == ALL_IMAGES:
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected '{ALL_IMAGES}' or a count, got {value!r}"
                                         ) from None


def main(argv: list[str]) -> int:
    """The retrain action: 130 when interrupted (the finished runs are kept)."""
    args = parser().parse_args(argv)
    try:
        # flushed: the per-epoch progress lines must show as they happen, also when piped
        summary = retrain(RetrainRequest(args.run, args.top, args.epochs, args.seeds,
                                         args.best_reference, args.data_dir, args.cpus,
                                         args.precision, args.train_size),
                          log=functools.partial(print, flush=True))
    except KeyboardInterrupt:
        kept = len(read_rows(args.run))
        print(f"Interrupted: {kept} finished runs are kept in {args.run / RETRAIN_CSV}; the same"
              " command continues with the rest.", file=sys.stderr)
        return 130
    print(table(summary))
    print(f"Results: {args.run / RETRAIN_CSV}, {args.run / RETRAIN_JSON}")
    return 0
