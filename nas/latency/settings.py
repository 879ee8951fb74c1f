"""What latency to measure: runtimes x batch sizes, and the `latency_ms@runtime:bN` names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

Runtime = Literal["torch", "torch_cl", "torch_bf16", "onnxruntime", "torch_compile"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
PREFIX = "latency_ms@"
P90_PREFIX = "latency_p90_ms@"
RUNTIMES_COLUMN = "latency_runtimes"  # JSON: each runtime's choice, or why it was skipped
_NAME = re.compile(r"latency_ms@(?P<runtime>[a-z_0-9]+):b(?P<batch>[0-9]+)")


class LatencyError(ValueError):
    """A latency setting or objective name that is not allowed; the message says what is."""


@dataclass(frozen=True, order=True)
class Setting:
    """One runtime at one batch size."""

    runtime: Runtime
    batch: int

    @property
    def name(self) -> str:
        """The column and objective name: 'latency_ms@onnxruntime:b1'."""
        return f"{PREFIX}{self.runtime}:b{self.batch}"

    @property
    def p90_name(self) -> str:
        """The column of the 90th percentile: 'latency_p90_ms@onnxruntime:b1'."""
        return f"{P90_PREFIX}{self.runtime}:b{self.batch}"


def parse(name: str) -> Setting:
    """'latency_ms@onnxruntime:b1' -> Setting('onnxruntime', 1); a one-line error otherwise."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise LatencyError(f"{name!r} is not a latency name: latency_ms@RUNTIME:bBATCH, e.g."
                           f" latency_ms@onnxruntime:b1 (runtimes: {', '.join(RUNTIMES)})")
    runtime, batch = match["runtime"], int(match["batch"])
    if runtime not in RUNTIMES:
        raise LatencyError(f"{name!r}: unknown runtime {runtime!r}"
                           f" (allowed: {', '.join(RUNTIMES)})")
    if batch < 1:
        raise LatencyError(f"{name!r}: the batch size must be >= 1")
    return Setting(runtime, batch)  # type: ignore[arg-type]


def is_latency_name(name: str) -> bool:
    """Whether `name` is spelled as a per-runtime latency (valid or not)."""
    return name.startswith(PREFIX)


def is_latency_column(name: str) -> bool:
    """Whether `name` is one of the columns a measurement records (median, p90, runtimes)."""
    return name.startswith((PREFIX, P90_PREFIX)) or name == RUNTIMES_COLUMN


def latency_names(columns: Iterable[str]) -> list[str]:
    """The per-runtime median columns among `columns` ('latency_ms@torch:b1', ...), in order."""
    return [str(c) for c in columns if is_latency_name(str(c))]


@dataclass(frozen=True)
class LatencyConfig:
    """The space's [latency] section: every trial, retrain and bench row measures each setting."""

    runtimes: tuple[Runtime, ...] = ("torch",)
    batches: tuple[int, ...] = (1,)
    threads: int = 1  # intra-op threads, pinned for every runtime (a serving core)
    warmup: int = 5  # runs before timing (allocator, caches, ORT's first-run planning)
    repeats: int = 10  # timed runs per round
    # Interference on a shared machine comes in bursts longer than one setting's runs: rounds
    # interleave every setting, and the lowest round median keeps an uninterrupted one.
    rounds: int = 5

    def settings(self) -> tuple[Setting, ...]:
        """Every runtime at every batch size, in the order given."""
        return tuple(Setting(r, b) for r in self.runtimes for b in self.batches)

    def check(self, where: str = "[latency]") -> LatencyConfig:
        """Raise LatencyError naming the field when a value is not allowed; else self."""
        for runtime in self.runtimes:
            if runtime not in RUNTIMES:
                raise LatencyError(f"{where}.runtimes: unknown runtime {runtime!r}"
                                   f" (allowed: {', '.join(RUNTIMES)})")
        if len(set(self.runtimes)) != len(self.runtimes):
            raise LatencyError(f"{where}.runtimes: {list(self.runtimes)} repeats a runtime")
        if not self.runtimes or not self.batches:
            raise LatencyError(f"{where}: runtimes and batches need at least one entry each")
        for batch in self.batches:
            if batch < 1:
                raise LatencyError(f"{where}.batches: {batch} must be >= 1")
        if len(set(self.batches)) != len(self.batches):
            raise LatencyError(f"{where}.batches: {list(self.batches)} repeats a batch size")
        for key, least in (("threads", 1), ("warmup", 0), ("repeats", 3), ("rounds", 1)):
            if getattr(self, key) < least:
                raise LatencyError(f"{where}.{key}: {getattr(self, key)} must be >= {least}")
        return self
