"""The convolution levers compute the same network: outputs, gradients, a seeded step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from benchmarks import conv_levers
from benchmarks.conv_levers import LEVERS, MicroBatched, PointwiseMatmul
from nas.arch.genotype import Genotype, Stage
from nas.arch.model import build

CL = torch.channels_last


def assert_same(got: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal to `tol` of the tensor's largest magnitude: sums taken in another order (slices
    of the batch, GEMM instead of a conv kernel) differ in the last bits only."""
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= tol * max(scale, 1.0)


def grads(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and parameter gradients for a fixed output gradient."""
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    y = module(x)
    torch.manual_seed(1)
    y.backward(torch.randn(y.shape))  # by index: randn_like would follow y's memory order
    return (y, x.grad, *(p.grad for p in module.parameters()))


@pytest.mark.parametrize("groups", [1, 2, 8])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_pointwise_matmul_equals_the_grouped_1x1_conv(groups, stride, bias, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 1, stride=stride, groups=groups, bias=bias)
    x = torch.randn(3, 16, 9, 9).contiguous(memory_format=layout)
    expected = grads(conv, x)
    got = grads(PointwiseMatmul(conv), x)
    for e, g in zip(expected, got, strict=True):
        assert_same(g, e)


def test_pointwise_matmul_refuses_a_spatial_conv():
    with pytest.raises(ValueError, match="1x1"):
        PointwiseMatmul(nn.Conv2d(4, 4, 3, padding=1))


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_micro_batched_conv_equals_the_conv_and_keeps_channels_last(groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=groups, bias=False).to(memory_format=CL)
    x = torch.randn(10, 16, 8, 8).contiguous(memory_format=CL)
    expected = grads(conv, x)
    got = grads(MicroBatched(conv, 4), x)  # 4 + 4 + 2: a ragged last slice
    assert got[0].is_contiguous(memory_format=CL)
    for e, g in zip(expected, got, strict=True):
        assert_same(g, e)


def small_net() -> nn.Module:
    """A spectrum network with grouped, depthwise and strided 1x1 (shortcut) convs."""
    stage = Stage(kind="spectrum", width=16, groups=4, units=2)
    arch = Genotype(stages=(stage, Stage(kind="spectrum", width=32, groups=32, stride=2),
                            Stage(kind="spectrum", width=32, groups=8, order="pw_dw")),
                    resolution=16)
    torch.manual_seed(0)
    return build(arch, zero_init_residual=False)


def seeded_step(model: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One SGD step on a fixed batch in channels_last: its loss and the updated weights."""
    model = model.to(memory_format=CL).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(2)
    x = torch.randn(8, 3, 16, 16).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (8,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach(), [p.detach() for p in model.parameters()]


@pytest.mark.parametrize("lever", sorted(LEVERS))
def test_every_lever_gives_the_same_seeded_step(lever):
    base = small_net()
    changed = LEVERS[lever](copy.deepcopy(base))
    assert changed is not None
    loss, weights = seeded_step(base)
    loss_l, weights_l = seeded_step(changed)
    assert_same(loss_l, loss, 1e-6)
    for w, w_l in zip(weights, weights_l, strict=True):
        assert_same(w_l, w)


def test_levers_touch_only_the_convs_they_name():
    net = small_net()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    nchw = conv_levers.convs_in_nchw(copy.deepcopy(net))
    wrapped = [m.conv for m in nchw.modules() if isinstance(m, conv_levers.NCHWConv)]
    assert len(wrapped) == sum(c.groups > 1 for c in convs)
    matmul = conv_levers.pointwise_as_matmul(copy.deepcopy(net))
    assert sum(isinstance(m, PointwiseMatmul) for m in matmul.modules()) == sum(
        c.kernel_size == (1, 1) for c in convs)
    grouped_only = conv_levers.pointwise_as_matmul(copy.deepcopy(net), conv_levers.is_grouped)
    assert not any(isinstance(m, PointwiseMatmul) for m in grouped_only.modules())
