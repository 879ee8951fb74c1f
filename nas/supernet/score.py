"""Scoring sub-networks: BN recalibrated per sub-network, then validation accuracy and loss."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from nas.arch.cost import cost
from nas.arch.genotype import Genotype, GenotypeError
from nas.arch.model import build
from nas.data import ImageSet, Splits
from nas.results.table import genotype_columns
from nas.search.space.points import genotype
from nas.search.space.types import Space
from nas.supernet.model import SuperNet
from nas.supernet.paths import enumerate_points, searched_params
from nas.supernet.proxies import PROXIES, proxy
from nas.train.augment import DeviceBatches
from nas.train.config import TrainConfig
from nas.train.device import autocast

RANKINGS = ("supernet", *PROXIES, "params")
SCORE_BY = ("val_acc", "val_loss")  # a supernet score: accuracy (default) or the negated loss
Scores = dict[str, float]  # "score" (higher is better) and any extra columns of the point
Scorer = Callable[[list[Genotype]], list[Scores]]  # a batch at a time: workers share it out


def train_subset(splits: Splits, images: int, seed: int) -> ImageSet:
    """A fixed seeded subset of the training split (the same images for every sub-network)."""
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
    pick = order[:images]
    return ImageSet(splits.train.images[pick], splits.train.labels[pick], splits.train.classes)


def batches(images: ImageSet, norm: Splits, cfg: TrainConfig, device: torch.device | str,
            batch_size: int) -> DeviceBatches:
    """Unaugmented batches in a fixed order, normalised by `norm`'s mean and std (a Splits or a
    ScoringJob), laid out as the trainer lays them out."""
    return DeviceBatches(images, norm.mean, norm.std, batch_size=batch_size, device=device,
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
def evaluate(model: nn.Module, data: DeviceBatches, precision: str = "fp32"
             ) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy in eval mode (NaN for no images)."""
    model.eval()
    correct, loss = 0, 0.0
    with autocast(data.device, precision):
        for x, y in data:
            logits = model(x).float()
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
    n = data.images_per_epoch
    return (correct / n, loss / n) if n else (math.nan, math.nan)


def one_by_one(score: Callable[[Genotype], Scores]) -> Scorer:
    """A batch scorer that scores its batch in this process, one point after another."""
    return lambda archs: [score(a) for a in archs]


def supernet_scorer(supernet: SuperNet, calibration: DeviceBatches, val: DeviceBatches,
                    precision: str, by: str) -> Callable[[Genotype], Scores]:
    """Validation accuracy and loss of a sub-network after its own BN recalibration, computed
    in the precision the supernet trained in ("fp32" or "bf16"); the score is the accuracy or
    the negated loss (`by`)."""
    if by not in SCORE_BY:
        raise ValueError(f"score by {by!r}: one of {', '.join(SCORE_BY)}")

    def score(arch: Genotype) -> Scores:
        supernet.set_path(arch)
        recalibrate(supernet, calibration, precision)
        acc, loss = evaluate(supernet, val, precision)
        return {"score": acc if by == "val_acc" else -loss, "val_acc": acc, "val_loss": loss}
    return score


def proxy_scorer(name: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> Scorer:
    """A zero-cost proxy of the freshly initialised stand-alone network (or its #params).

    Every BN scale starts at 1: a zero-gamma residual init would cut every path (and gradient)
    through the branches and blind the proxies to them.
    """
    def score(arch: Genotype) -> Scores:
        if name == "params":
            return {"score": float(cost(arch).params)}
        torch.manual_seed(seed)
        return {"score": proxy(name, build(arch, zero_init_residual=False).to(x.device), x, y)}
    return one_by_one(score)


def score_point(space: Space, params: dict[str, Any], arch: Genotype, scores: Scores,
                ranking: str) -> dict[str, Any]:
    """One row of the scored-points table."""
    c = cost(arch)
    return {"arch_key": arch.key(), "score": scores["score"], "ranking": ranking,
            **{k: v for k, v in scores.items() if k != "score"}, "params": c.params,
            "macs": c.macs, "point": json.dumps(searched_params(space, params)),
            "genotype": arch.to_json(indent=None), **genotype_columns(arch)}


def score_space(space: Space, scorer: Scorer, ranking: str, trials: int, seed: int,
                log: Callable[[int, int], None] = lambda done, total: None,
                batch: int = 1) -> pd.DataFrame:
    """Every point of an enumerable space, else `trials` Optuna TPE trials on the scores,
    handed to the scorer `batch` points at a time; the table best first (ties to fewer MACs),
    with its rank."""
    points = enumerate_points(space)
    rows: dict[str, dict[str, Any]] = {}
    if points is not None and len(points) <= trials:
        step = max(batch, 1) * 4  # a few points per worker per call: fewer round trips
        for start in range(0, len(points), step):
            chunk = points[start:start + step]
            archs = [genotype(space, params) for params in chunk]
            for params, arch, scores in zip(chunk, archs, scorer(archs), strict=True):
                rows[arch.key()] = score_point(space, params, arch, scores, ranking)
            log(start + len(chunk), len(points))
    else:
        rows = _optuna(space, scorer, ranking, trials, seed, log, batch)
    table = pd.DataFrame(list(rows.values()))
    table = table.sort_values(["score", "macs", "arch_key"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def _optuna(space: Space, scorer: Scorer, ranking: str, trials: int, seed: int,
            log: Callable[[int, int], None], batch: int) -> dict[str, dict[str, Any]]:
    """TPE over the space with the scorer as objective, `batch` trials asked at a time (the
    constant liar keeps them apart); a repeated point is scored once, an infeasible one pruned."""
    import optuna

    from nas.search.space.points import DefineByRun, violation

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: dict[str, dict[str, Any]] = {}
    ask = DefineByRun(space)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=seed, constant_liar=batch > 1))
    done = 0
    while done < trials:
        asked, new = [], {}
        for _ in range(min(batch, trials - done)):
            trial = study.ask()
            ask(trial)
            try:
                arch = genotype(space, trial.params)
            except GenotypeError:
                arch = None
            if arch is None or violation(space, arch) is not None:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            asked.append((trial, arch))
            if arch.key() not in rows:
                new.setdefault(arch.key(), (trial.params, arch))
        for (params, arch), scores in zip(new.values(),
                                          scorer([a for _, a in new.values()]), strict=True):
            rows[arch.key()] = score_point(space, params, arch, scores, ranking)
        for trial, arch in asked:
            study.tell(trial, rows[arch.key()]["score"])
        done += min(batch, trials - done)
        log(done, trials)
    return rows
