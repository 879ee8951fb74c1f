"""End to end: the same small search through `run_search.py` and through the script a user
writes without this tool (benchmarks/handwritten_search.py), whole-process wall times.

    NAS_DATA_DIR=../shared/data/cifar10-subset python -m benchmarks.search_vs_handwritten

Both search the default space's kind of network (6 trials, at most 2 epochs, 2 at a time, one
CPU each) with Ray Tune, Optuna and ASHA, on 4,000 training and 1,000 validation images of the
same CIFAR-10 training batches, in Ray's local cluster started the same way. Each runs as its
own process and is timed from start to exit (imports, Ray start, data, training, shutdown).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.common import default_data_dir, load_note, machine, timed
from nas.results.meta import read_meta
from nas.results.ranking import best_trial
from nas.results.table import read_table
from nas.search.cluster import LOCAL_ENV, QUIET_ENV
from nas.train.config import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPACE = ROOT / "search_spaces" / "cifar_spectrum.toml"
HANDWRITTEN = ROOT / "benchmarks" / "handwritten_search.py"


def ours(args: argparse.Namespace, env: dict[str, str], folder: Path) -> tuple[float, float, str]:
    """run_search.py on the default space: wall seconds, best val_acc, the resolved precision."""
    command = [sys.executable, str(ROOT / "run_search.py"), "--space", str(DEFAULT_SPACE),
               "--trials", str(args.trials), "--max-epochs", str(args.max_epochs),
               "--concurrency", str(args.concurrency), "--data-dir", str(args.data_dir),
               "--precision", args.precision, "--name", "ours", "--results-dir", str(folder)]
    seconds, _ = timed(command, env, ROOT)
    table = read_table(folder / "ours")
    best = best_trial(table)
    print(f"  run_search.py: {len(table)} trials"
          f" ({pd.Series(table['status']).value_counts().to_dict()})")
    return seconds, float(best["best_val_acc"]), read_meta(folder / "ours")["precision"]


def handwritten(args: argparse.Namespace, env: dict[str, str]) -> tuple[float, float]:
    """The user's script: wall seconds and best val_acc (from its last output line)."""
    data = Path(args.data_dir) / "cifar-10-batches-bin"
    command = [sys.executable, str(HANDWRITTEN), str(data), "--trials", str(args.trials),
               "--max-epochs", str(args.max_epochs), "--concurrency", str(args.concurrency)]
    seconds, done = timed(command, env, ROOT)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  handwritten: {result['trials']} trials, {result['finished']} with an accuracy")
    return seconds, float(result["best_val_acc"])


def main(argv: list[str] | None = None) -> float:
    """Time both, print both wall times, the ratio and both best accuracies; return the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--max-epochs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="run_search.py's precision (the handwritten script trains in fp32)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = p.parse_args(argv)
    if args.data_dir is None:
        raise SystemExit("--data-dir (or $NAS_DATA_DIR): a CIFAR-10 folder with"
                         " cifar-10-batches-bin/")
    # the same Ray settings for both: quiet, no usage stats, a loopback-only local cluster
    env = dict(os.environ, PYTHONUNBUFFERED="1", **QUIET_ENV, **LOCAL_ENV)
    print(machine())
    print(f"{args.trials} trials, <= {args.max_epochs} epochs, {args.concurrency} at a time;"
          f" before: {load_note()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        ours_s, ours_acc, precision = ours(args, env, Path(folder))
    print(f"  after run_search.py: {load_note()}", flush=True)
    hand_s, hand_acc = handwritten(args, env)
    print(f"  after the handwritten script: {load_note()}")
    ratio = hand_s / ours_s
    print(f"\nrun_search.py ({precision}):  {ours_s:7.1f} s wall, best val_acc {ours_acc:.4f}")
    print(f"handwritten (fp32):     {hand_s:7.1f} s wall, best val_acc {hand_acc:.4f}")
    print(f"wall time, handwritten / run_search.py: {ratio:.2f}x (target >= 2.0x at an equal"
          " or higher best accuracy)")
    return ratio


if __name__ == "__main__":
    main()
