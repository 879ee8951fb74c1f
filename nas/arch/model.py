"""Build a torch network from a genotype: stem -> stages s1.. -> blocks b1.. -> head."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nas.arch.genotype import Genotype
from nas.arch.plan import (
    Activation,
    Block,
    Chain,
    Concat,
    Conv,
    Dropout,
    GlobalPool,
    Linear,
    Norm,
    Plan,
    Pool,
    Seq,
    plan,
)

# inplace=False on purpose: pre-activation blocks apply the act to x while the shortcut reads x.
ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "gelu": nn.GELU}


class GlobalPool2d(nn.Module):
    """Global average or max pooling to (N, C)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) if self.kind == "avg" else x.amax((2, 3))


class ConcatBranches(nn.Module):
    """Run named branches on one input and concatenate their outputs on channels."""

    def __init__(self, branches: OrderedDict[str, nn.Module]):
        super().__init__()
        for name, module in branches.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


def make_layer(layer) -> nn.Module:
    """The torch module for one planned layer."""
    match layer:
        case Conv():
            return nn.Conv2d(layer.cin, layer.cout, layer.kernel, layer.stride, layer.padding,
                             groups=layer.groups, bias=False)
        case Norm():
            return nn.BatchNorm2d(layer.channels)
        case Activation():
            return ACTIVATIONS[layer.kind]()
        case Pool():
            return nn.MaxPool2d(layer.kernel, layer.stride, layer.padding)
        case GlobalPool():
            return GlobalPool2d(layer.kind)
        case Linear():
            return nn.Linear(layer.cin, layer.cout)
        case Dropout():
            return nn.Dropout(layer.p)
        case Chain():
            return make_sequential(layer.layers)
        case Concat():
            return ConcatBranches(OrderedDict((n, make_layer(c)) for n, c in layer.branches))
    raise TypeError(f"no module for planned layer {layer!r}")


def make_sequential(layers: Seq) -> nn.Sequential:
    """nn.Sequential with the planned names."""
    return nn.Sequential(OrderedDict((name, make_layer(layer)) for name, layer in layers))


class SpectrumBlock(nn.Module):
    """Residual branch of named layers, optional shortcut, layers after the addition."""

    def __init__(self, block: Block):
        super().__init__()
        for name, layer in block.branch + block.after:
            self.add_module(name, make_layer(layer))
        self.branch = tuple(name for name, _ in block.branch)
        self.after = tuple(name for name, _ in block.after)
        self.residual = block.shortcut is not None
        if block.shortcut is not None:
            self.shortcut = make_sequential(block.shortcut) if block.shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for name in self.branch:
            y = getattr(self, name)(y)
        if self.residual:
            y = y + self.shortcut(x)
        for name in self.after:
            y = getattr(self, name)(y)
        return y


class Network(nn.Module):
    """A network built from a plan."""

    def __init__(self, net: Plan):
        super().__init__()
        self.stem = make_sequential(net.stem)
        self.stage_names = tuple(name for name, _ in net.stages)
        for name, blocks in net.stages:
            self.add_module(name, nn.Sequential(OrderedDict(
                (b, SpectrumBlock(block)) for b, block in blocks)))
        self.head = make_sequential(net.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages: the last feature map."""
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling, hidden fc layers and classifier; pre_logits stops before dropout/classifier."""
        for name, layer in self.head.named_children():
            if pre_logits and name in ("drop", "fc"):
                break
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def init_weights(model: nn.Module, zero_init_residual: bool = True) -> None:
    """pycls-style init; with zero_init_residual, residual branches end in a zero-gamma BN so
    blocks start as identity (Goyal et al. 2017)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
    for module in model.modules() if zero_init_residual else ():
        if isinstance(module, SpectrumBlock) and module.residual:
            norms = [getattr(module, n) for n in module.branch
                     if isinstance(getattr(module, n), nn.BatchNorm2d)]
            if norms:  # inception modules end in per-branch BNs instead
                nn.init.zeros_(norms[-1].weight)


def build(genotype: Genotype, zero_init_residual: bool = True) -> Network:
    """Validate the genotype and build its network (invalid ones never reach torch)."""
    model = Network(plan(genotype))
    init_weights(model, zero_init_residual)
    return model
