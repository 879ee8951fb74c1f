"""Points of a space: its dimensions, Optuna's define-by-run, params -> genotype, constraints."""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nas.arch.cost import cost
from nas.arch.genotype import (
    INCEPTION_BRANCHES,
    Genotype,
    GenotypeError,
    Head,
    Stage,
    Stem,
    divisor_at,
)
from nas.arch.zoo import PRESETS
from nas.search.space.types import Blocks, Dimension, Space, Value

SPECTRUM_ONLY = ("order", "mid_act", "mid_norm")  # dimensions that only spectrum blocks read


def stage_dimensions(space: Space, stage: int) -> Iterator[Dimension]:
    """The flat dimensions of one stage (shared ones carry no stage prefix)."""
    macro = space.macro
    for key, entry in (("width", macro.widths[stage]), ("depth", macro.depths[stage])):
        if isinstance(entry, tuple):
            yield Dimension(f"s{stage + 1}_{key}", entry)
    for f in dataclasses.fields(Blocks):
        choices = getattr(space.blocks, f.name)
        if f.name == "shared" or choices is None:
            continue
        name = f.name if f.name in space.blocks.shared else f"s{stage + 1}_{f.name}"
        yield Dimension(name, tuple(choices))


def dimensions(space: Space) -> list[Dimension]:
    """Every flat parameter of the space with its choices (single-choice ones included)."""
    seen: dict[str, Dimension] = {}
    for stage in range(len(space.macro.strides)):
        for dim in stage_dimensions(space, stage):
            seen.setdefault(dim.name, dim)
    return list(seen.values())


def searched(space: Space) -> list[Dimension]:
    """The dimensions with a real choice (two or more values)."""
    return [d for d in dimensions(space) if len(d.choices) > 1]


def base_name(name: str) -> str:
    """'s2_mid_act' -> 'mid_act'; shared names stay as they are."""
    return re.sub(r"^s\d+_", "", name)


def _relevant(name: str, params: dict[str, Value], stage: int, space: Space) -> bool:
    """Spectrum-only dimensions are asked only where the stage's block is a spectrum block."""
    if base_name(name) not in SPECTRUM_ONLY:
        return True
    return _stage_kind(space, params, stage) == "spectrum"


def _stage_kind(space: Space, params: dict[str, Value], stage: int) -> str:
    """The block kind a stage gets from the params chosen so far."""
    preset = _value(space, params, stage, "preset")
    if preset is not None:
        return PRESETS[preset].stage(64).kind
    return _value(space, params, stage, "kind") or "spectrum"


def _value(space: Space, params: dict[str, Value], stage: int, key: str) -> Any:
    """A dimension's value for a stage: chosen, or the only choice, or None if not searched."""
    choices = getattr(space.blocks, key, None)
    if choices is None:
        return None
    name = key if key in space.blocks.shared else f"s{stage + 1}_{key}"
    return params.get(name, choices[0])


@dataclass(frozen=True)
class DefineByRun:
    """Optuna define-by-run function over a space; an object, not a closure, so Ray's
    experiment checkpoints can pickle it."""

    space: Space

    def __call__(self, trial) -> None:
        """Ask for every searched dimension the chosen blocks read (flat primitive names)."""
        params: dict[str, Value] = {}
        for stage in range(len(self.space.macro.strides)):
            for dim in stage_dimensions(self.space, stage):
                if len(dim.choices) < 2 or dim.name in params:
                    continue
                if _relevant(dim.name, params, stage, self.space):
                    params[dim.name] = trial.suggest_categorical(dim.name, list(dim.choices))


def build_stage(space: Space, params: dict[str, Value], stage: int,
                width: int | None = None) -> Stage:
    """One stage of the genotype from the params (missing ones take their first choice)."""
    macro = space.macro
    width = width or base_width(space, params, stage)
    depth = params.get(f"s{stage + 1}_depth", _first(macro.depths[stage]))
    preset = _value(space, params, stage, "preset")
    base = PRESETS[preset].stage(width) if preset else Stage()
    fields = {"width": width, "depth": depth, "stride": macro.strides[stage]}
    for key in ("kind", "order", "mid_act", "mid_norm", "residual", "act_order", "kernel",
                "units", "spatial_separable", "downsample", "bottleneck"):
        value = _value(space, params, stage, key)
        if value is not None:
            fields[key] = value
    result = dataclasses.replace(base, **fields)
    position = _value(space, params, stage, "spectrum")
    count = _value(space, params, stage, "groups")
    if count is not None:
        result = dataclasses.replace(
            result, groups=result.grouped_width() if count == "depthwise" else count)
    elif position is not None:
        result = dataclasses.replace(result, groups=divisor_at(position, result.grouped_width()))
    elif result.grouped_width() % result.groups:  # a preset's groups at another bottleneck
        result = dataclasses.replace(result, groups=divisor_at(
            result.spectrum_position(), result.grouped_width()))
    return result


def _first(entry: int | tuple[int, ...]) -> int:
    return entry[0] if isinstance(entry, tuple) else entry


def base_width(space: Space, params: dict[str, Value], stage: int) -> int:
    """A stage's width as chosen (before any matching)."""
    return params.get(f"s{stage + 1}_width", _first(space.macro.widths[stage]))


def genotype(space: Space, params: dict[str, Value]) -> Genotype:
    """The architecture a set of params describes (validated; widths matched if asked)."""
    macro = space.macro
    if macro.match_params is None and macro.match_macs is None:
        return _assemble(space, params)
    metric, target = (("params", macro.match_params) if macro.match_params is not None
                      else ("macs", macro.match_macs))
    best: tuple[float, Genotype] | None = None
    for widths in _width_ladder(space, params):
        try:
            arch = _assemble(space, params, widths)
        except GenotypeError:
            continue  # e.g. a transition whose channels the groups do not divide
        value = getattr(cost(arch), metric)
        miss = abs(math.log(value / target))
        if best is None or miss < best[0]:
            best = (miss, arch)
        if value > 2 * target:  # costs only grow along the ladder
            break
    if best is None:
        raise GenotypeError(f"no stage widths give this point {metric} near {target:,}")
    return best[1]


def _width_ladder(space: Space, params: dict[str, Value]) -> Iterator[tuple[int, ...]]:
    """Stage widths scaled together by 1/16 .. 16 in steps of 2**(1/32), rounded, no repeats."""
    stages = range(len(space.macro.strides))
    base = [base_width(space, params, s) for s in stages]
    steps = [width_quantum(space, params, s) for s in stages]
    seen = set()
    for k in range(-128, 129):
        scale = 2 ** (k / 32)
        widths = tuple(max(q, round(b * scale / q) * q) for b, q in zip(base, steps, strict=True))
        if widths not in seen:
            seen.add(widths)
            yield widths


def width_quantum(space: Space, params: dict[str, Value], stage: int) -> int:
    """What a matched width must be a multiple of: the width step and the explicit groups."""
    step = space.macro.width_step
    count = _value(space, params, stage, "groups")
    if isinstance(count, int):
        step = math.lcm(step, count)
    if _stage_kind(space, params, stage) == "inception":
        step = math.lcm(step, INCEPTION_BRANCHES)
    return step


def _assemble(space: Space, params: dict[str, Value],
              widths: tuple[int, ...] | None = None) -> Genotype:
    """The genotype at the chosen (or the given) stage widths."""
    stages = tuple(build_stage(space, params, s, widths[s] if widths else None)
                   for s in range(len(space.macro.strides)))
    return Genotype(stages=stages, **network_frame(space)).validate()


def network_frame(space: Space) -> dict[str, Any]:
    """What the macro section fixes around the stages: stem, head, resolution, activation."""
    macro = space.macro
    classes = space.data.classes
    num_classes = classes if isinstance(classes, int) else len(classes) if classes else 10
    return {"stem": Stem(widths=macro.stem_widths, strides=macro.stem_strides,
                         kernel=macro.stem_kernel, padding=macro.stem_padding,
                         pool=macro.stem_pool),
            "head": Head(pooling=macro.pooling, fc=macro.fc, dropout=macro.dropout,
                         num_classes=num_classes),
            "resolution": space.data.resolution or 32, "act": macro.act}


def constraint_values(space: Space, arch: Genotype) -> dict[str, float]:
    """Optuna's constraint per limit of [constraints]: cost / limit - 1 (<= 0: within it)."""
    c, limits = cost(arch), space.constraints
    return {key: getattr(c, metric) / limit - 1.0
            for key, metric, limit in (("max_params", "params", limits.max_params),
                                       ("max_macs", "macs", limits.max_macs))
            if limit is not None}


def violation(space: Space, arch: Genotype) -> str | None:
    """Why the architecture breaks the space's constraints, or None."""
    c, limits = cost(arch), space.constraints
    if limits.max_params is not None and c.params > limits.max_params:
        return f"{c.params:,} params > max_params {limits.max_params:,}"
    if limits.max_macs is not None and c.macs > limits.max_macs:
        return f"{c.macs:,} MACs > max_macs {limits.max_macs:,}"
    return None


@dataclass(frozen=True)
class PaperCheck:
    """What a proposal is on paper, before any training: its architecture's key and, when it
    breaks [constraints], the constraint values (a picklable object, like DefineByRun)."""

    space: Space

    def __call__(self, params: dict[str, Value]) -> tuple[str, dict[str, float] | None] | None:
        """(key, constraint values if infeasible else None); None when no genotype can be
        built (the trial then fails with the reason, as before)."""
        try:
            arch = genotype(self.space, params)
        except GenotypeError:
            return None
        over = constraint_values(self.space, arch) if violation(self.space, arch) else None
        return arch.key(), over


def sample_params(space: Space, n: int, seed: int) -> list[dict[str, Value]]:
    """n uniformly random parameter sets (for dry runs and constraint checks)."""
    rng = random.Random(seed)
    return [{d.name: rng.choice(d.choices) for d in dimensions(space)} for _ in range(n)]


def smallest_params(space: Space) -> dict[str, Value]:
    """The cheapest choice of every dimension taken on its own (narrowest, shallowest, ...)."""
    params = {}
    for dim in dimensions(space):
        params[dim.name] = min(dim.choices, key=lambda v: _cost_of(space, dim.name, v))
    return params


def _cost_of(space: Space, name: str, value: Value) -> tuple[int, int]:
    base = {d.name: d.choices[0] for d in dimensions(space)}
    try:
        c = cost(genotype(space, base | {name: value}))
    except GenotypeError:
        return (math.inf, math.inf)  # type: ignore[return-value]
    return (c.params, c.macs)
