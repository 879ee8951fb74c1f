"""The architecture description: frozen dataclasses, JSON round trip, validation, keys."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from nas.arch.schema import SchemaError, parse

BlockKind = Literal["conv", "spectrum", "inception", "resnext"]
OpOrder = Literal["dw_pw", "pw_dw"]
MidAct = Literal["none", "relu", "elu"]
Act = Literal["relu", "elu", "silu", "gelu"]
Residual = Literal["none", "identity", "projection"]
ActOrder = Literal["post", "pre"]
Downsample = Literal["conv", "maxpool"]
Transition = Literal["first", "last"]
Padding = Literal["same", "valid"]
Pooling = Literal["avg", "max"]

INCEPTION_BRANCHES = 4  # 1x1 / 1x1->kxk / 1x1->kxk->kxk / pool->1x1


class GenotypeError(SchemaError):
    """An invalid architecture description; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Stem:
    """Plain convolutions (conv-BN-act) before the first stage, optionally followed by max-pool."""

    widths: tuple[int, ...] = (32,)
    strides: tuple[int, ...] = (1,)
    kernel: int = 3
    padding: Padding = "same"
    pool: bool = False  # 3x3/2 max-pool after the convs, as in ImageNet stems


@dataclass(frozen=True)
class Stage:
    """A run of `depth` blocks of one kind at one width; the first block changes shape."""

    LABEL: ClassVar[str] = "stage s{}"  # how stages are named in errors and module names
    kind: BlockKind = "spectrum"
    depth: int = 1
    width: int = 64
    stride: int = 1
    downsample: Downsample = "conv"  # strided conv, or 3x3/2 max-pool ending the branch (Xception)
    kernel: int = 3
    spatial_separable: bool = False  # every kxk conv becomes kx1 then 1xk
    groups: int = 1  # segments of the grouped kxk conv: 1 = regular ... width = depthwise
    order: OpOrder = "dw_pw"  # spectrum: dw_pw = separable conv, pw_dw = extreme Inception
    mid_act: MidAct = "none"  # spectrum: nonlinearity between the two ops
    mid_norm: bool = False  # spectrum: BN between the two ops
    residual: Residual = "identity"  # identity projects only where the shape changes
    act_order: ActOrder = "post"  # post = conv-BN-act, pre = act-conv-BN (Xception)
    units: int = 1  # conv / spectrum: convolution units per block
    transition: Transition = "first"  # which unit of the first block changes the width
    bottleneck: float = 0.5  # resnext: inner width / width; inception: reduce width / branch

    def grouped_width(self) -> int:
        """Channels of the grouped kxk conv at the stage width (what `groups` divides)."""
        if self.kind == "resnext":
            return max(1, round(self.width * self.bottleneck))
        return self.width

    def spectrum_position(self) -> float:
        """log(groups)/log(channels): 0 = regular conv, 1 = depthwise."""
        channels = self.grouped_width()
        segments = INCEPTION_BRANCHES if self.kind == "inception" else self.groups
        if channels <= 1:
            return 0.0
        return min(1.0, math.log(segments) / math.log(channels))

    def canonical(self) -> Stage:
        """This stage with the fields its kind ignores reset, so equal networks compare equal."""
        default = Stage()
        ignored: dict[str, Any] = {}
        if self.kind != "spectrum":
            ignored |= {"order": default.order, "mid_act": default.mid_act, "mid_norm": False}
        if self.kind in ("inception", "resnext"):
            ignored |= {"units": 1}
        if self.kind == "inception":
            ignored |= {"groups": 1}
        if self.kind not in ("inception", "resnext"):
            ignored |= {"bottleneck": default.bottleneck}
        if self.units == 1 or self.kind in ("inception", "resnext"):
            ignored |= {"transition": default.transition}
        if self.stride == 1:
            ignored |= {"downsample": default.downsample}
        return dataclasses.replace(self, **ignored)


@dataclass(frozen=True)
class Head:
    """Global pooling, optional hidden fully-connected layers and dropout, classifier."""

    pooling: Pooling | None = "avg"  # None only without a classifier: features stay 4-D
    fc: tuple[int, ...] = ()
    dropout: float = 0.0
    num_classes: int = 10  # 0 = no classifier (Keras include_top=False)


@dataclass(frozen=True)
class Genotype:
    """A whole network: stem -> stages s1.. -> head, at a given input size."""

    stages: tuple[Stage, ...]
    stem: Stem = field(default_factory=Stem)
    head: Head = field(default_factory=Head)
    in_channels: int = 3
    resolution: int = 32
    act: Act = "relu"

    def validate(self) -> Genotype:
        """Raise GenotypeError naming the first invalid field; return self when valid."""
        validate(self)
        return self

    def spectrum_position(self) -> float:
        """Depth-weighted mean of the stages' spectrum positions."""
        total = sum(s.depth for s in self.stages)
        return sum(s.spectrum_position() * s.depth for s in self.stages) / total

    def canonical(self) -> Genotype:
        """The same network with ignored fields normalised."""
        return dataclasses.replace(self, stages=tuple(s.canonical() for s in self.stages))

    def key(self) -> str:
        """Stable 16-hex-digit identity of the architecture, for de-duplication."""
        text = json.dumps(self.canonical().to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of `to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, where: str = "genotype") -> Genotype:
        """Parse and validate; unknown keys and wrong types raise GenotypeError."""
        return parse(data, cls, where, GenotypeError).validate()

    @classmethod
    def from_json(cls, text: str, where: str = "genotype") -> Genotype:
        """Parse JSON text; see `from_dict`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenotypeError(f"{where}: not valid JSON ({err})") from None
        return cls.from_dict(data, where)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def divisors(n: int) -> list[int]:
    """All positive divisors of n, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def divisor_at(position: float, channels: int) -> int:
    """The divisor of `channels` nearest (log scale) to channels ** position: the segment count
    at a spectrum position (0 = regular, 1 = depthwise)."""
    target = position * math.log(channels) if channels > 1 else 0.0
    return min(divisors(channels), key=lambda d: (abs(math.log(d) - target), d))


def _fail(where: str, message: str) -> None:
    raise GenotypeError(f"{where}: {message}")


def _check_range(where: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        _fail(where, f"{value!r} must be {bound}")


def _check_kernel(where: str, kernel: int) -> None:
    if kernel < 1 or kernel > 11 or kernel % 2 == 0:
        _fail(where, f"{kernel} must be an odd kernel size in 1..11")


def validate_stage(stage: Stage, where: str) -> None:
    """Check one stage's own fields (widths relative to its input are checked by the layout)."""
    _check_range(f"{where}.depth", stage.depth, 1)
    _check_range(f"{where}.width", stage.width, 1)
    _check_range(f"{where}.units", stage.units, 1)
    if stage.stride not in (1, 2):
        _fail(f"{where}.stride", f"{stage.stride} is not 1 or 2")
    _check_kernel(f"{where}.kernel", stage.kernel)
    if stage.kind in ("spectrum", "inception") and stage.kernel == 1:
        _fail(f"{where}.kernel", f"a {stage.kind} block needs a spatial kernel (3, 5, 7, ...)")
    if stage.kind == "inception":
        if stage.width % INCEPTION_BRANCHES:
            _fail(f"{where}.width", f"{stage.width} must be a multiple of {INCEPTION_BRANCHES}"
                  " (one equal share per inception branch)")
        _check_range(f"{where}.bottleneck", stage.bottleneck, 1 / (stage.width // 4), 8.0)
        return
    if stage.kind == "resnext":
        _check_range(f"{where}.bottleneck", stage.bottleneck, 1 / stage.width, 8.0)
    channels = stage.grouped_width()
    if stage.groups < 1 or channels % stage.groups:
        allowed = ", ".join(map(str, divisors(channels)))
        _fail(f"{where}.groups", f"{stage.groups} does not divide the {channels} channels of the"
              f" grouped conv (allowed: {allowed})")


def validate(genotype: Genotype) -> None:
    """Raise GenotypeError for the first invalid field of a genotype."""
    if not isinstance(genotype, Genotype):
        raise GenotypeError(f"genotype: expected a Genotype, got {type(genotype).__name__}")
    parse(genotype.to_dict(), Genotype, "genotype", GenotypeError)  # every field's type/choice
    _check_range("genotype.in_channels", genotype.in_channels, 1)
    _check_range("genotype.resolution", genotype.resolution, 1)
    stem, head = genotype.stem, genotype.head
    if len(stem.widths) != len(stem.strides):
        _fail("stem.strides", f"has {len(stem.strides)} entries for {len(stem.widths)} widths")
    for i, (width, stride) in enumerate(zip(stem.widths, stem.strides, strict=True)):
        _check_range(f"stem.widths[{i}]", width, 1)
        if stride not in (1, 2):
            _fail(f"stem.strides[{i}]", f"{stride} is not 1 or 2")
    _check_kernel("stem.kernel", stem.kernel)
    if not genotype.stages:
        _fail("genotype.stages", "needs at least one stage")
    for i, stage in enumerate(genotype.stages, start=1):
        validate_stage(stage, f"stage s{i}")
    for i, width in enumerate(head.fc):
        _check_range(f"head.fc[{i}]", width, 1)
    _check_range("head.dropout", head.dropout, 0.0, 0.99)
    _check_range("head.num_classes", head.num_classes, 0)
    if head.pooling is None and (head.num_classes or head.fc):
        _fail("head.pooling", "must be 'avg' or 'max' when the head has a classifier or fc layers")
    _check_stem_size(genotype)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a convolution or pooling window."""
    return (size + 2 * padding - kernel) // stride + 1


def _check_stem_size(genotype: Genotype) -> None:
    """Only 'valid' stem convs can shrink a map to nothing: strided stages give ceil(h / 2)."""
    size, stem = genotype.resolution, genotype.stem
    pad = stem.kernel // 2 if stem.padding == "same" else 0
    for i, stride in enumerate(stem.strides):
        size = conv_out(size, stem.kernel, stride, pad)
        if size < 1:
            _fail(f"stem.widths[{i}]", f"input resolution {genotype.resolution} is too small for"
                  f" {stem.kernel}x{stem.kernel} '{stem.padding}' stem convs")
