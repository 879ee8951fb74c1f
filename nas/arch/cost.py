"""Parameters and multiply-adds computed on paper from the genotype's layer plan."""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch.genotype import Genotype, conv_out
from nas.arch.plan import (
    Activation,
    Chain,
    Concat,
    Conv,
    Dropout,
    GlobalPool,
    Linear,
    Norm,
    Pool,
    Seq,
    plan,
)

Shape = tuple[int, ...]  # (C, H, W) for maps, (C,) after global pooling


@dataclass(frozen=True)
class Cost:
    """Trainable parameters and multiply-adds of one forward pass of one image."""

    params: int
    macs: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


ZERO = Cost(0, 0)


def layer_cost(layer, shape: Shape) -> tuple[Cost, Shape]:
    """Cost of one layer on an input of `shape`, and its output shape.

    MACs count convolutions and linear layers only, as FLOP counters do: BN, activations,
    pooling and additions are memory-bound and negligible in multiply-adds.
    """
    match layer:
        case Conv():
            _, h, w = shape
            oh = conv_out(h, layer.kernel[0], layer.stride[0], layer.padding[0])
            ow = conv_out(w, layer.kernel[1], layer.stride[1], layer.padding[1])
            weights = layer.cout * (layer.cin // layer.groups) * layer.kernel[0] * layer.kernel[1]
            return Cost(weights, weights * oh * ow), (layer.cout, oh, ow)
        case Norm():
            return Cost(2 * layer.channels, 0), shape
        case Pool():
            c, h, w = shape
            size = [conv_out(d, layer.kernel, layer.stride, layer.padding) for d in (h, w)]
            return ZERO, (c, *size)
        case GlobalPool():
            return ZERO, shape[:1]
        case Linear():
            return Cost(layer.cin * layer.cout + layer.cout, layer.cin * layer.cout), (layer.cout,)
        case Activation() | Dropout():
            return ZERO, shape
        case Chain():
            return seq_cost(layer.layers, shape)
        case Concat():
            costs = [seq_cost(chain.layers, shape) for _, chain in layer.branches]
            total = sum((cost for cost, _ in costs), ZERO)
            channels = sum(out[0] for _, out in costs)
            return total, (channels, *costs[0][1][1:])
    raise TypeError(f"no cost rule for planned layer {layer!r}")


def seq_cost(layers: Seq, shape: Shape) -> tuple[Cost, Shape]:
    """Cost of named layers applied in order."""
    total = ZERO
    for _, layer in layers:
        cost, shape = layer_cost(layer, shape)
        total += cost
    return total, shape


def stage_costs(genotype: Genotype) -> dict[str, Cost]:
    """Cost per part: 'stem', 's1'.., 'head' (their sum is the network's)."""
    net = plan(genotype)
    shape: Shape = (net.in_channels, net.resolution, net.resolution)
    parts: dict[str, Cost] = {}
    parts["stem"], shape = seq_cost(net.stem, shape)
    for name, blocks in net.stages:
        parts[name] = ZERO
        for _, block in blocks:
            cost, out = seq_cost(block.branch, shape)
            if block.shortcut:
                cost += seq_cost(block.shortcut, shape)[0]
            parts[name] += cost + seq_cost(block.after, out)[0]
            shape = out
    parts["head"], _ = seq_cost(net.head, shape)
    return parts


def cost(genotype: Genotype) -> Cost:
    """Parameters and multiply-adds of the whole network at its input resolution."""
    return sum(stage_costs(genotype).values(), ZERO)
