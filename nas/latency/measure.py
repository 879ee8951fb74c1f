"""Time a model on each configured runtime and batch: warm-up, then median and p90."""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nas.latency.runtimes import Run, Unavailable, runner
from nas.latency.settings import LatencyConfig, Setting
from nas.train.device import cpu_threads

RUNTIMES_COLUMN = "latency_runtimes"  # JSON: each runtime's choice, or why it was skipped


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
            except Unavailable as why:
                measured.skipped[runtime] = str(why)
                continue
            measured.choices[runtime] = prepared.choice
            for batch in config.batches:
                measured.timings[Setting(runtime, batch)] = time_run(
                    prepared.make(batch), max(config.warmup, 1), config.repeats)
    return measured
