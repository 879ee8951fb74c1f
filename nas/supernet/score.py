"""Scoring sub-networks: BN recalibrated per sub-network, then validation accuracy; or a proxy."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from nas.arch.cost import cost
from nas.arch.genotype import Genotype, GenotypeError
from nas.arch.model import build
from nas.data import ImageSet, Splits
from nas.results import genotype_columns
from nas.search.space import Space, genotype
from nas.supernet.model import SuperNet
from nas.supernet.paths import enumerate_points, searched_params
from nas.supernet.proxies import PROXIES, proxy
from nas.train.augment import DeviceBatches
from nas.train.device import autocast
from nas.train.trainer import TrainConfig

RANKINGS = ("supernet", *PROXIES, "params")
Scorer = Callable[[Genotype], float]


def train_subset(splits: Splits, images: int, seed: int) -> ImageSet:
    """A fixed seeded subset of the training split (the same images for every sub-network)."""
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
    pick = order[:images]
    return ImageSet(splits.train.images[pick], splits.train.labels[pick], splits.train.classes)


def batches(images: ImageSet, splits: Splits, cfg: TrainConfig, device: torch.device,
            batch_size: int) -> DeviceBatches:
    """Unaugmented batches in a fixed order, laid out as the trainer lays them out."""
    return DeviceBatches(images, splits.mean, splits.std, batch_size=batch_size, device=device,
                         train=False, channels_last=cfg.channels_last)


@torch.no_grad()
def recalibrate(model: nn.Module, data: DeviceBatches, precision: str = "fp32") -> None:
    """Re-estimate every BN's running statistics for the active sub-network: reset them, forward
    the batches in train mode with a cumulative average (momentum None), then eval mode --
    Once-for-All's set_running_statistics (Cai et al. 2020)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with autocast(data.device, precision):
            for x, _ in data:
                model(x)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()


@torch.inference_mode()
def accuracy(model: nn.Module, data: DeviceBatches, precision: str = "fp32") -> float:
    """Top-1 accuracy in eval mode (NaN for no images)."""
    model.eval()
    with autocast(data.device, precision):
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
    return correct / data.images_per_epoch if data.images_per_epoch else math.nan


def supernet_scorer(supernet: SuperNet, calibration: DeviceBatches, val: DeviceBatches,
                    precision: str = "fp32") -> Scorer:
    """Validation accuracy of a sub-network after its own BN recalibration, computed in the
    precision the supernet trained in ("fp32" or "bf16")."""
    def score(arch: Genotype) -> float:
        supernet.set_path(arch)
        recalibrate(supernet, calibration, precision)
        return accuracy(supernet, val, precision)
    return score


def proxy_scorer(name: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> Scorer:
    """A zero-cost proxy of the freshly initialised stand-alone network (or its #params).

    Every BN scale starts at 1: a zero-gamma residual init would cut every path (and gradient)
    through the branches and blind the proxies to them.
    """
    def score(arch: Genotype) -> float:
        if name == "params":
            return float(cost(arch).params)
        torch.manual_seed(seed)
        return proxy(name, build(arch, zero_init_residual=False).to(x.device), x, y)
    return score


def score_point(space: Space, params: dict[str, Any], arch: Genotype, value: float,
                ranking: str) -> dict[str, Any]:
    """One row of the scored-points table."""
    c = cost(arch)
    return {"arch_key": arch.key(), "score": value, "ranking": ranking, "params": c.params,
            "macs": c.macs, "point": json.dumps(searched_params(space, params)),
            "genotype": arch.to_json(indent=None), **genotype_columns(arch)}


def score_space(space: Space, scorer: Scorer, ranking: str, trials: int, seed: int,
                log: Callable[[int, int], None] = lambda done, total: None) -> pd.DataFrame:
    """Every point of an enumerable space, else `trials` Optuna TPE trials on the scores;
    the table best first (ties to fewer MACs), with its rank."""
    points = enumerate_points(space)
    rows: dict[str, dict[str, Any]] = {}
    if points is not None and len(points) <= trials:
        for i, params in enumerate(points, start=1):
            arch = genotype(space, params)
            rows[arch.key()] = score_point(space, params, arch, scorer(arch), ranking)
            log(i, len(points))
    else:
        rows = _optuna(space, scorer, ranking, trials, seed, log)
    table = pd.DataFrame(list(rows.values()))
    table = table.sort_values(["score", "macs", "arch_key"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def _optuna(space: Space, scorer: Scorer, ranking: str, trials: int, seed: int,
            log: Callable[[int, int], None]) -> dict[str, dict[str, Any]]:
    """TPE over the space with the scorer as objective; a repeated point is scored once."""
    import optuna

    from nas.search.space import DefineByRun, violation

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: dict[str, dict[str, Any]] = {}
    ask = DefineByRun(space)

    def objective(trial) -> float:
        ask(trial)
        try:
            arch = genotype(space, trial.params)
        except GenotypeError:
            raise optuna.TrialPruned() from None
        if violation(space, arch) is not None:
            raise optuna.TrialPruned()
        if arch.key() not in rows:
            rows[arch.key()] = score_point(space, trial.params, arch, scorer(arch), ranking)
        log(trial.number + 1, trials)
        return rows[arch.key()]["score"]

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return rows
