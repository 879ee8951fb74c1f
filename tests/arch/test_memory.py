"""The training memory estimated on paper against what torch's autograd really keeps."""

from __future__ import annotations

import pytest
import torch

from nas.arch.cost import cost
from nas.arch.genotype import Genotype, Head, Stage
from nas.arch.memory import activation_values, training_bytes
from nas.arch.model import build

GENOTYPES = {
    "spectrum": Genotype(stages=(
        Stage(width=16, depth=1, stride=1),
        Stage(width=32, depth=2, stride=2, order="pw_dw", mid_act="relu"))),
    "conv pre-act, max-pool, gelu, dropout": Genotype(
        act="gelu", head=Head(dropout=0.2), stages=(
            Stage(kind="conv", width=16, depth=2, stride=1, act_order="pre"),
            Stage(kind="conv", width=32, depth=1, stride=2, downsample="maxpool"))),
    "inception, resnext": Genotype(stages=(
        Stage(kind="inception", width=16, depth=1, stride=1),
        Stage(kind="resnext", width=32, depth=1, stride=2, groups=4))),
}


def saved_bytes(arch: Genotype, batch: int) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one training forward."""
    model = build(arch, False).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randn(batch, arch.in_channels, arch.resolution, arch.resolution)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(x)
        torch.nn.functional.cross_entropy(logits, torch.zeros(batch, dtype=torch.long))
    return sum(seen.values())


@pytest.mark.parametrize("name", list(GENOTYPES))
def test_saved_activations_match_torch_within_two_percent(name):
    arch = GENOTYPES[name].validate()
    kept, largest = activation_values(arch)
    measured = saved_bytes(arch, batch=8)
    assert 8 * kept * 4 == pytest.approx(measured, rel=0.02)
    assert 0 < largest < kept


def test_the_estimate_adds_weights_gradients_optimizer_state_and_activations():
    arch = GENOTYPES["spectrum"].validate()
    p = cost(arch).params
    kept, largest = activation_values(arch)
    sgd = training_bytes(arch, 64, "fp32", "sgd")
    assert sgd == p * 12 + 64 * (kept + 2 * largest) * 4
    assert training_bytes(arch, 64, "fp32", "adamw") - sgd == p * 4
    assert training_bytes(arch, 64, "fp32", "sgd", models=2) - sgd == p * 12
    assert training_bytes(arch, 64, "bf16") == p * 14 + 64 * (kept + 2 * largest) * 2
