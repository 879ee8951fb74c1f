"""Racing after a replayed search, measured on the bench: the trials finished within a budget
become race candidates, and each verification run draws one of the bench's other seeds.

Used by benchmarks/search_strategies.py: every strategy is read "alone" (the point the search
returns) and "+ racing" (the race's leader after the front end's trials), against the truth
of every seed the bench has of each point (--extra folders' seeds pooled in by arch_key).
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import search_strategies as st
from nas.answer.data import candidates
from nas.answer.race import Candidate, Race, Standing
from nas.answer.settings import VerifySettings
from nas.answer.stats import Noise, epoch_noise
from nas.bench.table import Bench, load_bench

MODES = ("alone", "+ racing")
NOTHING = "nothing to verify"  # no trial finished its full budget: the front end's answer
TARGET_P, TARGET_TIER = 0.9, 5  # P(tier ∋ the bench's best); median tier size


@dataclass(frozen=True)
class Seeded:
    """One bench seed of one point: its validation curve and the seconds its training took."""

    curve: tuple[float, ...]
    cost_s: float


@dataclass(frozen=True)
class Truth:
    """Every point's bench seeds (pooled over folders), its all-seed mean and the best point."""

    seeds: dict[str, dict[int, Seeded]]  # arch_key -> bench seed -> what it measured
    means: dict[str, float]
    best: str
    cost_s: dict[str, float]  # one seed's full-budget training, as the --bench folder measured
    base_seed: int  # the --bench folder's first seed: replay_seed i is seed base_seed + i
    epochs: int
    compute_s: float  # the --bench folder's compute: what the budgets are fractions of
    note: str  # how many seeds each point has, from which folders

    def regret(self, key: str) -> float:
        return self.means[self.best] - self.means[key]


def pooled_truth(bench: Bench, extra: list[Path]) -> Truth:
    """The bench's seeds of each point with every --extra folder's seeds of the same arch_key
    (numbered from that folder's own first seed); a point absent there keeps the seeds it has."""
    base = int(bench.meta["budget"].get("seed", 0))
    seeds = {k: {base + i: Seeded(c, sum(p.epoch_seconds)) for i, c in enumerate(p.curves)}
             for k, p in bench.points.items()}
    notes = []
    for folder in extra:
        more = load_bench(folder)
        if more.epochs != bench.epochs:
            raise SystemExit(f"--extra {folder}: {more.epochs} epochs, the bench has"
                             f" {bench.epochs}")
        first = int(more.meta["budget"].get("seed", 0))
        matched = [k for k in more.points if k in seeds]
        for key in matched:
            p = more.points[key]
            for i, curve in enumerate(p.curves):
                seeds[key].setdefault(first + i, Seeded(curve, sum(p.epoch_seconds)))
        notes.append(f"{folder.name}: {len(matched)} of its {len(more.points)} points matched")
    means = {k: statistics.fmean(s.curve[-1] for s in v.values()) for k, v in seeds.items()}
    best = min(means, key=lambda k: (-means[k], bench.points[k].macs, k))
    counts = Counter(len(v) for v in seeds.values())
    note = (", ".join(f"{n} points with {s} seeds" for s, n in sorted(counts.items()))
            + (f" ({'; '.join(notes)})" if notes else ""))
    if len(counts) > 1:
        note += (". Unequal seed counts: each point's truth is the mean of the seeds it has,"
                 " and verification can draw only its seeds the front end did not replay (a"
                 " 2-seed point: one more), so a verified 2-seed point is scored against exactly"
                 " the seeds the race saw (optimistic)")
    return Truth(seeds, means, best, {k: sum(p.epoch_seconds) for k, p in bench.points.items()},
                 base, bench.epochs, bench.compute_s(), note)


def front_candidates(done: pd.DataFrame, truth: Truth
                     ) -> tuple[list[Candidate], dict[str, dict[int, list[float]]]]:
    """The finished trials as the product reads a front end (nas.answer.data.candidates), each
    trial one seed: the bench seed it replayed; and the curve of each (point, seed) they saw
    (two trials that replayed the same seed saw one measurement: the longer curve is kept)."""
    rows, curves = [], {}
    for row in done.to_dict("records"):
        if row.get("status") not in ("completed", "stopped"):
            continue
        curve = row["curve"] if isinstance(row["curve"], list) else json.loads(row["curve"])
        seed = truth.base_seed + int(row["replay_seed"])
        rows.append({"status": row["status"], "arch_key": row["arch_key"], "seed": seed,
                     "seed_curves": json.dumps([curve])})
        mine = curves.setdefault(row["arch_key"], {})
        mine[seed] = max(mine.get(seed, []), list(curve), key=len)
    found = candidates(pd.DataFrame(rows), truth.epochs) if rows else []
    # the bench's measured cost; the seed cap: the full-budget results it has and the bench
    # seeds the front end never replayed (a verification run repeats none of them)
    return [dataclasses.replace(c, cost_s=truth.cost_s[c.key], max_seeds=len(c.accs) + len(
        set(truth.seeds[c.key]) - set(curves[c.key]))) for c in found], curves


def race_front(done: pd.DataFrame, truth: Truth, settings: VerifySettings,
               rng: random.Random) -> Standing | None:
    """The race after this front end, run to its stop (None: no trial trained the full
    budget, nothing to verify); each round's epoch-k noise from every seed curve drawn so far,
    as nas.search.verify.race_of rebuilds it."""
    found, curves = front_candidates(done, truth)
    if not any(c.accs for c in found):
        return None
    draws = {c.key: sorted(set(truth.seeds[c.key]) - set(curves[c.key])) for c in found}
    for left in draws.values():
        rng.shuffle(left)
    stopped = {len(c.curve) for c in found if c.stopped}

    def early() -> dict[int, Noise]:
        return {k: epoch_noise({key: list(v.values()) for key, v in curves.items()}, k)
                for k in stopped}

    race = Race(settings, found, early())
    while requests := race.next_requests():
        for r in requests:
            seed = draws[r.key].pop()
            got = truth.seeds[r.key][seed]
            race.record(r.key, r.seed, got.curve[-1], got.cost_s)
            curves[r.key][seed] = list(got.curve)
        race = Race(settings, found, early(), race.runs)
    return race.standing()


def measure(result: dict[str, Any], truth: Truth, budgets: tuple[float, ...],
            settings: VerifySettings) -> list[dict[str, Any]]:
    """One replay read at each budget, alone and + racing (nothing returned yet: no row)."""
    table = pd.DataFrame(result["table"])
    out = []
    for fraction in budgets:
        done = st.finished_by(table, fraction * truth.compute_s)
        key = st.returned(done) if not done.empty else None
        if key is None:
            continue
        front = float(pd.to_numeric(done["simulated_s"], errors="coerce").fillna(0.0).sum())
        base = {"strategy": result["strategy"], "seed": result["seed"], "budget": fraction}
        out.append({**base, "mode": MODES[0], "regret_pp": 100 * truth.regret(key),
                    "best_in_tier": key == truth.best, "tier": 1,
                    "compute": front / truth.compute_s, "stop": None})
        # the same draws for the same replay and budget, whatever else this run measures
        rng = random.Random(f"{result['strategy']}/{result['seed']}/{fraction}")
        standing = race_front(done, truth, settings, rng)
        if standing is None:
            out.append({**out[-1], "mode": MODES[1], "stop": NOTHING})
            continue
        members = standing.tier.members
        out.append({**base, "mode": MODES[1], "regret_pp": 100 * truth.regret(standing.leader),
                    "best_in_tier": truth.best in members, "tier": len(members),
                    "compute": (front + standing.spent_core_s) / truth.compute_s,
                    "stop": standing.stop})
    return out


def summarize(results: list[dict[str, Any]], truth: Truth, budgets: tuple[float, ...],
              settings: VerifySettings) -> pd.DataFrame:
    """Per strategy, mode and budget: regret's median and IQR, P(tier ∋ best), median tier
    size and compute (a fraction of the bench's), and the races' stop reasons."""
    found = [row for r in results for row in measure(r, truth, budgets, settings)]
    runs = Counter(r["strategy"] for r in results)
    rows = []
    for name in runs:
        for mode in MODES:
            for fraction in budgets:
                mine = [r for r in found if (r["strategy"], r["mode"], r["budget"])
                        == (name, mode, fraction)]
                stops = Counter(r["stop"] for r in mine if r["stop"])
                rows.append({"strategy": name, "mode": mode, "budget": fraction,
                             "runs": runs[name], "returned": len(mine),
                             **st._spread("regret_pp", [r["regret_pp"] for r in mine]),
                             "p_best": _mean([r["best_in_tier"] for r in mine]),
                             "tier_median": _median([r["tier"] for r in mine]),
                             "compute_median": _median([r["compute"] for r in mine]),
                             "stops": ", ".join(f"{k} {v}" for k, v in sorted(stops.items()))})
    return pd.DataFrame(rows)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def truth_words(truth: Truth) -> str:
    """What the truth is, in a sentence for a report."""
    return (f"Truth: each point's mean final accuracy over every bench seed it has; {truth.note}."
            f" Best `{truth.best}` at {100 * truth.means[truth.best]:.2f} %.")


def markdown(frame: pd.DataFrame, truth: Truth, settings: VerifySettings,
             machine: str) -> list[str]:
    """The alone / + racing table, one row per strategy, mode and budget."""
    lines = ["## Alone and + racing", "",
             f"{truth_words(truth)} Racing:"
             f" confidence {settings.confidence}, at most {settings.max_seeds_per_point} seeds a"
             f" point (fewer where the bench has fewer), budget {settings.budget_core_s:,.0f}"
             f" core-s, noise {settings.noise}" + (
                 f" (prior sd {100 * settings.noise_prior_sd:.2f} pt, {settings.noise_prior_df:g}"
                 " df)" if settings.noise_prior_df else "")
             + "; each verification run is one of the point's bench seeds the front end did not"
             f" replay, charged that seed's measured seconds. {machine}", "",
             "| strategy | mode | budget | regret pt, median [IQR] | P(tier ∋ best) | tier"
             " (median) | compute % (median) | stops |", "|---|---|---|---|---|---|---|---|"]
    for r in frame.to_dict("records"):
        if r["returned"] == 0:
            lines.append(f"| {r['strategy']} | {r['mode']} | {100 * r['budget']:g} % | - | - |"
                         " - | - | |")
            continue
        runs = "" if r["returned"] == r["runs"] else f" ({r['returned']}/{r['runs']} runs)"
        lines.append(
            f"| {r['strategy']} | {r['mode']} | {100 * r['budget']:g} %"
            f" | {r['regret_pp_median']:.2f}"
            f" [{r['regret_pp_q1']:.2f}–{r['regret_pp_q3']:.2f}]{runs} | {r['p_best']:.2f}"
            f" | {r['tier_median']:g} | {100 * r['compute_median']:.1f} | {r['stops']} |")
    return lines


def verdicts(frame: pd.DataFrame, machine: str) -> list[str]:
    """The issue's targets per strategy and mode: median regret <= 0.5 pt at <= 30 % of the
    bench's compute (front end + racing); P(tier ∋ best) >= 0.9 with median tier <= 5."""
    lines = ["Targets, alone and + racing (compute: median front end + racing, as a share of"
             f" the bench's; {machine}):", ""]
    for (name, mode), mine in frame.groupby(["strategy", "mode"], sort=False):
        ok = mine[mine["returned"] > 0]
        regret = ok[(ok["regret_pp_median"] <= st.TARGET_REGRET)
                    & (ok["compute_median"] <= st.TARGET_BUDGET + 1e-9)]
        tiers = ok[(ok["p_best"] >= TARGET_P) & (ok["tier_median"] <= TARGET_TIER)]
        lines.append(
            f"- {name}, {mode}: median regret <= {st.TARGET_REGRET} pt at <="
            f" {100 * st.TARGET_BUDGET:g} % compute: " + _first(regret)
            + f"; P(tier ∋ best) >= {TARGET_P} with median tier <= {TARGET_TIER}: "
            + _first(tiers))
    return lines


def _first(rows: pd.DataFrame) -> str:
    """'**met** (first at budget B, compute C %)' for the earliest budget that meets it."""
    if rows.empty:
        return "**missed**"
    r = rows.sort_values("budget").iloc[0]
    return (f"**met** (first at the {100 * r['budget']:g} % budget, compute"
            f" {100 * r['compute_median']:.1f} %)")
