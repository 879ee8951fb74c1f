"""The supernet pipeline against the default search on the default per-stage space: both
through `run_search.py`, one after the other, whole-process wall times and best accuracies.

    NAS_DATA_DIR=../shared/data/cifar10-subset python -m benchmarks.supernet_vs_search

The search is `run_search.py` on the space with its own budget (TPE + ASHA, 20 trials, 6
epochs). The pipeline is `run_search.py supernet`: supernet training (`--supernet-epochs`),
`--score-trials` Optuna trials on supernet scores (the space has millions of points), then the
top `--top-k` trained stand-alone through Ray Tune for the same full schedule. Both best
accuracies are stand-alone validation accuracies of full-budget trials: the supernet's own
scores never rank a result. `--keep DIR` keeps both run folders (for the dashboard).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.common import default_data_dir, load_note, machine, timed
from nas.results.atomic import atomic_write
from nas.results.meta import read_meta
from nas.results.names import SUPERNET_JSON
from nas.results.ranking import best_trial
from nas.results.table import read_table
from nas.search.cluster import LOCAL_ENV, QUIET_ENV

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPACE = ROOT / "search_spaces" / "cifar_spectrum.toml"


def budget_flags(args: argparse.Namespace) -> list[str]:
    """The flags both runs share: data, precision, and an explicit epoch cap when given."""
    flags = ["--data-dir", str(args.data_dir), "--precision", args.precision]
    return flags + ([] if args.max_epochs is None else ["--max-epochs", str(args.max_epochs)])


def outcome(run_dir: Path) -> dict:
    """Best full-budget trial of a run folder: accuracy, its status and epochs, trial count."""
    table = read_table(run_dir)
    best = best_trial(table)
    if best is None:
        raise SystemExit(f"{run_dir}: no trial has an accuracy")
    return {"acc": float(best["best_val_acc"]), "status": str(best["status"]),
            "epochs": int(best["epochs"]), "trials": len(table), "trial": str(best["trial_id"]),
            "epochs_cap": read_meta(run_dir)["budget"]["epochs"]}


def search(args: argparse.Namespace, env: dict[str, str], folder: Path) -> tuple[float, dict]:
    command = [sys.executable, str(ROOT / "run_search.py"), "--space", str(args.space),
               *budget_flags(args), "--name", "search", "--results-dir", str(folder)]
    if args.trials is not None:  # an explicit 0 reaches run_search.py, which refuses it
        command += ["--trials", str(args.trials)]
    seconds, _ = timed(command, env, ROOT)
    return seconds, outcome(folder / "search")


def pipeline(args: argparse.Namespace, env: dict[str, str], folder: Path) -> tuple[float, dict]:
    command = [sys.executable, str(ROOT / "run_search.py"), "supernet", str(args.space),
               "--epochs", str(args.supernet_epochs), "--score-trials", str(args.score_trials),
               "--calibration-images", str(args.calibration_images),
               "--top-k", str(args.top_k), *budget_flags(args), "--name", "supernet",
               "--results-dir", str(folder)]
    seconds, _ = timed(command, env, ROOT)
    run = folder / "supernet"
    record = json.loads((run / SUPERNET_JSON).read_text())
    return seconds, outcome(run) | {"train_s": record.get("train_s"),
                                    "score_s": record.get("score_s")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", type=Path, default=DEFAULT_SPACE)
    p.add_argument("--trials", type=int, help="the search's trials (default: the space's)")
    p.add_argument("--max-epochs", type=int, help="both runs' epoch cap (default: the space's)")
    # sized so the pipeline's wall time stays within the search's on 2 cores: 3 epochs of 3
    # uniform paths (tau 0.41 on the bench), 70 points scored with BN recalibrated on 256
    # images (tau 0.50 vs 0.52 with 1,024 on the bench, a third less time), 2 verified (one
    # round at concurrency 2): top 4 took 1.08x and 1.39x the search's wall time
    # (results/supernet_vs_search.md)
    p.add_argument("--supernet-epochs", type=int, default=3)
    p.add_argument("--score-trials", type=int, default=70)
    p.add_argument("--calibration-images", type=int, default=256)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--keep", type=Path, help="keep the two run folders under this folder")
    p.add_argument("--out", type=Path, help="also write the result as Markdown here")
    args = p.parse_args(argv)
    if args.data_dir is None:
        p.error("--data-dir (or $NAS_DATA_DIR): a CIFAR-10 folder with cifar-10-batches-bin/")
    return args


def report(args: argparse.Namespace, search_s: float, found: dict, pipe_s: float,
           verified: dict) -> str:
    """The comparison as Markdown lines."""
    def epochs(o: dict) -> str:
        return f"{o['status']} after {o['epochs']} of {o['epochs_cap']} epochs"
    return "\n".join([
        f"# Supernet pipeline vs. the default search on {args.space.name}", "",
        f"{machine()}", "",
        "| run | wall | trials | best val_acc | best trial |", "| --- | --- | --- | --- | --- |",
        f"| `run_search.py` (TPE + ASHA) | {search_s:.1f} s | {found['trials']} |"
        f" {found['acc']:.4f} | {found['trial']}, {epochs(found)} |",
        f"| `run_search.py supernet` ({args.supernet_epochs} supernet epochs,"
        f" {args.score_trials} scored with BN on {args.calibration_images} images, top"
        f" {args.top_k} verified) | {pipe_s:.1f} s"
        f" (supernet training {verified['train_s']} s, scoring {verified['score_s']} s) |"
        f" {verified['trials']} | {verified['acc']:.4f} | {verified['trial']},"
        f" {epochs(verified)} |", "",
        f"Wall time, pipeline / search: {pipe_s / search_s:.2f}x; best accuracy, pipeline minus"
        f" search: {100 * (verified['acc'] - found['acc']):+.1f} pt (target: >= 0 at <= 1.00x)."])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # both runs get the same Ray settings: quiet, no usage stats, a loopback-only local cluster
    env = dict(os.environ, PYTHONUNBUFFERED="1", **QUIET_ENV, **LOCAL_ENV)
    print(machine())
    print(f"before: {load_note()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        search_s, found = search(args, env, folder)
        print(f"  search: {search_s:.1f} s, best {found['acc']:.4f}; {load_note()}", flush=True)
        pipe_s, verified = pipeline(args, env, folder)
        print(f"  supernet pipeline: {pipe_s:.1f} s, best {verified['acc']:.4f};"
              f" {load_note()}", flush=True)
    text = report(args, search_s, found, pipe_s, verified)
    print("\n" + text)
    if args.out:
        atomic_write(args.out, lambda tmp: tmp.write_text(text + "\n"))
    return 0


if __name__ == "__main__":
    main()
