"""What a run folder recorded of its search: the budget, and reading a run back (its meta.json,
its space copy and its budget) to resume or tabulate it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.results.errors import RunFolderError
from nas.results.meta import read_meta
from nas.results.names import META
from nas.search.space.load import load_space
from nas.search.space.types import Space


@dataclass(frozen=True)
class Budget:
    """The resolved size of a search."""

    trials: int
    epochs: int
    concurrency: int
    cpus_per_trial: float
    gpus_per_trial: float
    seed: int
    precision: str = "auto"  # as asked; each trial resolves it on its own device


@dataclass(frozen=True)
class SavedRun:
    """A run folder's meta.json, the space copy it names and the budget it recorded."""

    meta: dict[str, Any]
    space: Space
    budget: Budget


def saved_run(run_dir: Path) -> SavedRun:
    """meta.json, the space copy and the budget of a run (to resume), all checked first."""
    meta = read_meta(run_dir)
    space = space_copy(run_dir, meta)
    try:
        budget = Budget(**meta["budget"])
    except (KeyError, TypeError) as err:
        raise RunFolderError(f"{run_dir / META}: budget is missing or malformed ({err})") from None
    return SavedRun(meta, space, budget)


def space_copy(run_dir: Path, meta: dict[str, Any]) -> Space:
    """The space the run used: its copy in the run folder, named by meta.json."""
    name = meta.get("space_file")
    if not isinstance(name, str) or Path(name).name != name or not (run_dir / name).is_file():
        raise RunFolderError(f"{run_dir / META}: space_file {name!r} does not name the space copy"
                             " in the run folder")
    return load_space(run_dir / name)
