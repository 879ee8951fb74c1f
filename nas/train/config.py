"""The settings of one training run (the space's [train] table); torch-free, so parsing a
space file or a command line does not load torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

Resolved = Literal["fp32", "bf16"]  # what a run computes in
Precision = Literal["auto", Resolved]  # what a run may ask for; a job resolves "auto" once
Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["onecycle", "cosine", "linear"]
Device = Literal["auto", "cpu", "cuda"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
RESOLVED_PRECISIONS: tuple[str, ...] = get_args(Resolved)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
DEVICES: tuple[str, ...] = get_args(Device)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and execution settings of one training run."""

    # Defaults tuned on 5,000 CIFAR-10 training images (benchmarks/cifar_quality.py): the
    # "regular" preset reached 65.5% test accuracy with them plus flip test-time augmentation
    # (the benchmark's default; flip_tta below is off for searches). A small training set gives
    # few optimizer steps per epoch, hence the modest batch of 128.
    epochs: int = 25
    batch_size: int = 128
    optimizer: Optimizer = "sgd"  # "sgd" is Nesterov SGD
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    schedule: Schedule = "onecycle"
    warmup_epochs: float = 2.0
    # linear and cosine: the peak's share the warmup starts from and the decay ends at
    # (airbench94: 0.2 and 0.07); onecycle's curve fixes both, so they stay 0 there.
    lr_start: float = 0.0
    lr_end: float = 0.0
    weight_decay: float = 5e-4  # applied to weights with ndim > 1 only
    # The undecayed parameters' (biases, BN) learning rate is bias_lr_scale x lr: airbench94
    # trains its BN biases at 64x (94 % in 13.5 instead of 18 epochs in its ablation).
    bias_lr_scale: float = 1.0
    # Lookahead (hlb-CIFAR10 / airbench94): every lookahead_every steps the weights move to an
    # EMA of themselves, whose decay lookahead^every x (step / total)^3 grows to the end, where
    # the weights become the EMA. 0 turns it off; airbench94: 0.95 every 5 steps.
    lookahead: float = 0.0
    lookahead_every: int = 5
    label_smoothing: float = 0.1
    crop_pad: int = 4  # random-crop padding in pixels; 0 disables cropping
    hflip: bool = True
    # Each image's flip drawn once and all inverted every other epoch (airbench94), so every
    # two epochs show each image both ways; off: a fresh coin per image per epoch.
    alternate_flip: bool = False
    # "auto": bf16 autocast where the device computes bf16 natively (CUDA with bf16, a CPU
    # with avx512_bf16 / amx_bf16), else fp32; evaluation and latency use the same. Each job
    # (a trial, a retrain, a supernet run) resolves it once with
    # nas.train.device.resolve_precision; the Trainer takes only "fp32" or "bf16".
    precision: Precision = "auto"
    channels_last: bool = True
    # CPU: glibc malloc keeps freed tensor memory for the next step instead of returning it
    # to the kernel (nas.train.device.keep_freed_memory): the same numbers, 1.15-1.45x faster
    # steps on the spectrum bench's points. Process-wide: false leaves the allocator as the
    # process has it (a trainer that set it earlier in the process already did).
    keep_freed_memory: bool = True
    compile: bool = False
    seed: int = 0
    cpu_threads: int | None = None
    device: Device = "auto"
    eval_batch_size: int = 500
    flip_tta: bool = False
    # Divergence with a finite loss (see Trainer.divergence): a training loss above
    # diverge_factor x its start (the first epoch's, or ln(classes) if lower), or, after
    # chance_epochs epochs (0: never), a validation accuracy no better than always answering
    # the commonest class.
    diverge_factor: float = 10.0
    chance_epochs: int = 3
    # Residual branches end in a zero-gamma BN, so every block starts as its shortcut (Goyal et
    # al. 2017); false: gamma 1 like every other BN. On the 5,000-image subset at 10 epochs the
    # zero-gamma branches stay small and residual points trail (benchmarks/residual_init.py).
    # Read where the network is built (nas.search.trial.initial_model), not by the Trainer.
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        """Reject invalid settings at construction."""
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a one-line message naming the first invalid field."""
        checks = (
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {OPTIMIZERS}"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "must be a finite number > 0"),
            ("momentum", 0 <= self.momentum < 1, "must be in [0, 1)"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {SCHEDULES}"),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, "must be in [0, epochs]"),
            ("lr_start", 0 <= self.lr_start <= 1, "must be in [0, 1]"),
            ("lr_end", 0 <= self.lr_end <= 1, "must be in [0, 1]"),
            ("lr_start", self.schedule != "onecycle" or self.lr_start == 0,
             "must be 0 with schedule 'onecycle' (its curve fixes both ends)"),
            ("lr_end", self.schedule != "onecycle" or self.lr_end == 0,
             "must be 0 with schedule 'onecycle' (its curve fixes both ends)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("bias_lr_scale", math.isfinite(self.bias_lr_scale) and self.bias_lr_scale > 0,
             "must be a finite number > 0"),
            ("lookahead", 0 <= self.lookahead < 1, "must be in [0, 1) (0 turns it off)"),
            ("lookahead_every", self.lookahead_every >= 1, "must be >= 1"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be in [0, 1)"),
            ("crop_pad", 0 <= self.crop_pad <= 16, "must be in [0, 16]"),
            ("cpu_threads", self.cpu_threads is None or self.cpu_threads >= 1, "must be >= 1"),
            ("device", self.device in DEVICES, f"must be one of {DEVICES}"),
            ("precision", self.precision in PRECISIONS, f"must be one of {PRECISIONS}"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("diverge_factor", self.diverge_factor > 1, "must be > 1"),
            ("chance_epochs", self.chance_epochs >= 0, "must be >= 0 (0 turns the rule off)"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name} {rule}, got {getattr(self, name)!r}")
