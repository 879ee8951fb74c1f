"""Convolution levers for CPU training, each a model transform that computes the same network.

- `convs_in_nchw`: chosen convs (depthwise, or every grouped one) run in NCHW inside a
  channels_last network, the layout oneDNN may serve better for few channels per group;
- `micro_batched`: every conv runs on slices of the batch (batch norm still sees the whole
  batch, so the step is the same), keeping each call's tensors in cache;
- `pointwise_as_matmul`: 1x1 convs (grouped or not) as one (batched) matrix product over the
  pixels of a channels_last map, GEMM instead of oneDNN's convolution.

Each wraps or replaces modules in place and keeps the same Parameter objects, so weights,
initialisation and the optimizer's parameter order are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ConvFilter = Callable[[nn.Conv2d], bool]


def is_depthwise(conv: nn.Conv2d) -> bool:
    """One input channel per group (and more than one group)."""
    return conv.groups == conv.in_channels > 1


def is_grouped(conv: nn.Conv2d) -> bool:
    """More than one group: depthwise included."""
    return conv.groups > 1


def is_pointwise(conv: nn.Conv2d) -> bool:
    """A 1x1 conv without padding or dilation (any groups, any stride)."""
    return (conv.kernel_size == (1, 1) and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.padding_mode == "zeros")


class NCHWConv(nn.Module):
    """A conv computed in NCHW inside a channels_last network (the layout probe)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        """Wrap the conv."""
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW in, the conv, channels_last out."""
        return self.conv(x.contiguous()).contiguous(memory_format=torch.channels_last)


class MicroBatched(nn.Module):
    """A conv applied to slices of `size` images, concatenated back (same result per image)."""

    def __init__(self, conv: nn.Conv2d, size: int) -> None:
        """Wrap the conv."""
        super().__init__()
        self.conv = conv
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split along the batch (views; split's backward is one concatenation), conv, cat."""
        if x.shape[0] <= self.size:
            return self.conv(x)
        # a slice along N of a channels_last tensor is contiguous: no copy on the way in
        return torch.cat([self.conv(part) for part in x.split(self.size)])


class PointwiseMatmul(nn.Module):
    """A 1x1 conv (grouped or not) as a (batched) matrix product over pixels, same weights."""

    def __init__(self, conv: nn.Conv2d) -> None:
        """Take the conv's weight (and bias) Parameters as they are."""
        super().__init__()
        if not is_pointwise(conv):
            raise ValueError(f"not a 1x1 conv without padding: {conv}")
        self.weight = conv.weight
        self.bias = conv.bias
        self.groups = conv.groups
        self.stride = conv.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels as rows: [N*H*W, C] (a view of a channels_last map) times the weight."""
        if self.stride != (1, 1):
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
        n, c, h, w = x.shape
        cout, g = self.weight.shape[0], self.groups
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        if g == 1:
            out = F.linear(rows, self.weight.view(cout, c), self.bias)
        else:
            # [G, P, C/G] x [G, C/G, Cout/G]: one GEMM per group, batched
            per_group = rows.view(-1, g, c // g).transpose(0, 1)
            weight = self.weight.view(g, cout // g, c // g).transpose(1, 2)
            out = torch.bmm(per_group, weight).transpose(0, 1).reshape(-1, cout)
            if self.bias is not None:
                out = out + self.bias
        # back to NCHW indexing over channels_last memory: no copy
        return out.view(n, h, w, cout).permute(0, 3, 1, 2)


def _replace(model: nn.Module, wanted: ConvFilter, wrap: Callable[[nn.Conv2d], nn.Module]
             ) -> nn.Module:
    """Replace every conv `wanted` selects with `wrap(conv)`; return the model."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and wanted(child):
                setattr(module, name, wrap(child))
    return model


def convs_in_nchw(model: nn.Module, wanted: ConvFilter = is_grouped) -> nn.Module:
    """Run the convs `wanted` selects in NCHW, the rest of the network channels_last."""
    return _replace(model, wanted, NCHWConv)


def depthwise_in_nchw(model: nn.Module) -> nn.Module:
    """Wrap every depthwise conv in NCHWConv: channels_last for the dense ops only."""
    return convs_in_nchw(model, is_depthwise)


def micro_batched(model: nn.Module, size: int) -> nn.Module:
    """Every conv on slices of `size` images."""
    return _replace(model, lambda conv: True, lambda conv: MicroBatched(conv, size))


def pointwise_as_matmul(model: nn.Module, wanted: ConvFilter = is_pointwise) -> nn.Module:
    """Every 1x1 conv (`wanted` may narrow it, e.g. to grouped ones) as a matrix product."""
    return _replace(model, lambda conv: is_pointwise(conv) and wanted(conv), PointwiseMatmul)


LEVERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "grouped-nchw": convs_in_nchw,
    "depthwise-nchw": depthwise_in_nchw,
    "micro-batch-32": lambda model: micro_batched(model, 32),
    "micro-batch-64": lambda model: micro_batched(model, 64),
    "pointwise-matmul": pointwise_as_matmul,
    "grouped-pointwise-matmul": lambda model: pointwise_as_matmul(model, is_grouped),
}
