"""What the latency benchmarks share: the bench's points (genotype, choices, MACs, accuracy
pooled over every complete bench of the same points), their timing arguments and interleaved
measurement, a resumable JSON record, the header."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import load_note, machine
from nas.arch.genotype import Genotype
from nas.arch.model import build
from nas.bench.report import point_frame
from nas.bench.table import pooled_finals
from nas.latency.measure import measure_many
from nas.latency.model import DEFAULT_CONFIG
from nas.latency.settings import RUNTIMES, LatencyConfig
from nas.results.atomic import write_json
from nas.results.meta import git_sha

BENCH = Path("results/bench/spectrum_bench_gamma1")
# the same 72 points trained with seeds 2 and 3: pooled once it holds every point
MORE_SEEDS = (Path("results/bench/spectrum_bench_gamma1_seeds23"),)
INPUT = (3, 32, 32)
# Points measured together, interleaved in each round (a rerun resumes after the last chunk):
# bursts of interference on a shared VM then meet every point of a chunk alike.
CHUNK = 36
TIMING = ("bench", "runtimes", "batches", "threads", "warmup", "repeats", "rounds")


@dataclass(frozen=True)
class Point:
    """A bench point: its key, network, choices in words, MACs and mean final accuracy."""

    key: str
    genotype: Genotype
    label: str  # 'g=8 dw_pw mid none res identity'
    macs: int
    params: int
    accuracy: float  # mean over every pooled seed of the last epoch's validation accuracy
    seeds: int


def load_points(bench_dir: Path, more: tuple[Path, ...] = MORE_SEEDS) -> tuple[list[Point], str]:
    """Every completed point of the bench, by key; the accuracy pools the seeds of each bench in
    `more` that holds all of them (a partial one is left out and said so in the note)."""
    bench, finals, note = pooled_finals(bench_dir, more)
    frame = point_frame(bench).set_index("key")
    points = []
    for key in sorted(bench.points):
        row = frame.loc[key]
        label = (f"g={row['groups']} {row['order']} mid {row['mid_act']} res {row['residual']}")
        points.append(Point(key, Genotype.from_json(bench.points[key].genotype), label,
                            int(row["macs"]), int(row["params"]),
                            statistics.fmean(finals[key]), len(finals[key])))
    return points, "accuracy: mean final validation accuracy over " + note


def pick(points: list[Point], limit: int | None) -> list[Point]:
    """`limit` points spread evenly over the bench's key order (all when None)."""
    if limit is None or limit >= len(points):
        return points
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)]


def header(title: str) -> list[str]:
    """The Markdown header: when, where (CPU and its flags, the load), which commit."""
    return [f"# {title}", "", f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()};"
            f" {load_note()} at the end; commit {git_sha(Path('.')) or 'unknown'}.", ""]


def open_record(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The record of an earlier run with the same settings (to resume), else a new one; a
    record of other settings is an error naming the file."""
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back from JSON
    if not path.exists():
        return {"settings": settings, "points": {}}
    record = json.loads(path.read_text())
    if record.get("settings") != settings:
        raise SystemExit(f"{path}: measured with other settings ({record.get('settings')});"
                         " give another --out, or delete it to measure again")
    return record


def save_record(path: Path, record: dict[str, Any]) -> None:
    """Write the record atomically (after every point: a rerun resumes from it)."""
    write_json(path, record)


def settings_of(args, keys: tuple[str, ...]) -> dict[str, Any]:
    """The arguments that decide what a measurement means, plus the machine it ran on."""
    return {k: getattr(args, k) for k in keys} | {"machine": machine()}


def timing_arguments(parser: argparse.ArgumentParser, runtimes: list[str], batches: list[int],
                     out: str) -> None:
    """The arguments every latency benchmark takes: which points, runtimes, batches, timing."""
    parser.add_argument("--bench", type=Path, default=BENCH)
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=runtimes)
    parser.add_argument("--batches", type=int, nargs="+", default=batches)
    defaults = DEFAULT_CONFIG  # the latency table's: short runs, many rounds
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="rounds, each"
                        " timing every point of a chunk in turn; a latency is the lowest round"
                        " median")
    parser.add_argument("--limit", type=int, help="only this many points, spread over the bench")
    parser.add_argument("--out", type=Path, default=Path(out))


def timing_config(args: argparse.Namespace) -> LatencyConfig:
    """The LatencyConfig the arguments give, checked (a one-line error naming the argument)."""
    return LatencyConfig(tuple(args.runtimes), tuple(args.batches), args.threads, args.warmup,
                         args.repeats, args.rounds).check("arguments")


def measure_points(points: list[Point], config: LatencyConfig, record: dict[str, Any],
                   out: Path) -> None:
    """Measure every point whole not yet in the record on every setting, CHUNK points at a time
    interleaved (nas.latency.measure.measure_many); the record saved after each chunk."""
    todo = [p for p in points if p.key not in record["points"]]
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        found = measure_many({p.key: build(p.genotype) for p in chunk}, INPUT, config)
        for point in chunk:
            measured = found[point.key]
            record["points"][point.key] = {
                "label": point.label, "macs": point.macs, "params": point.params,
                "median": {s.name: t.median_ms for s, t in measured.timings.items()},
                "p90": {s.name: t.p90_ms for s, t in measured.timings.items()}}
            record["choices"] = record.get("choices", {}) | measured.choices
            record["skipped"] = record.get("skipped", {}) | measured.skipped
        save_record(out, record)
        print(f"points {start + len(chunk)}/{len(todo)} measured", file=sys.stderr, flush=True)
