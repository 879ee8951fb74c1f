"""Time models on each configured runtime and batch: warm-up, then interleaved rounds."""

from __future__ import annotations

import copy
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from nas.latency.runtimes import Run, Unavailable, first_line, runner
from nas.latency.settings import RUNTIMES_COLUMN, LatencyConfig, Setting
from nas.train.device import cpu_threads

K = TypeVar("K")


@dataclass(frozen=True)
class Timing:
    """Milliseconds of one forward pass: the lowest round median and the p90 of `runs` runs."""

    median_ms: float
    p90_ms: float
    runs: int


@dataclass
class Measured:
    """Every setting's timing; each runtime's choice in words, or why it was not measured."""

    timings: dict[Setting, Timing] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, float | str]:
        """The row's columns: median and p90 per setting, and the runtimes' JSON."""
        row: dict[str, float | str] = {}
        for setting, timing in sorted(self.timings.items()):
            row[setting.name] = timing.median_ms
            row[setting.p90_name] = timing.p90_ms
        runtimes = dict(self.choices) | {k: f"not measured: {v}" for k, v in self.skipped.items()}
        row[RUNTIMES_COLUMN] = json.dumps(runtimes, sort_keys=True)
        return row


def time_runs(runs: Mapping[K, Run], warmup: int, repeats: int, rounds: int = 1,
              before: Callable[[], object] | None = None) -> dict[K, Timing]:
    """Each run's milliseconds: `warmup` untimed calls, then `rounds` rounds that each time
    every run `repeats` times in turn; its median is the lowest of its round medians, its p90
    that of all its timed calls. `before`, when given, runs untimed before each timed call (to
    evict the caches, say)."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[K, list[float]] = {key: [] for key in runs}
    medians: dict[K, list[float]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            these = []
            for _ in range(repeats):
                if before is not None:
                    before()
                start = time.perf_counter()
                run()
                these.append((time.perf_counter() - start) * 1e3)
            times[key] += these
            medians[key].append(statistics.median(these))
    return {key: Timing(min(medians[key]),
                        statistics.quantiles(times[key], n=10, method="inclusive")[-1],
                        len(times[key])) for key in runs}


def measure(model: nn.Module, input_shape: tuple[int, ...], config: LatencyConfig,
            device: torch.device | str = "cpu") -> Measured:
    """Each runtime of `config` at each batch size, `config.threads` threads pinned; a runtime
    this machine lacks is skipped with its reason and the others are still measured."""
    return measure_many({0: model}, input_shape, config, device)[0]


def measure_many(models: Mapping[K, nn.Module], input_shape: tuple[int, ...],
                 config: LatencyConfig, device: torch.device | str = "cpu") -> dict[K, Measured]:
    """`measure` for several models of one input shape, their runs interleaved in each round
    (so a burst of interference meets every model alike, not one of them)."""
    device = torch.device(device)
    found = {key: Measured() for key in models}
    runs: dict[tuple[K, Setting], Run] = {}
    with cpu_threads(config.threads):
        for key, model in models.items():
            # a copy: runtimes change the memory format, and the caller's model stays as it was
            model = copy.deepcopy(model).eval()
            for runtime in config.runtimes:
                try:
                    prepared = runner(runtime, model, tuple(input_shape), config.threads, device)
                    these = {(key, Setting(runtime, b)): prepared.make(b) for b in config.batches}
                    for run in these.values():
                        run()  # a runtime failing on one model must not fail the others
                except Unavailable as why:
                    found[key].skipped[runtime] = str(why)
                    continue
                except Exception as err:
                    found[key].skipped[runtime] = (f"failed: {type(err).__name__}:"
                                                   f" {first_line(err)}")
                    continue
                found[key].choices[runtime] = prepared.choice
                runs |= these
        timings = time_runs(runs, max(config.warmup, 1), config.repeats, config.rounds)
    for (key, setting), timing in timings.items():
        found[key].timings[setting] = timing
    return found


def columns(config: LatencyConfig, measured: Measured | None = None) -> dict[str, float | str]:
    """Every configured setting's median and p90 columns, NaN where not measured (a runtime
    this machine lacks, or nothing measured at all), and the runtimes' JSON when measured."""
    row: dict[str, float | str] = {}
    for setting in config.settings():
        row[setting.name] = row[setting.p90_name] = math.nan
    return row | (measured.record() if measured is not None else {})
