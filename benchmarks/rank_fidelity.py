"""How faithfully the supernet, the zero-cost proxies and cheap baselines rank the bench.

    python -m benchmarks.rank_fidelity --bench results/bench/spectrum_bench --supernet-epochs 1 3 10

On the bench's points: Kendall's tau and Spearman's rho (bootstrap 95 % intervals) against the
bench's mean final accuracy, precision of the top 10 %, regret of the top-1 and of the best of
the top 5, for each supernet epoch count, each proxy, #params, MACs and the bench's own
epoch-1 accuracy, next to the seed-to-seed tau ceiling (supernets trained here, or read from
`run_search.py supernet SPACE --top-k 0` run folders with --supernet-runs); then the
end-to-end pipeline (score, verify the top 5 by their bench results) by regret at the compute
it used. Writes Markdown (--out). A partial bench is measured as what it is: every output
names the point count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import default_data_dir, load_note, machine
from nas.arch.genotype import Genotype
from nas.bench.rank import bootstrap_ci, precision_at, regret, top
from nas.bench.rank import kendall_tau as kendall
from nas.bench.rank import spearman_rho as spearman
from nas.bench.table import Bench, load_bench
from nas.data import load_splits
from nas.results.meta import read_meta
from nas.results.names import MODEL_FILE, SUPERNET_CSV, SUPERNET_DIR, SUPERNET_JSON
from nas.results.table import read_csv
from nas.search.space.load import load_space
from nas.search.space.types import Space
from nas.supernet.model import SuperNet
from nas.supernet.paths import enumerate_points
from nas.supernet.proxies import PROXIES
from nas.supernet.run import SANDWICH, UNIFORM_PATHS, train_config
from nas.supernet.score import batches, proxy_scorer, train_subset
from nas.supernet.train import train_supernet
from nas.supernet.workers import local_scorer, scoring_job
from nas.train.device import resolve_device

MIN_POINTS = 8  # fewer points make every statistic noise (--min-points to override)
VERIFY = 5  # the pipeline verifies the top 5 stand-alone


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A score per bench point and the core-seconds it took to compute all of them (what the
    bench's one-thread trials are charged in)."""

    name: str
    scores: list[float]
    core_s: float


def supernet_predictors(space: Space, bench: Bench, archs: list[Genotype], epochs: list[int],
                        args: argparse.Namespace) -> list[Predictor]:
    """One supernet per epoch count (its own schedule), scoring the bench's points here."""
    splits = load_splits(space.data, args.data_dir)
    found = []
    for count in epochs:
        cfg = train_config(space, {"epochs": count, "seed": args.seed})
        torch.manual_seed(cfg.seed)
        net = SuperNet(space)
        start = time.monotonic()
        with tempfile.TemporaryDirectory() as folder:
            train_supernet(net, space, splits, cfg, Path(folder), sandwich=args.sandwich,
                           uniform=args.uniform_paths)
        name = _name(count, args.sandwich, args.uniform_paths)
        found += _scored(name, net, space, splits, cfg, archs, args.calibration_images,
                         time.monotonic() - start, 0.0)
    return found


def _scored(name: str, net: SuperNet, space: Space, splits, cfg, archs: list[Genotype],
            images: int, seconds: float, core_s: float) -> list[Predictor]:
    """A trained supernet's accuracy and loss rankings of `archs`, scored in this process;
    charged `core_s` plus `seconds` of this process's threads."""
    device = resolve_device(cfg.device)
    start = time.monotonic()
    job = scoring_job(net, space, splits, train_subset(splits, images, cfg.seed), cfg,
                      cfg.precision, "val_acc")  # both scores are kept
    scores = local_scorer(job, device)(archs)
    used = core_s + (seconds + time.monotonic() - start) * torch.get_num_threads()
    print(f"{name}: {used:.0f} core-s", file=sys.stderr, flush=True)
    return [Predictor(name, [s["val_acc"] for s in scores], used),
            Predictor(f"{name}, −val loss", [-s["val_loss"] for s in scores], used)]


def supernet_run(run: Path, keys: list[str], tool: str) -> tuple[dict, pd.DataFrame, float,
                                                                  float]:
    """A `run_search.py supernet --top-k 0` folder read for a bench: supernet.json's record,
    supernet.csv by arch_key (every bench key scored, else a one-line exit naming `tool`), and
    its core-seconds: training, and training plus scoring."""
    record = json.loads((run / SUPERNET_JSON).read_text())
    table = read_csv(run / SUPERNET_CSV).set_index("arch_key")
    table.index = table.index.astype(str)
    missing = [k for k in keys if k not in table.index]
    if missing:
        raise SystemExit(f"{tool}: error: {run / SUPERNET_CSV} has no score for"
                         f" {len(missing)} bench point(s), e.g. {missing[0]}")
    if "score_cores" not in record:
        raise SystemExit(f"{tool}: error: {run / SUPERNET_JSON} has no score_cores"
                         " (written before scoring recorded its cores): score it again")
    train = record.get("train_s", 0.0) * record.get("train_threads", 0)
    return record, table, train, train + record["score_s"] * record["score_cores"]


def _name(epochs: int, sandwich: bool, uniform: int) -> str:
    """A supernet predictor's name: its epochs and how it sampled paths."""
    paths = f"{uniform} uniform path{'s' * (uniform > 1)}" + (" + sandwich" if sandwich else "")
    return f"supernet, {epochs} epoch{'s' * (epochs > 1)}, {paths}"


def run_predictors(runs: list[Path], keys: list[str], archs: list[Genotype],
                   args: argparse.Namespace) -> list[Predictor]:
    """Scores from `run_search.py supernet ... --top-k 0` run folders: their supernet.csv
    (accuracy, and -val loss where recorded), charged their training and scoring core-seconds
    for every point of the space; the --rescore runs' checkpoints also scored again here with
    each of --rescore-calibration's image counts."""
    found = []
    for run in runs:
        record, table, train, used = supernet_run(run, keys, "rank_fidelity")
        settings = record["settings"]
        name = (_name(settings["epochs"], settings["sandwich"], settings["uniform_paths"])
                if settings["rank"] == "supernet" else settings["rank"]) + f" ({run.name})"
        accuracy = "val_acc" if "val_acc" in table.columns else "score"  # before --score-by
        found.append(Predictor(name, [float(table.at[k, accuracy]) for k in keys], used))
        if "val_loss" in table.columns:
            found.append(Predictor(f"{name}, −val loss",
                                   [-float(table.at[k, "val_loss"]) for k in keys], used))
        if settings["rank"] == "supernet":
            found += _rescored(run, name, settings, train, archs, args)
    return found


def _rescored(run: Path, name: str, settings: dict, train_core_s: float, archs: list[Genotype],
              args: argparse.Namespace) -> list[Predictor]:
    """A run's trained supernet re-scored with other calibration sizes (no retraining)."""
    if run not in args.rescore:
        return []
    space = load_space(run / read_meta(run)["space_file"])
    splits = load_splits(space.data, args.data_dir)
    cfg = train_config(space, settings)  # as the run trained and scored
    net = SuperNet(space)
    net.load_state_dict(torch.load(run / SUPERNET_DIR / MODEL_FILE, weights_only=True))
    return [p for images in args.rescore_calibration
            for p in _scored(f"{name}, calibration {images} images", net, space, splits, cfg,
                             archs, images, 0.0, train_core_s)]


def proxy_predictors(space: Space, archs: list[Genotype], args) -> list[Predictor]:
    """Each zero-cost proxy on the freshly initialised networks, one batch of 64 images."""
    splits = load_splits(space.data, args.data_dir)
    device = resolve_device(space.train.device)
    x, y = next(iter(batches(train_subset(splits, 64, args.seed), splits, space.train, device,
                             64)))
    found = []
    for name in PROXIES:
        start = time.monotonic()
        scores = proxy_scorer(name, x, y, args.seed)(archs)
        found.append(Predictor(name, [s["score"] for s in scores],
                               (time.monotonic() - start) * torch.get_num_threads()))
    return found


def bench_predictors(bench: Bench, keys: list[str]) -> list[Predictor]:
    """#params, MACs (free) and the bench's own epoch-1 accuracy (one epoch of every point)."""
    points = [bench.points[k] for k in keys]
    first = sum(p.epoch_seconds[0] * len(p.curves) for p in points)
    return [Predictor("#params", [p.params for p in points], 0.0),
            Predictor("MACs", [p.macs for p in points], 0.0),
            Predictor("bench epoch-1 accuracy", [p.at(1) for p in points], first)]


def _ci(x, y, statistic, samples: int) -> str:
    value = statistic(x, y)
    low, high = bootstrap_ci(x, y, statistic, samples)
    return f"{value:+.3f} [{low:+.2f}, {high:+.2f}]"


def fidelity_rows(predictors: list[Predictor], truth: list[float], samples: int) -> list[str]:
    """The rank-fidelity table, one Markdown row per predictor."""
    rows = ["| predictor | Kendall τ [95 % CI] | Spearman ρ [95 % CI] | P@top-10 % |"
            " regret top-1 (pt) | regret best of top-5 (pt) |", "|---|---|---|---|---|---|"]
    for p in predictors:
        rows.append(f"| {p.name} | {_ci(p.scores, truth, kendall, samples)} |"
                    f" {_ci(p.scores, truth, spearman, samples)} |"
                    f" {precision_at(p.scores, truth):.2f} |"
                    f" {100 * regret(p.scores, truth):.2f} |"
                    f" {100 * regret(p.scores, truth, VERIFY):.2f} |")
    return rows


def pipeline_rows(predictors: list[Predictor], bench: Bench, keys: list[str],
                  truth: list[float]) -> list[str]:
    """Score, then verify the top 5 (charged their bench compute): regret at compute used."""
    total = sum(sum(bench.points[k].epoch_seconds) * len(bench.points[k].curves) for k in keys)
    per_point = [sum(bench.points[k].epoch_seconds) * len(bench.points[k].curves) for k in keys]
    rows = ["| pipeline | compute (core-s) | share of bench compute | regret (pt) |",
            "|---|---|---|---|"]
    for p in predictors:
        verify = sum(per_point[i] for i in top(p.scores, VERIFY))
        used = p.core_s + verify
        rows.append(f"| {p.name} + verify top-{VERIFY} | {used:,.0f} | {used / total:.1%} |"
                    f" {100 * regret(p.scores, truth, VERIFY):.2f} |")
    rng, k = np.random.default_rng(0), min(VERIFY, len(truth))
    draws = [max(truth[i] for i in rng.choice(len(truth), k, replace=False)) for _ in range(5000)]
    mean_cost = k * float(np.mean(per_point))
    expected = max(0.0, max(truth) - float(np.mean(draws)))  # no -0.00 from rounding
    rows.append(f"| random {VERIFY} points (mean of 5000 draws) | {mean_cost:,.0f} |"
                f" {mean_cost / total:.1%} | {100 * expected:.2f} |")
    return rows


def strategy_rows(path: Path, largest: float) -> list[str]:
    """benchmarks/search_strategies.py's measured strategies at budgets up to `largest` (a share
    of the bench's compute), as rows of the end-to-end table; none when it has not run."""
    if not path.is_file():
        return [f"| search strategies: not measured yet ({path} is missing) | | | |"]
    frame = read_csv(path)
    rows = []
    for r in frame[frame["budget"] <= largest].to_dict("records"):
        regret_pp = ("-" if not r["returned"] else f"{r['regret_pp_median']:.2f}"
                     f" [{r['regret_pp_q1']:.2f}–{r['regret_pp_q3']:.2f}]")
        rows.append(f"| {r['strategy']} (median [IQR] of {r['runs']} runs) | |"
                    f" {r['budget']:.0%} | {regret_pp} |")
    return rows


def ceiling(bench: Bench, keys: list[str], samples: int) -> str:
    """Kendall tau between two seeds' final accuracies: how well one run ranks another."""
    if bench.seeds < 2:
        return "n/a (the bench has one seed)"
    a = [bench.points[k].curves[0][-1] for k in keys]
    b = [bench.points[k].curves[1][-1] for k in keys]
    return _ci(a, b, kendall, samples)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=Path("results/bench/spectrum_bench"))
    p.add_argument("--supernet-epochs", type=int, nargs="*", default=[1, 3, 10],
                   help="one supernet per epoch count (none: skip the supernet)")
    p.add_argument("--supernet-runs", type=Path, nargs="*", default=[],
                   help="also (or instead, with --supernet-epochs and nothing after it) read the"
                   " scores of `run_search.py supernet SPACE --top-k 0` run folders")
    p.add_argument("--calibration-images", type=int, default=1024)
    p.add_argument("--rescore", type=Path, nargs="*", default=[],
                   help="of the --supernet-runs, those whose checkpoint is scored again with"
                   " each --rescore-calibration count")
    p.add_argument("--rescore-calibration", type=int, nargs="*", default=[256, 4000],
                   help="BN recalibration images of the re-scorings (default 256 4000)")
    p.add_argument("--sandwich", action=argparse.BooleanOptionalAction, default=SANDWICH)
    p.add_argument("--uniform-paths", type=int, default=UNIFORM_PATHS)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--strategies", type=Path, default=Path("results/bench/strategies.csv"),
                   help="benchmarks/search_strategies.py's table, compared end to end")
    p.add_argument("--min-points", type=int, default=MIN_POINTS)
    p.add_argument("--out", type=Path, default=Path("results/rank_fidelity.md"))
    args = p.parse_args(argv)
    if not set(args.rescore) <= set(args.supernet_runs):
        p.error("--rescore: each run must also be one of --supernet-runs")
    bench = load_bench(args.bench)
    space = load_space(bench.space_file)
    expected = len(enumerate_points(space) or [])
    keys = sorted(bench.points)
    if len(keys) < args.min_points:
        print(f"rank_fidelity: error: {args.bench} has {len(keys)} completed points; at least"
              f" {args.min_points} are needed for any rank statistic", file=sys.stderr)
        return 2
    partial = len(keys) < expected
    status = (f"PARTIAL bench: {len(keys)} of {expected} points; every figure below is a"
              " preview on these points only, not the measurement" if partial
              else f"complete bench: all {expected} points")
    print(status, file=sys.stderr, flush=True)
    archs = [Genotype.from_json(bench.points[k].genotype) for k in keys]
    truth = [bench.points[k].final for k in keys]
    predictors = supernet_predictors(space, bench, archs, args.supernet_epochs, args)
    predictors += run_predictors(args.supernet_runs, keys, archs, args)
    predictors += proxy_predictors(space, archs, args) + bench_predictors(bench, keys)
    shares = ("" if not partial else " With a partial bench the top 5 are a large share of the"
              " points present, so the shares below say little about the full bench.")
    text = [f"# Rank fidelity on {bench.run_dir.name}", "", f"**{status}.**", "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; {load_note()} at"
            " the end (timings on a shared machine).", "",
            f"Truth: mean over {bench.seeds} seed(s) of the validation accuracy after"
            f" {bench.epochs} epochs. Seed-to-seed Kendall τ ceiling:"
            f" {ceiling(bench, keys, args.bootstrap)}. Bench compute of these points:"
            f" {sum(sum(bench.points[k].epoch_seconds) * bench.seeds for k in keys):,.0f} s.", "",
            "## Ranking", "", *fidelity_rows(predictors, truth, args.bootstrap), "",
            f"## End to end: score, then verify the top {VERIFY}", "",
            f"Verification is charged the bench's own compute for those points ({bench.seeds}"
            " seed(s), the whole schedule, one core per trial); a score is charged its"
            " core-seconds: wall time × the torch threads (training, in-process scoring) or the"
            " cores of the Ray scoring workers." + shares,
            "",
            *pipeline_rows(predictors, bench, keys, truth),
            *strategy_rows(args.strategies, 0.2), "",
            f"Command: `python -m benchmarks.rank_fidelity {' '.join(argv or sys.argv[1:])}`"]
    out = "\n".join(text) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
