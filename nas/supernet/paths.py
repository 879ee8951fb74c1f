"""Which spaces a supernet can share, and the sub-networks (paths) it trains and scores."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from nas.arch.cost import cost
from nas.arch.genotype import Genotype, GenotypeError
from nas.arch.zoo import PRESETS
from nas.search.space.points import base_name, dimensions, genotype, searched, violation
from nas.search.space.types import Space

# What one set of supernet weights can serve: group counts slice one dense kernel, kernel sizes
# crop one superkernel, op orders get their own weights, the rest has no weights of its own.
SHARED = ("spectrum", "groups", "order", "mid_act", "mid_norm", "residual", "kernel")
STRUCTURAL = ("order", "mid_norm", "residual", "kernel")  # choices that add or resize weights
ENUMERABLE = 5000  # spaces with at most this many combinations are enumerated, not sampled


class SupernetError(ValueError):
    """A space the supernet cannot share weights across; the message says what to do."""


def check_supported(space: Space) -> None:
    """Raise SupernetError naming the first block kind or dimension the supernet cannot share."""
    kinds = {PRESETS[p].stage(64).kind for p in space.blocks.preset or ()}
    kinds |= set(space.blocks.kind or ("spectrum",))
    others = sorted(kinds - {"spectrum"})
    if others:
        raise SupernetError(
            f"{space.path}: [blocks] block kind {others[0]!r} cannot share supernet weights (only"
            " spectrum blocks slice one kernel per group count); search"
            f" {', '.join(others)} blocks stand-alone: run_search.py --space {space.path}")
    for dim in searched(space):
        name = base_name(dim.name)
        if name not in SHARED:
            section = "[macro]" if name in ("width", "depth") else "[blocks]"
            raise SupernetError(
                f"{space.path}: {section} {dim.name} is searched, but the supernet shares weights"
                f" across {', '.join(SHARED)} only; fix it to one choice or search the space"
                " stand-alone")
    if space.macro.match_params is not None or space.macro.match_macs is not None:
        raise SupernetError(f"{space.path}: [macro] match_params / match_macs give every point"
                            " its own widths; the supernet needs fixed widths")
    if True in (space.blocks.spatial_separable or ()):
        raise SupernetError(f"{space.path}: [blocks] spatial_separable = true factorises the"
                            " kernel; the supernet shares square kernels only")


def searched_params(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """The searched dimensions of a point (what Optuna and Ray's points_to_evaluate name)."""
    names = {d.name for d in searched(space)}
    return {k: v for k, v in params.items() if k in names}


def _stage_of(name: str) -> str | None:
    """'s2_order' -> 's2'; a shared dimension belongs to every stage (None)."""
    return None if name == base_name(name) else name.split("_", 1)[0]


def structural_points(space: Space) -> Iterator[Genotype]:
    """Genotypes that between them use every weight the supernet needs: per stage, every
    combination of that stage's weight-changing choices (stages do not change each other)."""
    dims = dimensions(space)
    first = {d.name: d.choices[0] for d in dims}
    for stage in range(1, len(space.macro.strides) + 1):
        own = [d for d in dims if base_name(d.name) in STRUCTURAL
               and _stage_of(d.name) in (None, f"s{stage}")]
        for values in itertools.product(*(d.choices for d in own)):
            yield genotype(space, first | dict(zip((d.name for d in own), values, strict=True)))


def enumerate_points(space: Space) -> list[dict[str, Any]] | None:
    """Every distinct feasible point as params (first found per genotype key), or None when the
    space has more than ENUMERABLE combinations."""
    dims = searched(space)
    total = 1
    for d in dims:
        total *= len(d.choices)
    if total > ENUMERABLE:
        return None
    points: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*(d.choices for d in dims)):
        params = dict(zip((d.name for d in dims), values, strict=True))
        arch = _feasible(space, params)
        if arch is not None:
            points.setdefault(arch.key(), params)
    return list(points.values())


def _feasible(space: Space, params: dict[str, Any]) -> Genotype | None:
    """The point's genotype when it is valid and within the space's constraints."""
    try:
        arch = genotype(space, params)
    except GenotypeError:
        return None
    return arch if violation(space, arch) is None else None


class PathSampler:
    """Sub-networks to train per step: uniform over the space, plus the sandwich rule's smallest
    and largest (BigNAS, Yu et al. 2020), which uniform sampling alone under-trains."""

    def __init__(self, space: Space, seed: int, sandwich: bool = True, uniform: int = 1):
        self.space = space
        self.rng = random.Random(seed)
        self.uniform = uniform
        self.smallest, self.largest = extremes(space)
        self.sandwich = sandwich

    def sample(self) -> Genotype:
        """One feasible point, every dimension's choice uniform."""
        for _ in range(1000):
            params = {d.name: self.rng.choice(d.choices) for d in dimensions(self.space)}
            arch = _feasible(self.space, params)
            if arch is not None:
                return arch
        raise SupernetError(f"{self.space.path}: 1000 uniform samples, none feasible")

    def step(self) -> list[Genotype]:
        """The paths of one training step."""
        fixed = [self.largest, self.smallest] if self.sandwich else []
        return fixed + [self.sample() for _ in range(self.uniform)]


def extremes(space: Space, pool: int = 2000) -> tuple[Genotype, Genotype]:
    """The feasible points with the fewest and the most MACs: among all points of an enumerable
    space, else among `pool` uniform samples and every dimension's cheapest / dearest choice."""
    points = enumerate_points(space)
    if points is None:
        rng = random.Random(0)
        dims = dimensions(space)
        points = [{d.name: rng.choice(d.choices) for d in dims} for _ in range(pool)]
        for sign in (1, -1):  # cheapest, then dearest choice of every dimension
            points.append({d.name: min(d.choices, key=lambda v, d=d: _order(space, d.name, v, sign))
                           for d in dims})
    archs = [a for a in (_feasible(space, p) for p in points) if a is not None]
    if not archs:
        raise SupernetError(f"{space.path}: no feasible point to train")
    ordered = sorted(archs, key=lambda a: (cost(a).macs, cost(a).params, a.key()))
    return ordered[0], ordered[-1]


def _order(space: Space, name: str, value: Any, sign: int) -> tuple[int, int]:
    """Sort key of one choice by the MACs of the first-choice point with it (invalid last)."""
    arch = _feasible(space, {d.name: d.choices[0] for d in dimensions(space)} | {name: value})
    return (1, 0) if arch is None else (0, sign * cost(arch).macs)
