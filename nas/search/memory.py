"""Whether a point can train in the memory a trial gets: its training memory estimated on
paper (nas.arch.memory) against the machine's memory shared by the concurrent trials."""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch.genotype import Genotype
from nas.arch.memory import training_bytes
from nas.machine import MEMORY_ENV, memory_bytes
from nas.train.config import TrainConfig
from nas.train.device import resolved

GIB = 2**30
# What a trial's process holds before its model: Python, torch, the Ray worker (measured RSS of
# an idle worker with torch loaded: about 400 MB).
PROCESS_BYTES = GIB // 2


@dataclass(frozen=True)
class MemoryShare:
    """The machine's memory and the trials sharing it (CPU trials: GPU memory is not checked)."""

    total: int
    concurrency: int

    @property
    def per_trial(self) -> int:
        """Bytes one trial may use."""
        return self.total // self.concurrency

    def text(self) -> str:
        """'7.63 GiB per trial (15.26 GiB / 2 concurrent trials)'."""
        return (f"{gib(self.per_trial)} per trial ({gib(self.total)} / {self.concurrency}"
                f" concurrent trial{'s' if self.concurrency > 1 else ''}; ${MEMORY_ENV}"
                " overrides the total)")


def memory_share(concurrency: int) -> MemoryShare:
    """This machine's memory shared by `concurrency` trials."""
    return MemoryShare(memory_bytes(), max(1, concurrency))


def gib(n: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{n / GIB:,.2f} GiB"


def trial_bytes(arch: Genotype, train: TrainConfig, models: int = 1) -> int:
    """A trial's estimated peak memory: the process plus training `models` seeds of `arch`
    (`train.precision` resolved by the caller, once for all its points)."""
    return PROCESS_BYTES + training_bytes(arch, train.batch_size, resolved(train.precision),
                                          train.optimizer, models)


def over_memory(arch: Genotype, train: TrainConfig, share: MemoryShare | None,
                models: int = 1) -> str | None:
    """Why the point cannot train in its share of memory, or None (None share: not checked)."""
    if share is None:
        return None
    need = trial_bytes(arch, train, models)
    if need <= share.per_trial:
        return None
    return (f"needs ~{gib(need)} to train (estimated: batch {train.batch_size}, optimizer"
            f" {train.optimizer}, {models} model{'s' if models > 1 else ''}) > {share.text()}")
