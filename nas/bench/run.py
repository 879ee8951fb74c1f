"""`run_search.py bench SPACE.toml`: train every point of an enumerable space, resumably.

A bench is a tabular ground truth (NAS-Bench-101/201 style): each distinct point of the space
trained stand-alone with the product's own search stack and trainer, every seed's curve kept,
no early stopping. It is resumable from its trials table alone: `bench --resume` continues
Ray's experiment where one is left, and trains whatever point has no completed row (a fresh
clone holds only the committed table), so an interrupted bench never repeats finished work.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.bench.table import BenchError
from nas.results.meta import read_meta
from nas.results.names import META
from nas.results.table import read_table
from nas.results.values import text
from nas.search.resume import saved_run
from nas.search.space.load import load_space
from nas.search.space.points import genotype, searched
from nas.search.space.types import Space

if TYPE_CHECKING:
    from nas.search.engine import SearchOptions

MAX_POINTS = 5000  # a bench trains every point: larger spaces are for searches, not benches


def bench_points(space: Space) -> list[dict[str, Any]]:
    """Every distinct architecture of the space as Optuna params, in a fixed shuffled order
    (so a bench cut short is a uniform sample of the space, not one corner of it)."""
    dims = searched(space)
    combos: list[dict[str, Any]] = [{}]
    for dim in dims:
        combos = [{**c, dim.name: v} for c in combos for v in dim.choices]
        if len(combos) > MAX_POINTS:
            raise BenchError(f"{space.path}: more than {MAX_POINTS} points; a bench trains"
                             " every point, so bench a smaller space")
    unique: dict[str, dict[str, Any]] = {}
    for params in combos:
        unique.setdefault(genotype(space, params).key(), params)
    points = list(unique.values())
    random.Random(space.search.seed).shuffle(points)
    return points


def check_bench_space(space: Space, epochs: int) -> None:
    """A bench trains every point for the whole schedule: no early stopping allowed."""
    if space.search.grace_period < epochs:
        raise BenchError(f"{space.path}: [search] grace_period = {space.search.grace_period} lets"
                         f" ASHA stop trials before epoch {epochs}; a bench needs grace_period"
                         f" >= [train] epochs")


def done_keys(run_dir: Path, epochs: int) -> set[str]:
    """Architectures with a completed row that trained all `epochs`."""
    table = read_table(run_dir)
    if table.empty:
        return set()
    full = table[(table["status"] == "completed") & (table["epochs"] >= epochs)]
    return {text(k) for k in full["arch_key"]}


def remaining(space: Space, run_dir: Path, epochs: int) -> list[dict[str, Any]]:
    """The bench's points that still need training."""
    done = done_keys(run_dir, epochs)
    return [p for p in bench_points(space) if genotype(space, p).key() not in done]


@dataclass(frozen=True)
class BenchRequest:
    """A bench as asked: its space (or a bench folder to tabulate again; None to resume from the
    run folder's own copy), a bench to copy points from, and the search's options."""

    space: Path | None
    options: SearchOptions
    reuse: Path | None = None


def run_bench(request: BenchRequest) -> int:
    """Train every point not yet done: exit 0 when every point is done, 130 when interrupted."""
    from nas.search.engine import ProgramOptions, check_options, default_name, search
    from nas.search.report import resume_command, summarize

    opts = request.options
    if opts.resume and not opts.name:
        raise BenchError("--resume needs --name: the bench folder to continue")
    check_options(opts)  # a 0 is refused, never read as "the default"
    if request.space is not None and request.space.is_dir():
        return tabulate(request.space)
    if opts.trials is not None:
        raise BenchError("--trials: a bench trains every point of its space; bench a smaller"
                         " space instead")
    if opts.resume:
        run_dir = opts.results_dir / opts.name
        if not (run_dir / META).is_file():
            raise BenchError(f"{run_dir}: nothing to resume (no {META})")
        saved = saved_run(run_dir)
        space, epochs = saved.space, saved.budget.epochs
    elif request.space is None:
        raise BenchError("give the bench space (.toml), or --resume --name NAME")
    else:
        space = load_space(request.space)
        epochs = space.train.epochs if opts.max_epochs is None else opts.max_epochs
    check_bench_space(space, epochs)
    opts = dataclasses.replace(opts, space=request.space or space.path)
    if request.reuse and not opts.name:  # the copies need the folder the search will use
        opts = dataclasses.replace(opts, name=default_name(space))
    run_dir = opts.results_dir / opts.name if opts.name else None
    total = len(bench_points(space))
    todo = remaining(space, run_dir, epochs) if opts.resume else bench_points(space)
    copied = fill_from(request.reuse, opts, space, todo, epochs) if request.reuse and todo else 0
    if copied:
        todo = remaining(space, run_dir, epochs)
        if not todo:
            print(f"Report: {tabulate_quietly(run_dir)}")
    if not todo:
        print(f"Bench {opts.name}: all {total} points done; nothing to train.")
        return 0
    opts = dataclasses.replace(opts, trials=total)
    program = ProgramOptions(points=tuple(todo), prepared=bool(copied and not opts.resume))
    print(f"Bench {space.name}: {len(todo)} of {total} points to train, {space.search.repeats}"
          f" seed(s) each, {epochs} epochs", flush=True)
    outcome = search(opts, program)
    if copied and not opts.resume:  # the search wrote the new folder's meta.json just now
        record_reuse(outcome.run_dir, request.reuse, copied)
    left = remaining(space, outcome.run_dir, epochs)
    if left and not outcome.interrupted and opts.resume:
        # Ray's restored experiment ended with points still missing (failed, or never asked):
        # a fresh experiment over exactly those.
        outcome = search(opts, dataclasses.replace(program, points=tuple(left), restore=False))
        left = remaining(space, outcome.run_dir, epochs)
    print(summarize(outcome, "bench"))
    print(f"Report: {tabulate_quietly(outcome.run_dir)}")
    print(f"Bench: {total - len(left)} of {total} points done"
          + (f"; continue with: {resume_command(outcome.run_dir, 'bench')}" if left else ""))
    return 130 if outcome.interrupted or left else 0


def fill_from(reuse: Path, opts: SearchOptions, space: Space, todo: list[dict[str, Any]],
              epochs: int) -> int:
    """Copy what `--reuse` may into the bench folder (created if new); return the count."""
    from nas.bench.reuse import add_rows, reusable_rows
    from nas.results.lock import open_run_dir

    run_dir = opts.results_dir / opts.name
    copies = reusable_rows(space, todo, reuse, epochs, bench_precision(run_dir, opts, space))
    if len(copies) == len(todo) and not opts.resume:
        raise BenchError(f"--reuse {reuse}: holds every point of {space.path} trained the"
                         " same way; replay or tabulate that bench instead of copying it")
    if copies:
        lock = open_run_dir(run_dir, opts.resume)  # a new bench's folder starts here
        try:
            add_rows(run_dir, copies)
            if opts.resume:
                record_reuse(run_dir, reuse, len(copies))
        finally:
            lock.release()
    print(f"Bench {space.name}: {len(copies)} of {len(todo)} points to train copied from"
          f" {reuse} (trained there exactly as here)", flush=True)
    return len(copies)


def bench_precision(run_dir: Path, opts: SearchOptions, space: Space) -> str:
    """The precision the bench's trials train in: what a resumed bench recorded, else what the
    search will resolve (with this machine's GPUs, as a local cluster sees them)."""
    import torch

    from nas.search.engine import resolve_budget, trial_precision

    recorded = read_meta(run_dir).get("precision") if (run_dir / META).is_file() else None
    if recorded:
        return recorded
    return trial_precision(resolve_budget(space, opts, torch.cuda.device_count()))


def record_reuse(run_dir: Path, source: Path, points: int) -> None:
    """meta.json says which bench the copied rows came from (each row says it too)."""
    from nas.bench.reuse import REUSED_FROM
    from nas.results.meta import update_meta

    update_meta(run_dir, {REUSED_FROM: {"bench": source.name, "points": points}})


def tabulate_quietly(run_dir: Path) -> Path:
    """Write the bench's report (bench.md, bench.html) from its table; return bench.md."""
    from nas.bench.report import write_report
    from nas.bench.table import load_bench

    bench = load_bench(run_dir)
    return write_report(bench, expected=len(bench_points(load_space(bench.space_file))))


def tabulate(run_dir: Path) -> int:
    """`bench RUN_DIR`: the report again, printed too."""
    path = tabulate_quietly(run_dir)
    print(path.read_text())
    print(f"Written: {path}, {path.with_suffix('.html')}")
    return 0
