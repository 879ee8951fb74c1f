"""The bench points the spectrum modes train, and one timed training epoch of a point."""

from __future__ import annotations

import csv
import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from nas.arch.genotype import Genotype
from nas.data import ImageSet, Splits
from nas.search.space.enumerate import grid
from nas.search.space.points import genotype
from nas.search.space.types import Space
from nas.train.config import TrainConfig
from nas.train.device import resolve_precision
from nas.train.trainer import Trainer

DEFAULT_SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "spectrum_bench_gamma1.toml"
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Point:
    """One bench point: its label, params and network."""

    label: str
    params: dict
    arch: Genotype

    def groups(self) -> str:
        """The stages' group counts, '8/16/16'."""
        return "/".join(str(s.groups) for s in self.arch.stages)


def varying(space: Space) -> list[str]:
    """The params whose value differs between the space's grid points, in grid order."""
    everything = list(grid(space))
    return [k for k in everything[0] if len({str(p.get(k)) for p in everything}) > 1]


def bench_points(space: Space, which: str = "positions") -> list[Point]:
    """The space's grid points; 'positions' keeps the first point of each (spectrum, order).
    A label is the varying params' values: '0.8 dw_pw none identity'."""
    keys = varying(space)
    points, seen = [], set()
    for params in grid(space):
        key = (params.get("spectrum"), params.get("order"))
        if which == "positions" and key in seen:
            continue
        seen.add(key)
        label = " ".join(str(params[k]) for k in keys)
        points.append(Point(label, dict(params), genotype(space, params)))
    return points


def select(points: list[Point], specs: list[str]) -> list[Point]:
    """The points matching any of the 'key=value,key=value' specs (all points if none)."""
    if not specs:
        return points
    wanted = [dict(kv.split("=", 1) for kv in spec.split(",")) for spec in specs]
    chosen = [p for p in points
              if any(all(str(p.params.get(k)) == v for k, v in w.items()) for w in wanted)]
    if not chosen:
        raise SystemExit(f"no point of the space matches {specs}; keys: {sorted(points[0].params)}")
    return chosen


def train_config(space: Space, precision: str, batch_size: int, threads: int) -> TrainConfig:
    """The space's [train] settings for a one-epoch timing run on the CPU ('all' = 'auto')."""
    precision = precision if precision in ("fp32", "bf16") else "auto"
    return dataclasses.replace(
        space.train, epochs=1, warmup_epochs=0, batch_size=batch_size, device="cpu",
        cpu_threads=threads, precision=resolve_precision(precision, "cpu"), chance_epochs=0)


def subset(splits: Splits, images: int) -> Splits:
    """The first `images` training images (for warm-up runs)."""
    train = ImageSet(splits.train.images[:images], splits.train.labels[:images],
                     splits.train.classes)
    return dataclasses.replace(splits, train=train)


def timed_epoch(model: nn.Module, splits: Splits, cfg: TrainConfig, clock: str
                ) -> tuple[float, float]:
    """Seconds of one training epoch by `clock`, and its mean loss."""
    trainer = Trainer(model, splits, cfg)
    start = CLOCKS[clock]()
    report = trainer.epoch()
    seconds = CLOCKS[clock]() - start
    return seconds, report.train_loss if report else float("nan")


def bench_seconds(bench: Path | None) -> dict[tuple, float]:
    """Median recorded train_s per (spectrum, order) of a bench's trials.csv, if given."""
    if bench is None or not (bench / "trials.csv").is_file():
        return {}
    with (bench / "trials.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_s")]
    by_key: dict[tuple, list[float]] = {}
    for r in rows:
        key = (float(r["param_spectrum"]), r["param_order"])
        by_key.setdefault(key, []).append(float(r["train_s"]))
    return {k: statistics.median(v) for k, v in by_key.items()}
