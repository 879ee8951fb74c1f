"""Shared kernels: one dense kernel per layer, sliced to a real grouped (and smaller) conv."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The grouped-conv weight (cout, cin / g, k, k) that keeps a dense kernel's g diagonal blocks.

    Output segment j of a grouped conv reads input segment j only, so its weights are the dense
    kernel's block (rows of segment j, columns of segment j) -- Once-for-All's
    DynamicGroupConv2d slicing (Cai et al. 2020).
    """
    cout, cin = weight.shape[:2]
    if cout % groups or cin % groups:
        raise ValueError(f"groups {groups} does not divide {cin} -> {cout} channels")
    blocks = weight.reshape(groups, cout // groups, groups, cin // groups, *weight.shape[2:])
    diagonal = torch.diagonal(blocks, dim1=0, dim2=2)  # (cout/g, cin/g, kh, kw, g)
    return diagonal.movedim(-1, 0).reshape(cout, cin // groups, *weight.shape[2:])


def centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The k x k centre of a K x K superkernel: smaller kernels are the inner core of the larger
    one (Single-Path NAS, Stamoulis et al. 2019)."""
    size = weight.shape[-1]
    if kernel > size or (size - kernel) % 2:
        raise ValueError(f"a {kernel}x{kernel} kernel is not the centre of a {size}x{size} one")
    start = (size - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


class SuperConv(nn.Module):
    """A dense cin -> cout conv of the largest kernel; each call runs one grouped sub-conv."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        # the stand-alone init (kaiming, fan_out) at the dense kernel's largest fan-out
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / (cout * kernel * kernel)))

    def sliced(self, groups: int, kernel: int) -> torch.Tensor:
        """The weight a grouped conv of `groups` segments and a `kernel` kernel uses."""
        return block_diagonal(centre_crop(self.weight, kernel), groups)

    def forward(self, x: torch.Tensor, groups: int, kernel: int, stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
        return F.conv2d(x, self.sliced(groups, kernel), None, stride, padding, groups=groups)
