"""Supernet training with the product's trainer: each step trains several sub-networks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from nas.data import Splits
from nas.results.atomic import atomic_write
from nas.results.names import MODEL_FILE, STATE_FILE
from nas.search.space.types import Space
from nas.supernet.model import SuperNet
from nas.supernet.paths import PathSampler, SupernetError
from nas.train.config import TrainConfig
from nas.train.trainer import EpochReport, Trainer


class SupernetTrainer(Trainer):
    """The Trainer (batches, optimizer, schedule, RNG, state) with single-path sampling.

    Each step forwards the step's sub-networks on the same batch and averages their losses, so
    one optimizer step follows the mean gradient of the sandwich (BigNAS, Yu et al. 2020) and
    the space's learning rate keeps its stand-alone meaning. Between steps the largest path is
    active, so the per-epoch validation reports the largest sub-network (shared BN statistics:
    a training monitor, not a score).
    """

    def __init__(self, supernet: SuperNet, space: Space, data: Splits, cfg: TrainConfig,
                 sandwich: bool = True, uniform: int = 1):
        self.sampler = PathSampler(space, cfg.seed, sandwich, uniform)
        supernet.set_path(self.sampler.largest)
        super().__init__(supernet, data, cfg)
        _momentum_from_zero(self.optimizer)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        archs = self.sampler.step()
        self.model.set_path(*archs)
        try:  # the logits of every path, concatenated: the labels repeat to match
            return super().train_step(x, y.repeat(len(archs)))
        finally:
            self.model.set_path(self.sampler.largest)

    def state_dict(self) -> dict:
        version, state, gauss = self.sampler.rng.getstate()
        return super().state_dict() | {"sampler": [version, list(state), gauss]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        version, words, gauss = state["sampler"]
        self.sampler.rng.setstate((version, tuple(words), gauss))


def _momentum_from_zero(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter a zero SGD momentum buffer before the first step.

    A step updates only the parameters its paths used (the others have no gradient, so SGD
    skips them). Torch's fused SGD starts its buffers only on a step where none exists yet, and
    fails (`expected Tensor ... got NoneType`) when a parameter gets its first gradient later --
    which uniform sampling without the sandwich rule does. A zero buffer is what the first step
    would make anyway: momentum * 0 + grad = grad.
    """
    if not isinstance(optimizer, torch.optim.SGD):
        return  # AdamW starts each parameter's state on its own first gradient
    for group in optimizer.param_groups:
        if group["momentum"]:
            for p in group["params"]:
                optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))


def train_supernet(supernet: SuperNet, space: Space, data: Splits, cfg: TrainConfig,
                   folder: Path, *, sandwich: bool = True, uniform: int = 1,
                   log: Callable[[EpochReport], None] = lambda r: None) -> list[EpochReport]:
    """Train for cfg.epochs, checkpointing every epoch into `folder`; a checkpoint there is
    continued (an interrupted run repeats no epoch). Returns every epoch's report."""
    trainer = SupernetTrainer(supernet, space, data, cfg, sandwich, uniform)
    if (folder / STATE_FILE).is_file():
        trainer.load_state_dict(torch.load(folder / STATE_FILE, weights_only=True))
    while len(trainer.history) < cfg.epochs:
        report = trainer.epoch()
        if report is None:
            raise SupernetError(f"supernet training diverged in epoch {len(trainer.history) + 1}"
                                " (non-finite loss); lower [train] lr")
        atomic_write(folder / STATE_FILE, lambda tmp: torch.save(trainer.state_dict(), tmp))
        atomic_write(folder / MODEL_FILE, lambda tmp: torch.save(supernet.state_dict(), tmp))
        log(report)
    return list(trainer.history)
