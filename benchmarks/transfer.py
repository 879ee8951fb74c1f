"""Does the γ = 1 spectrum bench's ranking transfer to full CIFAR-10 and to Imagenette?

    python -m benchmarks.transfer --phase cifar --data-dir DIR        # resumable
    python -m benchmarks.transfer --phase imagenette                    # resumable
    python -m benchmarks.transfer --report

Points (`--points N`, default 12), picked once and pinned in OUT/selection.json: the bench's
points ranked by their mean final validation accuracy over every seed pooled (the bench's 2,
plus each `--more-seeds` bench once it holds every point; ties by key). The top N/3, the
bottom N/3 and the rest from the middle (the points centred on the median rank). Then, for
each of all-dense stages (every stage at spectrum position 0), all-depthwise stages (every
stage at 1), op order dw_pw and op order pw_dw that no chosen point has, the point that has it
nearest the median rank is swapped in for the middle point farthest from the median (never one
that alone carries another of the four; when none can go, the report says it is not covered).
`--pairs K` (default 2) then adds, for op order, mid activation (relu or elu against none)
and residual, the partners of chosen points (in training order) until each factor has K
matched pairs: points identical but for that factor, so its effect is read pair by pair at
every scale (on the γ = 1 bench the 12 hold 2 op-order and 3 mid-act pairs and no residual
one: 2 residual partners come in, 14 points).

Phase cifar trains each point from scratch on `--train-size` (45,000) images of the complete
CIFAR-10 (a stratified draw, `--data-dir` at the built copy: see benchmarks/README.md) for
`--epochs` (10) with the bench's [train] recipe, seeds 0..`--seeds`-1, and tests it on the
10,000 test images (nas.retrain.train_once, the retrain's machinery). Phase imagenette puts
each point's per-stage choices on search_spaces/imagenet_subset.toml's macro (stage i takes the
bench network's stage i, the last one for extra stages, at the spectrum position the bench chose;
96x96, 7x7/2 stem + pool, widths 32-256) and trains it on Imagenette's train split with that
space's [train] recipe (the bench's residual init, γ = 1), tested on its val split. Every
finished (point, seed) lands atomically in OUT/runs/PHASE/ and a rerun skips it; a run in
progress is kept after every epoch (OUT/runs/PHASE/KEY-seedS.kept.pt, not committed) and an
interrupted one continues from its last finished epoch, exactly; every run trains at
`--precision` (fp32 by default, as the bench: 'auto' would be bf16 on some of this project's
CPUs and fp32 on others);
`--concurrency` runs that many one-`--threads` trainings at once in spawned processes.
OUT/transfer.md and transfer.json are written after each phase.

Cost, an estimate scaled from one epoch on 2,048 images of each of the 14 default points (AMD
EPYC, AVX2, one thread, one training at a time, the other core busy with other jobs; measured
2026-12-07): CIFAR-10 at 186 images/s a thread on average (110 for g=1 pw_dw to 524 for g=32
dw_pw), so 10 epochs on 45,000 images take 14-68 min a point and ~9.5 core-h for 14 points x 1
seed (~5 h wall two at a time); Imagenette at 188 images/s (121-295), 10 epochs on its 9,469
take 5-13 min a point, ~2 core-h (~1 h wall). Testing adds ~30 s (10,000 CIFAR images) and
~13 s (3,925 Imagenette images) a run. Each further seed costs as much again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import json
import math
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nas.arch.cost import cost
from nas.arch.genotype import Genotype, divisor_at
from nas.bench.report import point_frame
from nas.bench.table import load_bench, pooled_finals
from nas.data.core import DataError
from nas.results.atomic import atomic_write, write_json
from nas.search.space.load import load_space
from nas.search.space.points import base_width, network_frame
from nas.search.space.types import Space
from nas.train.config import TrainConfig

BENCH = Path("results/bench/spectrum_bench_gamma1")
MORE_SEEDS = (Path("results/bench/spectrum_bench_gamma1_seeds23"),)
SUPERNET = Path("results/supernet/sn10u3")  # the best-ranking supernet measured (τ 0.52)
IMAGENET_SPACE = Path("search_spaces/imagenet_subset.toml")
IMAGENETTE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette-96"
OUT = Path("results/transfer")
SELECTION = "selection.json"
RUNS = "runs"
SESSIONS = "sessions.json"
LOCK = ".transfer.lock"
KEPT_SUFFIX = ".kept.pt"  # a run in progress, after its last finished epoch
PHASES = ("cifar", "imagenette")
DEFAULT_TRAIN_SIZE = {"cifar": 45_000, "imagenette": "all"}
FACTORS = {"order": ("pw_dw", "dw_pw"), "mid_act": ("none", "relu", "elu"),
           "residual": ("identity", "none")}  # each factor's levels, the first its partner's


class TransferError(ValueError):
    """A study that cannot run as asked; the message names the flag or file."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """A bench point: its network, choices in words, every pooled seed's final accuracy."""

    key: str
    genotype: Genotype
    label: str  # 'g=8 dw_pw mid none res identity' (stage 1's groups)
    finals: tuple[float, ...]
    params: int
    macs: int
    rank: int = 0  # 1 = the best mean final accuracy of the bench

    @property
    def mean(self) -> float:
        """Mean final validation accuracy over the pooled seeds."""
        return statistics.fmean(self.finals)


def bench_entries(bench_dir: Path, more: Iterable[Path] = MORE_SEEDS) -> tuple[list[Entry], str]:
    """Every completed bench point, best first, with the seeds of each bench in `more` that
    holds all of them pooled in (a partial one is left out and the note says so)."""
    bench, finals, note = pooled_finals(bench_dir, tuple(more))
    frame = point_frame(bench).set_index("key")
    entries = []
    for key, point in bench.points.items():
        row = frame.loc[key]
        label = f"g={row['groups']} {row['order']} mid {row['mid_act']} res {row['residual']}"
        entries.append(Entry(key, Genotype.from_json(point.genotype), label,
                             tuple(finals[key]), point.params, point.macs))
    entries.sort(key=lambda e: (-e.mean, e.key))
    ranked = [dataclasses.replace(e, rank=i) for i, e in enumerate(entries, start=1)]
    return ranked, "mean final validation accuracy over " + note


# What the chosen points must span: (name, test on a network).
REQUIREMENTS: tuple[tuple[str, Callable[[Genotype], bool]], ...] = (
    ("all-dense stages", lambda g: all(s.spectrum_position() == 0.0 for s in g.stages)),
    ("all-depthwise stages", lambda g: all(s.spectrum_position() == 1.0 for s in g.stages)),
    ("op order dw_pw", lambda g: all(s.order == "dw_pw" for s in g.stages)),
    ("op order pw_dw", lambda g: all(s.order == "pw_dw" for s in g.stages)),
)


@dataclasses.dataclass(frozen=True)
class Chosen:
    """A point of the study and why: top, middle, bottom, swapped in, or a pair's partner."""

    key: str
    role: str


def select(entries: list[Entry], n: int) -> tuple[list[Chosen], list[str]]:
    """The module docstring's rule: top, middle and bottom of the ranking, then the swaps that
    make the four REQUIREMENTS hold; the chosen points in training order (round robin over the
    three groups, so a partial study spans the range) and a note per swap or gap."""
    if not 2 <= n <= len(entries):
        raise TransferError(f"--points {n}: the bench has {len(entries)} points; pick 2 to"
                            f" {len(entries)}")
    k = max(1, n // 3)
    middle_n = n - 2 * k
    start = (len(entries) - middle_n) // 2
    groups = {"top": entries[:k], "middle": entries[start:start + middle_n],
              "bottom": entries[len(entries) - k:]}
    roles = {e.key: role for role, part in groups.items() for e in part}
    median = (len(entries) + 1) / 2
    by_key = {e.key: e for e in entries}
    notes = []
    for name, test in REQUIREMENTS:
        if any(test(by_key[key].genotype) for key in roles):
            continue
        found = min((e for e in entries if e.key not in roles and test(e.genotype)),
                    key=lambda e: (abs(e.rank - median), e.rank), default=None)
        victim = _victim(roles, by_key, median)
        if found is None or victim is None:
            notes.append(f"not covered: {name} (no middle point can make room)")
            continue
        del roles[victim.key]
        roles[found.key] = f"swapped in ({name})"
        groups["middle"] = [found if e.key == victim.key else e for e in groups["middle"]]
        notes.append(f"{found.label} (bench rank {found.rank}) swapped in for {victim.label}"
                     f" (rank {victim.rank}): no chosen point had {name}")
    order = [e for row in _round_robin(list(groups.values())) for e in row]
    return [Chosen(e.key, roles[e.key]) for e in order], notes


def _victim(roles: dict[str, str], by_key: dict[str, Entry], median: float) -> Entry | None:
    """The original middle point farthest from the median rank (ties: the worse one) whose
    removal leaves every requirement the chosen points meet still met."""
    def still_met(without: str) -> bool:
        rest = [by_key[k].genotype for k in roles if k != without]
        return all(any(test(g) for g in rest) for _, test in REQUIREMENTS
                   if any(test(by_key[k].genotype) for k in roles))
    middle = [by_key[k] for k, role in roles.items() if role == "middle"]
    movable = [e for e in middle if still_met(e.key)]
    return max(movable, key=lambda e: (abs(e.rank - median), e.rank), default=None)


def _round_robin(groups: list[list[Entry]]) -> Iterator[list[Entry]]:
    """[a1, b1, c1], [a2, b2, c2], ...: one of each group in turn (shorter groups run out)."""
    for i in range(max(len(g) for g in groups)):
        yield [g[i] for g in groups if i < len(g)]


def with_factor(arch: Genotype, factor: str, level: str) -> Genotype:
    """The same network with `factor` set to `level` in every stage."""
    stages = tuple(dataclasses.replace(s, **{factor: level}) for s in arch.stages)
    return dataclasses.replace(arch, stages=stages)


def partner_key(arch: Genotype, factor: str) -> str:
    """The key of the network differing only in `factor`: its first level, or for a point at
    that level the second (op order pw_dw <-> dw_pw; mid act relu/elu -> none, none -> relu)."""
    levels = FACTORS[factor]
    level = getattr(arch.stages[0], factor)
    return with_factor(arch, factor, levels[1] if level == levels[0] else levels[0]).key()


def matched_pairs(keys: Iterable[str], archs: dict[str, Genotype], factor: str
                  ) -> list[tuple[str, str]]:
    """(a, b) pairs among `keys` identical but for `factor`, a at a level other than the
    factor's first and b at the first (mid act: relu or elu against none), ordered by key."""
    chosen = set(keys)
    first = FACTORS[factor][0]
    pairs = []
    for key in sorted(chosen):
        arch = archs[key]
        if getattr(arch.stages[0], factor) == first:
            continue
        other = with_factor(arch, factor, first).key()
        if other in chosen:
            pairs.append((key, other))
    return pairs


def add_pairs(chosen: list[Chosen], entries: list[Entry], wanted: int
              ) -> tuple[list[Chosen], list[str]]:
    """Add bench points until each factor has `wanted` matched pairs among the chosen: the
    partner of each chosen point in training order that lacks one; a note per factor."""
    archs = {e.key: e.genotype for e in entries}
    labels = {e.key: e.label for e in entries}
    out, notes = list(chosen), []
    for factor in FACTORS:
        added = 0
        for c in list(out):
            if len(matched_pairs([x.key for x in out], archs, factor)) >= wanted:
                break
            other = partner_key(archs[c.key], factor)
            if other in archs and other not in {x.key for x in out}:
                out.append(Chosen(other, f"{factor} partner of {labels[c.key]}"))
                added += 1
        have = len(matched_pairs([x.key for x in out], archs, factor))
        notes.append(f"--pairs {wanted}: {factor}: {added} partner(s) added, {have} pair(s)")
    return out, notes


# --- the pinned selection -------------------------------------------------------------------

def pinned_selection(out: Path, entries: list[Entry], accuracy: str, points: int, pairs: int,
                     bench: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """OUT/selection.json: made on the first call, read back on every later one (a bench
    whose pooled seeds changed meanwhile does not move the study's points; the log says so)."""
    chosen, notes = select(entries, points)
    if pairs:
        chosen, more = add_pairs(chosen, entries, pairs)
        notes += more
    fresh = {"bench": str(bench), "points": points, "pairs": pairs, "accuracy": accuracy,
             "made": datetime.now(UTC).isoformat(timespec="seconds"),
             "chosen": [dataclasses.asdict(c) for c in chosen], "notes": notes}
    path = out / SELECTION
    if not path.is_file():
        write_json(path, fresh)
        return fresh
    pinned = json.loads(path.read_text())
    if (pinned["bench"], pinned["points"], pinned["pairs"]) != (str(bench), points, pairs):
        raise TransferError(f"{path}: made with --bench {pinned['bench']} --points"
                            f" {pinned['points']} --pairs {pinned['pairs']}; give the same"
                            " flags, or another --out")
    if [c["key"] for c in pinned["chosen"]] != [c.key for c in chosen]:
        log(f"note: the bench now ({accuracy}) would pick other points; the study keeps the"
            f" {len(pinned['chosen'])} pinned in {path}")
    return pinned


# --- phases ---------------------------------------------------------------------------------

def shared_position(space: Space, arch: Genotype) -> float | None:
    """The bench space's spectrum choice that gives every stage of `arch` its groups (a bench
    sharing one position across its stages), or None."""
    for position in space.blocks.spectrum or ():
        if all(divisor_at(position, s.grouped_width()) == s.groups for s in arch.stages):
            return position
    return None


def on_macro(space: Space, source: Genotype, position: float | None) -> Genotype:
    """`source`'s per-stage choices on `space`'s macro: stage i copies source stage i (its last
    for extra stages) at the macro's width, depth (the first choice) and stride, its groups at
    `position` (None: the source stage's own position) of the new width; the macro's stem, head
    and resolution."""
    stages = []
    for s, stride in enumerate(space.macro.strides):
        src = source.stages[min(s, len(source.stages) - 1)]
        depth = space.macro.depths[s]
        stage = dataclasses.replace(src, width=base_width(space, {}, s), stride=stride,
                                    depth=depth if isinstance(depth, int) else depth[0])
        at = src.spectrum_position() if position is None else position
        stages.append(dataclasses.replace(stage, groups=divisor_at(at, stage.grouped_width())))
    return Genotype(stages=tuple(stages), **network_frame(space)).validate()


@dataclasses.dataclass(frozen=True)
class Task:
    """One training run, everything a spawned worker needs (picklable)."""

    phase: str
    key: str  # the bench point's key
    label: str
    seed: int
    genotype: str  # JSON of the network trained (on the phase's macro)
    space: Space  # its data section says what is trained and tested on
    data_dir: str | None
    train_size: int | str
    cfg: TrainConfig  # precision resolved, seed set
    settings: dict[str, Any]  # what a finished run must match to be reused
    kept: str | None = None  # where the run in progress is kept after each epoch


@dataclasses.dataclass(frozen=True)
class Phase:
    """A phase's data, recipe and network per point."""

    name: str
    space: Space
    data_dir: str | None
    train_size: int | str
    cfg: TrainConfig  # the phase's epochs, threads and resolved precision
    network: Callable[[Entry], Genotype]

    def settings(self) -> dict[str, Any]:
        """What decides a run's result (threads and paths excluded: they do not)."""
        train = dataclasses.asdict(self.cfg)
        for key in ("cpu_threads", "seed"):
            train.pop(key)
        return {"phase": self.name, "space": self.space.name, "train_size": self.train_size,
                "data": {"dataset": self.space.data.dataset, "classes": self.space.data.classes,
                         "resolution": self.space.data.resolution, "seed": self.space.data.seed},
                "train": train}

    def tasks(self, chosen: list[Entry], seeds: int) -> list[Task]:
        """Every (point, seed) run, seed 0 of every point first."""
        settings = self.settings()
        return [Task(self.name, e.key, e.label, seed, self.network(e).to_json(indent=None),
                     self.space, self.data_dir, self.train_size,
                     dataclasses.replace(self.cfg, seed=seed), settings)
                for seed in range(seeds) for e in chosen]


def _train_config(base: TrainConfig, epochs: int, threads: int, **overrides: Any
                  ) -> TrainConfig:
    """`base` with `epochs` (warm-up capped at it), one run's threads and precision resolved."""
    from nas.train.device import resolve_device, resolve_precision

    cfg = dataclasses.replace(base, epochs=epochs, warmup_epochs=min(base.warmup_epochs, epochs),
                              cpu_threads=threads, **overrides)
    return dataclasses.replace(cfg, precision=resolve_precision(cfg.precision,
                                                                resolve_device(cfg.device)))


def cifar_phase(args: argparse.Namespace, bench_space: Space) -> Phase:
    """Complete CIFAR-10 at `--data-dir`, the bench's space and [train]."""
    if args.data_dir is None:
        raise TransferError("--data-dir: required for --phase cifar (the built complete"
                            " CIFAR-10; see benchmarks/README.md, 'Transfer study')")
    if not args.data_dir.is_dir():
        raise TransferError(f"--data-dir {args.data_dir}: no such folder")
    cfg = _train_config(bench_space.train, args.epochs or bench_space.train.epochs, args.threads,
                        precision=args.precision)
    return Phase("cifar", bench_space, str(args.data_dir), _size(args, "cifar"), cfg,
                 lambda e: e.genotype)


def imagenette_phase(args: argparse.Namespace, bench_space: Space) -> Phase:
    """Imagenette at `--imagenette-dir` on imagenet_subset's macro and [train], with the
    bench's residual init."""
    root = args.imagenette_dir
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise TransferError(f"--imagenette-dir {root}: not a folder holding train/ and val/")
    space = load_space(args.imagenet_space)
    space = dataclasses.replace(space, data=dataclasses.replace(space.data, root=root,
                                                                per_class=None))
    cfg = _train_config(space.train, args.epochs or space.train.epochs, args.threads,
                        zero_init_residual=bench_space.train.zero_init_residual,
                        precision=args.precision)
    return Phase("imagenette", space, None, _size(args, "imagenette"), cfg,
                 lambda e: on_macro(space, e.genotype, shared_position(bench_space, e.genotype)))


def _size(args: argparse.Namespace, phase: str) -> int | str:
    return DEFAULT_TRAIN_SIZE[phase] if args.train_size is None else args.train_size


def load_data(task: Task):
    """The task's splits: its training draw and the held-out test set (nas.retrain's)."""
    from nas.retrain import final_splits

    data_dir = None if task.data_dir is None else Path(task.data_dir)
    return final_splits(task.space, data_dir, task.train_size)


def train_task(task: Task, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train and test one (point, seed) with nas.retrain.train_once, from where it was kept if
    it was; its record, with the process's CPU seconds (every thread: the run's core-seconds),
    its sittings' together."""
    import torch

    from benchmarks.common import machine
    from nas.retrain import Candidate, train_once

    started = datetime.now(UTC).isoformat(timespec="seconds")
    cpu, wall = time.process_time(), time.perf_counter()
    log = log or functools.partial(print, flush=True)
    kept = read_kept(task, log)
    before = {"wall_s": 0.0, "cpu_s": 0.0} if kept is None else kept
    splits = load_data(task)
    arch = Genotype.from_json(task.genotype)

    def keep(state: dict) -> None:
        spent = {"wall_s": before["wall_s"] + time.perf_counter() - wall,
                 "cpu_s": before["cpu_s"] + time.process_time() - cpu}
        atomic_write(Path(task.kept), lambda p: torch.save(
            {"settings": json.dumps(task.settings, sort_keys=True), "trainer": state, **spent},
            p))

    row = train_once(Candidate(task.label, arch, math.nan, ""), splits, task.cfg, log=log,
                     resume=None if kept is None else kept["trainer"],
                     keep=None if task.kept is None else keep)
    c = cost(arch)
    return {"phase": task.phase, "key": task.key, "label": task.label, "seed": task.seed,
            "arch_key": row["arch_key"], "status": row["status"], "test_acc": row["test_acc"],
            "train_loss": row["train_loss"], "train_s": row["train_s"],
            "wall_s": round(before["wall_s"] + time.perf_counter() - wall, 1),
            "cpu_s": round(before["cpu_s"] + time.process_time() - cpu, 1),
            "resumed_after_epoch": 0 if kept is None else len(kept["trainer"]["history"]),
            "machine": machine(),  # where it finished (a kept run may have started elsewhere)
            "threads": task.cfg.cpu_threads,
            "train_images": row["train_images"], "test_images": row["test_images"],
            "params": c.params, "macs": c.macs, "precision": row["precision"],
            "started": started, "finished": row["finished"], "settings": task.settings}


# --- resumable runs -------------------------------------------------------------------------

def run_path(out: Path, task: Task) -> Path:
    """Where a finished (point, seed) is kept."""
    return out / RUNS / task.phase / f"{task.key}-seed{task.seed}.json"


def kept_path(out: Path, task: Task) -> Path:
    """Where a (point, seed) in progress is kept after each epoch."""
    return run_path(out, task).with_suffix(KEPT_SUFFIX)


def read_kept(task: Task, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The task's kept run (trainer state, wall and CPU seconds so far), or None: none kept,
    or one kept with other settings or unreadable (then said, and trained from epoch 1)."""
    import torch

    if task.kept is None or not Path(task.kept).is_file():
        return None
    try:
        kept = torch.load(task.kept, weights_only=True)
    except Exception as err:  # any unreadable file: trained afresh, and said why
        log(f"  {task.kept}: unreadable ({type(err).__name__}), trained from epoch 1")
        return None
    differs = settings_difference(json.loads(kept.get("settings") or "{}"), task)
    if differs:
        log(f"  {task.kept}: kept with other settings, trained from epoch 1 ({differs})")
        return None
    log(f"  {task.label} seed {task.seed}: continues after epoch"
        f" {len(kept['trainer']['history'])} (kept in {task.kept})")
    return kept


def pending(out: Path, tasks: list[Task]) -> list[Task]:
    """The tasks not finished yet; a finished one trained with other settings is an error."""
    todo = []
    for task in tasks:
        path = run_path(out, task)
        if not path.is_file():
            todo.append(task)
            continue
        differs = settings_difference(json.loads(path.read_text()).get("settings"), task)
        if differs:
            raise TransferError(f"{path}: trained with other settings ({differs}); give another"
                                " --out, or delete it to train again")
    return todo


def settings_difference(recorded: dict[str, Any] | None, task: Task) -> str:
    """'' when a record's settings (read as of now) are the task's, else the first that
    differs ('train.epochs: 10 there, 1 now')."""
    recorded = as_of_now(recorded)
    if recorded == json.loads(json.dumps(task.settings)):
        return ""
    return _first_difference(recorded, task.settings) or "settings differ"


def as_of_now(recorded: dict[str, Any] | None) -> dict[str, Any]:
    """A record's settings with each [train] field TrainConfig gained since, at its default: a
    new field's default keeps the old behaviour, so a run trained before it existed trained
    as that default does and still counts."""
    if not recorded or not isinstance(recorded.get("train"), dict):
        return recorded or {}
    defaults = {k: v for k, v in dataclasses.asdict(TrainConfig()).items()
                if k not in ("cpu_threads", "seed")}
    return json.loads(json.dumps({**recorded, "train": {**defaults, **recorded["train"]}}))


def _first_difference(old: dict[str, Any], new: dict[str, Any], where: str = "") -> str:
    """'train.epochs: 10 there, 1 now' for the first setting that differs."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), json.loads(json.dumps(new.get(key)))
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{where}{key}.")
            if found:
                return found
        elif a != b:
            return f"{where}{key}: {a!r} there, {b!r} now"
    return ""


def run_tasks(tasks: list[Task], out: Path, concurrency: int,
              train: Callable[[Task], dict[str, Any]] = train_task,
              log: Callable[[str], None] = print) -> int:
    """Train the tasks, `concurrency` at a time, each in a fresh spawned process (1: here, in
    order); each record written atomically as it lands. Returns how many finished."""
    done = 0

    def land(task: Task, record: dict[str, Any]) -> None:
        nonlocal done
        write_json(run_path(out, task), record)
        if task.kept is not None:  # landed: its epochs are in the record now
            Path(task.kept).unlink(missing_ok=True)
        done += 1
        log(f"  {task.phase} {task.label} seed {task.seed}: {record['status']}, test acc"
            f" {record['test_acc']:.4f}, {record['wall_s']:.0f} s ({done}/{len(tasks)})")

    if concurrency == 1:
        for task in tasks:
            land(task, train(task))
        return done
    # Leaving the block (finished, failed or interrupted) terminates the workers: none keeps
    # training for a parent that can no longer record it.
    with mp.get_context("spawn").Pool(concurrency, maxtasksperchild=1) as pool:
        for task, record in pool.imap_unordered(functools.partial(_paired, train), tasks):
            land(task, record)
    return done


def _paired(train: Callable[[Task], dict[str, Any]], task: Task) -> tuple[Task, dict]:
    """A worker's answer: the task with its record."""
    return task, train(task)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (`kill PID`) as Ctrl-C: the workers are stopped, the finished runs kept."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT's lock for the whole call: a second run on the same folder is refused."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 100).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise TransferError(f"--out {out}: in use by another transfer run (PID {holder}); wait"
                            " for it to end, or give another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # the kernel drops the flock with it


def record_session(out: Path, phase: str, started: float, trained: int, args) -> None:
    """Append this call's wall time to OUT/runs/PHASE/sessions.json (the phase's wall cost)."""
    from benchmarks.common import machine

    path = out / RUNS / phase / SESSIONS
    sessions = json.loads(path.read_text()) if path.is_file() else []
    sessions.append({"ended": datetime.now(UTC).isoformat(timespec="seconds"),
                     "wall_s": round(time.time() - started, 1), "trained": trained,
                     "concurrency": args.concurrency, "threads": args.threads,
                     "machine": machine(), "argv": sys.argv[1:]})
    write_json(path, sessions)


# --- command line ---------------------------------------------------------------------------

def _train_size(value: str) -> int | str:
    """--train-size: 'all' or a count >= 1."""
    if value == "all":
        return value
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or a count, got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {count}")
    return count


def _at_least(low: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {number}")
        return number
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.transfer",
                                description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--phase", choices=PHASES, help="train this phase's missing runs")
    what.add_argument("--report", action="store_true", help="only write the report")
    p.add_argument("--bench", type=Path, default=BENCH)
    p.add_argument("--more-seeds", type=Path, nargs="*", default=list(MORE_SEEDS),
                   help="benches of the same points whose seeds are pooled once complete")
    p.add_argument("--points", type=_at_least(2), default=12)
    p.add_argument("--pairs", type=_at_least(0), default=2,
                   help="add partner points until each factor has this many matched pairs")
    p.add_argument("--data-dir", type=Path, help="the built complete CIFAR-10 (phase cifar)")
    p.add_argument("--imagenette-dir", type=Path, default=IMAGENETTE)
    p.add_argument("--imagenet-space", type=Path, default=IMAGENET_SPACE)
    p.add_argument("--train-size", type=_train_size,
                   help="'all' or a stratified count (default: cifar 45000, imagenette all)")
    p.add_argument("--epochs", type=_at_least(1),
                   help="default: the phase's [train] epochs (10 for both)")
    p.add_argument("--seeds", type=_at_least(1), default=1)
    p.add_argument("--concurrency", type=_at_least(1), default=2,
                   help="trainings at once, each in its own process")
    p.add_argument("--threads", type=_at_least(1), default=1, help="torch threads per training")
    # pinned, not 'auto': the study's runs span sittings on CPUs with and without native bf16,
    # and the bench it is compared with trained in fp32
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="training precision of every run (default fp32, as the bench)")
    p.add_argument("--supernet", type=Path, default=SUPERNET,
                   help="a `run_search.py supernet --top-k 0` folder scoring the bench's points")
    p.add_argument("--bootstrap", type=_at_least(100), default=2000)
    p.add_argument("--out", type=Path, default=OUT)
    return p


def run_phase(args: argparse.Namespace, out: Path, log: Callable[[str], None]) -> None:
    """Pin the points, train what the phase lacks, record the session."""
    bench_space = load_space(load_bench(args.bench).space_file)
    phase = (cifar_phase if args.phase == "cifar" else imagenette_phase)(args, bench_space)
    entries, accuracy = bench_entries(args.bench, args.more_seeds)
    selection = pinned_selection(out, entries, accuracy, args.points, args.pairs, args.bench,
                                 log)
    by_key = {e.key: e for e in entries}
    chosen = [by_key[c["key"]] for c in selection["chosen"]]
    todo = [dataclasses.replace(t, kept=str(kept_path(out, t)))
            for t in pending(out, phase.tasks(chosen, args.seeds))]
    log(f"Transfer study, phase {phase.name}: {len(chosen)} points x {args.seeds} seed(s),"
        f" {phase.cfg.epochs} epochs; {len(todo)} runs to train, {args.concurrency} at a time,"
        f" {args.threads} thread(s) each; results in {out / RUNS / phase.name}")
    for note in selection["notes"]:
        log(f"  {note}")
    if not todo:
        return
    splits = load_data(todo[0])  # fails here, once, on bad data; warms an image-folder cache
    log(f"  training on {len(splits.train):,} images, testing on {len(splits.test):,}")
    del splits
    started = time.time()
    try:
        run_tasks(todo, out, args.concurrency, log=log)
    finally:  # counted from the folder: an interrupted session's landed runs count too
        record_session(out, phase.name, started, len(todo) - len(pending(out, todo)), args)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.transfer_report import write_report
    from nas.retrain import RetrainError

    args = parser().parse_args(argv)
    log = functools.partial(print, flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with locked(args.out):
            if args.phase:
                run_phase(args, args.out, log)
            path = write_report(args)
    except KeyboardInterrupt:
        print(f"Interrupted: finished runs are kept in {args.out / RUNS}; the same command"
              " continues with the rest.", file=sys.stderr)
        return 130
    except (TransferError, RetrainError, DataError) as err:
        print(f"transfer: error: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
