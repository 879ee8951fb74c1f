"""Random valid genotypes covering every field, for tests and random-search baselines."""

from __future__ import annotations

import random
import typing

from nas.arch.genotype import (
    Act,
    ActOrder,
    BlockKind,
    Downsample,
    Genotype,
    GenotypeError,
    Head,
    MidAct,
    OpOrder,
    Padding,
    Residual,
    Stage,
    Stem,
    Transition,
    divisors,
)


def _pick(rng: random.Random, literal) -> str:
    """A random member of a Literal type."""
    return rng.choice(typing.get_args(literal))


def random_stage(rng: random.Random, widths: tuple[int, ...] = (4, 8, 12, 16, 24, 32)) -> Stage:
    """A random valid stage of any kind."""
    kind = _pick(rng, BlockKind)
    # inception needs a quarter of the width >= 4 so every bottleneck choice keeps a channel
    width = rng.choice([w for w in widths if kind != "inception" or (w % 4 == 0 and w >= 16)])
    bottleneck = rng.choice((0.25, 0.5, 1.0))
    stage = Stage(kind=kind, width=width, bottleneck=bottleneck)
    return Stage(
        kind=kind,
        depth=rng.randint(1, 2),
        width=width,
        stride=rng.choice((1, 2)),
        downsample=_pick(rng, Downsample),
        kernel=rng.choice((3, 5)) if kind in ("spectrum", "inception") else rng.choice((1, 3, 5)),
        spatial_separable=rng.random() < 0.3,
        groups=rng.choice(divisors(stage.grouped_width())),
        order=_pick(rng, OpOrder),
        mid_act=_pick(rng, MidAct),
        mid_norm=rng.random() < 0.5,
        residual=_pick(rng, Residual),
        act_order=_pick(rng, ActOrder),
        units=rng.randint(1, 3),
        transition=_pick(rng, Transition),
        bottleneck=bottleneck,
    )


def random_genotype(rng: random.Random, max_stages: int = 4) -> Genotype:
    """A random valid genotype of small size (cheap to build and run)."""
    while True:  # rejection sampling: a few field combinations (valid-padded stems) do not fit
        try:
            return _candidate(rng, max_stages).validate()
        except GenotypeError:
            continue


def _candidate(rng: random.Random, max_stages: int) -> Genotype:
    """Draw every field independently; may be invalid."""
    stem_convs = rng.randint(0, 2)
    stem = Stem(
        widths=tuple(rng.choice((8, 16)) for _ in range(stem_convs)),
        strides=tuple(rng.choice((1, 2)) for _ in range(stem_convs)),
        kernel=rng.choice((1, 3, 5)),
        padding=_pick(rng, Padding),
        pool=rng.random() < 0.3,
    )
    num_classes = rng.choice((0, 2, 10))
    pooling = rng.choice(("avg", "max", None)) if num_classes == 0 else rng.choice(("avg", "max"))
    head = Head(
        pooling=pooling,
        fc=tuple(rng.choice((8, 16)) for _ in range(rng.randint(0, 2))) if pooling else (),
        dropout=rng.choice((0.0, 0.2)),
        num_classes=num_classes,
    )
    return Genotype(
        stages=tuple(random_stage(rng) for _ in range(rng.randint(1, max_stages))),
        stem=stem,
        head=head,
        in_channels=rng.choice((1, 3, 4)),
        resolution=rng.choice((12, 16, 23, 32)),
        act=_pick(rng, Act),
    )
