"""airbench94's network (Jordan 2024, from hlb-CIFAR10), written here, with its data-whitened stem.

A 2x2 stem whose 24 filters are the ± eigenvectors of the training images' 2x2-patch
covariance, scaled to unit variance and frozen; three conv groups (3x3 conv, 2x2 max-pool, BN,
GELU, 3x3 conv, BN, GELU) of widths 64, 256, 256; a 3x3 max-pool, a bias-free linear head
scaled by 1/9. BatchNorm scales are fixed at 1 (biases train) with momentum 0.6 in airbench's
sense (PyTorch's 0.4); conv filters start as a Dirac identity on their first input channels.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (64, 256, 256)
WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4  # airbench94's eigenvalue floor
PATCH_IMAGES = 5000  # images whose patches estimate the covariance (airbench94: 5,000)


class BatchNorm(nn.BatchNorm2d):
    """BN with a fixed unit scale and a trained bias, airbench's momentum and eps."""

    def __init__(self, width: int):
        super().__init__(width, momentum=0.4, eps=1e-12)
        self.weight.requires_grad_(False)


class Conv(nn.Conv2d):
    """3x3, same padding, no bias; its first input-channel filters start as identities."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding=1, bias=False)
        # why: airbench's Dirac init measured 94 % in 18 instead of 21 epochs
        with torch.no_grad():
            w = self.weight
            torch.nn.init.dirac_(w[:c_in])


class ConvGroup(nn.Sequential):
    """conv, pool, BN, GELU, conv, BN, GELU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(Conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out), nn.GELU(),
                         Conv(c_out, c_out), BatchNorm(c_out), nn.GELU())


class Scale(nn.Module):
    """Multiply by a constant (the head's 1/9)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def airbench_net(num_classes: int = 10, widths: tuple[int, int, int] = WIDTHS) -> nn.Sequential:
    """The network, its stem not yet whitened (see `whiten`)."""
    stem = 2 * 3 * WHITEN_KERNEL**2
    return nn.Sequential(
        nn.Conv2d(3, stem, kernel_size=WHITEN_KERNEL, padding=0, bias=True), nn.GELU(),
        ConvGroup(stem, widths[0]), ConvGroup(widths[0], widths[1]),
        ConvGroup(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten(),
        nn.Linear(widths[2], num_classes, bias=False), Scale(1 / 9))


def patch_whitening(images: torch.Tensor, kernel: int = WHITEN_KERNEL,
                    eps: float = WHITEN_EPS) -> torch.Tensor:
    """Filters [2 * k*k*C, C, k, k] that whiten `images`' (normalized, NCHW) k x k patches:
    each eigenvector of their covariance over sqrt(its eigenvalue + eps), and its negative."""
    c = images.shape[1]
    patches = images.float().unfold(2, kernel, 1).unfold(3, kernel, 1)  # N C H W k k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel).double()
    patches = patches - patches.mean(dim=0)
    covariance = patches.T @ patches / len(patches)
    values, vectors = torch.linalg.eigh(covariance)
    filters = (vectors.T / torch.sqrt(values + eps)[:, None]).reshape(-1, c, kernel, kernel)
    return torch.cat((filters, -filters)).float()


def whiten(net: nn.Sequential, images: torch.Tensor) -> None:
    """Set the stem's filters from `images` (normalized as the trainer feeds them) and freeze
    them; its bias keeps training."""
    stem = net[0]
    with torch.no_grad():
        stem.weight.copy_(patch_whitening(images[:PATCH_IMAGES]))
    stem.weight.requires_grad_(False)
