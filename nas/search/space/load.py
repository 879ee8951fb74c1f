"""Loading a space file (a path or a bundled name) and checking it; errors name file and key."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from nas.answer.settings import VerifyError, VerifySettings
from nas.arch.cost import cost
from nas.arch.genotype import Genotype, GenotypeError, Stage, validate_stage
from nas.arch.schema import parse
from nas.arch.zoo import PRESETS
from nas.data import DataError, DataSpec
from nas.latency.settings import LatencyConfig, LatencyError, is_latency_name
from nas.latency.settings import parse as parse_latency
from nas.search.space.enumerate import stage_combinations
from nas.search.space.points import (
    base_name,
    base_width,
    build_stage,
    dimensions,
    genotype,
    network_frame,
    sample_params,
    smallest_params,
    stage_dimensions,
    violation,
    width_quantum,
)
from nas.search.space.types import (
    Blocks,
    Constraints,
    Macro,
    Metric,
    Objectives,
    Search,
    Space,
    SpaceError,
    Study,
    Value,
)
from nas.train.config import TrainConfig

SECTIONS: dict[str, type] = {
    "data": DataSpec, "macro": Macro, "blocks": Blocks, "train": TrainConfig,
    "objectives": Objectives, "constraints": Constraints, "search": Search, "study": Study,
    "latency": LatencyConfig,
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
    unknown = sorted(set(raw) - set(SECTIONS) - {"name", "verify", "references"})
    if unknown:
        allowed = ", ".join(["name", *SECTIONS, "verify", "references"])
        raise SpaceError(f"{path}: unknown section [{unknown[0]}] (allowed: {allowed})")
    sections = {key: _section(path, key, cls, raw.get(key, {})) for key, cls in SECTIONS.items()}
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{path}: name: expected a non-empty string, got {name!r}")
    space = Space(name=name, path=path, **sections, verify=_verify(path, raw.get("verify")))
    _check_macro(space)
    space = dataclasses.replace(space, references=_references(space, raw.get("references", {})))
    check_space(space)
    return space


def bundled_spaces() -> Traversable:
    """The folder of search spaces shipped with the package (the repository's search_spaces/)."""
    return resources.files("nas.spaces")


def space_file(name_or_path: str | Path) -> Path:
    """A space's file: a path as given, or a bare name ('cifar_spectrum') as its bundled TOML."""
    text = str(name_or_path)
    if Path(text).is_file() or "/" in text or text.endswith(".toml"):
        return Path(name_or_path)
    folder = bundled_spaces()
    resource = folder / f"{text}.toml"
    if not resource.is_file():
        names = sorted(r.name.removesuffix(".toml") for r in folder.iterdir()
                       if r.name.endswith(".toml"))
        raise SpaceError(f"{text}: no such search-space file or bundled space"
                         f" (bundled: {', '.join(names) or 'none'})")
    # An installed package's files are on disk, so as_file hands back the file itself (a zipped
    # package's temporary copy would be gone on return: the wheel installs unzipped)
    with resources.as_file(resource) as path:
        return Path(path)


def _section(path: Path, key: str, cls: type, value: Any) -> Any:
    """Parse one [section] into its dataclass, re-raising every error with the file name."""
    try:
        parsed = parse(value, cls, f"{path}: [{key}]", SpaceError)
        if hasattr(parsed, "validate"):
            parsed.validate()
        if isinstance(parsed, LatencyConfig):  # its messages name the key already
            parsed.check(f"{path}: [{key}]")
        return parsed
    except SpaceError:
        raise
    except LatencyError as err:
        raise SpaceError(str(err)) from None
    except (DataError, ValueError) as err:  # the section's own validate()
        raise SpaceError(f"{path}: [{key}] {err}") from None


def _verify(path: Path, value: Any) -> VerifySettings | None:
    """[verify], when the file has one: the race that follows the search."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpaceError(f"{path}: [verify] must be a table of settings")
    try:
        return VerifySettings.from_dict(value)
    except VerifyError as err:  # its message names the key
        raise SpaceError(f"{path}: {err}") from None


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
                    **network_frame(space))


def _check_choices(space: Space) -> None:
    """Every choice of every dimension makes a valid stage with some choice of the others;
    one that never does (kernel 4, an inception width not a multiple of 4) is refused here,
    naming the file, the section and the value, rather than failing trial after trial."""
    for stage in range(len(space.macro.strides)):
        dims = list(stage_dimensions(space, stage))
        valid: set[tuple[str, Any]] = set()
        errors: dict[tuple[str, Any], str] = {}
        for params in stage_combinations(dims):
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


def _stage_to_check(space: Space, params: dict[str, Value], stage: int) -> Stage:
    """The stage these params make; with matched widths, at the width's first multiple of the
    quantum matching rounds to (matching changes widths, never the other choices)."""
    if space.macro.match_params is None and space.macro.match_macs is None:
        return build_stage(space, params, stage)
    quantum = width_quantum(space, params, stage)
    width = max(quantum, round(base_width(space, params, stage) / quantum) * quantum)
    return build_stage(space, params, stage, width)


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
    _check_objectives(space)
    if space.search.sampler == "nsga2" and len(space.objectives.metrics) != 2:
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


COSTS = tuple(m for m in typing.get_args(Metric) if m != "val_acc")  # plain second objectives


def _check_objectives(space: Space) -> None:
    """val_acc, then at most one cost: MACs, params, or a latency setting [latency] measures."""
    metrics = space.objectives.metrics
    if metrics[:1] != ("val_acc",) or len(metrics) > 2 or "val_acc" in metrics[1:] or not all(
            m in COSTS or is_latency_name(m) for m in metrics[1:]):
        _fail(space, "[objectives].metrics", f"{list(metrics)} must be ['val_acc'] or"
              f" ['val_acc', {' | '.join(map(repr, COSTS))} | 'latency_ms@RUNTIME:bBATCH']")
    for name in filter(is_latency_name, metrics):
        try:
            setting = parse_latency(name)
        except LatencyError as err:
            _fail(space, "[objectives].metrics", str(err))
        configured = space.latency.settings()
        if setting not in configured:
            _fail(space, "[objectives].metrics", f"{name!r} is not measured: [latency] measures"
                  f" {', '.join(s.name for s in configured)} (add runtime {setting.runtime!r}"
                  f" and batch {setting.batch} to [latency])")


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
