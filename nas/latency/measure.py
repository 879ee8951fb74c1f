"""Time a model on each configured runtime and batch: warm-up, then median and p90."""

from __future__ import annotations

import copy
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nas.latency.runtimes import Run, Unavailable, first_line, runner
from nas.latency.settings import RUNTIMES_COLUMN, LatencyConfig, Setting
from nas.train.device import cpu_threads


@dataclass(frozen=True)
class Timing:
    """Milliseconds of one forward pass over `runs` timed runs."""

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


def time_run(run: Run, warmup: int, repeats: int,
             before: Callable[[], object] | None = None) -> Timing:
    """Median and p90 milliseconds of `repeats` calls after `warmup` untimed ones; `before`,
    when given, runs untimed before each timed call (to evict the caches, say)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1]
    return Timing(statistics.median(times), p90, repeats)


def measure(model: nn.Module, input_shape: tuple[int, ...], config: LatencyConfig,
            device: torch.device | str = "cpu") -> Measured:
    """Each runtime of `config` at each batch size, `config.threads` threads pinned; a runtime
    this machine lacks is skipped with its reason and the others are still measured."""
    device = torch.device(device)
    measured = Measured()
    # a copy: runtimes change the memory format, and the caller's model stays as it was
    model = copy.deepcopy(model).eval()
    with cpu_threads(config.threads):
        for runtime in config.runtimes:
            try:
                prepared = runner(runtime, model, tuple(input_shape), config.threads, device)
                timings = {Setting(runtime, batch): time_run(
                    prepared.make(batch), max(config.warmup, 1), config.repeats)
                    for batch in config.batches}
            except Unavailable as why:
                measured.skipped[runtime] = str(why)
                continue
            except Exception as err:  # a runtime failing on one model must not fail the trial
                measured.skipped[runtime] = f"failed: {type(err).__name__}: {first_line(err)}"
                continue
            measured.choices[runtime] = prepared.choice
            measured.timings |= timings
    return measured


def columns(config: LatencyConfig, measured: Measured | None = None) -> dict[str, float | str]:
    """Every configured setting's median and p90 columns, NaN where not measured (a runtime
    this machine lacks, or nothing measured at all), and the runtimes' JSON when measured."""
    row: dict[str, float | str] = {}
    for setting in config.settings():
        row[setting.name] = row[setting.p90_name] = math.nan
    return row | (measured.record() if measured is not None else {})
