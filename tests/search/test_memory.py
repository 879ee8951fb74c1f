"""A point's training memory on paper against its trial's share of the machine's memory."""

from __future__ import annotations

import pytest

from nas.arch.genotype import Genotype, Stage
from nas.machine import memory_bytes
from nas.search.memory import (
    PROCESS_BYTES,
    MemoryShare,
    gib,
    memory_share,
    over_memory,
    trial_bytes,
)
from nas.train.config import TrainConfig

ARCH = Genotype(stages=(Stage(width=16, depth=1, stride=1),)).validate()
TRAIN = TrainConfig(device="cpu", precision="fp32", batch_size=64)


def test_nas_memory_bytes_sets_the_machine_memory(monkeypatch):
    monkeypatch.setenv("NAS_MEMORY_BYTES", "3000000000")
    assert memory_bytes() == 3_000_000_000
    assert memory_share(4).per_trial == 750_000_000
    monkeypatch.setenv("NAS_MEMORY_BYTES", "lots")
    with pytest.raises(ValueError, match="NAS_MEMORY_BYTES"):
        memory_bytes()
    monkeypatch.delenv("NAS_MEMORY_BYTES")
    assert memory_bytes() > 2**28  # this machine's real memory


def test_a_point_over_its_share_says_its_estimate_and_the_share():
    need = trial_bytes(ARCH, TRAIN)
    assert need > PROCESS_BYTES
    assert over_memory(ARCH, TRAIN, MemoryShare(need * 2, 2)) is None
    assert over_memory(ARCH, TRAIN, None) is None  # GPU trials: not checked
    reason = over_memory(ARCH, TRAIN, MemoryShare(need * 2 - 2, 2))
    assert reason.startswith(f"needs ~{gib(need)} to train (estimated: batch 64, optimizer sgd")
    assert f"> {gib(need - 1)} per trial ({gib(need * 2 - 2)} / 2 concurrent trials" in reason
    assert trial_bytes(ARCH, TRAIN, models=3) > need
