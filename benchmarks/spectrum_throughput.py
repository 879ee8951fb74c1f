"""Training images/s and GFLOP/s at every spectrum position of a bench's macro, with levers.

The points are a bench space's grid (default: `search_spaces/spectrum_bench_gamma1.toml`, the
72-point γ = 1 spectrum bench): `--points positions` keeps one point per (spectrum position,
op order) — mid activation and residual at their first choices, which barely change the cost
— and `--points all` times every point. Each point trains one epoch of `--images` images with
the trainer itself (`Trainer.epoch`: device-resident batches, augmentation, the space's
[train] settings at the trainer's precision) under each variant: the baseline (the trainer
as it is), each `conv_levers` transform and each trainer setting in `SETTINGS`, all from the
same initial weights and seed. Every (round, variant) runs in a fresh process — the
allocator setting is process-wide, and no variant inherits another's caches — rounds
interleave the variants (A, B, A, B, ...) and the fastest round is kept. Training GFLOP/s
counts 6 FLOPs per forward MAC (forward, and a backward pass of twice its cost, at 2 FLOPs
per MAC), as `trainer_throughput` does. `dloss` is the variant's epoch loss minus the
baseline's: 0 where it computes bitwise the same, rounding-level (1e-5 .. 1e-4 after a few
steps, as SGD carries last-bit differences of sums taken in another order) where it does not.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import statistics
from concurrent.futures import ProcessPoolExecutor

import torch

from benchmarks.conv_levers import LEVERS
from benchmarks.spectrum_points import (
    Point,
    bench_points,
    bench_seconds,
    select,
    subset,
    timed_epoch,
    train_config,
    varying,
)
from nas.arch.cost import cost
from nas.arch.genotype import Genotype
from nas.data import DataSpec, load_splits
from nas.search.space.load import load_space
from nas.search.trial import initial_model
from nas.train.config import TrainConfig

BASELINE = "baseline"
# Trainer settings timed like the levers; system-malloc is the trainer before it kept freed
# memory (glibc's defaults: activations page-faulted in afresh every step).
SETTINGS: dict[str, dict] = {"system-malloc": {"keep_freed_memory": False}}
VARIANTS = sorted(LEVERS) + sorted(SETTINGS)


def prepared(name: str, arch: Genotype, cfg: TrainConfig):
    """The initial model and the config of `arch` under variant `name`."""
    model = initial_model(arch, cfg, cfg.seed)
    if name in SETTINGS:
        return model, dataclasses.replace(cfg, **SETTINGS[name])
    return (LEVERS[name](model) if name in LEVERS else model), cfg


def run_variant(name: str, points: list[Point], cfg: TrainConfig, args, data_seed: int
                ) -> dict[str, tuple[float, float]]:
    """In a fresh process: warm every point up, then time one epoch of each under `name`."""
    torch.set_num_threads(args.threads)
    splits = load_splits(DataSpec(val_size=0, train_size=args.images, seed=data_seed),
                         args.data_dir)
    warm = subset(splits, 2 * cfg.batch_size)
    for p in points:  # one-off kernel set-up (oneDNN primitives) is not timed
        model, run_cfg = prepared(name, p.arch, cfg)
        timed_epoch(model, warm, run_cfg, args.clock)
    timed = {}
    for p in points:
        model, run_cfg = prepared(name, p.arch, cfg)
        timed[p.label] = timed_epoch(model, splits, run_cfg, args.clock)
    return timed


def in_fresh_process(fn, *args):
    """fn(*args) in a newly spawned process (no state shared with this one or a previous run)."""
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1) as pool:
        return pool.submit(fn, *args).result()


def measure(points: list[Point], cfg: TrainConfig, args, data_seed: int
            ) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(point, variant) -> (seconds, loss) per round; rounds and variants interleaved."""
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(1, args.repeats + 1):
        for name in [BASELINE, *args.levers]:
            timed = in_fresh_process(run_variant, name, points, cfg, args, data_seed)
            for label, took in timed.items():
                results.setdefault((label, name), []).append(took)
            print(f"  round {round_} {name:26s} {sum(s for s, _ in timed.values()):8.2f} s"
                  f" over {len(points)} points", flush=True)
    return results


def report(points: list[Point], results, images: int, args, bench: dict[tuple, float],
           keys: list[str]) -> dict:
    """Print the per-point table and the mean-time ratios; return them as a dict."""
    names = [BASELINE, *args.levers]
    print(f"\npoint = {' '.join(keys)}")
    head = (f"{'point':42s} {'groups':>10s} {'params':>8s} {'MMAC/img':>8s} {'img/s':>7s}"
            f" {'GFLOP/s':>7s}" + ("  bench s" if bench else "")
            + "".join(f" {n[:20]:>20s}" for n in names[1:]))
    print(head)
    print(" " * 88 + ("         " if bench else "")
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
    for n in names[1:]:
        print(f"  {n:26s} {mean[n]:.2f}  ->  {mean[BASELINE] / mean[n]:.2f}x the baseline's"
              f" speed (the baseline {mean[n] / mean[BASELINE]:.2f}x its)")
    return {"mean_seconds": mean}


def profile_variant(name: str, label: str, arch: Genotype, cfg: TrainConfig, args,
                    data_seed: int) -> str:
    """In a fresh process: the roofline and the per-layer profile of `arch` under `name`."""
    from benchmarks import step_profile

    torch.set_num_threads(args.threads)
    splits = load_splits(DataSpec(val_size=0, train_size=args.images, seed=data_seed),
                         args.data_dir)
    model, cfg = prepared(name, arch, cfg)
    head = (f"\n{label}, {name}: {args.steps} profiled steps of batch {cfg.batch_size},"
            f" {args.threads} thread(s), {cfg.precision}\n")
    return head + step_profile.main(model, splits, cfg, args.steps)


def profiled(args, space) -> list[tuple[str, Genotype]]:
    """(label, network) to profile: the --point(s) of the space, else the --preset."""
    if args.point:
        return [(p.label, p.arch) for p in select(bench_points(space, "all"), args.point)]
    from nas.arch.zoo import preset

    return [(f"preset {args.preset} width={args.width}", preset(args.preset, width=args.width))]


def run(args) -> dict:
    """--spectrum, --profile or --concurrency: load the space, measure, print."""
    from benchmarks import concurrency

    space = load_space(args.space)
    cfg = train_config(space, args.precision, args.batch_size, args.threads)
    splits = load_splits(DataSpec(val_size=0, train_size=args.images, seed=space.data.seed),
                         args.data_dir)
    images = len(splits.train) // cfg.batch_size * cfg.batch_size
    if args.profile:
        for label, arch in profiled(args, space):
            for name in [BASELINE, *args.levers]:
                print(in_fresh_process(profile_variant, name, label, arch, cfg, args,
                                       space.data.seed), flush=True)
        return {}
    points = select(bench_points(space, args.points), args.point)
    print(f"space {space.name}: {len(points)} points ({args.points}), {images} images per run,"
          f" batch {cfg.batch_size}, {args.threads} thread(s), {cfg.precision},"
          f" {args.clock} clock, variants: {', '.join([BASELINE, *args.levers])}", flush=True)
    if args.concurrency:
        return concurrency.main(points, cfg, images, args, space.data.seed)
    results = measure(points, cfg, args, space.data.seed)
    summary = report(points, results, images, args, bench_seconds(args.bench), varying(space))
    if args.json:
        print(json.dumps({"summary": summary, "runs": {
            f"{p}|{v}": r for (p, v), r in results.items()}}))
    return summary
