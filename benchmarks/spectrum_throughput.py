"""Training images/s and GFLOP/s at every spectrum position of a bench's macro, with levers.

The points are a bench space's grid (default: `search_spaces/spectrum_bench_gamma1.toml`, the
72-point γ = 1 spectrum bench): `--points positions` keeps one point per (spectrum position,
op order) — mid activation and residual at their first choices, which barely change the cost
— and `--points all` times every point. Each point trains one epoch of `--images` images with
the trainer itself (`Trainer.epoch`: device-resident batches, augmentation, the space's
[train] settings at the trainer's precision), once per variant — the baseline and every
`--levers` transform of `conv_levers` — all from the same initial weights and seed, rounds
interleaved (A, B, A, B, ...) and the fastest round kept. Training GFLOP/s counts 6 FLOPs per
forward MAC (forward, and a backward pass of twice its cost, at 2 FLOPs per MAC), as
`trainer_throughput` does. `dloss` is the lever's epoch loss minus the baseline's: same
results show as float noise (~1e-6), not as a different curve.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmarks.conv_levers import LEVERS
from nas.arch.cost import cost
from nas.arch.genotype import Genotype
from nas.data import DataSpec, ImageSet, Splits, load_splits
from nas.search.space.enumerate import grid
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.search.space.types import Space
from nas.search.trial import initial_model
from nas.train.config import TrainConfig
from nas.train.device import resolve_precision
from nas.train.trainer import Trainer

DEFAULT_SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "spectrum_bench_gamma1.toml"
BASELINE = "baseline"
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Point:
    """One bench point: its label, params and network."""

    label: str
    params: dict
    arch: Genotype

    def groups(self) -> str:
        """The stages' group counts, '8/16/16'."""
        return "/".join(str(s.groups) for s in self.arch.stages)


def bench_points(space: Space, which: str = "positions") -> list[Point]:
    """The space's grid points; 'positions' keeps the first point of each (spectrum, order)."""
    points, seen = [], set()
    for params in grid(space):
        key = (params.get("spectrum"), params.get("order"))
        if which == "positions" and key in seen:
            continue
        seen.add(key)
        label = ",".join(f"{k}={v}" for k, v in params.items()
                         if k in ("spectrum", "order", "mid_act", "residual"))
        points.append(Point(label, dict(params), genotype(space, params)))
    return points


def train_config(space: Space, args) -> TrainConfig:
    """The space's [train] settings for a one-epoch timing run on the CPU."""
    precision = args.precision if args.precision in ("fp32", "bf16") else "auto"
    return dataclasses.replace(
        space.train, epochs=1, warmup_epochs=0, batch_size=args.batch_size, device="cpu",
        cpu_threads=args.threads, precision=resolve_precision(precision, "cpu"),
        chance_epochs=0)


def subset(splits: Splits, images: int) -> Splits:
    """The first `images` training images (for warm-up runs)."""
    train = ImageSet(splits.train.images[:images], splits.train.labels[:images],
                     splits.train.classes)
    return dataclasses.replace(splits, train=train)


def timed_epoch(model: nn.Module, splits: Splits, cfg: TrainConfig, clock: str
                ) -> tuple[float, float]:
    """Seconds of one training epoch by `clock`, and its mean loss."""
    trainer = Trainer(model, splits, cfg)
    start = CLOCKS[clock]()
    report = trainer.epoch()
    seconds = CLOCKS[clock]() - start
    return seconds, report.train_loss if report else float("nan")


def variants(levers: list[str]) -> dict[str, Callable[[nn.Module], nn.Module]]:
    """The baseline and each lever's transform."""
    return {BASELINE: lambda model: model} | {name: LEVERS[name] for name in levers}


def measure(points: list[Point], splits: Splits, cfg: TrainConfig, args
            ) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(point, variant) -> (seconds, loss) per round; rounds and variants interleaved."""
    runs = variants(args.levers)
    initial = {p.label: initial_model(p.arch, cfg, cfg.seed) for p in points}
    warm = subset(splits, 2 * cfg.batch_size)
    for p in points:  # one-off kernel set-up (oneDNN primitives) is not timed
        for transform in runs.values():
            timed_epoch(transform(copy.deepcopy(initial[p.label])), warm, cfg, args.clock)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(1, args.repeats + 1):
        for p in points:
            for name, transform in runs.items():
                model = transform(copy.deepcopy(initial[p.label]))
                took = timed_epoch(model, splits, cfg, args.clock)
                results.setdefault((p.label, name), []).append(took)
                print(f"  round {round_} {p.label:55s} {name:26s} {took[0]:7.2f} s"
                      f" loss {took[1]:.6f}", flush=True)
    return results


def bench_seconds(bench: Path | None) -> dict[tuple, float]:
    """Mean recorded train_s per (spectrum, order) of a bench's trials.csv, if given."""
    if bench is None or not (bench / "trials.csv").is_file():
        return {}
    import csv

    with (bench / "trials.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_s")]
    by_key: dict[tuple, list[float]] = {}
    for r in rows:
        key = (float(r["param_spectrum"]), r["param_order"])
        by_key.setdefault(key, []).append(float(r["train_s"]))
    return {k: statistics.median(v) for k, v in by_key.items()}


def report(points: list[Point], results, images: int, args, bench: dict[tuple, float]) -> dict:
    """Print the per-point table and the mean-time ratios; return them as a dict."""
    names = list(variants(args.levers))
    head = (f"{'point':42s} {'groups':>10s} {'params':>8s} {'MMAC/img':>8s} {'img/s':>7s}"
            f" {'GFLOP/s':>7s}" + ("  bench s" if bench else "")
            + "".join(f" {n[:20]:>20s}" for n in names[1:]))
    print("\n" + head)
    print(f"{'':42s} {'':>10s} {'':>8s} {'':>8s} {'':>7s} {'':>7s}" + ("         " if bench else "")
          + "".join(f" {'x faster  dloss':>20s}" for _ in names[1:]))
    best = {(p.label, n): min(results[(p.label, n)]) for p in points for n in names}
    for p in points:
        c = cost(p.arch)
        seconds, loss = best[(p.label, BASELINE)]
        rate = images / seconds
        row = (f"{p.label[:42]:42s} {p.groups():>10s} {c.params:8,d} {c.macs / 1e6:8.1f}"
               f" {rate:7.1f} {6 * c.macs * rate / 1e9:7.1f}")
        if bench:
            key = (p.params.get("spectrum"), p.params.get("order"))
            row += f" {bench.get(key, float('nan')):8.0f}"
        for n in names[1:]:
            s, lo = best[(p.label, n)]
            row += f" {seconds / s:8.2f}x {lo - loss:+10.1e}"
        print(row)
    mean = {n: statistics.fmean(best[(p.label, n)][0] for p in points) for n in names}
    print(f"\nmean seconds per point (a trial's time, up to a constant): {BASELINE}"
          f" {mean[BASELINE]:.2f}")
    summary = {"mean_seconds": mean}
    for n in names[1:]:
        print(f"  {n:26s} {mean[n]:.2f}  ->  {mean[BASELINE] / mean[n]:.2f}x the baseline")
    return summary



def select(points: list[Point], specs: list[str]) -> list[Point]:
    """The points matching any of the 'key=value,key=value' specs (all points if none)."""
    if not specs:
        return points
    wanted = [dict(kv.split("=", 1) for kv in spec.split(",")) for spec in specs]
    chosen = [p for p in points
              if any(all(str(p.params.get(k)) == v for k, v in w.items()) for w in wanted)]
    if not chosen:
        raise SystemExit(f"no point of the space matches {specs}; keys: {sorted(points[0].params)}")
    return chosen


def profile_models(args, space: Space, cfg: TrainConfig) -> list[tuple[str, nn.Module]]:
    """(label, initial model) to profile: the --point(s) of the space, else the --preset."""
    if args.point:
        return [(p.label, initial_model(p.arch, cfg, cfg.seed))
                for p in select(bench_points(space, "all"), args.point)]
    from nas.arch.model import build
    from nas.arch.zoo import preset

    torch.manual_seed(cfg.seed)
    model = build(preset(args.preset, width=args.width))
    return [(f"preset {args.preset} width={args.width}", model)]


def run(args) -> dict:
    """--spectrum, --profile or --concurrency: load the space and data, measure, print."""
    from benchmarks import concurrency, step_profile

    space = load_space(args.space)
    cfg = train_config(space, args)
    splits = load_splits(DataSpec(val_size=0, train_size=args.images, seed=space.data.seed),
                         args.data_dir)
    images = len(splits.train) // cfg.batch_size * cfg.batch_size
    torch.set_num_threads(args.threads)
    if args.profile:
        for label, model in profile_models(args, space, cfg):
            for name, transform in variants(args.levers).items():
                print(f"\n{label}, {name}: {args.steps} profiled steps of batch {cfg.batch_size},"
                      f" {args.threads} thread(s), {cfg.precision}")
                step_profile.main(transform(copy.deepcopy(model)), splits, cfg, args.steps)
        return {}
    points = select(bench_points(space, args.points), args.point)
    print(f"space {space.name}: {len(points)} points ({args.points}), {images} images per run,"
          f" batch {cfg.batch_size}, {args.threads} thread(s), {cfg.precision},"
          f" {args.clock} clock, levers: {', '.join(args.levers) or 'none'}", flush=True)
    if args.concurrency:
        return concurrency.main(points, cfg, images, args, space.data.seed)
    results = measure(points, splits, cfg, args)
    summary = report(points, results, images, args, bench_seconds(args.bench))
    if args.json:
        print(json.dumps({"summary": summary, "runs": {
            f"{p}|{v}": r for (p, v), r in results.items()}}))
    return summary
