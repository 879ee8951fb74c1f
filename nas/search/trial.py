"""One search trial in a Ray worker: params -> genotype -> constraints -> training -> reports."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.arch.cost import cost
from nas.arch.genotype import Genotype
from nas.arch.model import build
from nas.data import Splits
from nas.latency.measure import columns, measure
from nas.latency.settings import LatencyConfig
from nas.results.names import (
    CHECKPOINT_METRICS,
    GENOTYPE_FILE,
    HELD_OUT_ACC,
    MODEL_FILE,
    SEED,
    SEED_HELD_OUT_ACCS,
    STATE_FILE,
)
from nas.results.records import TrialReport
from nas.search.memory import MemoryShare, over_memory
from nas.search.space.points import constraint_values, genotype, violation
from nas.search.space.types import Space
from nas.train.config import TrainConfig
from nas.train.device import resolve_device, resolve_precision
from nas.train.latency import measure_latency
from nas.train.trainer import EpochReport, Trainer


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares (resources and budget come from the CLI)."""

    space: Space
    train: TrainConfig  # epochs = the most a trial trains (ASHA's max_t)
    repeats: int = 1
    references: tuple[tuple[str, str], ...] = ()  # (genotype key, reference name)
    latency_iters: int = 20
    memory: MemoryShare | None = None  # a CPU trial's share of the machine's memory


NOT_MEASURED = math.nan  # val_acc of a report without a measurement (Ray needs the key; ASHA
# and the searcher skip NaN, where a 0.0 would read as a measured accuracy)


def describe(arch: Genotype, settings: TrialSettings) -> TrialReport:
    """The trial's static facts, reported with every result."""
    c = cost(arch)
    return {"arch_key": arch.key(), "genotype": arch.to_json(indent=None), "params": c.params,
            "macs": c.macs, "reference": dict(settings.references).get(arch.key(), ""),
            "constraints": constraint_values(settings.space, arch)}


def run_trial(config: dict[str, Any], settings: TrialSettings, splits: Splits) -> None:
    """The Ray Tune function trainable: one result per epoch, mean over `repeats` seeds."""
    import ray  # deferred: this module is imported by tools that do not need Ray
    from ray import tune

    params = {k: v for k, v in config.items() if k != SEED}  # a verification run's own seed
    arch = genotype(settings.space, params)
    facts = describe(arch, settings)
    seeds = _seeds(settings, config.get(SEED))
    facts[SEED] = seeds[0]
    facts["node_id"] = ray.get_runtime_context().get_node_id()
    device = resolve_device(settings.train.device)
    # resolved once, on this trial's device: its memory, training, validation and latency alike
    precision = resolve_precision(settings.train.precision, device)
    cfg = dataclasses.replace(settings.train, precision=precision)
    reason = violation(settings.space, arch) or over_memory(arch, cfg, settings.memory,
                                                            settings.repeats)
    if reason is not None:  # checked on paper; nothing is trained (a latency objective's
        # column is there all the same, NaN: Ray wants every objective in every report)
        tune.report({**facts, **columns(settings.space.latency), "val_acc": NOT_MEASURED,
                     "status": "infeasible", "reason": reason})
        return
    trainers = [make_trainer(arch, splits, cfg, seed) for seed in seeds]
    facts["device"] = device.type
    facts["precision"] = precision
    facts["latency_ms"] = measure_latency(trainers[0].model, _input_shape(arch), device,
                                          warmup=3, iters=settings.latency_iters,
                                          precision=precision)
    facts |= runtime_latencies(trainers[0].model, arch, settings.space.latency)
    start = _restore(trainers)
    for epoch in range(start + 1, settings.train.epochs + 1):
        reports = [trainer.epoch() for trainer in trainers]
        reason = (f"non-finite training loss in epoch {epoch}" if any(r is None for r in reports)
                  else next((why for t in trainers if (why := t.divergence())), None))
        if reason:  # recorded as diverged: never scored, never "best"
            curve = _curve(trainers)
            tune.report({**facts, "val_acc": NOT_MEASURED, "curve": curve, "status": "diverged",
                         "reason": reason})
            return
        metrics: TrialReport = {
            **facts, **_summary(reports), **_curves(trainers), "status": "running",
            "train_s": sum(r.epoch_seconds for t in trainers for r in t.history)}
        if epoch == settings.train.epochs:  # the full budget: scored once on held-out images
            metrics |= _held_out(trainers)
        with tempfile.TemporaryDirectory() as folder:
            _save(Path(folder), trainers, arch, epoch, metrics["val_acc"])
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def runtime_latencies(model: nn.Module, arch: Genotype, config: LatencyConfig
                      ) -> dict[str, float | str]:
    """The [latency] columns of a model: each runtime and batch timed on the CPU, as a
    deployment would run it, whatever device it trained on."""
    return columns(config, measure(model, _input_shape(arch), config, "cpu"))


def _seeds(settings: TrialSettings, first: int | None = None) -> list[int]:
    """The seeds a trial trains: `repeats` of them from its point's own seed (a verification
    run) or from the search's."""
    start = settings.train.seed if first is None else int(first)
    return [start + r for r in range(settings.repeats)]


def initial_model(arch: Genotype, cfg: TrainConfig, seed: int) -> nn.Module:
    """The network a run trains, initialised under `seed` (with cfg's residual init)."""
    torch.manual_seed(seed)
    return build(arch, cfg.zero_init_residual)


def make_trainer(arch: Genotype, splits: Splits, cfg: TrainConfig, seed: int) -> Trainer:
    """A fresh model (initialised under `seed`) and its trainer (cfg's precision resolved)."""
    return Trainer(initial_model(arch, cfg, seed), splits, dataclasses.replace(cfg, seed=seed))


def _input_shape(arch: Genotype) -> tuple[int, int, int]:
    return (arch.in_channels, arch.resolution, arch.resolution)


def _curve(trainers: list[Trainer]) -> list[float]:
    """Mean validation accuracy per finished epoch, over the seeds (restored epochs included)."""
    epochs = min(len(t.history) for t in trainers)
    return [statistics.fmean(t.history[e].val_acc for t in trainers) for e in range(epochs)]


def _curves(trainers: list[Trainer]) -> TrialReport:
    """Every finished epoch so far: the mean accuracy, and per seed its accuracy and loss; the
    epoch's training seconds summed over the seeds (what a bench replays)."""
    epochs = min(len(t.history) for t in trainers)
    return {"curve": _curve(trainers),
            "seed_curves": [[r.val_acc for r in t.history[:epochs]] for t in trainers],
            "seed_loss_curves": [[r.train_loss for r in t.history[:epochs]] for t in trainers],
            "epoch_s_curve": [sum(t.history[e].epoch_seconds for t in trainers)
                              for e in range(epochs)]}


def _held_out(trainers: list[Trainer]) -> TrialReport:
    """Each seed's accuracy on the held-out split, and their mean; nothing when the splits
    hold none ([verify].held_out = 0)."""
    if any(t.held_out_batches is None for t in trainers):
        return {}
    accs = [t.held_out_acc() for t in trainers]
    return {HELD_OUT_ACC: statistics.fmean(accs), SEED_HELD_OUT_ACCS: accs}


def _summary(reports: list[EpochReport]) -> dict[str, float]:
    """Mean (and spread) over the seeds of one epoch."""
    accs = [r.val_acc for r in reports]
    return {
        "val_acc": statistics.fmean(accs),
        "val_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "seed_val_accs": accs,  # per seed, so studies can pool and compare seeds
        "train_loss": statistics.fmean(r.train_loss for r in reports),
        "epoch_seconds": sum(r.epoch_seconds for r in reports),
        "images_per_s": statistics.fmean(r.images_per_s for r in reports),
    }


def _save(folder: Path, trainers: list[Trainer], arch: Genotype, epoch: int,
          val_acc: float) -> None:
    """Weights of the first seed's model (for export) and every trainer's state (for resume);
    metrics.json lists every file's size, so a copy a full disk cut short is recognised."""
    torch.save(trainers[0].model.state_dict(), folder / MODEL_FILE)
    torch.save({"epoch": epoch, "trainers": [t.state_dict() for t in trainers]},
               folder / STATE_FILE)
    (folder / GENOTYPE_FILE).write_text(arch.to_json())
    sizes = {name: (folder / name).stat().st_size for name in (MODEL_FILE, STATE_FILE,
                                                                GENOTYPE_FILE)}
    (folder / CHECKPOINT_METRICS).write_text(json.dumps({"epoch": epoch, "val_acc": val_acc,
                                                         "files": sizes}))


def _restore(trainers: list[Trainer]) -> int:
    """Continue an interrupted trial from its last checkpoint; return the epochs already done."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / STATE_FILE, weights_only=True)
    for trainer, trainer_state in zip(trainers, state["trainers"], strict=True):
        trainer.load_state_dict(trainer_state)
    return int(state["epoch"])
