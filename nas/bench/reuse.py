"""`bench --reuse OTHER`: copy the points another bench already trained exactly as this one would.

Two benches whose spaces differ only in a setting some points cannot feel (the residual init
for a network without a residual) train those points to the same curves. Retraining them
would spend hours to reproduce known numbers, so their completed rows are copied, each naming
the bench it came from; everything else is checked equal first, and a difference is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from nas.bench.table import BenchError, load_bench
from nas.results.table import read_table, write_table
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.search.space.types import Space

REUSED_FROM = "reused_from"  # column: the bench folder a copied row was trained in
# TrainConfig fields that may differ between the benches: each only for points whose network
# does not depend on it (checked by building the network both ways).
INIT_FIELDS = ("zero_init_residual",)
# Settings each run sets for itself: epochs and precision are compared as the runs recorded
# them, the seed through [search] seed, and the device and threads do not change the numbers.
RUN_FIELDS = ("epochs", "seed", "device", "cpu_threads", "precision")


def init_independent(space: Space, params: dict[str, Any], field: str) -> bool:
    """Whether the point's network starts from the same weights whatever `field` is."""
    from nas.arch.model import build

    arch = genotype(space, params)
    states = []
    for value in (True, False):
        torch.manual_seed(0)
        states.append(build(arch, **{field: value}).state_dict())
    return all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def differences(space: Space, other: Space) -> tuple[list[str], list[str]]:
    """(settings that must be equal but differ, INIT_FIELDS that differ) between two spaces."""
    fatal = [f"[data] {f.name}" for f in dataclasses.fields(space.data)
             if getattr(space.data, f.name) != getattr(other.data, f.name)]
    fatal += [f"[search] {name}" for name in ("repeats", "seed")
              if getattr(space.search, name) != getattr(other.search, name)]
    changed = [f.name for f in dataclasses.fields(space.train) if f.name not in RUN_FIELDS
               and getattr(space.train, f.name) != getattr(other.train, f.name)]
    fatal += [f"[train] {name}" for name in changed if name not in INIT_FIELDS]
    return fatal, [name for name in changed if name in INIT_FIELDS]


def reusable_rows(space: Space, points: list[dict[str, Any]], source_dir: Path, epochs: int,
                  precision: str) -> list[dict[str, Any]]:
    """The source bench's completed rows for those of `points` it trained as this bench would;
    a source that differs in anything but INIT_FIELDS is a one-line BenchError."""
    source = load_bench(source_dir)
    other = load_space(source.space_file)
    fatal, init = differences(space, other)
    if source.epochs != epochs:
        fatal.append(f"epochs ({source.epochs} there, {epochs} here)")
    if fatal:
        raise BenchError(f"--reuse {source_dir}: trained differently from {space.path}:"
                         f" {', '.join(fatal)} differ; only {', '.join(INIT_FIELDS)} may")
    table = read_table(source_dir)
    rows = {str(r["arch_key"]): r for r in table.to_dict("records")
            if r["status"] == "completed" and str(r["arch_key"]) in source.points}
    copies = []
    for params in points:
        row = rows.get(genotype(space, params).key())
        if row is None or not all(init_independent(space, params, f) for f in init):
            continue
        if _precision(row) != precision:
            raise BenchError(f"--reuse {source_dir}: its rows trained in {_precision(row)},"
                             f" this bench trains in {precision}")
        copy = {k: v for k, v in row.items() if not str(k).startswith("param_")}
        copies.append({**copy, **{f"param_{k}": v for k, v in params.items()},
                       "checkpoint": None, REUSED_FROM: source_dir.name})
    return copies


def _precision(row: dict[str, Any]) -> str:
    """The precision a row trained in; rows from before precision was a setting (and a column)
    trained in fp32, the only precision the trainer had."""
    value = row.get("precision")
    return value if isinstance(value, str) and value else "fp32"


def add_rows(run_dir: Path, copies: list[dict[str, Any]]) -> None:
    """Append copied rows to the run folder's trials table (held under the caller's lock)."""
    table = read_table(run_dir)
    rows = table.to_dict("records") if not table.empty else []
    write_table(run_dir, rows + copies)


