"""Enumerating a space: every combination of its choices and its distinct architectures."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator

from nas.arch.genotype import GenotypeError, Stage, validate_stage
from nas.search.space.points import base_name, build_stage, dimensions, stage_dimensions
from nas.search.space.types import Dimension, Space, Value

# Above this many combinations of one stage's choices, a sample of them is tried instead.
_EXHAUSTIVE_LIMIT = 4096


def stage_combinations(dims: list[Dimension]) -> Iterator[dict[str, Value]]:
    """Every combination of the dimensions' choices, or (when too many) each choice with the
    others at their first choices plus a seeded random sample."""
    names = [d.name for d in dims]
    if math.prod(len(d.choices) for d in dims) <= _EXHAUSTIVE_LIMIT:
        for values in itertools.product(*(d.choices for d in dims)):
            yield dict(zip(names, values, strict=True))
        return
    first = {d.name: d.choices[0] for d in dims}
    for dim in dims:
        for value in dim.choices:
            yield first | {dim.name: value}
    rng = random.Random(0)
    for _ in range(_EXHAUSTIVE_LIMIT):
        yield {d.name: rng.choice(d.choices) for d in dims}


def grid(space: Space) -> Iterator[dict[str, Value]]:
    """Every combination of every dimension's choices."""
    dims = dimensions(space)
    for values in itertools.product(*(d.choices for d in dims)):
        yield dict(zip((d.name for d in dims), values, strict=True))


def count_architectures(space: Space) -> int:
    """Distinct architectures (by genotype key): per stage, since stages are independent."""
    dims = dimensions(space)
    shared = [d for d in dims if d.name == base_name(d.name)]
    seen: set[tuple[frozenset, ...]] = set()
    total = 0
    for values in itertools.product(*(d.choices for d in shared)):
        fixed = dict(zip((d.name for d in shared), values, strict=True))
        per_stage = tuple(frozenset(_stage_variants(space, fixed, s))
                          for s in range(len(space.macro.strides)))
        if per_stage not in seen:  # a shared choice no stage reads adds no architecture
            seen.add(per_stage)
            total += math.prod(len(v) for v in per_stage)
    return total


def _stage_variants(space: Space, fixed: dict[str, Value], stage: int) -> Iterator[Stage]:
    """Every distinct (canonical) stage a stage's own dimensions can produce."""
    own = [d for d in stage_dimensions(space, stage) if d.name != base_name(d.name)]
    for values in itertools.product(*(d.choices for d in own)):
        params = fixed | dict(zip((d.name for d in own), values, strict=True))
        candidate = build_stage(space, params, stage)
        try:
            validate_stage(candidate, f"stage s{stage + 1}")
        except GenotypeError:
            continue  # e.g. an inception width that is not a multiple of 4
        yield candidate.canonical()
