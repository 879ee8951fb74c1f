"""The transfer study's report: rank agreement with bootstrap intervals, whether the bench's
top points stay on top, paired effects at every scale, cost; Markdown and JSON."""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.transfer import (
    FACTORS,
    PHASES,
    RUNS,
    SELECTION,
    SESSIONS,
    Entry,
    TransferError,
    bench_entries,
    matched_pairs,
)
from nas.bench.rank import bootstrap_ci, kendall_tau
from nas.bench.table import Bench
from nas.results.atomic import atomic_write, write_json
from nas.results.names import SUPERNET_CSV
from nas.results.table import read_csv

LEVEL = 0.90  # the bootstrap interval's coverage
TOP = 4  # "the bench's top 4"
NOT_RECORDED = "a machine not recorded (runs made before records named it)"
DEFAULT_SPACE = Path("search_spaces/cifar_spectrum.toml")
TRUTHS = {"cifar": "full CIFAR-10 test acc", "imagenette": "Imagenette val acc"}
PREDICTORS = {"bench": "the bench", "supernet": "the supernet's score", "params": "#params",
              "macs": "MACs", "cifar": "full CIFAR-10"}


def tau_ci(x: Sequence[float], y: Sequence[float], samples: int = 2000, seed: int = 0,
           level: float = LEVEL) -> tuple[float, float, float]:
    """Kendall's tau-b of x against y and its percentile bootstrap interval over resampled
    points (pairs kept together; a resample with no untied pair is skipped); NaNs under two
    points."""
    if len(x) < 2:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_ci(x, y, kendall_tau, samples=samples, seed=seed, level=level)
    return kendall_tau(x, y), low, high


def ranks(values: dict[str, float]) -> dict[str, int]:
    """1 = the highest value (ties: by key)."""
    order = sorted(values, key=lambda k: (-values[k], k))
    return {k: i for i, k in enumerate(order, start=1)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Test accuracy over a point's seeds: each, mean, sample sd (diverged runs counted apart)."""
    if not runs:
        return None
    accs = [float(r["test_acc"]) for r in sorted(runs, key=lambda r: r["seed"])
            if r["status"] != "diverged" and r["test_acc"] is not None
            and math.isfinite(float(r["test_acc"]))]
    return {"accs": accs, "mean": statistics.fmean(accs) if accs else None,
            "sd": statistics.stdev(accs) if len(accs) > 1 else None,
            "diverged": len(runs) - len(accs), "params": runs[0]["params"],
            "macs": runs[0]["macs"]}


def agreement(points: list[dict[str, Any]], predictor: str, truth: str, samples: int
              ) -> dict[str, Any]:
    """τ [interval] of a predictor's scores against a truth, over the points having both."""
    both = [p for p in points if p.get(predictor) is not None and p.get(truth) is not None]
    tau, low, high = tau_ci([p[predictor] for p in both], [p[truth] for p in both], samples)
    return {"predictor": predictor, "truth": truth, "n": len(both), "tau": tau, "low": low,
            "high": high}


def top_check(points: list[dict[str, Any]], predictor: str, truth: str, k: int = TOP
              ) -> dict[str, Any]:
    """The predictor's top k among the points having both, each with its truth rank and
    whether that is in the truth's top half."""
    both = [p for p in points if p.get(predictor) is not None and p.get(truth) is not None]
    half = len(both) // 2
    truth_rank = ranks({p["key"]: p[truth] for p in both})
    order = ranks({p["key"]: p[predictor] for p in both})
    top = sorted((p for p in both if order[p["key"]] <= k), key=lambda p: order[p["key"]])
    return {"predictor": predictor, "truth": truth, "n": len(both), "half": half,
            "top": [{"label": p["label"], "truth_rank": truth_rank[p["key"]],
                     "in_top_half": truth_rank[p["key"]] <= half} for p in top]}


def top_vs_bottom(points: list[dict[str, Any]], truth: str) -> dict[str, Any]:
    """Of every (bench top, bench bottom) pair of points having the truth, how many the truth
    orders as the bench does."""
    top = [p for p in points if p["role"] == "top" and p.get(truth) is not None]
    bottom = [p for p in points if p["role"] == "bottom" and p.get(truth) is not None]
    kept = sum(t[truth] > b[truth] for t in top for b in bottom)
    return {"truth": truth, "pairs": len(top) * len(bottom), "kept": kept}


def effects(points: list[dict[str, Any]], entries: dict[str, Entry]) -> list[dict[str, Any]]:
    """Per factor and contrast (first level − another): each matched pair's difference at the
    bench, full-data and Imagenette scale, and their mean ± standard error."""
    archs = {k: e.genotype for k, e in entries.items()}
    by_key = {p["key"]: p for p in points}
    found = []
    for factor, levels in FACTORS.items():
        pairs = matched_pairs(list(by_key), archs, factor)
        for level in levels[1:]:
            mine = [(a, b) for a, b in pairs if getattr(archs[a].stages[0], factor) == level]
            rows = [{"better": by_key[b]["label"], "other": by_key[a]["label"],
                     **{scale: _diff(by_key[b].get(scale), by_key[a].get(scale))
                        for scale in ("bench", *PHASES)}} for a, b in mine]
            found.append({"factor": factor, "contrast": f"{levels[0]} − {level}", "pairs": rows,
                          "summary": {scale: _mean_se([r[scale] for r in rows
                                                       if r[scale] is not None])
                                      for scale in ("bench", *PHASES)}})
    return found


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _mean_se(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "se": None}
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return {"n": len(values), "mean": statistics.fmean(values), "se": se}


def cost_of(runs: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """A phase's compute: core-seconds (each run's process CPU time), training wall seconds
    summed over runs, the wall time of the calls that trained them, and the runs per machine
    (the CPU changes between sittings; runs from before records named theirs count apart)."""
    machines: dict[str, int] = {}
    for r in runs:
        name = r.get("machine") or NOT_RECORDED
        machines[name] = machines.get(name, 0) + 1
    return {"runs": len(runs), "core_s": sum(r["cpu_s"] for r in runs),
            "run_wall_s": sum(r["wall_s"] for r in runs),
            "session_wall_s": sum(s["wall_s"] for s in sessions), "sessions": len(sessions),
            "machines": machines,
            "settings": runs[0]["settings"] if runs else None,
            "threads": sorted({r["threads"] for r in runs}),
            "train_images": runs[0]["train_images"] if runs else None,
            "test_images": runs[0]["test_images"] if runs else None}


def build(entries: list[Entry], selection: dict[str, Any],
          runs: dict[str, list[dict[str, Any]]], sessions: dict[str, list[dict[str, Any]]],
          supernet: dict[str, float] | None, samples: int) -> dict[str, Any]:
    """Everything the report says, as plain data (transfer.json)."""
    by_key = {e.key: e for e in entries}
    points = []
    for c in selection["chosen"]:
        e = by_key[c["key"]]
        point = {"key": e.key, "label": e.label, "role": c["role"], "bench_rank": e.rank,
                 "bench": e.mean, "bench_seeds": list(e.finals), "params": e.params,
                 "macs": e.macs, "supernet": (supernet or {}).get(e.key)}
        for phase in PHASES:
            mine = summary([r for r in runs.get(phase, []) if r["key"] == e.key])
            point[f"{phase}_runs"] = mine
            point[phase] = mine["mean"] if mine else None
        points.append(point)
    for measure in ("bench", "supernet", "params", *PHASES):
        order = ranks({p["key"]: p[measure] for p in points if p[measure] is not None})
        for p in points:
            p[f"{measure}_order"] = order.get(p["key"])
    predictors = ("bench", "supernet", "params", "macs")
    return {
        "bench": selection["bench"], "accuracy": selection["accuracy"], "selection": selection,
        "bootstrap": {"samples": samples, "level": LEVEL, "seed": 0},
        "points": points,
        "agreement": [agreement(points, pr, t, samples) for t in PHASES for pr in predictors]
        + [agreement(points, "cifar", "imagenette", samples)],
        "top": [top_check(points, pr, t) for t in PHASES for pr in ("bench", "supernet",
                                                                     "params")],
        "top_vs_bottom": [top_vs_bottom(points, t) for t in PHASES],
        "effects": effects(points, by_key),
        "cost": {phase: cost_of(runs.get(phase, []), sessions.get(phase, []))
                 for phase in PHASES},
    }


# --- Markdown -------------------------------------------------------------------------------

def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _acc(run: dict[str, Any] | None) -> str:
    if not run or run["mean"] is None:
        return "–" if not run else "diverged"
    sd = "" if run["sd"] is None else f" ± {100 * run['sd']:.1f}"
    return f"{100 * run['mean']:.1f}{sd}"


def _tau(a: dict[str, Any]) -> str:
    if a["n"] < 2 or math.isnan(a["tau"]):
        return f"– (n = {a['n']})"
    return f"{a['tau']:+.2f} [{a['low']:+.2f}, {a['high']:+.2f}] (n = {a['n']})"


def point_table(points: list[dict[str, Any]]) -> list[str]:
    """One row per point: choices, role, bench, full-data and Imagenette accuracy, ranks."""
    lines = ["| point | role | bench % (seeds) | rank bench (of all) / here | full CIFAR-10 %"
             " | rank | Imagenette % | rank | supernet | rank | params | MACs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        seeds = ", ".join(f"{100 * s:.1f}" for s in p["bench_seeds"])
        sn = "–" if p["supernet"] is None else f"{p['supernet']:.3f}"
        lines.append(
            f"| {p['label']} | {p['role']} | {_pct(p['bench'])} ({seeds}) |"
            f" {p['bench_rank']} / {p['bench_order']} | {_acc(p['cifar_runs'])} |"
            f" {p['cifar_order'] or '–'} | {_acc(p['imagenette_runs'])} |"
            f" {p['imagenette_order'] or '–'} | {sn} | {p['supernet_order'] or '–'} |"
            f" {p['params']:,} | {p['macs'] / 1e6:.1f}M |")
    return lines


def agreement_table(record: dict[str, Any]) -> list[str]:
    level = round(100 * record["bootstrap"]["level"])
    lines = [f"| predictor | truth | Kendall τ [{level} % CI] |", "|---|---|---|"]
    for a in record["agreement"]:
        lines.append(f"| {PREDICTORS[a['predictor']]} | {TRUTHS[a['truth']]} | {_tau(a)} |")
    return lines


def top_lines(record: dict[str, Any]) -> list[str]:
    lines = []
    for t in record["top"]:
        if t["n"] < 2:
            lines.append(f"- {PREDICTORS[t['predictor']]} vs {TRUTHS[t['truth']]}: no results"
                         " yet")
            continue
        hits = sum(x["in_top_half"] for x in t["top"])
        where = ", ".join(f"{x['label']} → {x['truth_rank']}" for x in t["top"])
        lines.append(f"- {PREDICTORS[t['predictor']]}: top {len(t['top'])} vs"
                     f" {TRUTHS[t['truth']]}:"
                     f" **{hits} of {len(t['top'])}** in its top half (ranks 1–{t['half']} of"
                     f" {t['n']}); their ranks there: {where}")
    for t in record["top_vs_bottom"]:
        if t["pairs"]:
            lines.append(f"- bench top vs bench bottom on {TRUTHS[t['truth']]}: {t['kept']} of"
                         f" {t['pairs']} pairs keep the bench's order")
    return lines


def budget_note(record: dict[str, Any], default: dict[str, Any]) -> str:
    """The target's sentence: what the bench's top 4 at full data mean for the default search."""
    check = next(t for t in record["top"] if t["predictor"] == "bench" and t["truth"] == "cifar")
    if check["n"] < 2 * TOP:
        return (f"Pending: {check['n']} point(s) have a full-data result; the top-{TOP} check"
                f" needs at least {2 * TOP}.")
    hits = sum(x["in_top_half"] for x in check["top"])
    best = min((p for p in record["points"] if p["cifar"] is not None),
               key=lambda p: p["cifar_order"])
    search = (f"The default search ({default['file']}: {default['trials']} trials of ≤"
              f" {default['epochs']} epochs on the subset's {default['images']:,} training"
              " images, TPE + ASHA) ranks with no more fidelity than this bench"
              f" ({default['bench']})")
    if hits == len(check["top"]):
        return (f"All of the bench's top {TOP} are in the full-data top half. {search}, so its"
                " budget finds the region the full data also rates well; the full-data best"
                f" of these points ({best['label']}) is bench rank {best['bench_rank']}.")
    by_label = {p["label"]: p for p in record["points"]}
    tops = [by_label[x["label"]] for x in check["top"]]
    low = min(tops, key=lambda p: p["cifar"])
    half = check["half"]
    cut = sorted((p["cifar"] for p in record["points"] if p["cifar"] is not None),
                 reverse=True)[half - 1]
    tested = record["cost"]["cifar"]["test_images"]
    sampling = math.sqrt(best["cifar"] * (1 - best["cifar"]) / tested)
    return (f"**{hits} of the bench's top {TOP} are in the full-data top half**: the lowest,"
            f" {low['label']}, scores {_pct(low['cifar'])} %, {100 * (cut - low['cifar']):.1f}"
            " pt under the half's last place, one seed each, where sampling"
            f" {tested:,} test images alone spreads a run by ±{100 * sampling:.1f} pt (1 sd)."
            f" The bench's top {TOP} score {_pct(low['cifar'])}–"
            f"{_pct(max(p['cifar'] for p in tops))} % at full data against"
            f" {_pct(best['cifar'])} % for the best of these points ({best['label']}, bench"
            f" rank {best['bench_rank']}). {search}: its winner is a draw from the bench's top"
            " region, whose order the full data does not keep, so more trials at the same"
            " budget find the bench's winner more surely, not the full data's. To choose at"
            " full scale, retrain the answer's tied points on the complete data with seeds"
            " (`run_search.py retrain RUN --data-dir FULL --train-size all --top K --seeds 2`)"
            " and choose there.")


def effect_table(record: dict[str, Any]) -> list[str]:
    lines = ["| factor | contrast | pairs | bench (pp) | full CIFAR-10 (pp) | Imagenette (pp) |",
             "|---|---|---|---|---|---|"]
    for eff in record["effects"]:
        cells = []
        for scale in ("bench", *PHASES):
            s = eff["summary"][scale]
            if not s["n"]:
                cells.append("–")
                continue
            se = "" if s["se"] is None else f" ± {100 * s['se']:.1f}"
            cells.append(f"{100 * s['mean']:+.1f}{se} (n = {s['n']})")
        pairs = "; ".join(f"{r['better']} vs {r['other']}" for r in eff["pairs"]) or "none"
        lines.append(f"| {eff['factor']} | {eff['contrast']} | {pairs} | " + " | ".join(cells)
                     + " |")
    return lines


def cost_lines(record: dict[str, Any]) -> list[str]:
    lines = []
    for phase, c in record["cost"].items():
        if not c["runs"]:
            lines.append(f"- {phase}: nothing trained yet")
            continue
        s = c["settings"]
        lines.append(
            f"- {phase}: {c['runs']} runs, {c['core_s'] / 3600:.2f} core-h (process CPU time),"
            f" {c['run_wall_s'] / 3600:.2f} h of run wall time, {c['session_wall_s'] / 3600:.2f}"
            f" h wall over {c['sessions']} call(s); {c['train_images']:,} training /"
            f" {c['test_images']:,} test images, {s['train']['epochs']} epochs,"
            f" {c['threads']} thread(s) a run; runs by machine: "
            + "; ".join(f"{n} on {m}" for m, n in c["machines"].items()))
        lines.append(f"  settings: `{json.dumps(s, sort_keys=True)}`")
    return lines


def markdown(record: dict[str, Any], default: dict[str, Any]) -> str:
    """The report; numbers and the target's sentence only."""
    sel = record["selection"]
    notes = [f"- {n}" for n in sel["notes"]] or ["- no swaps needed"]
    text = [
        "# Transfer: the γ = 1 bench against full CIFAR-10 and Imagenette", "",
        f"Generated {record['generated']} UTC; commit {record['git_sha'] or 'unknown'};"
        f" {record['machine']}.", "",
        f"Bench: `{record['bench']}`, accuracy = {record['accuracy']}. Points:"
        f" {len(record['points'])} ({sel['points']} picked by rank, `--pairs {sel['pairs']}`),"
        f" pinned in {SELECTION} on {sel['made']}:", *notes, "",
        "## Points", "",
        "Ranks \"here\" are among these points (1 = best). Full-data and Imagenette accuracy:"
        " mean ± sd over seeds; supernet: the accuracy score"
        f" `{record.get('supernet_run')}` gives the bench point (– where it has none).", "",
        *point_table(record["points"]), "",
        "## Rank agreement", "",
        f"Bootstrap over points ({record['bootstrap']['samples']} resamples, seed 0).", "",
        *agreement_table(record), "",
        "## Do the bench's best points stay on top?", "", *top_lines(record), "",
        budget_note(record, default), "",
        "## Paired effects (matched pairs: identical but for the factor)", "",
        "Difference in points of accuracy, mean ± standard error over the pairs.", "",
        *effect_table(record), "",
        "## Cost", "", *cost_lines(record), "",
    ]
    return "\n".join(text) + "\n"


# --- inputs and the files -------------------------------------------------------------------

def read_runs(out: Path) -> tuple[dict[str, list], dict[str, list]]:
    """Every finished run and every session, per phase."""
    runs, sessions = {}, {}
    for phase in PHASES:
        folder = out / RUNS / phase
        runs[phase] = [json.loads(p.read_text()) for p in sorted(folder.glob("*-seed*.json"))]
        path = folder / SESSIONS
        sessions[phase] = json.loads(path.read_text()) if path.is_file() else []
    return runs, sessions


def supernet_scores(run: Path | None) -> dict[str, float] | None:
    """A supernet run's accuracy score per point key (None when there is none)."""
    if run is None or not (run / SUPERNET_CSV).is_file():
        return None
    table = read_csv(run / SUPERNET_CSV)
    column = "val_acc" if "val_acc" in table.columns else "score"
    return {str(k): float(v) for k, v in zip(table["arch_key"], table[column], strict=True)}


def default_search(space_file: Path, bench: Bench, seeds: int) -> dict[str, Any]:
    """The default search's budget and the bench's, for the budget note."""
    from nas.search.space.load import load_space

    space = load_space(space_file)
    images = bench.meta.get("data", {}).get("train_images", 4000)
    return {"file": str(space_file), "trials": space.search.trials,
            "epochs": space.train.epochs, "images": images,
            "bench": f"{images:,} images, {bench.epochs} epochs, {seeds} seeds a point"}


def write_report(args: argparse.Namespace) -> Path:
    """OUT/transfer.md and transfer.json from what OUT holds; the Markdown's path."""
    from benchmarks.common import machine
    from nas.bench.table import load_bench
    from nas.results.meta import git_sha

    path = args.out / SELECTION
    if not path.is_file():
        raise TransferError(f"{path}: no study here yet; run --phase cifar first")
    selection = json.loads(path.read_text())
    entries, accuracy = bench_entries(Path(selection["bench"]), args.more_seeds)
    selection["accuracy"] = accuracy  # as the bench reads now (more seeds may have landed)
    runs, sessions = read_runs(args.out)
    record = build(entries, selection, runs, sessions, supernet_scores(args.supernet),
                   args.bootstrap)
    record |= {"generated": f"{datetime.now(UTC):%Y-%m-%d %H:%M}", "machine": machine(),
               "git_sha": git_sha(Path(".")), "supernet_run": str(args.supernet)}
    seeds = min(len(e.finals) for e in entries)
    default = default_search(DEFAULT_SPACE, load_bench(Path(selection["bench"])), seeds)
    write_json(args.out / "transfer.json", record)
    md = args.out / "transfer.md"
    atomic_write(md, lambda tmp: tmp.write_text(markdown(record, default)))
    return md

