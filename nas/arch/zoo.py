"""Named reference architectures: Xception (Chollet 2017) and CIFAR presets at the seed points."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from nas.arch.genotype import Genotype, GenotypeError, Head, MidAct, Pooling, Stage, Stem
from nas.arch.model import Network, build


def xception_genotype(
    *,
    include_top: bool = True,
    pooling: Pooling | None = None,
    num_classes: int = 1000,
    resolution: int = 299,
    mid_act: MidAct = "none",
    residual: bool = True,
) -> Genotype:
    """Xception, Fig. 5: entry flow, middle flow x8, exit flow; variants for §4.6 and §4.7."""
    if include_top:
        pooling = "avg"  # as Keras: the classifier always sits on global average pooling
    elif pooling not in ("avg", "max", None):
        raise GenotypeError(f"xception.pooling: {pooling!r} is not one of 'avg', 'max', None")
    shortcut = "identity" if residual else "none"  # identity projects where the shape changes
    sep = Stage(kind="spectrum", order="dw_pw", mid_act=mid_act, act_order="pre",
                residual=shortcut, stride=2, downsample="maxpool")
    entry = [dataclasses.replace(sep, width=w, units=2, groups=w) for w in (128, 256, 728)]
    middle = dataclasses.replace(sep, width=728, groups=728, depth=8, units=3, stride=1)
    exit_block = dataclasses.replace(sep, width=1024, groups=1024, units=2, transition="last")
    # The exit flow ends in two plain SeparableConv-BN-ReLU layers without a shortcut.
    tail = [dataclasses.replace(sep, width=w, groups=w, residual="none", act_order="post",
                                stride=1) for w in (1536, 2048)]
    return Genotype(
        stem=Stem(widths=(32, 64), strides=(2, 1), kernel=3, padding="valid"),
        stages=(*entry, middle, exit_block, *tail),
        head=Head(pooling=pooling, num_classes=num_classes if include_top else 0),
        resolution=resolution,
    ).validate()


def xception(**kwargs) -> Network:
    """The Xception network (Keras-Applications-like arguments); see `xception_genotype`."""
    return build(xception_genotype(**kwargs))


StageRule = Callable[[int], Stage]  # stage template for a given stage width


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named seed point: what it stands for and its stage template per width."""

    description: str
    stage: StageRule


def _spectrum(**fields) -> StageRule:
    """A spectrum stage; `groups` may be 'depthwise' (= width) or a segment count."""
    groups = fields.pop("groups")

    def rule(width: int) -> Stage:
        g = width if groups == "depthwise" else min(groups, width)
        return Stage(kind="spectrum", groups=g, **fields)

    return rule


PRESETS: dict[str, Preset] = {
    "regular": Preset("one segment: a regular 3x3 conv per unit, ResNet-style residuals",
                      lambda w: Stage(kind="conv", groups=1)),
    "inception_like": Preset(
        "simplified Inception, reformulated (Xception Fig. 3): 1x1 conv, BN-ReLU, 3x3 conv on"
        " 4 segments", _spectrum(order="pw_dw", groups=4, mid_act="relu", mid_norm=True)),
    "extreme_inception": Preset(
        "extreme Inception (Xception Fig. 4): 1x1 conv, BN-ReLU, one 3x3 per channel",
        _spectrum(order="pw_dw", groups="depthwise", mid_act="relu", mid_norm=True)),
    "separable": Preset(
        "depthwise separable conv, no mid activation, pre-activation residual blocks (Xception)",
        _spectrum(order="dw_pw", groups="depthwise", act_order="pre")),
    "separable_vgg": Preset(
        "depthwise separable conv without residuals, conv-BN-ReLU (Xception §4.6, QuickNet-like)",
        _spectrum(order="dw_pw", groups="depthwise", residual="none")),
    "resnext": Preset(
        "ResNeXt blocks: 1x1 -> grouped 3x3 with group width 4 -> 1x1, post-activation",
        lambda w: Stage(kind="resnext", bottleneck=1.0, groups=max(1, w // 4))),
    "inception": Preset(
        "canonical Inception modules (1x1 / 1x1-3x3 / 1x1-3x3-3x3 / pool-1x1) with residuals",
        lambda w: Stage(kind="inception", bottleneck=0.5)),
    "hybrid": Preset(
        "Ghosh 2017 hybrid: depthwise conv (cardinality = channels), BN-ReLU, pointwise conv,"
        " residual", _spectrum(order="dw_pw", groups="depthwise", mid_act="relu", mid_norm=True)),
    "spatially_separable": Preset(
        "regular conv factorised spatially: 3x1 then 1x3 (image-processing separability)",
        lambda w: Stage(kind="conv", groups=1, spatial_separable=True)),
}


def preset(
    name: str,
    *,
    width: int = 32,
    depth: int = 2,
    units: int = 2,
    num_classes: int = 10,
    resolution: int = 32,
) -> Genotype:
    """A CIFAR-scale seed point: 3x3 stem, stages at width, 2x, 4x (strides 1, 2, 2), avg pool."""
    if name not in PRESETS:
        raise GenotypeError(f"preset: unknown name {name!r} (allowed: {', '.join(PRESETS)})")
    stages = []
    for w, stride in zip((width, 2 * width, 4 * width), (1, 2, 2), strict=True):
        stage = PRESETS[name].stage(w)
        stages.append(dataclasses.replace(stage, width=w, depth=depth, stride=stride, units=units))
    return Genotype(stem=Stem(widths=(width,), strides=(1,)), stages=tuple(stages),
                    head=Head(num_classes=num_classes), resolution=resolution).validate()
