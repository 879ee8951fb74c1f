"""Replay a search against a bench: the real stack (Ray Tune, Optuna, ASHA, the run folder),
with trials that read a point's measured curve instead of training it.

Each trial draws one of the bench's seeds and reports that seed's validation accuracy and loss
epoch by epoch; each epoch "takes" its measured training seconds divided by `speed`, so trials
finish in a realistic order, and `simulated_s` records the measured seconds it replayed: the
compute the search would have spent.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.bench.run import bench_points
from nas.bench.table import Bench, BenchError, load_bench
from nas.latency.settings import is_latency_name
from nas.results.meta import update_meta
from nas.results.records import TrialReport
from nas.search.engine import SearchOptions
from nas.search.space.points import genotype
from nas.search.space.types import Space
from nas.search.trial import TrialSettings, describe

DEFAULT_SPEED = 100.0  # replayed epochs run this many times faster than they were measured


def check_covered(bench: Bench, space: Space) -> None:
    """Every point the space can propose must be in the bench (else a trial could not replay)."""
    missing = [p for p in bench_points(space) if genotype(space, p).key() not in bench.points]
    if missing:
        raise BenchError(f"{bench.run_dir}: {len(missing)} point(s) of {space.path} are not in"
                         f" the bench, e.g. {missing[0]}; replay the bench's own space")


def check_objective(bench: Bench, space: Space) -> None:
    """A latency objective is one every point of the bench measured (a replay times nothing)."""
    for name in filter(is_latency_name, space.objectives.metrics[1:]):
        lacking = [p for p in bench.points.values() if name not in dict(p.latencies)]
        if lacking:
            measured = sorted({n for p in bench.points.values() for n, _ in p.latencies})
            raise BenchError(f"{bench.run_dir}: {len(lacking)} point(s) did not measure {name}"
                             f" (the bench measured: {', '.join(measured) or 'latency_ms only'})"
                             "; replay an objective the bench measured")


def replay_seed(trial_id: str, search_seed: int, seeds: int) -> int:
    """The bench seed a trial replays: drawn per trial, repeatable for the same trial."""
    digest = hashlib.sha256(f"{search_seed}/{trial_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % seeds


def replay_trial(config: dict[str, Any], settings: TrialSettings, bench: Bench,
                 speed: float) -> None:
    """The Ray Tune function trainable of a replay: one result per epoch, as a trial reports."""
    from ray import tune

    arch = genotype(settings.space, config)
    point = bench.points.get(arch.key())
    if point is None:  # check_covered makes this unreachable for the bench's own space
        raise BenchError(f"{bench.run_dir}: point {config} is not in the bench")
    seed = replay_seed(tune.get_context().get_trial_id(), settings.train.seed, bench.seeds)
    facts: TrialReport = {**describe(arch, settings), "device": "replay",
                          "latency_ms": point.latency_ms, **dict(point.latencies)}
    curve: list[float] = []
    losses: list[float] = []
    simulated = 0.0
    for epoch in range(min(settings.train.epochs, bench.epochs)):
        seconds = point.epoch_seconds[epoch]
        time.sleep(seconds / speed)
        simulated += seconds
        curve.append(point.curves[seed][epoch])
        losses.append(point.losses[seed][epoch])
        tune.report({**facts, "val_acc": curve[-1], "val_acc_std": 0.0,
                     "seed_val_accs": [curve[-1]], "train_loss": losses[-1],
                     "epoch_seconds": seconds, "curve": list(curve),
                     "seed_curves": [list(curve)], "seed_loss_curves": [list(losses)],
                     "epoch_s_curve": point.epoch_seconds[:epoch + 1], "train_s": simulated,
                     "simulated_s": simulated, "replay_seed": seed, "clock_s": time.time(),
                     "status": "running"})


@dataclass(frozen=True)
class Replay:
    """A TrialSource (nas.search.engine) whose trials replay `bench_dir`."""

    bench_dir: Path
    speed: float = DEFAULT_SPEED

    def __post_init__(self) -> None:
        if not self.speed > 0:  # refused before the search starts, a dry run included
            raise BenchError(f"--replay-speed: {self.speed} must be > 0")

    def trainable(self, space: Space, settings: TrialSettings, opts: SearchOptions,
                  run_dir: Path) -> Any:
        """The bench loaded once and checked to cover the space; the replaying trainable."""
        from ray import tune

        bench = load_bench(self.bench_dir)
        check_covered(bench, space)
        check_objective(bench, space)
        if settings.train.epochs > bench.epochs:
            raise BenchError(f"--max-epochs {settings.train.epochs}: the bench {self.bench_dir}"
                             f" measured {bench.epochs} epochs")
        update_meta(run_dir, {"replay": {"bench": str(self.bench_dir), "speed": self.speed,
                                         "bench_points": len(bench.points),
                                         "bench_compute_s": round(bench.compute_s(), 1)}})
        return tune.with_parameters(replay_trial, settings=settings, bench=bench,
                                    speed=self.speed)
