"""The supernet: per layer one shared kernel; a path (a genotype's plan) picks the sub-network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.arch.genotype import Genotype
from nas.arch.model import Network, build, init_weights, make_sequential
from nas.arch.plan import Activation, Block, Conv, Norm, Pool, Seq, plan
from nas.search.space.types import Space
from nas.supernet.ops import SuperConv
from nas.supernet.paths import check_supported, structural_points

ACT_FN = {"relu": F.relu, "elu": F.elu, "silu": F.silu, "gelu": F.gelu}
SHORTCUT = "shortcut"  # a block's projection weights, shared by every op order

# per stage: per block (its name, the op order whose weights it uses, its planned layers)
Path = tuple[tuple[str, tuple[tuple[str, str, Block], ...]], ...]


def path_of(arch: Genotype) -> Path:
    """The sub-network a genotype is: its plan's blocks with their stage's op order."""
    net = plan(arch)
    return tuple((name, tuple((b, stage.order, block) for b, block in blocks))
                 for (name, blocks), stage in zip(net.stages, arch.stages, strict=True))


class SuperNet(nn.Module):
    """Stem and head as in every point; per block and op order the largest kernel of each conv.

    Weights are keyed by (stage, block, op order, planned layer name): group counts slice the
    dense kernel to its block diagonal, kernel sizes crop its centre, mid activations and
    residual choices add no weights (a projection shortcut is one 1x1 conv per block).
    """

    def __init__(self, space: Space):
        super().__init__()
        check_supported(space)
        shapes: dict[tuple[str, ...], tuple[int, int, int] | int] = {}
        first = None
        for arch in structural_points(space):
            first = first or plan(arch)
            for stage, blocks in path_of(arch):
                for b, order, block in blocks:
                    _collect(shapes, (stage, b, order), block.branch)
                    _collect(shapes, (stage, b, SHORTCUT), block.shortcut or ())
        self.stem = make_sequential(first.stem)
        self.head = make_sequential(first.head)
        self.stages = nn.ModuleDict()
        for (stage, b, group, name), shape in shapes.items():
            layers = _child(_child(_child(self.stages, stage), b), group)
            layers[name] = SuperConv(*shape) if isinstance(shape, tuple) else nn.BatchNorm2d(shape)
        init_weights(self, zero_init_residual=False)  # one BN serves residual and plain paths
        self.paths: list[Path] = []
        self._cache: dict[str, Path] = {}

    def set_path(self, *archs: Genotype) -> None:
        """The sub-network(s) forward runs; several give their logits concatenated (one step of
        the sandwich rule)."""
        self.paths = [self._path(a) for a in archs]

    def _path(self, arch: Genotype) -> Path:
        key = arch.key()
        if key not in self._cache:
            self._cache[key] = path_of(arch)
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.paths:
            raise RuntimeError("SuperNet.set_path(genotype) first: which sub-network to run")
        return torch.cat([self._run(path, x) for path in self.paths])

    def _run(self, path: Path, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage, blocks in path:
            for b, order, block in blocks:
                weights = self.stages[stage][b]
                y = _apply(weights[order], block.branch, x)
                if block.shortcut is not None:
                    y = y + (_apply(weights[SHORTCUT], block.shortcut, x) if block.shortcut else x)
                x = _apply(None, block.after, y)
        return self.head(x)

    def extract(self, arch: Genotype) -> Network:
        """The stand-alone network of `arch` with the supernet's (sliced) weights copied in."""
        net = build(arch)
        net.stem.load_state_dict(self.stem.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        for stage, blocks in self._path(arch):
            for b, order, block in blocks:
                target, weights = getattr(getattr(net, stage), b), self.stages[stage][b]
                _copy(weights[order], block.branch, target)
                if block.shortcut:
                    _copy(weights[SHORTCUT], block.shortcut, target.shortcut)
        return net


def _child(parent: nn.ModuleDict, key: str) -> nn.ModuleDict:
    """parent[key], a new ModuleDict the first time."""
    if key not in parent:
        parent[key] = nn.ModuleDict()
    return parent[key]


def _collect(shapes: dict, prefix: tuple[str, ...], layers: Seq) -> None:
    """Record each conv's (cin, cout, largest kernel) and each BN's channels under prefix."""
    for name, layer in layers:
        key = (*prefix, name)
        if isinstance(layer, Conv):
            cin, cout, kernel = layer.cin, layer.cout, layer.kernel[0]
            old = shapes.get(key, (cin, cout, kernel))
            if old[:2] != (cin, cout):
                raise ValueError(f"{'.'.join(key)}: {cin} -> {cout} channels here, {old[:2]}"
                                 " elsewhere; one kernel cannot serve both")
            shapes[key] = (cin, cout, max(kernel, old[2]))
        elif isinstance(layer, Norm):
            shapes[key] = layer.channels


def _apply(weights: nn.ModuleDict | None, layers: Seq, x: torch.Tensor) -> torch.Tensor:
    """Run planned layers with the shared weights: a conv slices its kernel, a BN is shared."""
    for name, layer in layers:
        match layer:
            case Conv():
                x = weights[name](x, layer.groups, layer.kernel[0], layer.stride, layer.padding)
            case Norm():
                x = weights[name](x)
            case Activation():
                x = ACT_FN[layer.kind](x)
            case Pool():
                x = F.max_pool2d(x, layer.kernel, layer.stride, layer.padding)
            case _:
                raise TypeError(f"the supernet has no rule for planned layer {layer!r}")
    return x


def _copy(weights: nn.ModuleDict, layers: Seq, target: nn.Module) -> None:
    """Copy the sliced convs and the BNs of planned layers into a stand-alone module."""
    with torch.no_grad():
        for name, layer in layers:
            if isinstance(layer, Conv):
                getattr(target, name).weight.copy_(
                    weights[name].sliced(layer.groups, layer.kernel[0]))
            elif isinstance(layer, Norm):
                getattr(target, name).load_state_dict(weights[name].state_dict())
