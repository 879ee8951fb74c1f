"""Threads per trial against concurrent trials: total training images/s on the same cores.

For each point, `--threads` cores either train one trial with all of them (intra-op threads)
or `--threads` trials with one thread each at the same time (what a search with concurrency
N and one CPU per trial does, the spectrum bench's setting). Both train the same images in
total: the single trial trains N epochs, each concurrent one a single epoch. Each `--levers`
variant (e.g. `system-malloc`, the trainer before it kept freed memory) is timed in the
concurrent setting too. Every configuration runs in fresh worker processes (spawned, so no
thread pool or allocator state is shared); the workers load data and warm up first, then meet
at a barrier before each point, so start-up is not timed.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import time
from pathlib import Path

import torch

from benchmarks.spectrum_points import Point, subset, timed_epoch
from nas.data import DataSpec, load_splits
from nas.train.config import TrainConfig
from nas.train.trainer import Trainer


def _worker(variant: str, archs: list[str], cfg: TrainConfig, images: int,
            data_dir: Path | None, seed: int, epochs: int, barrier, out) -> None:
    """Train each point `epochs` epochs after the barrier; put (point, start, end) on `out`."""
    from benchmarks.spectrum_throughput import prepared
    from nas.arch.genotype import Genotype

    torch.set_num_threads(cfg.cpu_threads or 1)
    splits = load_splits(DataSpec(val_size=0, train_size=images, seed=seed), data_dir)
    warm = subset(splits, 2 * cfg.batch_size)
    for arch in archs:  # one-off kernel set-up is not timed
        model, run_cfg = prepared(variant, Genotype.from_json(arch), cfg)
        timed_epoch(model, warm, run_cfg, "wall")
    runs = [prepared(variant, Genotype.from_json(a), cfg) for a in archs]
    for i, (model, run_cfg) in enumerate(runs):
        trainer = Trainer(model, splits, dataclasses.replace(run_cfg, epochs=epochs))
        barrier.wait()
        start = time.monotonic()  # system-wide: comparable across the workers
        for _ in range(epochs):
            trainer.epoch()
        out.put((i, start, time.monotonic()))


def run_config(points: list[Point], cfg: TrainConfig, variant: str, trials: int, threads: int,
               args, seed: int) -> list[float]:
    """Wall seconds per point for `trials` concurrent trials of `threads` threads each."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(trials), ctx.Queue()
    per = dataclasses.replace(cfg, cpu_threads=threads)
    epochs = args.threads // trials  # the same images in total either way
    archs = [p.arch.to_json(indent=None) for p in points]
    procs = [ctx.Process(target=_worker, args=(variant, archs, per, args.images, args.data_dir,
                                               seed, epochs, barrier, out))
             for _ in range(trials)]
    for proc in procs:
        proc.start()
    spans: dict[int, list[tuple[float, float]]] = {}
    for _ in range(trials * len(points)):
        i, start, end = out.get()
        spans.setdefault(i, []).append((start, end))
    for proc in procs:
        proc.join()
    return [max(e for _, e in spans[i]) - min(s for s, _ in spans[i]) for i in range(len(points))]


def configs(n: int, levers: list[str]) -> dict[str, tuple[str, int, int]]:
    """Label -> (variant, trials, threads): the baseline both ways, each lever as N trials."""
    out = {f"1 trial x {n} threads": ("baseline", 1, n),
           f"{n} trials x 1 thread": ("baseline", n, 1)}
    return out | {f"{n} trials x 1 thread, {v}": (v, n, 1) for v in levers}


def main(points: list[Point], cfg: TrainConfig, images: int, args, seed: int) -> dict:
    """Interleave the configurations round by round; print total images/s and the ratios."""
    n = args.threads
    runs = configs(n, args.levers)
    best: dict[str, list[float]] = {}
    for round_ in range(1, args.repeats + 1):
        for name, (variant, trials, threads) in runs.items():
            seconds = run_config(points, cfg, variant, trials, threads, args, seed)
            best[name] = [min(a, b) for a, b in zip(best.get(name, seconds), seconds,
                                                   strict=True)]
            print(f"  round {round_} {name}: {sum(seconds):.1f} s", flush=True)
    total = n * images  # images trained per point, summed over the trials
    names = list(runs)
    reference = names[1]  # N one-thread trials of the trainer as it is
    print(f"\ntotal images/s; ratios against '{reference}'")
    print(f"{'point':34s}" + "".join(f" {k[:28]:>28s}" for k in names))
    for i, p in enumerate(points):
        rates = [total / best[k][i] for k in names]
        print(f"{p.label[:34]:34s}" + "".join(f" {r:28.1f}" for r in rates))
    ratio = {k: sum(best[reference]) / sum(best[k]) for k in names}
    for k in names:
        print(f"all points, {k}: {ratio[k]:.2f}x the images/s of '{reference}'")
    return {"seconds": best, "ratio": ratio}
