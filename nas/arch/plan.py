"""Genotype -> layer plan: every layer with its name, shape and hyper-parameters.

The plan is the one place where the genotype's meaning is spelled out. The torch builder
(`nas.arch.model`), the analytic cost (`nas.arch.cost`) and the code exporter all read it, so they
cannot drift apart; the tests check the plan against torch's own parameter and FLOP counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nas.arch.genotype import INCEPTION_BRANCHES, Genotype, Stage, divisor_at


@dataclass(frozen=True)
class Conv:
    """nn.Conv2d without bias (a BatchNorm follows)."""

    cin: int
    cout: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1


@dataclass(frozen=True)
class Norm:
    """nn.BatchNorm2d."""

    channels: int


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity: relu / elu / silu / gelu."""

    kind: str


@dataclass(frozen=True)
class Pool:
    """nn.MaxPool2d."""

    kernel: int
    stride: int
    padding: int


@dataclass(frozen=True)
class GlobalPool:
    """Global average or max pooling, flattened to (N, C)."""

    kind: str


@dataclass(frozen=True)
class Linear:
    """nn.Linear with bias."""

    cin: int
    cout: int


@dataclass(frozen=True)
class Dropout:
    """nn.Dropout."""

    p: float


@dataclass(frozen=True)
class Chain:
    """Named layers applied in order (nn.Sequential)."""

    layers: tuple[tuple[str, Layer], ...]


@dataclass(frozen=True)
class Concat:
    """Named parallel chains whose outputs are concatenated on channels."""

    branches: tuple[tuple[str, Chain], ...]


Layer = Conv | Norm | Activation | Pool | GlobalPool | Linear | Dropout | Chain | Concat
Seq = tuple[tuple[str, Layer], ...]


@dataclass(frozen=True)
class Block:
    """branch(x) [+ shortcut(x)] -> after; shortcut=None means no residual, () means identity."""

    branch: Seq
    shortcut: Seq | None
    after: Seq


@dataclass(frozen=True)
class Plan:
    """The whole network: stem, stages s1.. of blocks b1.., head."""

    stem: Seq
    stages: tuple[tuple[str, tuple[tuple[str, Block], ...]], ...]
    head: Seq
    in_channels: int
    resolution: int


def adapt_groups(groups: int, reference: int, channels: int) -> int:
    """Groups for a grouped conv on `channels` when the stage's choice is `groups` of `reference`.

    Keeps the segment count where it divides the channels; otherwise (a transition conv whose
    input width differs from the stage width) takes the divisor nearest in log scale to the same
    spectrum position, so depthwise stays depthwise and regular stays regular.
    """
    if channels % groups == 0:
        return groups
    return divisor_at(math.log(groups) / math.log(reference) if reference > 1 else 0.0, channels)


def spatial_conv(cin: int, cout: int, kernel: int, stride: int, groups: int, separable: bool):
    """A kxk conv, or its spatially separable kx1 -> 1xk factorisation as a Chain."""
    pad = kernel // 2
    if not separable or kernel == 1:
        return Conv(cin, cout, (kernel, kernel), (stride, stride), (pad, pad), groups)
    vertical = Conv(cin, cout, (kernel, 1), (stride, 1), (pad, 0), groups)
    horizontal = Conv(cout, cout, (1, kernel), (1, stride), (0, pad), groups)
    return Chain((("conv_v", vertical), ("conv_h", horizontal)))


def pointwise(cin: int, cout: int, stride: int = 1) -> Conv:
    """A 1x1 conv."""
    return Conv(cin, cout, (1, 1), (stride, stride))


def _suffix(index: int, count: int) -> str:
    """Unit names carry their index only when a block has several units."""
    return str(index) if count > 1 else ""


def _spectrum_unit(stage: Stage, cin: int, cout: int, stride: int, tag: str) -> Seq:
    """Grouped kxk conv and 1x1 conv in the stage's order, optional mid BN/act, then BN."""
    if stage.order == "dw_pw":
        groups = adapt_groups(stage.groups, stage.width, cin)
        first = ("conv_dw", spatial_conv(cin, cin, stage.kernel, stride, groups,
                                         stage.spatial_separable))
        second = ("conv_pw", pointwise(cin, cout))
        mid_channels = cin
    else:
        groups = adapt_groups(stage.groups, stage.width, cout)
        first = ("conv_pw", pointwise(cin, cout))
        second = ("conv_dw", spatial_conv(cout, cout, stage.kernel, stride, groups,
                                          stage.spatial_separable))
        mid_channels = cout
    middle: list[tuple[str, object]] = []
    if stage.mid_norm:
        middle.append(("bn_mid", Norm(mid_channels)))
    if stage.mid_act != "none":
        middle.append(("act_mid", Activation(stage.mid_act)))
    layers = [first, *middle, second, ("bn", Norm(cout))]
    return tuple((name + tag, layer) for name, layer in layers)


def _conv_unit(stage: Stage, cin: int, cout: int, stride: int, tag: str) -> Seq:
    """One (possibly grouped) kxk conv, then BN."""
    groups = adapt_groups(stage.groups, stage.width, math.gcd(cin, cout))
    conv = spatial_conv(cin, cout, stage.kernel, stride, groups, stage.spatial_separable)
    return (("conv" + tag, conv), ("bn" + tag, Norm(cout)))


def _unit_widths(stage: Stage, cin: int, first_block: bool) -> list[tuple[int, int]]:
    """(in, out) channels of each unit; the transition unit changes the width."""
    if not first_block:
        return [(stage.width, stage.width)] * stage.units
    if stage.transition == "first":
        return [(cin, stage.width)] + [(stage.width, stage.width)] * (stage.units - 1)
    return [(cin, cin)] * (stage.units - 1) + [(cin, stage.width)]


def _with_acts(units: list[Seq], stage: Stage, act: str) -> tuple[Seq, Seq]:
    """Place one activation per unit: before it (pre) or after it (post; the last after the add)."""
    branch: list = []
    after: Seq = ()
    for i, unit in enumerate(units, start=1):
        name = "act" + _suffix(i, len(units))
        if stage.act_order == "pre":
            branch += [(name, Activation(act)), *unit]
        elif i < len(units):
            branch += [*unit, (name, Activation(act))]
        else:
            branch += list(unit)
            after = ((name, Activation(act)),)
    return tuple(branch), after


def _inception_mix(stage: Stage, cin: int, stride: int, act: str) -> Concat:
    """Canonical module: 1x1 / 1x1->kxk / 1x1->kxk->kxk / pool->1x1, each a quarter of the width."""
    share = stage.width // INCEPTION_BRANCHES
    reduce = max(1, round(share * stage.bottleneck))
    k, sep = stage.kernel, stage.spatial_separable

    def chain(*layers):
        return Chain(tuple(layers))

    reduce_layers = (("conv_reduce", pointwise(cin, reduce)), ("bn_reduce", Norm(reduce)),
                     ("act_reduce", Activation(act)))
    return Concat((
        ("branch1", chain(("conv", pointwise(cin, share, stride)), ("bn", Norm(share)))),
        ("branch2", chain(*reduce_layers, ("conv", spatial_conv(reduce, share, k, stride, 1, sep)),
                          ("bn", Norm(share)))),
        ("branch3", chain(*reduce_layers, ("conv1", spatial_conv(reduce, share, k, 1, 1, sep)),
                          ("bn1", Norm(share)), ("act1", Activation(act)),
                          ("conv2", spatial_conv(share, share, k, stride, 1, sep)),
                          ("bn2", Norm(share)))),
        ("branch4", chain(("pool", Pool(3, stride, 1)), ("conv", pointwise(cin, share)),
                          ("bn", Norm(share)))),
    ))


def _resnext_units(stage: Stage, cin: int, stride: int) -> list[Seq]:
    """1x1 reduce -> grouped kxk (cardinality = groups) -> 1x1 expand, each with BN."""
    inner = stage.grouped_width()
    group_conv = spatial_conv(inner, inner, stage.kernel, stride, stage.groups,
                              stage.spatial_separable)
    return [
        (("conv_reduce", pointwise(cin, inner)), ("bn1", Norm(inner))),
        (("conv_group", group_conv), ("bn2", Norm(inner))),
        (("conv_expand", pointwise(inner, stage.width)), ("bn3", Norm(stage.width))),
    ]


def _units(stage: Stage, cin: int, stride: int, first: bool, act: str) -> list[Seq]:
    """The block's units, before activations are placed."""
    if stage.kind == "resnext":
        return _resnext_units(stage, cin, stride)
    if stage.kind == "inception":
        mix = _inception_mix(stage, cin, stride, act)
        return [(("mix", mix),)]  # every branch already ends in BN
    make = _spectrum_unit if stage.kind == "spectrum" else _conv_unit
    widths = _unit_widths(stage, cin, first)
    return [make(stage, a, b, stride if i == 0 else 1, _suffix(i + 1, len(widths)))
            for i, (a, b) in enumerate(widths)]


def _block(stage: Stage, cin: int, first: bool, act: str) -> Block:
    """One block: units with activations, optional max-pool, shortcut."""
    stride = stage.stride if first else 1
    conv_stride = stride if stage.downsample == "conv" else 1
    units = _units(stage, cin, conv_stride, first, act)
    branch, after = _with_acts(units, stage, act)
    if stride > 1 and stage.downsample == "maxpool":
        branch += (("pool", Pool(3, stride, 1)),)
    if stage.residual == "none":
        shortcut = None
    elif stage.residual == "identity" and cin == stage.width and stride == 1:
        shortcut = ()
    else:
        shortcut = (("conv", pointwise(cin, stage.width, stride)), ("bn", Norm(stage.width)))
    return Block(branch, shortcut, after)


def _stem(genotype: Genotype) -> Seq:
    """conv-BN-act per stem width, then the optional 3x3/2 max-pool."""
    stem, layers, cin = genotype.stem, [], genotype.in_channels
    pad = stem.kernel // 2 if stem.padding == "same" else 0
    for i, (width, stride) in enumerate(zip(stem.widths, stem.strides, strict=True), start=1):
        conv = Conv(cin, width, (stem.kernel, stem.kernel), (stride, stride), (pad, pad))
        act = Activation(genotype.act)
        layers += [(f"conv{i}", conv), (f"bn{i}", Norm(width)), (f"act{i}", act)]
        cin = width
    if stem.pool:
        layers.append(("pool", Pool(3, 2, 1)))
    return tuple(layers)


def _head(genotype: Genotype, cin: int) -> Seq:
    """Global pool -> hidden fc+act -> dropout -> classifier; empty for a features-only net."""
    head, layers = genotype.head, []
    if head.pooling is not None:
        layers.append(("pool", GlobalPool(head.pooling)))
    for i, width in enumerate(head.fc, start=1):
        layers += [(f"fc{i}", Linear(cin, width)), (f"act{i}", Activation(genotype.act))]
        cin = width
    if head.num_classes:
        if head.dropout > 0:
            layers.append(("drop", Dropout(head.dropout)))
        layers.append(("fc", Linear(cin, head.num_classes)))
    return tuple(layers)


def plan(genotype: Genotype) -> Plan:
    """Validate the genotype and spell out every layer of the network it describes."""
    genotype.validate()
    cin = genotype.stem.widths[-1] if genotype.stem.widths else genotype.in_channels
    stages = []
    for s, stage in enumerate(genotype.stages, start=1):
        blocks = []
        for b in range(1, stage.depth + 1):
            blocks.append((f"b{b}", _block(stage, cin, b == 1, genotype.act)))
            cin = stage.width
        stages.append((f"s{s}", tuple(blocks)))
    return Plan(_stem(genotype), tuple(stages), _head(genotype, cin),
                genotype.in_channels, genotype.resolution)
