"""The supernet's ranking as a front end, alone and + racing, measured on the bench: its top k
points trained stand-alone once (one of the bench's seeds each), the best of them returned
(alone) or raced (nas.answer.race) on the bench's other seeds of each point.

    python -m benchmarks.supernet_racing --bench results/bench/spectrum_bench_gamma1 \\
        --extra results/bench/spectrum_bench_gamma1_seeds23 --supernet results/supernet/sn3u3

The rankings are the committed `run_search.py supernet --top-k 0` folders' (one supernet each:
the repeats vary the bench seeds drawn, not the supernet's own training). Compute is charged in
core-seconds: the supernet's training and scoring, each stand-alone seed's measured seconds and
the race's; budgets and targets are shares of the --bench folder's compute, as in
benchmarks/search_strategies.py. Writes `<out>.md` and `<out>.csv`.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import search_strategies as st
from benchmarks import strategy_racing as sr
from benchmarks.common import machine
from benchmarks.rank_fidelity import supernet_run
from nas.answer.race import Candidate, Race, Standing
from nas.answer.settings import VerifySettings
from nas.bench.table import load_bench
from nas.results.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]
TARGET_BUDGET = 0.15  # the target for the supernet front end: <= 0.5 pt at <= 15 %


def ranking(run: Path, truth: sr.Truth) -> tuple[list[str], float]:
    """The bench's points best first by the supernet's accuracy score, and its core-seconds."""
    _, table, _, used = supernet_run(run, list(truth.means), "supernet_racing")
    column = "val_acc" if "val_acc" in table.columns else "score"
    scores = {k: float(table.at[k, column]) for k in truth.means}
    return sorted(scores, key=lambda k: (-scores[k], k)), used


def one_repeat(order: list[str], k: int, supernet_s: float, truth: sr.Truth,
               settings: VerifySettings, rng: random.Random) -> list[dict[str, Any]]:
    """The top k trained once each on a drawn bench seed: the best of them (alone) and the race
    after them, each with its regret, tier and compute (a share of the bench's)."""
    found, draws, front_s = [], {}, supernet_s
    for key in order[:k]:
        seeds = list(truth.seeds[key])
        rng.shuffle(seeds)
        first = truth.seeds[key][seeds[0]]
        front_s += first.cost_s
        found.append(Candidate(key, (first.curve[-1],), (seeds[0],), first.cost_s,
                               max_seeds=len(seeds)))
        draws[key] = seeds[1:]
    alone = max(found, key=lambda c: (c.accs[0], c.key)).key
    out = [{"mode": sr.MODES[0], "regret_pp": 100 * truth.regret(alone),
            "best_in_tier": alone == truth.best, "tier": 1, "compute": front_s / truth.compute_s,
            "stop": None}]
    standing = race(found, draws, truth, settings)
    out.append({"mode": sr.MODES[1], "regret_pp": 100 * truth.regret(standing.leader),
                "best_in_tier": truth.best in standing.tier.members,
                "tier": len(standing.tier.members),
                "compute": (front_s + standing.spent_core_s) / truth.compute_s,
                "stop": standing.stop})
    return out


def race(found: list[Candidate], draws: dict[str, list[int]], truth: sr.Truth,
         settings: VerifySettings) -> Standing:
    """The race over the stand-alone results, each verification run the point's next drawn
    bench seed, charged that seed's measured seconds."""
    r = Race(settings, found)
    while requests := r.next_requests():
        for q in requests:
            got = truth.seeds[q.key][draws[q.key].pop(0)]
            r.record(q.key, q.seed, got.curve[-1], got.cost_s)
    return r.standing()


def measure(runs: list[Path], ks: list[int], repeats: int, truth: sr.Truth,
            settings: VerifySettings) -> pd.DataFrame:
    """Per supernet, k and mode: regret's median and IQR, P(tier ∋ best), median tier size
    and compute, the races' stop reasons."""
    rows = []
    for run in runs:
        order, supernet_s = ranking(run, truth)
        for k in ks:
            found = [dict(r, seed=i) for i in range(repeats) for r in one_repeat(
                order, k, supernet_s, truth, settings, random.Random(f"{run.name}/{k}/{i}"))]
            for mode in sr.MODES:
                mine = [r for r in found if r["mode"] == mode]
                stops = Counter(r["stop"] for r in mine if r["stop"])
                rows.append({"supernet": run.name, "k": k, "mode": mode, "runs": len(mine),
                             **st._spread("regret_pp", [r["regret_pp"] for r in mine]),
                             "p_best": statistics.fmean(r["best_in_tier"] for r in mine),
                             "tier_median": statistics.median(r["tier"] for r in mine),
                             "compute_median": statistics.median(r["compute"] for r in mine),
                             "supernet_share": supernet_s / truth.compute_s,
                             "stops": ", ".join(f"{s} {n}" for s, n in sorted(stops.items()))})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, truth: sr.Truth, settings: VerifySettings,
             repeats: int) -> list[str]:
    """The table, then the issue's targets per supernet and mode."""
    lines = ["# The supernet's ranking as a front end, alone and + racing", "",
             f"{sr.truth_words(truth)} Each row: the"
             f" supernet's top k trained once each (a bench seed drawn per repeat, {repeats}"
             f" repeats), alone (the best of them) and + racing (confidence"
             f" {settings.confidence}, at most {settings.max_seeds_per_point} seeds a point,"
             f" budget {settings.budget_core_s:,.0f} core-s). Compute: supernet + stand-alone"
             f" + race, a share of the bench's {truth.compute_s:,.0f} s. {machine()}", "",
             "| supernet | k | mode | regret pt, median [IQR] | P(tier ∋ best) | tier (median)"
             " | compute % (median; supernet) | stops |", "|---|---|---|---|---|---|---|---|"]
    for r in frame.to_dict("records"):
        lines.append(f"| {r['supernet']} | {r['k']} | {r['mode']} | {r['regret_pp_median']:.2f}"
                     f" [{r['regret_pp_q1']:.2f}–{r['regret_pp_q3']:.2f}] | {r['p_best']:.2f}"
                     f" | {r['tier_median']:g} | {100 * r['compute_median']:.1f}"
                     f" ({100 * r['supernet_share']:.1f}) | {r['stops']} |")
    lines += ["", f"Targets: median regret <= {st.TARGET_REGRET} pt at <="
              f" {100 * TARGET_BUDGET:g} % of the bench's compute; P(tier ∋ best) >="
              f" {sr.TARGET_P} with median tier <= {sr.TARGET_TIER}.", ""]
    for (name, mode), mine in frame.groupby(["supernet", "mode"], sort=False):
        regret = mine[(mine["regret_pp_median"] <= st.TARGET_REGRET)
                      & (mine["compute_median"] <= TARGET_BUDGET + 1e-9)]
        tier = mine[(mine["p_best"] >= sr.TARGET_P) & (mine["tier_median"] <= sr.TARGET_TIER)]
        lines.append(f"- {name}, {mode}: regret {_first(regret)}; tier {_first(tier)}")
    return lines


def _first(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "**missed**"
    r = rows.sort_values("compute_median").iloc[0]
    return f"**met** (k = {r['k']}, compute {100 * r['compute_median']:.1f} %)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=ROOT / "results/bench/spectrum_bench_gamma1")
    p.add_argument("--extra", type=Path, action="append", default=[],
                   help="another bench folder with more seeds of the same points (repeatable)")
    p.add_argument("--supernet", type=Path, nargs="+", required=True,
                   help="`run_search.py supernet --top-k 0` folders whose rankings to read")
    p.add_argument("--k", type=int, nargs="+", default=[3, 5, 10],
                   help="top-k points trained stand-alone")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--max-seeds", type=int, default=4)
    p.add_argument("--race-budget-s", type=float,
                   help="[verify] budget_core_s (default: 10 %% of the bench's compute)")
    p.add_argument("--noise-prior-sd", type=float, default=0.0)
    p.add_argument("--noise-prior-df", type=float, default=0.0)
    p.add_argument("--out", type=Path, default=ROOT / "results/bench/supernet_racing")
    args = p.parse_args(argv)
    if args.repeats < 1 or min(args.k) < 1:
        p.error("--repeats and every --k must be >= 1")
    bench = load_bench(args.bench)
    settings = st.verify_settings(args, bench)
    truth = sr.pooled_truth(bench, args.extra)
    frame = measure(args.supernet, args.k, args.repeats, truth, settings)
    text = "\n".join(markdown(frame, truth, settings, args.repeats)) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    atomic_write(args.out.with_suffix(".csv"), lambda tmp: frame.to_csv(tmp, index=False))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
