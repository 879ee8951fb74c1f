"""A finished bench read back: every point's per-seed curves, cost and time, checked strictly."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.latency.settings import latency_names
from nas.results.errors import RunFolderError
from nas.results.meta import read_meta
from nas.results.names import META, TABLE
from nas.results.table import read_csv
from nas.results.values import number, text

# The trials-table columns a bench needs, each per point (a bench measured after the [latency]
# section existed also has each runtime's latency_ms@RUNTIME:bN: read when there).
COLUMNS = ("arch_key", "genotype", "status", "epochs", "params", "macs", "latency_ms",
           "seed_curves", "seed_loss_curves", "epoch_s_curve")


class BenchError(RunFolderError):
    """A bench folder that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class BenchPoint:
    """One architecture of the bench: what training it measured, per seed and epoch."""

    key: str  # Genotype.key()
    genotype: str  # Genotype.to_json()
    params: int
    macs: int
    latency_ms: float
    curves: tuple[tuple[float, ...], ...]  # validation accuracy, [seed][epoch]
    losses: tuple[tuple[float, ...], ...]  # training loss, [seed][epoch]
    epoch_seconds: tuple[float, ...]  # training seconds of each epoch, one seed
    # median ms per [latency] setting it measured: (('latency_ms@torch:b1', 0.41), ...)
    latencies: tuple[tuple[str, float], ...] = ()

    @property
    def final(self) -> float:
        """Mean over the seeds of the last epoch's validation accuracy."""
        return statistics.fmean(c[-1] for c in self.curves)

    def at(self, epoch: int) -> float:
        """Mean over the seeds of the validation accuracy after `epoch` (1-based) epochs."""
        return statistics.fmean(c[epoch - 1] for c in self.curves)


@dataclass(frozen=True)
class Bench:
    """Every point of a bench, by genotype key."""

    run_dir: Path
    points: dict[str, BenchPoint]
    epochs: int
    seeds: int
    meta: dict[str, Any]

    @property
    def space_file(self) -> Path:
        """The copy of the space file the bench was trained from (named in its meta.json)."""
        return self.run_dir / self.meta["space_file"]

    def best(self) -> BenchPoint:
        """The point with the highest mean final accuracy (ties: fewer MACs, then key)."""
        return min(self.points.values(), key=lambda p: (-p.final, p.macs, p.key))

    def regret(self, key: str) -> float:
        """The bench's best mean final accuracy minus that of point `key`."""
        return self.best().final - self.points[key].final

    def rank(self, key: str) -> int:
        """1 for the best point, by mean final accuracy."""
        mine = self.points[key].final
        return 1 + sum(p.final > mine for p in self.points.values())

    def compute_s(self) -> float:
        """Training seconds of the whole bench: every epoch of every seed of every point."""
        return sum(sum(p.epoch_seconds) * len(p.curves) for p in self.points.values())


def load_bench(run_dir: Path) -> Bench:
    """A bench folder's completed points; anything malformed is a one-line BenchError."""
    run_dir = Path(run_dir)
    if not (run_dir / META).is_file():
        raise BenchError(f"{run_dir}: not a bench folder (no {META})")
    try:
        meta = read_meta(run_dir)
        epochs = int(meta["budget"]["epochs"])
    except (ValueError, KeyError, TypeError) as err:
        raise BenchError(f"{run_dir / META}: no budget.epochs ({err})") from None
    path = run_dir / TABLE
    try:
        table = read_csv(path)
    except Exception as err:  # pandas raises many parser errors; all mean a broken file
        raise BenchError(f"{path}: unreadable ({' '.join(str(err).split())[:200]})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if table.empty or missing:
        raise BenchError(f"{path}: not a bench table (missing columns: "
                         f"{', '.join(missing) or 'all rows'})")
    points: dict[str, BenchPoint] = {}
    seeds = 0
    for index, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        if row["status"] != "completed":
            continue
        point = _point(row, f"{path} line {index}", epochs)
        seeds = seeds or len(point.curves)
        if len(point.curves) != seeds:
            raise BenchError(f"{path} line {index}: {len(point.curves)} seeds, the bench has"
                             f" {seeds}")
        points.setdefault(point.key, point)
    if not points:
        raise BenchError(f"{path}: no completed point")
    return Bench(run_dir, points, epochs, seeds, meta)


def _point(row: dict[str, Any], where: str, epochs: int) -> BenchPoint:
    """One table row as a BenchPoint, every curve checked for shape and finiteness."""
    curves = _curves(row["seed_curves"], f"{where} seed_curves", epochs)
    losses = _curves(row["seed_loss_curves"], f"{where} seed_loss_curves", epochs)
    # one flat list (summed over the seeds): read as a single curve
    seconds = _curves(f"[{text(row['epoch_s_curve'])}]", f"{where} epoch_s_curve", epochs)[0]
    if len(losses) != len(curves):
        raise BenchError(f"{where}: {len(curves)} accuracy curves but {len(losses)} loss curves")
    if any(not 0.0 <= v <= 1.0 for c in curves for v in c) or any(s < 0 for s in seconds):
        raise BenchError(f"{where}: accuracies must lie in [0, 1] and seconds be >= 0")
    try:
        params, macs = int(row["params"]), int(row["macs"])
        latency = float(row["latency_ms"])
    except (TypeError, ValueError) as err:
        raise BenchError(f"{where}: params, macs and latency_ms must be numbers ({err})") from None
    latencies = tuple((name, value) for name in latency_names(row)
                      if (value := number(row[name])) is not None)
    return BenchPoint(text(row["arch_key"]), text(row["genotype"]), params, macs, latency,
                      curves, losses, tuple(s / len(curves) for s in seconds), latencies)


def _curves(raw: Any, where: str, epochs: int) -> tuple[tuple[float, ...], ...]:
    """A JSON list of per-seed lists of `epochs` finite numbers."""
    try:
        data = json.loads(text(raw))
        curves = tuple(tuple(float(v) for v in seed) for seed in data)
    except (ValueError, TypeError) as err:
        raise BenchError(f"{where}: not a JSON list of lists of numbers ({err})") from None
    if not curves or any(len(c) != epochs for c in curves):
        raise BenchError(f"{where}: expected {epochs} values per seed, got "
                         f"{[len(c) for c in curves]}")
    if not all(math.isfinite(v) for c in curves for v in c):
        raise BenchError(f"{where}: holds a non-finite value")
    return curves


def pooled_finals(bench_dir: Path, more: tuple[Path, ...] = ()
                  ) -> tuple[Bench, dict[str, list[float]], str]:
    """A bench, every point's final accuracy per seed with the seeds of each bench in `more`
    pooled in when it holds every point (a partial one is left out), and a note saying which."""
    bench = load_bench(bench_dir)
    finals = {k: [c[-1] for c in p.curves] for k, p in bench.points.items()}
    notes = [f"{bench_dir} ({bench.seeds} seeds)"]
    for folder in more:
        if not (folder / TABLE).is_file():
            continue
        extra = load_bench(folder)
        if set(extra.points) >= set(finals):
            for key in finals:
                finals[key] += [c[-1] for c in extra.points[key].curves]
            notes.append(f"{folder} ({extra.seeds} seeds)")
        else:
            notes.append(f"not {folder}: {len(set(extra.points) & set(finals))} of"
                         f" {len(finals)} points so far")
    return bench, finals, "; ".join(notes)
