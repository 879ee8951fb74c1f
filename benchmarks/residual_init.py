"""Does the zero-gamma residual init explain a bench's residual results? Retrain residual points
with gamma 1 under the bench's own settings and seeds, next to the bench's zero-gamma curves.

    python -m benchmarks.residual_init --bench results/bench/spectrum_bench --check

Each bench point with residual = identity named by --point (default: three positions along the
spectrum) is trained again per bench seed with [train] zero_init_residual = false; nothing else
changes (the bench's space, data split, schedule, seed, one thread per run, fp32). --check also
retrains the first point's first seed with the product's init: its curve must equal the bench's
to the last digit, or the comparison is not controlled (another CPU or torch build). Prints and
writes a Markdown table (--out): per point and seed the two final accuracies and their
difference, with the same point without a residual for scale.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import default_data_dir, load_note, machine
from nas.bench.table import Bench, load_bench
from nas.results.atomic import atomic_write
from nas.search.engine import trial_settings
from nas.search.resume import Budget
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.search.space.types import Space
from nas.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POINTS = ("spectrum=0.4,order=pw_dw,mid_act=none", "spectrum=0.6,order=pw_dw,mid_act=none",
                  "spectrum=1.0,order=pw_dw,mid_act=none")


def parse_point(text: str) -> dict[str, Any]:
    """'spectrum=1.0,order=pw_dw,mid_act=none' -> the bench space's parameters (residual set)."""
    point: dict[str, Any] = {"residual": "identity"}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--point {text!r}: expected name=value pairs separated by commas")
        point[name.strip()] = float(value) if name.strip() == "spectrum" else value.strip()
    return point


def bench_train_config(bench: Bench, seed: int, zero_init: bool) -> tuple[Space, TrainConfig]:
    """The bench's space and its trials' TrainConfig, as the search engine derives it from the
    recorded budget (fp32 where the budget predates recording the precision), with the residual
    init chosen."""
    space = load_space(bench.space_file)
    budget = Budget(**{"precision": "fp32", **bench.meta["budget"]})
    cfg = trial_settings(space, budget).train
    return space, dataclasses.replace(cfg, seed=seed, zero_init_residual=zero_init)


def train(job: tuple[str, dict[str, Any], int, bool, str | None]) -> dict[str, Any]:
    """One point, one seed, one init: its validation curve (a worker process, 1 thread)."""
    import torch

    from nas.data import load_splits
    from nas.search.trial import make_trainer
    from nas.train.device import resolve_precision

    bench_dir, point, seed, zero_init, data_dir = job
    torch.set_num_threads(1)
    bench = load_bench(Path(bench_dir))
    space, cfg = bench_train_config(bench, seed, zero_init)
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, cfg.device))
    splits = load_splits(space.data, data_dir)
    arch = genotype(space, point)
    trainer = make_trainer(arch, splits, cfg, seed)
    start = time.perf_counter()
    curve = [trainer.epoch().val_acc for _ in range(cfg.epochs)]
    return {"key": arch.key(), "point": point, "seed": seed, "zero_init": zero_init,
            "curve": curve, "seconds": time.perf_counter() - start}


def markdown(bench: Bench, runs: list[dict[str, Any]], header: list[str]) -> str:
    """Per point and seed: the bench's zero-gamma final, the gamma-1 final, and the difference."""
    space = load_space(bench.space_file)
    lines = [*header, "", "| point | seed | zero-gamma (bench) % | gamma 1 % | Δ pp |"
             " no residual (bench) % |", "|---|---|---|---|---|---|"]
    deltas = []
    for run in (r for r in runs if not r["zero_init"]):
        p = bench.points[run["key"]]
        plain = bench.points.get(genotype(space, run["point"] | {"residual": "none"}).key())
        before, after = p.curves[run["seed"]][-1], run["curve"][-1]
        deltas.append(100 * (after - before))
        name = ", ".join(f"{k} {v}" for k, v in run["point"].items() if k != "residual")
        lines.append(f"| {name} | {run['seed']} | {100 * before:.1f} | {100 * after:.1f} |"
                     f" {deltas[-1]:+.1f} | "
                     + (f"{100 * plain.curves[run['seed']][-1]:.1f}" if plain else "-") + " |")
    if len(deltas) > 1:
        se = statistics.stdev(deltas) / len(deltas) ** 0.5
        lines += ["", f"Mean Δ over {len(deltas)} runs: **{statistics.fmean(deltas):+.1f} ±"
                  f" {se:.1f} pp** (± one standard error of the mean)."]
    for run in (r for r in runs if r["zero_init"]):
        recorded = list(bench.points[run["key"]].curves[run["seed"]])
        same = [round(v, 4) for v in run["curve"]] == [round(v, 4) for v in recorded]
        lines += ["", f"Check, the product's init retrained ({run['point']}, seed {run['seed']}):"
                  f" {'equals' if same else '**differs from**'} the bench's curve"
                  + ("" if same else f" ({[round(v, 4) for v in run['curve']]} vs"
                     f" {[round(v, 4) for v in recorded]}): the comparison is not controlled")
                  + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=ROOT / "results" / "bench" / "spectrum_bench")
    p.add_argument("--point", action="append", dest="points", help="name=value,... of a bench"
                   " point without its residual (repeatable; default: three spectrum positions)")
    p.add_argument("--check", action="store_true", help="also retrain the first run with the"
                   " product's init: it must reproduce the bench's curve")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "residual_init.md")
    args = p.parse_args(argv)
    bench = load_bench(args.bench)
    space = load_space(bench.space_file)
    points = [parse_point(t) for t in (args.points or DEFAULT_POINTS)]
    for point in points:
        key = genotype(space, point).key()
        if key not in bench.points:
            raise SystemExit(f"--point {point}: not a point of the bench {args.bench}")
    data_dir = str(args.data_dir) if args.data_dir else None
    jobs = [(str(args.bench), pt, seed, False, data_dir) for pt in points
            for seed in range(bench.seeds)]
    if args.check:
        jobs.insert(0, (str(args.bench), points[0], 0, True, data_dir))
    header = [f"# Residual init on {bench.run_dir.name}: zero-gamma (the bench) vs gamma 1",
              "", f"{len(jobs)} runs of {bench.epochs} epochs, {args.jobs} at a time, 1 thread"
              f" each, fp32. {machine()}; {load_note()} at the start."]
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        runs = []
        for run in pool.map(train, jobs):
            runs.append(run)
            print(f"  {run['point']} seed {run['seed']} zero_init {run['zero_init']}:"
                  f" final {run['curve'][-1]:.4f} ({run['seconds']:.0f} s)", flush=True)
    text = markdown(bench, runs, header) + f"\nWall time {time.perf_counter() - start:.0f} s.\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: tmp.write_text(text))
    print(text)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
