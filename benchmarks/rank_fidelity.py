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
import torch

from benchmarks.common import default_data_dir, load_note, machine
from nas.arch.genotype import Genotype
from nas.bench.rank import bootstrap_ci, precision_at, regret, top
from nas.bench.rank import kendall_tau as kendall
from nas.bench.rank import spearman_rho as spearman
from nas.bench.table import Bench, load_bench
from nas.data import load_splits
from nas.results import SUPERNET_CSV, SUPERNET_JSON, read_csv
from nas.search.space import Space, load_space
from nas.supernet.model import SuperNet
from nas.supernet.paths import enumerate_points
from nas.supernet.proxies import PROXIES
from nas.supernet.score import batches, proxy_scorer, supernet_scorer, train_subset
from nas.supernet.train import train_supernet
from nas.train.device import resolve_device, resolve_precision

MIN_POINTS = 8  # fewer points make every statistic noise (--min-points to override)
VERIFY = 5  # the pipeline verifies the top 5 stand-alone


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A score per bench point and the seconds it took to compute all of them."""

    name: str
    scores: list[float]
    seconds: float


def supernet_predictors(space: Space, bench: Bench, archs: list[Genotype], epochs: list[int],
                        args: argparse.Namespace) -> list[Predictor]:
    """One supernet per epoch count (its own schedule), scoring the bench's points."""
    splits = load_splits(space.data, args.data_dir)
    found = []
    for count in epochs:
        cfg = dataclasses.replace(space.train, epochs=count, seed=args.seed,
                                  warmup_epochs=min(space.train.warmup_epochs, count))
        device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        net = SuperNet(space)
        start = time.monotonic()
        with tempfile.TemporaryDirectory() as folder:
            train_supernet(net, space, splits, cfg, Path(folder), sandwich=not args.no_sandwich)
        net.to(device)
        scorer = supernet_scorer(
            net, batches(train_subset(splits, args.calibration_images, cfg.seed), splits, cfg,
                         device, cfg.batch_size),
            batches(splits.val, splits, cfg, device, cfg.eval_batch_size),
            resolve_precision(cfg.precision, device))
        scores = [scorer(a) for a in archs]
        found.append(Predictor(f"supernet, {count} epoch{'s' * (count > 1)}", scores,
                               time.monotonic() - start))
        print(f"{found[-1].name}: {found[-1].seconds:.0f}s", file=sys.stderr, flush=True)
    return found


def run_predictors(runs: list[Path], keys: list[str]) -> list[Predictor]:
    """Scores from `run_search.py supernet ... --top-k 0` run folders: their supernet.csv, and
    their supernet.json's training and scoring seconds (for every point of the space)."""
    found = []
    for run in runs:
        record = json.loads((run / SUPERNET_JSON).read_text())
        table = read_csv(run / SUPERNET_CSV)
        scores = dict(zip(table["arch_key"].astype(str), table["score"], strict=True))
        missing = [k for k in keys if k not in scores]
        if missing:
            raise SystemExit(f"rank_fidelity: error: {run / SUPERNET_CSV} has no score for"
                             f" {len(missing)} bench point(s), e.g. {missing[0]}")
        settings = record["settings"]
        name = (f"{settings['rank']}, {settings['epochs']} epoch{'s' * (settings['epochs'] > 1)}"
                if settings["rank"] == "supernet" else settings["rank"])
        found.append(Predictor(f"{name} ({run.name})", [scores[k] for k in keys],
                               record.get("train_s", 0.0) + record["score_s"]))
    return found


def proxy_predictors(space: Space, archs: list[Genotype], args) -> list[Predictor]:
    """Each zero-cost proxy on the freshly initialised networks, one batch of 64 images."""
    splits = load_splits(space.data, args.data_dir)
    device = resolve_device(space.train.device)
    x, y = next(iter(batches(train_subset(splits, 64, args.seed), splits, space.train, device,
                             64)))
    found = []
    for name in PROXIES:
        start = time.monotonic()
        scorer = proxy_scorer(name, x, y, args.seed)
        found.append(Predictor(name, [scorer(a) for a in archs], time.monotonic() - start))
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
    rows = ["| pipeline | compute (s) | share of bench compute | regret (pt) |",
            "|---|---|---|---|"]
    for p in predictors:
        verify = sum(per_point[i] for i in top(p.scores, VERIFY))
        used = p.seconds + verify
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
    p.add_argument("--no-sandwich", action="store_true")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--strategies", type=Path, default=Path("results/bench/strategies.csv"),
                   help="benchmarks/search_strategies.py's table, compared end to end")
    p.add_argument("--min-points", type=int, default=MIN_POINTS)
    p.add_argument("--out", type=Path, default=Path("results/rank_fidelity.md"))
    args = p.parse_args(argv)
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
    predictors += run_predictors(args.supernet_runs, keys)
    predictors += proxy_predictors(space, archs, args) + bench_predictors(bench, keys)
    shares = ("" if not partial else " With a partial bench the top 5 are a large share of the"
              " points present, so the shares below say little about the full bench.")
    text = [f"# Rank fidelity on {bench.run_dir.name}", "", f"**{status}.**", "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; {load_note()} at"
            " the end (timings are wall seconds on a shared machine).", "",
            f"Truth: mean over {bench.seeds} seed(s) of the validation accuracy after"
            f" {bench.epochs} epochs. Seed-to-seed Kendall τ ceiling:"
            f" {ceiling(bench, keys, args.bootstrap)}. Bench compute of these points:"
            f" {sum(sum(bench.points[k].epoch_seconds) * bench.seeds for k in keys):,.0f} s.", "",
            "## Ranking", "", *fidelity_rows(predictors, truth, args.bootstrap), "",
            f"## End to end: score, then verify the top {VERIFY}", "",
            f"Verification is charged the bench's own compute for those points ({bench.seeds}"
            " seed(s), the whole schedule); the score's compute is its wall time here." + shares,
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
