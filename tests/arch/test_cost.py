"""Analytic cost equals torch's parameter count and forward FLOP counter."""

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.arch.cost import cost, stage_costs
from nas.arch.genotype import Genotype, Head, Stage, Stem
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset, xception_genotype
from tests.sampling import random_genotype


def _single_stage(stage: Stage, m: int, g: int) -> Genotype:
    """A bare stage: no stem, no head, M input channels at G x G."""
    return Genotype(stages=(stage,), stem=Stem(widths=(), strides=()),
                    head=Head(pooling=None, num_classes=0), in_channels=m, resolution=g)


@pytest.mark.parametrize(("m", "n", "k", "g"), [(3, 8, 3, 32), (16, 32, 5, 14), (32, 64, 3, 7)])
def test_seed_formula_for_a_regular_conv(m, n, k, g):
    stage = Stage(kind="conv", width=n, kernel=k, groups=1, residual="none")
    assert cost(_single_stage(stage, m, g)).macs == m * k * k * g * g * n


@pytest.mark.parametrize(("m", "n", "k", "g"), [(8, 16, 3, 32), (16, 32, 5, 14), (32, 64, 3, 7)])
def test_seed_formula_for_a_depthwise_separable_conv(m, n, k, g):
    stage = Stage(kind="spectrum", order="dw_pw", width=n, kernel=k, groups=n, residual="none")
    c = cost(_single_stage(stage, m, g))
    assert c.macs == m * g * g * (k * k + n)
    assert c.params == m * k * k + m * n + 2 * n  # depthwise + pointwise weights + BN


def _torch_counts(genotype: Genotype) -> tuple[int, int]:
    """(parameters, forward FLOPs of one image) as torch counts them."""
    torch.manual_seed(0)
    model = build(genotype).eval()
    x = torch.randn(1, genotype.in_channels, genotype.resolution, genotype.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


@pytest.mark.parametrize("name", list(PRESETS))
def test_cost_matches_torch_for_presets(name):
    g = preset(name)
    params, flops = _torch_counts(g)
    assert cost(g).params == params
    assert 2 * cost(g).macs == flops


def test_cost_matches_torch_for_xception():
    g = xception_genotype()
    params, flops = _torch_counts(g)
    assert cost(g).params == params == 22_855_952
    assert 2 * cost(g).macs == flops


def test_cost_matches_torch_for_200_random_genotypes():
    torch.set_num_threads(1)
    for seed in range(200):
        g = random_genotype(random.Random(seed))
        params, flops = _torch_counts(g)
        c = cost(g)
        assert (c.params, 2 * c.macs) == (params, flops), f"seed {seed}: {g.to_json(None)}"


def test_stage_costs_add_up():
    g = preset("resnext")
    parts = stage_costs(g)
    assert list(parts) == ["stem", "s1", "s2", "s3", "head"]
    assert sum(p.params for p in parts.values()) == cost(g).params
    assert sum(p.macs for p in parts.values()) == cost(g).macs
