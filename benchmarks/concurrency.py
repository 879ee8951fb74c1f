"""Threads per trial against concurrent trials: total training images/s on the same cores.

For each point, `--threads` cores either train one trial with all of them (intra-op threads)
or `--threads` trials with one thread each at the same time (what a search with concurrency
N and one CPU per trial does). Both train the same images in total: the single trial trains
N epochs, each concurrent one a single epoch. Every configuration runs in fresh worker
processes (spawned, so no thread pool is shared); the workers load data and warm up first,
then meet at a barrier before each point, so start-up is not timed.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing as mp
import time
from pathlib import Path

import torch

from benchmarks.spectrum_points import Point, subset, timed_epoch
from nas.data import DataSpec, load_splits
from nas.search.trial import initial_model
from nas.train.config import TrainConfig
from nas.train.trainer import fit


def _worker(archs: list[str], cfg: TrainConfig, images: int, data_dir: Path | None, seed: int,
            epochs: int, barrier, out) -> None:
    """Train each point `epochs` epochs after the barrier; put (point, start, end) on `out`."""
    from nas.arch.genotype import Genotype

    torch.set_num_threads(cfg.cpu_threads or 1)
    splits = load_splits(DataSpec(val_size=0, train_size=images, seed=seed), data_dir)
    warm = subset(splits, 2 * cfg.batch_size)
    models = [initial_model(Genotype.from_json(a), cfg, cfg.seed) for a in archs]
    for model in models:
        timed_epoch(copy.deepcopy(model), warm, cfg, "wall")
    for i, model in enumerate(models):
        barrier.wait()
        start = time.monotonic()  # system-wide: comparable across the workers
        fit(model, splits, dataclasses.replace(cfg, epochs=epochs))
        out.put((i, start, time.monotonic()))


def run_config(points: list[Point], cfg: TrainConfig, trials: int, threads: int, args,
               seed: int) -> list[float]:
    """Wall seconds per point for `trials` concurrent trials of `threads` threads each."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(trials), ctx.Queue()
    per = dataclasses.replace(cfg, cpu_threads=threads)
    epochs = args.threads // trials  # the same images in total either way
    archs = [p.arch.to_json(indent=None) for p in points]
    procs = [ctx.Process(target=_worker, args=(archs, per, args.images, args.data_dir, seed,
                                               epochs, barrier, out)) for _ in range(trials)]
    for proc in procs:
        proc.start()
    spans: dict[int, list[tuple[float, float]]] = {}
    for _ in range(trials * len(points)):
        i, start, end = out.get()
        spans.setdefault(i, []).append((start, end))
    for proc in procs:
        proc.join()
    return [max(e for _, e in spans[i]) - min(s for s, _ in spans[i]) for i in range(len(points))]


def main(points: list[Point], cfg: TrainConfig, images: int, args, seed: int) -> dict:
    """Interleave 1 trial x N threads and N trials x 1 thread; print total images/s."""
    n = args.threads
    configs = {f"1 trial x {n} threads": (1, n), f"{n} trials x 1 thread": (n, 1)}
    best: dict[str, list[float]] = {}
    for round_ in range(1, args.repeats + 1):
        for name, (trials, threads) in configs.items():
            seconds = run_config(points, cfg, trials, threads, args, seed)
            best[name] = [min(a, b) for a, b in zip(best.get(name, seconds), seconds,
                                                   strict=True)]
            print(f"  round {round_} {name}: {sum(seconds):.1f} s", flush=True)
    total = n * images  # images trained per point, summed over the trials
    names = list(configs)
    print(f"\n{'point':42s}" + "".join(f" {k:>22s}" for k in names) + "  ratio (img/s)")
    for i, p in enumerate(points):
        rates = [total / best[k][i] for k in names]
        print(f"{p.label[:42]:42s}" + "".join(f" {r:22.1f}" for r in rates)
              + f"  {rates[1] / rates[0]:.2f}x")
    means = {k: sum(best[k]) for k in names}
    print(f"all points: {names[1]} / {names[0]} = {means[names[0]] / means[names[1]]:.2f}x"
          " total images/s")
    return {"seconds": best, "ratio": means[names[0]] / means[names[1]]}
