"""Search spaces as TOML files -> a define-by-run function for Optuna, and params -> genotype."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re
import tomllib
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nas.arch.cost import cost
from nas.arch.genotype import (
    INCEPTION_BRANCHES,
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
    Pooling,
    Residual,
    Stage,
    Stem,
    divisor_at,
    validate_stage,
)
from nas.arch.schema import SchemaError, parse
from nas.arch.zoo import PRESETS
from nas.data import DataError, DataSpec
from nas.train.trainer import TrainConfig

Value = bool | int | float | str
Sampler = Literal["tpe", "nsga2", "random", "grid"]
StoppedAs = Literal["pruned", "complete"]
Metric = Literal["val_acc", "macs", "params"]


class SpaceError(SchemaError):
    """A bad search-space file; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Macro:
    """Network skeleton; `widths` / `depths` entries are a fixed int or a list of choices."""

    strides: tuple[int, ...] = (1, 2, 2)  # one per stage: fixes the number of stages
    widths: tuple[int | tuple[int, ...], ...] = (32, 64, 128)
    depths: tuple[int | tuple[int, ...], ...] = (1, 1, 1)
    stem_widths: tuple[int, ...] = (32,)
    stem_strides: tuple[int, ...] = (1,)
    stem_kernel: int = 3
    stem_padding: Padding = "same"
    stem_pool: bool = False
    pooling: Pooling = "avg"
    fc: tuple[int, ...] = ()
    dropout: float = 0.0
    act: Act = "relu"
    # Matched comparisons: every stage width is scaled by one factor per point so the network
    # has about this many params (or MACs); widths stay multiples of width_step and the groups.
    match_params: int | None = None
    match_macs: int | None = None
    width_step: int = 8


@dataclass(frozen=True)
class Blocks:
    """Per-stage searchable dimensions: lists of choices; a field left out is not searched."""

    preset: tuple[str, ...] | None = None  # zoo block templates (Ghosh's block kinds)
    kind: tuple[BlockKind, ...] | None = None
    spectrum: tuple[float, ...] | None = None  # positions: 0 = regular ... 1 = depthwise
    groups: tuple[int | Literal["depthwise"], ...] | None = None  # or explicit segment counts
    order: tuple[OpOrder, ...] | None = None
    mid_act: tuple[MidAct, ...] | None = None
    mid_norm: tuple[bool, ...] | None = None
    residual: tuple[Residual, ...] | None = None
    act_order: tuple[ActOrder, ...] | None = None
    kernel: tuple[int, ...] | None = None
    units: tuple[int, ...] | None = None
    spatial_separable: tuple[bool, ...] | None = None
    downsample: tuple[Downsample, ...] | None = None
    bottleneck: tuple[float, ...] | None = None
    shared: tuple[str, ...] = ()  # dimensions chosen once for all stages (unprefixed names)


SPECTRUM_ONLY = ("order", "mid_act", "mid_norm")  # dimensions that only spectrum blocks read


@dataclass(frozen=True)
class Objectives:
    """What the search optimises: validation accuracy first, optionally a cost second."""

    metrics: tuple[Metric, ...] = ("val_acc",)


@dataclass(frozen=True)
class Constraints:
    """Limits checked on paper before any training."""

    max_params: int | None = None
    max_macs: int | None = None


@dataclass(frozen=True)
class Study:
    """How `run_search.py study` tabulates a run: a row per value of `rows`, vs a baseline."""

    title: str = ""
    rows: tuple[str, ...] = ()  # flat dimension names whose values label the rows
    baseline: str = ""  # a [references] name the other rows are compared with ("" = none)


@dataclass(frozen=True)
class Search:
    """Sampler, budget and scheduler settings."""

    sampler: Sampler = "tpe"
    trials: int = 24
    repeats: int = 1  # seeds per point; trials report mean (and std) over them
    seed: int = 0
    concurrency: int = 2
    grace_period: int = 1  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 3
    # How an ASHA-stopped trial is told to Optuna: PRUNED with its curve (what happened), or
    # COMPLETE with its last accuracy, as Ray's OptunaSearch tells it (an ablation, not advice)
    stopped_as: StoppedAs = "pruned"
    max_t: int | None = None  # ASHA: epochs a trial trains at most (None: [train].epochs)
    gpu_trials: int | None = None  # budget when a GPU is present (None: same as trials)
    gpu_epochs: int | None = None
    # Sampler settings; None: the default in nas.search.samplers (recorded in meta.json)
    n_startup_trials: int | None = None  # TPE: random trials before it models (min(8, trials))
    multivariate: bool | None = None  # TPE: joint model (Optuna's default: yes for 1 objective)
    group: bool = False  # TPE: separate models for parameters never asked together
    population_size: int | None = None  # NSGA-II: trials per generation (8)


@dataclass(frozen=True)
class Space:
    """A parsed search-space file."""

    name: str
    path: Path
    data: DataSpec
    macro: Macro
    blocks: Blocks
    train: TrainConfig
    objectives: Objectives
    constraints: Constraints
    search: Search
    study: Study = Study()
    references: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = field(default=())


@dataclass(frozen=True)
class Dimension:
    """One flat Optuna parameter and its choices."""

    name: str
    choices: tuple[Value, ...]


SECTIONS: dict[str, type] = {
    "data": DataSpec, "macro": Macro, "blocks": Blocks, "train": TrainConfig,
    "objectives": Objectives, "constraints": Constraints, "search": Search, "study": Study,
}


def load_space(path: str | Path) -> Space:
    """Read and check a search-space file; every error names the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such search-space file") from None
    except tomllib.TOMLDecodeError as err:
        raise SpaceError(f"{path}: not valid TOML ({err})") from None
    unknown = sorted(set(raw) - set(SECTIONS) - {"name", "references"})
    if unknown:
        allowed = ", ".join(["name", *SECTIONS, "references"])
        raise SpaceError(f"{path}: unknown section [{unknown[0]}] (allowed: {allowed})")
    sections = {key: _section(path, key, cls, raw.get(key, {})) for key, cls in SECTIONS.items()}
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{path}: name: expected a non-empty string, got {name!r}")
    space = Space(name=name, path=path, **sections)
    _check_macro(space)
    space = dataclasses.replace(space, references=_references(space, raw.get("references", {})))
    check_space(space)
    return space


def _section(path: Path, key: str, cls: type, value: Any) -> Any:
    """Parse one [section] into its dataclass, re-raising every error with the file name."""
    try:
        parsed = parse(value, cls, f"{path}: [{key}]", SpaceError)
        if hasattr(parsed, "validate"):
            parsed.validate()
        return parsed
    except SpaceError:
        raise
    except (DataError, ValueError) as err:  # the section's own validate()
        raise SpaceError(f"{path}: [{key}] {err}") from None


def _fail(space: Space, key: str, message: str) -> typing.NoReturn:
    raise SpaceError(f"{space.path}: {key}: {message}")


def _check_macro(space: Space) -> None:
    """One width and one depth entry per stage; every choice list non-empty."""
    macro, stages = space.macro, len(space.macro.strides)
    if stages == 0:
        _fail(space, "[macro].strides", "needs one stride per stage (at least one stage)")
    for key in ("widths", "depths"):
        entries = getattr(macro, key)
        if len(entries) != stages:
            _fail(space, f"[macro].{key}", f"has {len(entries)} entries for {stages} stages"
                  " (one per entry of [macro].strides)")
        if any(entry == () for entry in entries):
            _fail(space, f"[macro].{key}", "a list of choices is empty")
    if macro.match_params is not None and macro.match_macs is not None:
        _fail(space, "[macro].match_params", "give match_params or match_macs, not both")
    for key in ("match_params", "match_macs", "width_step"):
        value = getattr(macro, key)
        if value is not None and value < 1:
            _fail(space, f"[macro].{key}", f"{value} must be >= 1")
    for key, low in (("widths", 1), ("depths", 1), ("stem_widths", 1), ("fc", 1)):
        for entry in getattr(macro, key):
            for value in entry if isinstance(entry, tuple) else (entry,):
                if value < low:
                    _fail(space, f"[macro].{key}", f"{value} must be >= {low}")
    for key in ("strides", "stem_strides"):
        for value in getattr(macro, key):
            if value not in (1, 2):
                _fail(space, f"[macro].{key}", f"{value} is not 1 or 2")
    if len(macro.stem_strides) != len(macro.stem_widths):
        _fail(space, "[macro].stem_strides", f"has {len(macro.stem_strides)} entries for"
              f" {len(macro.stem_widths)} stem_widths (one stride per stem conv)")
    if not 0.0 <= macro.dropout <= 0.99:
        _fail(space, "[macro].dropout", f"{macro.dropout} must be in [0, 0.99]")
    try:  # what is left (the stem kernel, a resolution the stem shrinks to nothing)
        _skeleton(space).validate()
    except GenotypeError as err:
        _fail(space, "[macro]", str(err))


def _skeleton(space: Space) -> Genotype:
    """The network's stem and head around default stages (checked before the blocks)."""
    return Genotype(stages=tuple(Stage(width=8, stride=s) for s in space.macro.strides),
                    **_frame(space))


# Above this many combinations of one stage's choices, a sample of them is tried instead.
_EXHAUSTIVE_LIMIT = 4096


def _check_choices(space: Space) -> None:
    """Every choice of every dimension makes a valid stage with some choice of the others;
    one that never does (kernel 4, an inception width not a multiple of 4) is refused here,
    naming the file, the section and the value, rather than failing trial after trial."""
    for stage in range(len(space.macro.strides)):
        dims = list(_stage_dims(space, stage))
        valid: set[tuple[str, Any]] = set()
        errors: dict[tuple[str, Any], str] = {}
        for params in _stage_combinations(dims):
            try:
                validate_stage(_stage_to_check(space, params, stage), f"stage s{stage + 1}")
            except GenotypeError as err:
                for key in params.items():
                    errors.setdefault(key, str(err))
                continue
            valid.update(params.items())
        for dim in dims:
            for value in dim.choices:
                if (dim.name, value) not in valid:
                    field = base_name(dim.name)
                    section = "macro" if field in ("width", "depth") else "blocks"
                    key = f"{field}s" if section == "macro" else field
                    _fail(space, f"[{section}].{key}", f"{value!r} makes no valid architecture"
                          f" with any choice of the others ({errors.get((dim.name, value))})")


def _stage_combinations(dims: list[Dimension]) -> Iterator[dict[str, Value]]:
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


def _stage_to_check(space: Space, params: dict[str, Value], stage: int) -> Stage:
    """The stage these params make; with matched widths, at the width's first multiple of the
    quantum matching rounds to (matching changes widths, never the other choices)."""
    if space.macro.match_params is None and space.macro.match_macs is None:
        return _stage(space, params, stage)
    quantum = _width_quantum(space, params, stage)
    width = max(quantum, round(base_width(space, params, stage) / quantum) * quantum)
    return _stage(space, params, stage, width)


def check_space(space: Space) -> None:
    """Cross-field checks: choices, objectives, reference points, constraints."""
    blocks = space.blocks
    for dim in dimensions(space):
        if not dim.choices:
            _fail(space, f"[blocks].{dim.name}", "the list of choices is empty")
        if len(set(dim.choices)) != len(dim.choices):
            _fail(space, f"[blocks].{dim.name}", f"repeats a choice: {list(dim.choices)}")
    for position in blocks.spectrum or ():
        if not 0.0 <= position <= 1.0:
            _fail(space, "[blocks].spectrum", f"{position} is outside [0, 1]")
    if blocks.spectrum is not None and blocks.groups is not None:
        _fail(space, "[blocks].groups", "give either spectrum (positions) or groups (counts)")
    for count in blocks.groups or ():
        if count != "depthwise" and count < 1:
            _fail(space, "[blocks].groups", f"{count} must be >= 1 or \"depthwise\"")
    for name in blocks.preset or ():
        if name not in PRESETS:
            _fail(space, "[blocks].preset", f"unknown preset {name!r}"
                  f" (allowed: {', '.join(PRESETS)})")
    if blocks.preset is not None and blocks.kind is not None:
        _fail(space, "[blocks].kind", "give either preset or kind: a preset fixes the block kind")
    searched = [f.name for f in dataclasses.fields(Blocks) if f.name != "shared"]
    for name in blocks.shared:
        if name not in searched:
            _fail(space, "[blocks].shared", f"{name!r} is not a dimension ({', '.join(searched)})")
    metrics = space.objectives.metrics
    if metrics[:1] != ("val_acc",) or len(metrics) > 2 or "val_acc" in metrics[1:]:
        _fail(space, "[objectives].metrics", f"{list(metrics)} must be ['val_acc'] or"
              " ['val_acc', 'macs' | 'params']")
    if space.search.sampler == "nsga2" and len(metrics) != 2:
        _fail(space, "[search].sampler", "'nsga2' needs two objectives in [objectives].metrics")
    for key in ("trials", "repeats", "concurrency", "grace_period", "max_t"):
        value = getattr(space.search, key)
        if value is not None and value < 1:
            _fail(space, f"[search].{key}", f"{value} must be >= 1")
    if space.search.reduction_factor < 2:
        _fail(space, "[search].reduction_factor", "must be >= 2")
    _check_choices(space)
    _check_sampler_settings(space)
    _check_study(space)
    _check_constraints_possible(space)


SAMPLER_SETTINGS = {"n_startup_trials": "tpe", "multivariate": "tpe", "group": "tpe",
                    "population_size": "nsga2"}  # setting -> the one sampler that reads it


def _check_sampler_settings(space: Space) -> None:
    """Each sampler setting is read by its sampler only; a value meant for another is an error."""
    search = space.search
    for key, sampler in SAMPLER_SETTINGS.items():
        value = getattr(search, key)
        if value not in (None, False) and search.sampler != sampler:
            _fail(space, f"[search].{key}", f"only the {sampler!r} sampler reads it (this space"
                  f" uses {search.sampler!r})")
    if search.n_startup_trials is not None and search.n_startup_trials < 0:
        _fail(space, "[search].n_startup_trials", f"{search.n_startup_trials} must be >= 0")
    if search.population_size is not None and search.population_size < 2:
        _fail(space, "[search].population_size", f"{search.population_size} must be >= 2")
    if search.group and search.multivariate is False:
        _fail(space, "[search].group", "needs multivariate = true (Optuna groups only the"
              " multivariate TPE)")


def _check_study(space: Space) -> None:
    """The study's rows are dimensions of the space; its baseline is a reference point."""
    names = [d.name for d in dimensions(space)]
    for row in space.study.rows:
        if row not in names:
            _fail(space, "[study].rows",
                  f"{row!r} is not a dimension (allowed: {', '.join(names)})")
    references = [name for name, _ in space.references]
    if space.study.baseline and space.study.baseline not in references:
        _fail(space, "[study].baseline", f"{space.study.baseline!r} is not a reference point"
              f" (allowed: {', '.join(references) or 'none defined in [references]'})")


def _check_constraints_possible(space: Space) -> None:
    """An impossible constraint is reported now, not after hours of rejected trials."""
    limits = space.constraints
    for key in ("max_params", "max_macs"):
        value = getattr(limits, key)
        if value is not None and value <= 0:
            _fail(space, f"[constraints].{key}", f"{value} must be > 0")
    if limits.max_params is None and limits.max_macs is None:
        return
    candidates = [smallest_params(space), *sample_params(space, 256, seed=0)]
    costs = []
    for params in candidates:
        try:
            arch = genotype(space, params)
        except GenotypeError:
            continue
        if violation(space, arch) is None:
            return
        costs.append(cost(arch))
    if not costs:
        _fail(space, "[blocks]", "no sampled combination of choices is a valid architecture")
    least = min(costs, key=lambda c: (c.params, c.macs))
    _fail(space, "[constraints]", f"no architecture of the space fits (the smallest found has"
          f" {least.params:,} params and {least.macs:,} MACs)")


def _references(space: Space, raw: Any) -> tuple:
    """Reference points: name -> {dimension: value}; unnamed dimensions take the first choice."""
    if not isinstance(raw, dict):
        _fail(space, "[references]", "expected a table of name = { dimension = value, ... }")
    dims = {d.name: d for d in dimensions(space)}
    points = []
    for name, values in raw.items():
        if not isinstance(values, dict):
            _fail(space, f"[references].{name}", "expected a table of dimension = value")
        params = {d.name: d.choices[0] for d in dims.values()}
        for key, value in values.items():
            targets = [n for n in dims if n == key or base_name(n) == key]
            if not targets:
                allowed = ", ".join(sorted(set(dims) | {base_name(n) for n in dims}))
                _fail(space, f"[references].{name}.{key}", f"not a dimension of this space"
                      f" (allowed: {allowed})")
            for target in targets:
                choices = dims[target].choices
                if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
                    _fail(space, f"[references].{name}.{key}", f"{value!r} is not among the"
                          f" choices {list(choices)}")
                params[target] = choices[choices.index(value)]  # 1 -> 1.0 where choices are floats
        points.append((name, tuple(sorted(params.items()))))
    return tuple(points)


def _stage_dims(space: Space, stage: int) -> Iterator[Dimension]:
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
        for dim in _stage_dims(space, stage):
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
            for dim in _stage_dims(self.space, stage):
                if len(dim.choices) < 2 or dim.name in params:
                    continue
                if _relevant(dim.name, params, stage, self.space):
                    params[dim.name] = trial.suggest_categorical(dim.name, list(dim.choices))


def _stage(space: Space, params: dict[str, Value], stage: int, width: int | None = None) -> Stage:
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
    steps = [_width_quantum(space, params, s) for s in stages]
    seen = set()
    for k in range(-128, 129):
        scale = 2 ** (k / 32)
        widths = tuple(max(q, round(b * scale / q) * q) for b, q in zip(base, steps, strict=True))
        if widths not in seen:
            seen.add(widths)
            yield widths


def _width_quantum(space: Space, params: dict[str, Value], stage: int) -> int:
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
    stages = tuple(_stage(space, params, s, widths[s] if widths else None)
                   for s in range(len(space.macro.strides)))
    return Genotype(stages=stages, **_frame(space)).validate()


def _frame(space: Space) -> dict[str, Any]:
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
    own = [d for d in _stage_dims(space, stage) if d.name != base_name(d.name)]
    for values in itertools.product(*(d.choices for d in own)):
        params = fixed | dict(zip((d.name for d in own), values, strict=True))
        candidate = _stage(space, params, stage)
        try:
            validate_stage(candidate, f"stage s{stage + 1}")
        except GenotypeError:
            continue  # e.g. an inception width that is not a multiple of 4
        yield candidate.canonical()
