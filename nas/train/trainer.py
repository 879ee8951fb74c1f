"""The trainer: one explicit loop over device-resident batches, with per-epoch reporting."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.data import ImageSet, Splits
from nas.train.augment import DeviceBatches, reflect_pad
from nas.train.config import TrainConfig
from nas.train.device import (
    autocast,
    cpu_threads,
    keep_freed_memory,
    resolve_device,
    resolved,
    synchronize,
)

# OneCycleLR's defaults: start at peak / 25 and end at start / 1e4.
_ONECYCLE_DIV = 25.0
_ONECYCLE_FINAL_DIV = 1e4
# On an accelerator a finiteness check is a host sync, so the loss is only checked this often.
_ACCEL_CHECK_EVERY = 64


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch measured."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch
    val_acc: float  # validation accuracy in [0, 1]; NaN when the split is empty
    epoch_seconds: float  # training time of the epoch, validation excluded
    images_per_s: float  # training images per second
    lr: float  # learning rate of the epoch's last step


@dataclass(frozen=True)
class FitResult:
    """Outcome of `fit`."""

    status: str  # "completed" | "stopped" | "diverged"
    reason: str  # why it diverged ('' otherwise)
    epochs_run: int  # epochs finished and reported (a diverged epoch is not)
    history: tuple[EpochReport, ...]
    best_val_acc: float  # NaN when no epoch finished or there is no validation data
    final_val_acc: float
    train_seconds: float  # sum of the epochs' training time
    wall_seconds: float  # the whole call: setup, compilation, training and validation
    precision: str  # what training and validation computed in: "fp32" or "bf16"


def param_groups(model: nn.Module, weight_decay: float, bias_lr_scale: float = 1.0
                 ) -> list[dict]:
    """Split trainable parameters into a decayed group (ndim > 1) and an undecayed one, whose
    `lr_scale` multiplies the schedule's rate.

    Decaying batch-norm scales and biases only shrinks them towards a worse optimum;
    the usual practice decays conv and linear weights alone.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay,
         "lr_scale": 1.0},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0,
         "lr_scale": bias_lr_scale},
    ]


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """Build the configured optimizer over `param_groups` at the schedule's first rate."""
    groups = param_groups(model, cfg.weight_decay, cfg.bias_lr_scale)
    # The fused kernels update every parameter in one call; measured faster on CPU and CUDA.
    fused = device.type in ("cpu", "cuda")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, fused=fused
        )
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), fused=fused)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str,
              start: float = 0.0, end: float = 0.0) -> float:
    """Multiplier of the peak learning rate at 0-based `step` of `total_steps`; linear and
    cosine warm up from `start` and decay to `end` (onecycle has its own ends)."""
    if schedule == "onecycle":
        return _onecycle_factor(step, total_steps, warmup_steps)
    if step < warmup_steps:
        return start + (1.0 - start) * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return end + (1.0 - end) * (1.0 - progress)


def _onecycle_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """OneCycleLR's curve: cosine up from 1/25 to 1, then cosine down to 1/25/1e4."""
    start = 1.0 / _ONECYCLE_DIV
    end = start / _ONECYCLE_FINAL_DIV
    if step < warmup_steps:
        return _cosine_between(start, 1.0, step / warmup_steps)
    return _cosine_between(1.0, end, (step - warmup_steps) / max(1, total_steps - warmup_steps))


def _cosine_between(a: float, b: float, t: float) -> float:
    """Cosine interpolation from a (t=0) to b (t=1)."""
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))


def _nan_max(values: Sequence[float]) -> float:
    """Largest non-NaN value, or NaN when there is none."""
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


def evaluate(
    model: nn.Module,
    images: ImageSet,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int,
    device: torch.device | str,
    flip_tta: bool = False,
    translate_tta: bool = False,
    channels_last: bool = True,
    precision: str = "fp32",
) -> float:
    """Top-1 accuracy in [0, 1] of `model` on `images` (NaN when empty), in inference mode, at
    the resolved `precision` (pass the training's to test as it trained). `translate_tta`
    adds airbench94's level-2 views: the images shifted one pixel up-left and down-right
    (reflect-padded), weighted together as much as the unshifted view."""
    precision = resolved(precision)
    device = torch.device(device)
    batches = DeviceBatches(
        images,
        mean,
        std,
        batch_size=batch_size,
        device=device,
        train=False,
        channels_last=channels_last,
    )
    return _evaluate_batches(model.to(device), batches, flip_tta, precision, translate_tta)


def _tta_logits(model: nn.Module, x: torch.Tensor, flip: bool, translate: bool) -> torch.Tensor:
    """The model's float32 logits for `x`, summed over the test-time views asked for."""
    logits = model(x).float()
    if flip:  # mirrored images are as likely as the originals under flip augmentation
        logits = logits + model(x.flip(-1)).float()
    if translate:
        h, w = x.shape[-2:]
        padded = reflect_pad(x, 1)
        shifted = [_tta_logits(model, padded[..., o : o + h, o : o + w], flip, False)
                   for o in (0, 2)]
        logits = logits + (shifted[0] + shifted[1]) / 2
    return logits


def _evaluate_batches(
    model: nn.Module, batches: DeviceBatches, flip_tta: bool, precision: str,
    translate_tta: bool = False,
) -> float:
    """Accuracy over prepared evaluation batches; restores the model's train/eval mode."""
    total = batches.images_per_epoch
    if total == 0:
        return math.nan
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=batches.device)
    try:
        with torch.inference_mode(), autocast(batches.device, precision):
            for x, y in batches:
                logits = _tta_logits(model, x, flip_tta, translate_tta)
                correct += (logits.argmax(dim=1) == y).sum()
    finally:
        model.train(was_training)
    return correct.item() / total


def fit(
    model: nn.Module,
    data: Splits,
    cfg: TrainConfig,
    report: Callable[[EpochReport], bool | None] | None = None,
    resume: dict | None = None,
    keep: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train `model` in place on `data.train`, validating on `data.val` after every epoch.

    The batch order, augmentation and any randomness inside the model (dropout) are drawn
    from streams seeded with `cfg.seed`, so the same initial weights and seed give
    bitwise-identical results on CPU. `report` is called after each epoch; returning True
    stops the fit ("stopped"). A non-finite training loss, or one of `Trainer.divergence`'s
    rules, ends it with status "diverged" instead of raising. `cfg.precision` must be resolved
    (see `Trainer`). `keep` receives `Trainer.state_dict()` (live tensors: save or copy it
    there) after every epoch that neither diverged nor stopped; `resume`, such a state,
    continues the fit exactly where it was kept (same `cfg` and data), not from epoch 1.
    """
    wall_start = time.perf_counter()
    trainer = Trainer(model, data, cfg)
    if resume is not None:
        trainer.load_state_dict(resume)
    status, reason = "completed", ""
    for epoch in range(len(trainer.history) + 1, cfg.epochs + 1):
        epoch_report = trainer.epoch()
        if epoch_report is None:
            status, reason = "diverged", f"non-finite training loss in epoch {epoch}"
            break
        reason = trainer.divergence() or ""
        if reason:
            status = "diverged"
            break
        if report is not None and report(epoch_report):
            status = "stopped"
            break
        if keep is not None:
            keep(trainer.state_dict())
    history = tuple(trainer.history)
    return FitResult(
        status=status,
        reason=reason,
        epochs_run=len(history),
        history=history,
        best_val_acc=_nan_max([r.val_acc for r in history]),
        final_val_acc=history[-1].val_acc if history else math.nan,
        train_seconds=sum(r.epoch_seconds for r in history),
        wall_seconds=time.perf_counter() - wall_start,
        precision=trainer.precision,
    )


def _seeded_rng_state(seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The global RNG state(s) `torch.manual_seed(seed)` gives, without touching the caller's."""
    with torch.random.fork_rng(devices=_cuda_devices(device)):
        torch.manual_seed(seed)
        return _global_rng_state(device)


def _cuda_devices(device: torch.device) -> list[int]:
    """The CUDA device indices whose RNG a trainer on `device` uses."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _global_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Snapshot of torch's global CPU RNG and, on CUDA, the device's RNG."""
    state = {"cpu": torch.get_rng_state()}
    for index in _cuda_devices(device):
        state["cuda"] = torch.cuda.get_rng_state(index)
    return state


def _set_global_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore a `_global_rng_state` snapshot."""
    torch.set_rng_state(state["cpu"])
    for index in _cuda_devices(device):
        torch.cuda.set_rng_state(state["cuda"], index)


class Trainer:
    """One model's training state: device batches, optimizer, schedule position, history.

    `fit` drives one to the end; the search steps several in lock-step (seeds of one point)
    and checkpoints them with `state_dict` to resume an interrupted trial exactly. Each
    trainer keeps its own stream of torch's global RNG (used by dropout and the like), seeded
    with `cfg.seed` and swapped in only while it trains, so trainers stepped in lock-step do
    not perturb one another and the caller's RNG is left as it was.
    """

    def __init__(self, model: nn.Module, data: Splits, cfg: TrainConfig):
        """Place the model and both splits on the configured device; build the optimizer.

        `cfg.precision` must be resolved ("fp32" or "bf16"): "auto" is a ValueError."""
        self.precision = resolved(cfg.precision)  # the job resolved "auto" for its device
        device = resolve_device(cfg.device)
        if device.type == "cpu" and cfg.keep_freed_memory:
            keep_freed_memory()  # no page faults on every step's activations
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=memory_format)
        self.step_model = torch.compile(self.model) if cfg.compile else self.model
        self.cfg = cfg
        self.device = device
        self.train_batches = DeviceBatches(
            data.train,
            data.mean,
            data.std,
            batch_size=cfg.batch_size,
            device=device,
            train=True,
            pad=cfg.crop_pad,
            hflip=cfg.hflip,
            alternate_flip=cfg.alternate_flip,
            channels_last=cfg.channels_last,
            seed=cfg.seed,
        )
        self.val_batches = self._eval_batches(data.val, data)
        # the held-out images (a search's [verify].held_out), on the device like val
        self.held_out_batches = (None if data.held_out is None
                                 else self._eval_batches(data.held_out, data))
        if len(self.train_batches) == 0:
            raise ValueError(
                f"TrainConfig.batch_size {cfg.batch_size} exceeds the {len(data.train)} "
                "training images"
            )
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.total_steps = cfg.epochs * len(self.train_batches)
        self.warmup_steps = round(cfg.warmup_epochs * len(self.train_batches))
        self.step = 0
        self.history: list[EpochReport] = []
        # lookahead's EMA of every float tensor of the model (weights and BN statistics)
        self.lookahead = ({k: v.detach().clone() for k, v in self.model.state_dict().items()
                           if v.is_floating_point()} if cfg.lookahead > 0 else None)
        self.rng_state = _seeded_rng_state(cfg.seed, device)
        # what always answering the commonest validation class scores: the chance level
        counts = torch.bincount(data.val.labels) if len(data.val) else torch.zeros(1)
        self.chance_acc = float(counts.max()) / max(1, len(data.val))
        self.classes = len(data.train.classes)

    def divergence(self) -> str | None:
        """Why training diverged although its loss stayed finite, or None: an epoch's mean loss
        above diverge_factor x where it started (the first epoch's, or ln(classes), what a
        uniform guess scores, if lower: lr = 50 starts exploded), or, after chance_epochs
        epochs, a best validation accuracy no better than always answering one class."""
        cfg, history = self.cfg, self.history
        if not history:
            return None
        first, last = history[0].train_loss, history[-1].train_loss
        start, named = first, f"the first epoch's {first:.3g}"
        uniform = math.log(self.classes) if self.classes > 1 else math.inf
        if uniform < first:
            start, named = uniform, f"ln({self.classes}) = {uniform:.2f}, a uniform guess's"
        if last > cfg.diverge_factor * start:
            return (f"training loss {last:.3g} in epoch {len(history)} is over"
                    f" {cfg.diverge_factor:g}x {named}")
        best = _nan_max([r.val_acc for r in history])
        if cfg.chance_epochs and len(history) >= cfg.chance_epochs and best <= self.chance_acc:
            return (f"validation accuracy {best:.3f} after {len(history)} epochs is at chance"
                    f" (always answering the commonest class scores {self.chance_acc:.3f})")
        return None

    def _eval_batches(self, images: ImageSet, data: Splits) -> DeviceBatches:
        """An evaluation split on the device, normalised like the training images."""
        return DeviceBatches(images, data.mean, data.std, batch_size=self.cfg.eval_batch_size,
                             device=self.device, train=False,
                             channels_last=self.cfg.channels_last)

    def epoch(self) -> EpochReport | None:
        """Train and validate one epoch; None when the training loss stopped being finite."""
        if len(self.history) >= self.cfg.epochs:
            raise RuntimeError(f"all {self.cfg.epochs} epochs of TrainConfig.epochs are done")
        with cpu_threads(self.cfg.cpu_threads):
            start = time.perf_counter()
            # fork_rng hands the caller's RNG back afterwards; inside, this trainer's own runs.
            with torch.random.fork_rng(devices=_cuda_devices(self.device)):
                _set_global_rng_state(self.rng_state, self.device)
                mean_loss = self.train_epoch()
                self.rng_state = _global_rng_state(self.device)
            synchronize(self.device)
            seconds = time.perf_counter() - start
            if not math.isfinite(mean_loss):
                return None
            val_acc = _evaluate_batches(
                self.model, self.val_batches, self.cfg.flip_tta, self.precision
            )
        report = EpochReport(
            epoch=len(self.history) + 1,
            train_loss=mean_loss,
            val_acc=val_acc,
            epoch_seconds=seconds,
            images_per_s=self.train_batches.images_per_epoch / seconds,
            lr=self.optimizer.param_groups[0]["lr"],
        )
        self.history.append(report)
        return report

    def held_out_acc(self) -> float:
        """Top-1 accuracy on the held-out split as the model stands (as validation measures
        it: flip TTA, the trainer's precision); NaN when the splits hold none."""
        if self.held_out_batches is None:
            return math.nan
        with cpu_threads(self.cfg.cpu_threads):
            return _evaluate_batches(
                self.model, self.held_out_batches, self.cfg.flip_tta, self.precision
            )

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, step, batch RNG, history.

        Only tensors and plain containers, so `torch.load(weights_only=True)` reads it back.
        """
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "batch_rng": self.train_batches.generator.get_state(),
            "rng": self.rng_state,
            "history": [dataclasses.asdict(r) for r in self.history],
        } | ({} if self.lookahead is None else {"lookahead": self.lookahead})

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict`'s snapshot."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.train_batches.generator.set_state(state["batch_rng"])
        self.rng_state = dict(state["rng"])
        self.history = [EpochReport(**r) for r in state["history"]]
        self.train_batches.epoch = len(self.history)  # the alternating flips' parity
        if self.lookahead is not None:
            for key, ema in self.lookahead.items():
                ema.copy_(state["lookahead"][key])

    def train_epoch(self) -> float:
        """Train one epoch; return its mean loss, or NaN as soon as a loss is not finite."""
        self.model.train()
        check_every = 1 if self.device.type == "cpu" else _ACCEL_CHECK_EVERY
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        for i, (x, y) in enumerate(self.train_batches, start=1):
            self.set_lr()
            loss = self.train_step(x, y)
            loss_sum += loss
            self.step += 1
            if self.lookahead is not None and (self.step % self.cfg.lookahead_every == 0
                                               or self.step == self.total_steps):
                self.look_ahead()
            if i % check_every == 0 and not torch.isfinite(loss_sum).item():
                return math.nan
        return loss_sum.item() / len(self.train_batches)

    @torch.no_grad()
    def look_ahead(self) -> None:
        """Move the EMA toward the weights and the weights to the EMA (at the last step: the
        weights become the EMA)."""
        every = self.cfg.lookahead_every
        decay = (1.0 if self.step >= self.total_steps
                 else self.cfg.lookahead ** every * (self.step / self.total_steps) ** 3)
        current = self.model.state_dict()
        for key, ema in self.lookahead.items():
            ema.lerp_(current[key], 1.0 - decay)
            current[key].copy_(ema)

    def set_lr(self) -> None:
        """Set every group's learning rate for the current step."""
        cfg = self.cfg
        factor = lr_factor(self.step, self.total_steps, self.warmup_steps, cfg.schedule,
                           cfg.lr_start, cfg.lr_end)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * factor * group.get("lr_scale", 1.0)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One forward, backward and optimizer step; return the detached float32 loss."""
        with autocast(self.device, self.precision):
            logits = self.step_model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
