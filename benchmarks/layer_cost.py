"""FLOPs and compulsory bytes of each layer's forward and backward pass in one training step.

Shapes come from forward hooks on one real batch. Bytes are the compulsory traffic: every
tensor an op reads or writes touched once (forward: input, weight, output; backward: output
gradient, the saved tensor it needs, weight, input and weight gradients). Real kernels move
at least this much, so the roofline bound built on it is a lower bound on the layer's time.
FLOPs of convolutions and linear layers are 2 per MAC, forward once and backward twice (input
and weight gradients; only the weight's where the input needs no gradient); elementwise
layers count a few FLOPs per element, which never decides their bound.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.conv_levers import PointwiseMatmul
from nas.arch.model import ConcatBranches, GlobalPool2d, SpectrumBlock

# FLOPs per element (forward, backward): BN computes statistics then an affine map; its
# backward two sums then the input gradient.
ELEMENTWISE_FLOPS = {nn.BatchNorm2d: (4, 6), GlobalPool2d: (1, 1), nn.MaxPool2d: (9, 1)}


@dataclass(frozen=True)
class LayerCost:
    """What one layer computes and moves in one training step (forward + backward)."""

    name: str
    op: str  # short description: 'conv 3x3 32->32 g8 @32x32'
    kind: str  # what the summary groups by: 'conv 3x3 grouped', 'batchnorm2d', ...
    flops: float
    bytes: float
    working_set: float  # bytes of the largest single pass (forward or backward)


def _nbytes(t: torch.Tensor) -> int:
    """Bytes of one tensor."""
    return t.numel() * t.element_size()


def _params_bytes(module: nn.Module) -> int:
    """Bytes of the module's own parameters."""
    return sum(_nbytes(p) for p in module.parameters(recurse=False))


def describe(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str:
    """One short label for the op and its input size."""
    size = f"@{x.shape[-2]}x{x.shape[-1]}" if x.dim() == 4 else ""
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        s = f"/{module.stride[0]}" if module.stride[0] > 1 else ""
        g = f" g{module.groups}" if module.groups > 1 else ""
        return f"conv {k}{s} {module.in_channels}->{module.out_channels}{g} {size}"
    if isinstance(module, PointwiseMatmul):
        cout, cin_g = module.weight.shape[:2]
        g = f" g{module.groups}" if module.groups > 1 else ""
        return f"matmul 1x1 {cin_g * module.groups}->{cout}{g} {size}"
    if isinstance(module, nn.Linear):
        return f"linear {module.in_features}->{module.out_features}"
    if isinstance(module, SpectrumBlock):
        return f"residual add {size}"
    if isinstance(module, ConcatBranches):
        return f"concat {size}"
    return f"{type(module).__name__.lower()} {y.shape[1]}ch {size}"


def kind_of(module: nn.Module) -> str:
    """The layer's kind for the summary: convs by kernel and spectrum position."""
    if isinstance(module, PointwiseMatmul):
        return "conv 1x1 as matmul"
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        if module.groups == 1:
            return f"conv {k} dense"
        return f"conv {k} depthwise" if module.groups == module.in_channels else f"conv {k} grouped"
    if isinstance(module, SpectrumBlock):
        return "residual add"
    return type(module).__name__.lower()


def cost_of(name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LayerCost | None:
    """The layer's training-step cost, or None for modules that add no work of their own."""
    bx, by, bw = _nbytes(x), _nbytes(y), _params_bytes(module)
    data_grad = x.requires_grad
    if isinstance(module, nn.Conv2d | nn.Linear | PointwiseMatmul):
        macs = y.numel() * module.weight[0].numel()  # MACs per output value: one filter
        flops = 2 * macs * (2 + data_grad)
        forward = bx + bw + by
        backward = by + bx + 2 * bw + (bx if data_grad else 0)
        return LayerCost(name, describe(module, x, y), kind_of(module), flops, forward + backward,
                         max(forward, backward))
    if isinstance(module, SpectrumBlock):
        if not module.residual:
            return None
        # y = branch + shortcut: reads two, writes one; the backward hands the gradient on
        return LayerCost(name, describe(module, x, y), kind_of(module), y.numel(), 3 * by, 3 * by)
    if isinstance(module, ConcatBranches):
        return LayerCost(name, describe(module, x, y), kind_of(module), 0, 4 * by, 2 * by)
    if list(module.children()) or isinstance(module, nn.Identity | nn.Dropout):
        return None
    fwd_flops, bwd_flops = ELEMENTWISE_FLOPS.get(type(module), (1, 1))
    forward = bx + by + bw
    backward = by + max(bx, by) + (bx if data_grad else 0) + 2 * bw
    flops = fwd_flops * x.numel() + bwd_flops * x.numel()
    return LayerCost(name, describe(module, x, y), kind_of(module), flops, forward + backward,
                     max(forward, backward))


@contextlib.contextmanager
def recording_costs(model: nn.Module) -> Iterator[dict[str, LayerCost]]:
    """Within the block, each forward pass fills the dict: module name -> its LayerCost."""
    costs: dict[str, LayerCost] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(module, args, output, name=name):
            if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                cost = cost_of(name, module, args[0], output)
                if cost is not None and name in costs:  # a module run on slices of the batch
                    before = costs[name]
                    cost = dataclasses.replace(
                        before, flops=before.flops + cost.flops, bytes=before.bytes + cost.bytes,
                        working_set=max(before.working_set, cost.working_set))
                if cost is not None:
                    costs[name] = cost
        handles.append(module.register_forward_hook(hook))
    try:
        yield costs
    finally:
        for handle in handles:
            handle.remove()


def optimizer_cost(model: nn.Module) -> LayerCost:
    """A fused SGD step with momentum: reads weight, gradient and buffer, writes two."""
    params = [p for p in model.parameters() if p.requires_grad]
    nbytes = sum(_nbytes(p) for p in params)
    return LayerCost("optimizer", "fused SGD step", "optimizer", 5 * sum(p.numel() for p in params),
                     5 * nbytes, 5 * nbytes)
