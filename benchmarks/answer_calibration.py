"""How far the answer's statistics can be trusted on a bench: racing's tier and regret, and the
factor intervals' coverage, with the bench's all-seed means as the truth.

    python -m benchmarks.answer_calibration --bench results/bench/spectrum_bench_gamma1 \
        --extra results/bench/spectrum_bench_gamma1_seeds23 --repeats 30

Each repeat simulates a grid front end (one seed a point) and a race ([verify] settings from
the flags) on the bench's points, then scores what came back against the truth: whether the
tier holds the bench's best point, the tier's size, the regret of the leader and of the
practical pick (the tier's fastest), and whether each factor interval (every level against
the first, by every method of nas.answer.effects) covers the all-seed effect. Seeds come
three ways:

- resampled: the bench's own seeds, drawn without replacement per point: one for the front
  end, the rest for verification. With 2 seeds a point, verification has 1 seed a point to
  give, and the truth is the mean of the very seeds the run saw: the numbers are optimistic;
- parametric: the truth plus Gaussian seed noise of the bench's pooled sd (equal for all);
- parametric-hetero: the same with the pooled seed sd of each level of the factor whose
  levels differ most in seed noise (Levene's test below): what pooling costs when the noise
  is not equal.

--extra adds another bench's seeds of the same points (matched by arch_key): the bench is
being extended to 4 seeds a point, and every output says how many seeds each point had.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from nas.answer.data import PointData, candidates, points_at
from nas.answer.effects import METHODS, contrast, find_factors, fit
from nas.answer.race import Candidate, Race
from nas.answer.settings import VerifySettings
from nas.answer.stats import UNKNOWN, homoscedasticity, pooled_noise
from nas.answer.tier import cheapest, leader_of
from nas.results.table import read_csv

MODES = ("resampled", "parametric", "parametric-hetero")


@dataclass(frozen=True)
class Bench:
    """The bench's points (every seed pooled), their one-seed training cost, its epochs."""

    name: str
    points: dict[str, PointData]
    cost_s: dict[str, float]
    epochs: int
    note: str  # how many seeds, from which folders


def load(folder: Path, extra: list[Path]) -> Bench:
    """A bench folder's final accuracies per seed, pooled with --extra folders' seeds of the
    same points (their seeds numbered from their own budget seed)."""
    epochs, seed, table = _read(folder)
    points = points_at(table, epochs, base_seed=seed)
    cost = {c.key: c.cost_s for c in candidates(table, epochs, base_seed=seed)}
    notes = []
    for other in extra:
        more_epochs, more_seed, more = _read(other)
        if more_epochs != epochs:
            raise SystemExit(f"--extra {other}: {more_epochs} epochs, the bench has {epochs}")
        added = points_at(more, epochs, base_seed=more_seed)
        matched = [k for k in added if k in points]
        for key in matched:
            accs = dict(zip(points[key].seeds, points[key].accs, strict=True))
            for s, a in zip(added[key].seeds, added[key].accs, strict=True):
                accs.setdefault(s, a)
            seeds = tuple(sorted(accs))
            points[key] = replace(points[key], accs=tuple(accs[s] for s in seeds), seeds=seeds)
        notes.append(f"{other.name}: {len(matched)} of its {len(added)} points matched")
    counts = Counter(len(p.accs) for p in points.values())
    seeds = ", ".join(f"{n} points with {s} seeds" for s, n in sorted(counts.items()))
    return Bench(folder.name, points, cost, epochs,
                 f"{len(points)} points after {epochs} epochs: {seeds}"
                 + (f" ({'; '.join(notes)})" if notes else ""))


def _read(folder: Path):
    """(epochs, first seed, trials table) of a bench folder."""
    try:
        budget = json.loads((folder / "meta.json").read_text())["budget"]
        return int(budget["epochs"]), int(budget.get("seed", 0)), read_csv(folder / "trials.csv")
    except (OSError, KeyError, ValueError) as err:
        raise SystemExit(f"{folder}: not a bench folder ({err})") from None


@dataclass(frozen=True)
class Truth:
    """The all-seed means, the best point, and every factor contrast against its first level."""

    means: dict[str, float]
    best: str
    effects: dict[tuple[int, str], float]


def truth_of(bench: Bench) -> Truth:
    """What the bench says with every seed it has."""
    means = {k: statistics.fmean(p.accs) for k, p in bench.points.items()}
    as_one = {k: replace(p, accs=(means[k],)) for k, p in bench.points.items()}
    factors = find_factors(as_one)
    f = fit(as_one, factors)
    effects = {}
    for i, factor in enumerate(factors):
        for level in factor.levels[1:]:
            found = contrast(f, i, level, factor.levels[0], "pooled", UNKNOWN)
            if found is not None:
                effects[(i, level)] = found.estimate
    return Truth(means, leader_of({k: [m] for k, m in means.items()}), effects)


def noise_by_factor(bench: Bench) -> list[tuple]:
    """Levene's test of equal seed noise across each factor's levels (stages that share a
    choice are one factor): (name, seed sd per level, F, p, level of each point), the most
    unequal first."""
    samples = {k: p.accs for k, p in bench.points.items()}
    found = []
    for factor in find_factors(bench.points):
        spread = homoscedasticity(samples, factor.of)
        if math.isfinite(spread.f):
            sds = {lv: spread.sds[lv] for lv in factor.levels if lv in spread.sds}
            found.append((factor.name, sds, spread.f, spread.p, factor.of))
    return sorted(found, key=lambda t: -t[2])


def simulate(bench: Bench, truth: Truth, mode: str, settings: VerifySettings,
             rng: random.Random, hetero: dict[str, float]) -> dict:
    """One repeat: draws, the front end, the race to its stop, and what it got right."""
    noise = pooled_noise({k: p.accs for k, p in bench.points.items()})
    draws: dict[str, list[float]] = {}
    for key, p in bench.points.items():
        if mode == "resampled":
            draws[key] = rng.sample(list(p.accs), len(p.accs))
        else:
            sd = hetero[key] if mode == "parametric-hetero" else noise.sd
            draws[key] = [truth.means[key] + rng.gauss(0.0, sd)
                          for _ in range(settings.max_seeds_per_point)]
    front = [Candidate(k, (d[0],), (0,), bench.cost_s[k],
                       max_seeds=len(d) if mode == "resampled" else None)
             for k, d in draws.items()]
    race = Race(settings, front)
    while requests := race.next_requests():
        for r in requests:  # fresh seed s is the point's s-th draw (the front end had draw 0)
            race.record(r.key, r.seed, draws[r.key][r.seed], bench.cost_s[r.key])
    standing = race.standing()
    members = standing.tier.members
    latency = {k: bench.points[k].latency_ms or math.inf for k in members}
    pick = cheapest(members, latency)
    top = truth.means[truth.best]
    front_leader = max(draws, key=lambda k: (draws[k][0], k))
    return {"contains_best": truth.best in members, "tier": len(members),
            "regret_leader": top - truth.means[standing.leader],
            "regret_pick": top - truth.means[pick],
            "regret_front": top - truth.means[front_leader],
            "runs": standing.runs, "core_s": standing.spent_core_s, "stop": standing.stop,
            "coverage": _coverage(bench, truth, race.samples(), settings.confidence)}


def _coverage(bench: Bench, truth: Truth, samples: dict[str, list[float]],
              confidence: float) -> dict[str, tuple[int, int, float]]:
    """Per method: (intervals covering the truth, intervals, sum of half-widths) over every
    factor level against its first level, from the run's own seeds."""
    seen = {k: replace(bench.points[k], accs=tuple(v)) for k, v in samples.items()}
    factors = find_factors(seen)
    f = fit(seen, factors)
    noise = pooled_noise(samples)
    found = {}
    for method in METHODS:
        hits = total = 0
        width = 0.0
        for (i, level), true in truth.effects.items():
            got = contrast(f, i, level, factors[i].levels[0], method, noise, confidence)
            if got is None:
                continue
            hits += got.low <= true <= got.high
            total += 1
            width += got.half_width
        found[method] = (hits, total, width)
    return found


def summary(mode: str, runs: list[dict]) -> tuple[str, list[str]]:
    """One racing row and one effects row per method, as Markdown."""
    n = len(runs)
    stops = Counter(r["stop"] for r in runs)
    tiers = [r["tier"] for r in runs]
    row = (f"| {mode} | {n} | {sum(r['contains_best'] for r in runs) / n:.2f}"
           f" | {statistics.fmean(tiers):.1f} ({min(tiers)}–{max(tiers)})"
           f" | {_pt(runs, 'regret_leader')} | {_pt(runs, 'regret_pick')}"
           f" | {_pt(runs, 'regret_front')} | {statistics.fmean(r['runs'] for r in runs):.1f}"
           f" | {statistics.fmean(r['core_s'] for r in runs) / 3600:.1f}"
           f" | {', '.join(f'{k} {v}' for k, v in sorted(stops.items()))} |")
    rows = []
    for method in METHODS:
        hits = sum(r["coverage"][method][0] for r in runs)
        total = sum(r["coverage"][method][1] for r in runs)
        width = sum(r["coverage"][method][2] for r in runs)
        if total:
            rows.append(f"| {mode} | {method} | {hits / total:.3f} | {total}"
                        f" | {100 * width / total:.2f} |")
        else:
            rows.append(f"| {mode} | {method} | – | 0 | – |")
    return row, rows


def _pt(runs: list[dict], key: str) -> str:
    """Mean and 90th percentile of a regret, in points."""
    values = sorted(100 * r[key] for r in runs)
    p90 = values[min(len(values) - 1, math.ceil(0.9 * len(values)) - 1)]
    return f"{statistics.fmean(values):.2f} / {p90:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=Path("results/bench/spectrum_bench_gamma1"))
    p.add_argument("--extra", type=Path, action="append", default=[],
                   help="another bench folder with more seeds of the same points (repeatable)")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--max-seeds", type=int, default=4, help="[verify] max_seeds_per_point")
    p.add_argument("--budget-runs", type=float, default=40.0, help="[verify] budget_core_s as"
                   " this many trainings of the median point")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    bench = load(args.bench, args.extra)
    if min(len(v.accs) for v in bench.points.values()) < 2:
        raise SystemExit(f"{args.bench}: every point needs at least 2 seeds (the truth is"
                         " their mean)")
    budget = args.budget_runs * statistics.median(bench.cost_s.values())
    settings = VerifySettings(confidence=args.confidence, max_seeds_per_point=args.max_seeds,
                              budget_core_s=budget).check()
    truth = truth_of(bench)
    samples = {k: v.accs for k, v in bench.points.items()}
    noise = pooled_noise(samples)
    unequal = noise_by_factor(bench)
    lines = [f"# Answer calibration on {bench.name}", "",
             f"{bench.note}. The truth: each point's mean over all its seeds; best"
             f" `{truth.best}` at {100 * truth.means[truth.best]:.2f} %.",
             f"Pooled seed sd {100 * noise.sd:.2f} pt ({noise.df:g} df). [verify]: confidence"
             f" {settings.confidence}, at most {settings.max_seeds_per_point} seeds a point,"
             f" budget {budget:,.0f} core-s ({args.budget_runs:g} median trainings);"
             f" {args.repeats} repeats a mode, seed {args.seed}.", "",
             "## Is the seed noise equal across a factor's levels? (Levene, one sd per point)",
             "", "| factor | F | p | seed sd per level (pt) |", "|---|---|---|---|"]
    for name, sds, f, p_value, _ in unequal:
        levels = ", ".join(f"{lv} {100 * sd:.2f}" for lv, sd in sds.items())
        lines.append(f"| {name} | {f:.2f} | {p_value:.3f} | {levels} |")
    hetero = {}
    if unequal:
        name, sds, f, p_value, of = unequal[0]
        hetero = {k: sds[of[k]] for k in bench.points}
        lines += ["", f"parametric-hetero draws each point's seeds with the seed sd of its {name}"
                  f" level (F {f:.2f}, p {p_value:.3f}).", ""]
    elif "parametric-hetero" in args.modes:
        raise SystemExit("parametric-hetero: no factor to take unequal seed noise from")
    racing = ["## Racing", "", "| mode | repeats | P(tier ∋ best) | tier size (min–max)"
              " | regret of the leader, pt (mean / p90) | regret of the pick | regret of the"
              " front end's leader | verification runs | core-h | stops |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    effects = ["## Factor intervals: coverage of the all-seed effects", "",
               f"Every level against the first, {round(100 * settings.confidence)} % intervals"
               " from the run's seeds (front end and verification).", "",
               "| mode | method | coverage | intervals | mean half-width (pt) |",
               "|---|---|---|---|---|"]
    for index, mode in enumerate(args.modes):
        rng = random.Random(args.seed * 1000 + index)
        runs = [simulate(bench, truth, mode, settings, rng, hetero)
                for _ in range(args.repeats)]
        row, rows = summary(mode, runs)
        racing.append(row)
        effects += rows
        print(f"{mode}: done", file=sys.stderr, flush=True)
    lines += [*racing, "", *effects]
    two = sum(len(v.accs) == 2 for v in bench.points.values())
    if two:
        lines += ["", f"Resampled with 2 seeds at {two} of {len(bench.points)} points: the front"
                  " end gets one, verification at most one more, so those points cannot reach"
                  " a third seed and the truth of a verified one is the mean of exactly the"
                  " seeds the run saw (optimistic); the parametric modes are not limited so."
                  " The bench is being extended to 4 seeds a point (--extra"
                  " results/bench/spectrum_bench_gamma1_seeds23 holds seeds 2-3 of some)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
