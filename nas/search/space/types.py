"""The search-space schema: the sections of a space file as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nas.answer.settings import VerifySettings
from nas.arch.genotype import (
    Act,
    ActOrder,
    BlockKind,
    Downsample,
    MidAct,
    OpOrder,
    Padding,
    Pooling,
    Residual,
)
from nas.arch.schema import SchemaError
from nas.data import DataSpec
from nas.latency.settings import LatencyConfig
from nas.train.config import TrainConfig

Value = bool | int | float | str
Sampler = Literal["tpe", "nsga2", "random", "grid"]
StoppedAs = Literal["pruned", "complete"]
Metric = Literal["val_acc", "macs", "params"]  # or a latency_ms@RUNTIME:bN of [latency]


class SpaceError(SchemaError):
    """A bad search-space file; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Macro:
    """Network skeleton; `widths` / `depths` entries are a fixed int or a list of choices."""

    strides: tuple[int, ...] = (1, 2, 2)  # one per stage: fixes the number of stages
    widths: tuple[int | tuple[int, ...], ...] = (32, 64, 128)
    depths: tuple[int | tuple[int, ...], ...] = (1, 1, 1)
    stem_widths: tuple[int, ...] = (32,)
    stem_strides: tuple[int, ...] = (1,)
    stem_kernel: int = 3
    stem_padding: Padding = "same"
    stem_pool: bool = False
    pooling: Pooling = "avg"
    fc: tuple[int, ...] = ()
    dropout: float = 0.0
    act: Act = "relu"
    # Matched comparisons: every stage width is scaled by one factor per point so the network
    # has about this many params (or MACs); widths stay multiples of width_step and the groups.
    match_params: int | None = None
    match_macs: int | None = None
    width_step: int = 8


@dataclass(frozen=True)
class Blocks:
    """Per-stage searchable dimensions: lists of choices; a field left out is not searched."""

    preset: tuple[str, ...] | None = None  # zoo block templates (Ghosh's block kinds)
    kind: tuple[BlockKind, ...] | None = None
    spectrum: tuple[float, ...] | None = None  # positions: 0 = regular ... 1 = depthwise
    groups: tuple[int | Literal["depthwise"], ...] | None = None  # or explicit segment counts
    order: tuple[OpOrder, ...] | None = None
    mid_act: tuple[MidAct, ...] | None = None
    mid_norm: tuple[bool, ...] | None = None
    residual: tuple[Residual, ...] | None = None
    act_order: tuple[ActOrder, ...] | None = None
    kernel: tuple[int, ...] | None = None
    units: tuple[int, ...] | None = None
    spatial_separable: tuple[bool, ...] | None = None
    downsample: tuple[Downsample, ...] | None = None
    bottleneck: tuple[float, ...] | None = None
    shared: tuple[str, ...] = ()  # dimensions chosen once for all stages (unprefixed names)


@dataclass(frozen=True)
class Objectives:
    """What the search optimises: validation accuracy first, optionally a cost second."""

    # a Metric, or a latency setting's name: checked against [latency] (nas.search.space.load)
    metrics: tuple[str, ...] = ("val_acc",)


@dataclass(frozen=True)
class Constraints:
    """Limits checked on paper before any training."""

    max_params: int | None = None
    max_macs: int | None = None


@dataclass(frozen=True)
class Study:
    """How `run_search.py study` tabulates a run: a row per value of `rows`, vs a baseline."""

    title: str = ""
    rows: tuple[str, ...] = ()  # flat dimension names whose values label the rows
    baseline: str = ""  # a [references] name the other rows are compared with ("" = none)


@dataclass(frozen=True)
class Search:
    """Sampler, budget and scheduler settings."""

    sampler: Sampler = "tpe"
    trials: int = 24
    repeats: int = 1  # seeds per point; trials report mean (and std) over them
    seed: int = 0
    concurrency: int = 2
    grace_period: int = 1  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 3
    # How an ASHA-stopped trial is told to Optuna: PRUNED with its curve (what happened), or
    # COMPLETE with its last accuracy, as Ray's OptunaSearch tells it (an ablation, not advice)
    stopped_as: StoppedAs = "pruned"
    max_t: int | None = None  # ASHA: epochs a trial trains at most (None: [train].epochs)
    gpu_trials: int | None = None  # budget when a GPU is present (None: same as trials)
    gpu_epochs: int | None = None
    # Sampler settings; None: the default in nas.search.samplers (recorded in meta.json)
    n_startup_trials: int | None = None  # TPE: random trials before it models (min(8, trials))
    multivariate: bool | None = None  # TPE: joint model (Optuna's default: yes for 1 objective)
    group: bool = False  # TPE: separate models for parameters never asked together
    population_size: int | None = None  # NSGA-II: trials per generation (8)


@dataclass(frozen=True)
class Space:
    """A parsed search-space file."""

    name: str
    path: Path
    data: DataSpec
    macro: Macro
    blocks: Blocks
    train: TrainConfig
    objectives: Objectives
    constraints: Constraints
    search: Search
    study: Study = Study()
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    verify: VerifySettings | None = None  # [verify]: race the front end's best (None: do not)
    references: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = field(default=())


@dataclass(frozen=True)
class Dimension:
    """One flat Optuna parameter and its choices."""

    name: str
    choices: tuple[Value, ...]
