"""How well one seed of the bench ranks another, and how well a mean of two seeds ranks a mean of
two others: the noise floor of any ranking of the bench's points, once it has four seeds.

    python -m benchmarks.seed_agreement --bench results/bench/spectrum_bench_gamma1 \\
        --extra results/bench/spectrum_bench_gamma1_seeds23

Over the points that have every seed: Kendall's tau of each pair of seeds' final accuracies and
of each split of four seeds into two disjoint pairs (their means), with bootstrap 95 % intervals
over points; the all-seed best point and where each single seed ranks it; the pooled seed sd.
Writes `<out>.md`.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

from benchmarks import strategy_racing as sr
from nas.answer.stats import pooled_noise
from nas.bench.rank import bootstrap_ci, kendall_tau
from nas.bench.table import load_bench
from nas.results.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def finals(truth: sr.Truth) -> tuple[list[str], list[int], dict[str, dict[int, float]]]:
    """The points with every seed any point has, those seeds, and each one's final accuracy."""
    seeds = sorted({s for v in truth.seeds.values() for s in v})
    keys = sorted(k for k, v in truth.seeds.items() if set(v) == set(seeds))
    return keys, seeds, {k: {s: truth.seeds[k][s].curve[-1] for s in seeds} for k in keys}


def tau_row(label: str, x: list[float], y: list[float]) -> tuple[str, float]:
    """One table row (tau and its bootstrap interval), and the tau."""
    tau = kendall_tau(x, y)
    low, high = bootstrap_ci(x, y, kendall_tau)
    return f"| {label} | {tau:.3f} | [{low:.2f}, {high:.2f}] |", tau


def halves(seeds: list[int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of the seeds into two disjoint halves (each split once)."""
    first = seeds[0]
    return [(a, tuple(s for s in seeds if s not in a))
            for a in itertools.combinations(seeds, len(seeds) // 2) if first in a]


def rank_of(key: str, scores: dict[str, float]) -> int:
    """1-based rank of a point under a score, best first."""
    return 1 + sum(v > scores[key] for v in scores.values())


def report(truth: sr.Truth) -> str:
    """The markdown: tau per seed pair, per pair of two-seed means, the best point's ranks."""
    keys, seeds, acc = finals(truth)
    if len(seeds) < 2 or len(keys) < 3:
        raise SystemExit(f"{len(keys)} points with all of seeds {seeds}: need >= 3 points and"
                         " >= 2 seeds")
    lines = [f"{len(keys)} points with all {len(seeds)} seeds ({', '.join(map(str, seeds))});"
             f" {truth.note}.", "", "| seeds compared | Kendall tau | 95 % CI (bootstrap) |",
             "|---|---|---|"]
    singles = []
    for a, b in itertools.combinations(seeds, 2):
        row, tau = tau_row(f"seed {a} vs seed {b}", [acc[k][a] for k in keys],
                           [acc[k][b] for k in keys])
        lines.append(row)
        singles.append(tau)
    pairs = []
    if len(seeds) >= 4:
        for a, b in halves(seeds):
            row, tau = tau_row(f"mean of {a} vs mean of {b}",
                               [statistics.fmean(acc[k][s] for s in a) for k in keys],
                               [statistics.fmean(acc[k][s] for s in b) for k in keys])
            lines.append(row)
            pairs.append(tau)
    sd = pooled_noise({k: list(acc[k].values()) for k in keys}).sd
    mean = {k: statistics.fmean(acc[k].values()) for k in keys}
    top = sorted(keys, key=lambda k: -mean[k])
    best = top[0]
    lines += ["", f"Single seeds: tau {min(singles):.2f}–{max(singles):.2f} (mean"
              f" {statistics.fmean(singles):.2f})"
              + (f"; two-seed means: {min(pairs):.2f}–{max(pairs):.2f}" if pairs else "")
              + f". Pooled seed sd {100 * sd:.2f} pt (the root of the seeds' variance about"
              " each point's mean, pooled over the points).",
              f"All-seed best: `{best}` {100 * mean[best]:.2f} %; its rank under each single"
              " seed: " + ", ".join(f"seed {s}: {rank_of(best, {k: acc[k][s] for k in keys})}"
                                    for s in seeds) + ".",
              "All-seed top 5: " + ", ".join(f"`{k}` {100 * mean[k]:.2f}" for k in top[:5])
              + f"; points within one seed sd of the best: "
              f"{sum(mean[best] - mean[k] <= sd for k in keys)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, default=ROOT / "results/bench/spectrum_bench_gamma1")
    p.add_argument("--extra", type=Path, action="append", default=[],
                   help="another bench folder with more seeds of the same points (repeatable)")
    p.add_argument("--out", type=Path, default=ROOT / "results/bench/seed_agreement")
    args = p.parse_args(argv)
    truth = sr.pooled_truth(load_bench(args.bench), args.extra)
    text = f"# Seed-to-seed agreement on {args.bench.name}\n\n{report(truth)}\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
