"""Where runtimes disagree: a bench's points timed on each runtime, ranked against each other
and against MACs, and each runtime's accuracy/latency Pareto front against the MACs front.

    python -m benchmarks.latency_runtimes [--bench DIR] [--batches 1 32] [--compile]

Every point is built and measured with nas.latency.measure on each runtime (torch NCHW, torch
channels_last, torch bf16 where the CPU computes it natively, ONNX Runtime; torch.compile with
--compile) at each batch size, threads pinned; a runtime this machine lacks is reported with
its reason. Prints Kendall τ between every two settings, τ of MACs (and params) against each,
each setting's Pareto front of bench accuracy against latency and the points that enter or leave
it relative to the accuracy/MACs front. Resumable: every measured point is saved to --out's JSON
at once and a rerun with the same settings measures only the rest. Writes --out and its .md.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.latency_points import (
    CHUNK,
    MORE_SEEDS,
    TIMING,
    Point,
    header,
    load_points,
    measure_points,
    open_record,
    pick,
    settings_of,
    timing_arguments,
    timing_config,
)
from nas.bench.rank import kendall_tau
from nas.latency.front import on_front
from nas.latency.settings import RUNTIMES, parse

DEFAULT_RUNTIMES = ("torch", "torch_cl", "torch_bf16", "onnxruntime")


def tau_matrix(names: list[str], entries: list[dict]) -> list[str]:
    """Kendall τ between every two settings' latencies, and of MACs and params against each."""
    short = [n.removeprefix("latency_ms@") for n in names]
    lines = ["| τ | " + " | ".join(short) + " |", "|---|" + "---|" * len(names)]
    for a, label in zip(names, short, strict=True):
        cells = [f"{kendall_tau(_col(entries, a), _col(entries, b)):.3f}" for b in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for cost in ("macs", "params"):
        cells = [f"{kendall_tau([e[cost] for e in entries], _col(entries, b)):.3f}"
                 for b in names]
        lines.append(f"| {cost} | " + " | ".join(cells) + " |")
    return lines


def _col(entries: list[dict], name: str) -> list[float]:
    return [e["median"][name] for e in entries]


def fronts(names: list[str], points: list[Point], entries: list[dict]) -> list[str]:
    """Each setting's accuracy/latency front; the points that enter it or leave it relative to
    the accuracy/MACs front."""
    acc = [p.accuracy for p in points]
    macs_front = on_front(acc, [float(p.macs) for p in points])
    lines = ["| cost | front size | front (fastest first) | enter vs MACs front | leave |",
             "|---|---|---|---|---|",
             _front_row("MACs", points, macs_front, [float(p.macs) for p in points], macs_front)]
    for name in names:
        cost = _col(entries, name)
        lines.append(_front_row(name.removeprefix("latency_ms@"), points,
                                on_front(acc, cost), cost, macs_front))
    return lines


def _front_row(label: str, points: list[Point], front: list[bool], cost: list[float],
               reference: list[bool]) -> str:
    on = sorted((c, p.label, f"{100 * p.accuracy:.1f} %") for p, c, f in
                zip(points, cost, front, strict=True) if f)
    enter = [p.label for p, f, r in zip(points, front, reference, strict=True) if f and not r]
    leave = [p.label for p, f, r in zip(points, front, reference, strict=True) if r and not f]
    shown = "; ".join(f"{name} ({acc})" for _, name, acc in on)
    return (f"| {label} | {len(on)} | {shown} | {'; '.join(enter) or '-'} |"
            f" {'; '.join(leave) or '-'} |")


def rank_shifts(names: list[str], entries: list[dict], top: int = 3) -> list[str]:
    """Per setting, the points whose latency rank moves most from the first setting's."""
    if len(names) < 2:
        return []
    base = _ranks(_col(entries, names[0]))
    lines = [f"Largest rank moves against {names[0].removeprefix('latency_ms@')} (rank 1 ="
             " fastest):", ""]
    for name in names[1:]:
        ranks = _ranks(_col(entries, name))
        moved = sorted(range(len(entries)), key=lambda i: -abs(ranks[i] - base[i]))[:top]
        lines.append(f"- {name.removeprefix('latency_ms@')}: " + "; ".join(
            f"{entries[i]['label']} {base[i]} → {ranks[i]}" for i in moved))
    return lines


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0] * len(values)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def markdown(record: dict, points: list[Point], note: str, argv: list[str]) -> str:
    """The report: runtimes measured or skipped, τ matrix, fronts, rank moves."""
    done = [p for p in points if p.key in record["points"]]
    entries = [record["points"][p.key] for p in done]
    names = sorted({n for e in entries for n in e["median"]},
                   key=lambda n: (parse(n).batch, RUNTIMES.index(parse(n).runtime)))
    names = [n for n in names if all(n in e["median"] for e in entries)]
    s = record["settings"]
    lines = header("Where runtimes disagree: latency on each runtime over the bench's points")
    lines += [f"{len(done)} of {len(points)} points of {s['bench']}; each setting the lowest"
              f" round median of {s['rounds']} rounds of {s['repeats']} runs interleaved over"
              f" {CHUNK} points, after {s['warmup']} warm-up, {s['threads']} thread(s)"
              " pinned.", ""]
    lines += [f"- {runtime}: {choice}" for runtime, choice in record.get("choices", {}).items()]
    lines += [f"- {runtime}: not measured: {why}"
              for runtime, why in record.get("skipped", {}).items()]
    if not entries:
        return "\n".join(lines) + "\n"
    lines += ["", "## Kendall τ between runtimes' latencies (and MACs, params)", "",
              *tau_matrix(names, entries), "",
              "## Median latency (ms) over the points", "",
              "| setting | fastest | median | slowest |", "|---|---|---|---|"]
    for name in names:
        col = sorted(_col(entries, name))
        lines.append(f"| {name.removeprefix('latency_ms@')} | {col[0]:.3f} |"
                     f" {col[len(col) // 2]:.3f} | {col[-1]:.3f} |")
    lines += ["", "## Pareto fronts: bench accuracy against each cost", "",
              *fronts(names, done, entries), "", *rank_shifts(names, entries), "", note, "",
              f"Command: `python -m benchmarks.latency_runtimes {' '.join(argv)}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing_arguments(p, list(DEFAULT_RUNTIMES), [1, 32], "results/latency/runtimes.json")
    p.add_argument("--compile", action="store_true", help="add torch_compile (inductor: tens"
                   " of seconds of compilation per point)")
    args = p.parse_args(argv)
    if args.compile and "torch_compile" not in args.runtimes:
        args.runtimes.append("torch_compile")
    config = timing_config(args)
    points, note = load_points(args.bench, MORE_SEEDS)
    points = pick(points, args.limit)
    record = open_record(args.out, settings_of(args, TIMING))
    measure_points(points, config, record, args.out)
    text = markdown(record, points, note, argv)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
