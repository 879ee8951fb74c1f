"""Search strategies measured against a bench: regret and rank of the point each returns, by
compute spent, over many seeds, through the real stack (Ray Tune, Optuna, ASHA) in replay.

    python -m benchmarks.search_strategies --bench results/bench/spectrum_bench

Each strategy replays `--repeats` times (search seeds 0..N-1) up to the largest budget; the
result at a smaller budget is what the search would have returned had it stopped there: the
best completed (full-budget) trial among those finished within that much simulated compute
(the best stopped one while none has completed). Regret = the bench's best mean final
accuracy minus the returned point's mean final accuracy, in percentage points. Writes
`<out>.md` (the table) and `<out>.html` / `<out>.png` (regret against compute); every finished
replay goes to `<out>.replays.jsonl` first, so a rerun with the same settings resumes.

Each strategy is also read "+ racing" (benchmarks/strategy_racing.py, `--no-racing` skips it):
the race of nas.answer.race after the trials finished within each budget, its verification
runs drawn from the bench's other seeds of a point (`--extra` folders' seeds pooled in);
`<out>.racing.csv` and a section of `<out>.md`. Racing reuses the cached replays.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import machine
from nas.answer.settings import VerifyError, VerifySettings
from nas.bench.report import write_png
from nas.bench.table import Bench, load_bench
from nas.results.atomic import atomic_write
from nas.results.ranking import scored_rows
from nas.search.space.load import load_space
from nas.search.space.points import base_name, dimensions

ROOT = Path(__file__).resolve().parents[1]
# Replayed run folders are thrown away: on tmpfs when there is one, because Optuna's SQLite
# commits (one per reported epoch) were a third of a replay's wall time on disk.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None
DEFAULT_SPACE = ROOT / "search_spaces" / "cifar_spectrum.toml"
BUDGETS = (0.05, 0.10, 0.20, 0.30, 0.50)  # fractions of the bench's total compute
FULL = "full"  # grace period = every epoch: no early stopping
# strategy -> [search] settings over the bench space's; "references": the default search's
# reference points first, as `python run_search.py` runs them.
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": "random", "grace_period": FULL},
    "random + ASHA": {"sampler": "random", "grace_period": 1, "reduction_factor": 3},
    "TPE": {"sampler": "tpe", "grace_period": FULL},
    "TPE + ASHA (default)": {"sampler": "tpe", "grace_period": 1, "reduction_factor": 3,
                             "references": True},
    # the default with one setting changed: Optuna's independent TPE, and a later first rung
    # (the bench measures how well each epoch predicts the last: whether a grace of 1 is sound)
    "TPE + ASHA, univariate": {"sampler": "tpe", "multivariate": False, "grace_period": 1,
                               "reduction_factor": 3, "references": True},
    "TPE + ASHA, grace 3": {"sampler": "tpe", "grace_period": 3, "reduction_factor": 3,
                            "references": True},
    # the fidelity issue's ablation: stopped trials told COMPLETE with their last accuracy
    # (Ray's OptunaSearch) instead of PRUNED with their curve
    "TPE + ASHA, stopped told COMPLETE": {"sampler": "tpe", "grace_period": 1,
                                          "reduction_factor": 3, "references": True,
                                          "stopped_as": "complete"},
}
DEFAULT, BASELINE = "TPE + ASHA (default)", "random"
TARGET_REGRET, TARGET_BUDGET = 0.5, 0.30  # points; fraction of the bench's compute
REPLAYS = ".replays.jsonl"  # beside --out: every finished replay, so a rerun resumes


def strategy_space(bench: Bench, settings: dict[str, Any], trials: int) -> str:
    """The bench's space file with its [search] (and [references]) set for one strategy."""
    source = bench.space_file
    kept, skip = [], False
    for line in source.read_text().splitlines():
        if line.startswith("["):
            skip = line.strip() in ("[search]", "[references]", "[study]")
        if not skip:
            kept.append(line)
    search = {"trials": trials, "concurrency": 2, "repeats": 1} | {
        k: (bench.epochs if v == FULL else v) for k, v in settings.items() if k != "references"}
    kept += ["", "[search]", *(f"{k} = {json.dumps(v)}" for k, v in search.items())]
    refs = _references(source) if settings.get("references") else {}
    if refs:
        kept += ["", "[references]"] + [
            f"{name} = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in point.items())} }}"
            for name, point in refs.items()]
    return "\n".join(kept) + "\n"


def _references(space_file: Path) -> dict[str, dict[str, Any]]:
    """The default search's reference points that are points of the bench's space."""
    allowed: dict[str, set[Any]] = {}  # per base name (s2_mid_act -> mid_act): every stage's
    for dim in dimensions(load_space(space_file)):
        mine = set(dim.choices)
        allowed[base_name(dim.name)] = allowed.get(base_name(dim.name), mine) & mine
    refs = tomllib.loads(DEFAULT_SPACE.read_text()).get("references", {})
    return {name: point for name, point in refs.items()
            if all(v in allowed.get(k, ()) for k, v in point.items())}


def returned(rows: pd.DataFrame) -> str | None:
    """The arch_key the search returns: its best completed trial, else its best stopped one."""
    scored = scored_rows(rows)
    if scored.empty:
        return None
    pool = scored[scored["status"] == "completed"]
    pool = pool if not pool.empty else scored
    order = pool.sort_values(["best_val_acc", "macs", "trial_id"],
                             ascending=[False, True, True], kind="stable")
    return str(order.iloc[0]["arch_key"])


def trajectory(table: pd.DataFrame, bench: Bench, budgets_s: list[float]
               ) -> list[tuple[float | None, int | None]]:
    """(regret in points, rank) of what the search returns at each budget (None: nothing yet)."""
    if table.empty:
        return [(None, None)] * len(budgets_s)
    out = []
    for budget in budgets_s:
        key = returned(finished_by(table, budget))
        out.append((None, None) if key is None else
                   (100 * bench.regret(key), bench.rank(key)))
    return out


def finished_by(table: pd.DataFrame, budget_s: float) -> pd.DataFrame:
    """The trials that finished within `budget_s` simulated seconds, in the order they did."""
    if table.empty:
        return table
    done = table.sort_values("clock_s", kind="stable").reset_index(drop=True)
    spent = pd.to_numeric(done["simulated_s"], errors="coerce").fillna(0.0).cumsum()
    return done[spent <= budget_s + 1e-9]


def _start_worker() -> None:
    """One Ray session per worker process, reused by every replay it runs."""
    # Ray's own per-trial logs (JSON, CSV, TensorBoard) are no part of the run folder's
    # contract, and these run folders are thrown away: skip writing them (the timed 20-trial
    # replay below runs as users run it, with them).
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    from nas.search.cluster import start_ray

    start_ray()


def replay(job: tuple[str, int, str, float, float, int, str]) -> dict[str, Any]:
    """One strategy, one seed: the replayed trials table and its wall time."""
    from nas.bench.replay import Replay
    from nas.search.engine import ProgramOptions, SearchOptions, search

    name, seed, space_text, speed, budget_s, trials, bench_dir = job
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        space = Path(tmp) / "strategy.toml"
        space.write_text(space_text)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            outcome = search(SearchOptions(space=space, trials=trials, seed=seed,
                                           name="replay", results_dir=Path(tmp)),
                             ProgramOptions(compute_budget_s=budget_s),
                             source=Replay(Path(bench_dir), speed))
        wall = time.perf_counter() - start
        table = outcome.table[[c for c in KEPT if c in outcome.table]]
        return {"strategy": name, "seed": seed, "wall_s": wall, "speed": speed,
                "budget_s": budget_s, "trials": trials, "table": table.to_dict("records")}


# replay_seed and curve: what racing after the search needs (the bench seed a trial replayed,
# the curve it saw: an ASHA-stopped trial's ends where it stopped)
KEPT = ("trial_id", "arch_key", "status", "best_val_acc", "macs", "simulated_s", "clock_s",
        "replay_seed", "curve")


def load_replays(path: Path) -> list[dict[str, Any]]:
    """The replays an earlier run finished (one JSON line each; a torn last line is dropped)."""
    if not path.exists():
        return []
    done = []
    for line in path.read_text().splitlines():
        try:
            done.append(json.loads(line))
        except json.JSONDecodeError:
            break  # killed mid-write: that replay runs again
    return done


def append_replay(path: Path, result: dict[str, Any]) -> None:
    """One finished replay, on disk before the next is reported: a rerun resumes after it."""
    with path.open("a") as file:
        file.write(json.dumps(result) + "\n")
        file.flush()
        os.fsync(file.fileno())


def reusable(result: dict[str, Any], settings: dict[str, Any], budget_s: float, speed: float,
             trials: int) -> bool:
    """An earlier replay of the same strategy settings and speed that ran at least this far."""
    return (result.get("settings") == settings and result.get("speed") == speed
            and result.get("trials") == trials and result.get("budget_s", 0) >= budget_s - 1e-6)


def raceable(result: dict[str, Any]) -> bool:
    """Whether a cached replay kept what racing needs: each trial's bench seed and curve (a
    replay cached before racing was measured did not)."""
    return all("replay_seed" in row and "curve" in row for row in result["table"])


def summarize(results: list[dict[str, Any]], bench: Bench,
              budgets: tuple[float, ...] = BUDGETS) -> pd.DataFrame:
    """Per strategy and budget: median and IQR of regret and rank over the seeds."""
    budgets_s = [f * bench.compute_s() for f in budgets]
    rows = []
    for name in dict.fromkeys(r["strategy"] for r in results):
        mine = [r for r in results if r["strategy"] == name]
        paths = [trajectory(pd.DataFrame(r["table"]), bench, budgets_s) for r in mine]
        for i, fraction in enumerate(budgets):
            regrets = [p[i][0] for p in paths if p[i][0] is not None]
            ranks = [p[i][1] for p in paths if p[i][1] is not None]
            rows.append({"strategy": name, "budget": fraction, "runs": len(mine),
                         "returned": len(regrets), **_spread("regret_pp", regrets),
                         **_spread("rank", ranks)})
    return pd.DataFrame(rows)


def _spread(name: str, values: list[float]) -> dict[str, float]:
    """Median and interquartile range (NaN when there are no values)."""
    if not values:
        return {f"{name}_median": float("nan"), f"{name}_q1": float("nan"),
                f"{name}_q3": float("nan")}
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 \
        else (values[0], values[0], values[0])
    return {f"{name}_median": statistics.median(values), f"{name}_q1": q1, f"{name}_q3": q3}


def markdown(frame: pd.DataFrame, bench: Bench, header: list[str]) -> str:
    """The strategies table: one row per strategy, one column per budget."""
    budgets = sorted(frame["budget"].unique())
    cols = [f"{100 * b:g} %" for b in budgets]
    lines = [*header, "", "Median regret in points [IQR] (median rank of the returned point):",
             "", "| strategy | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in frame["strategy"].unique():
        cells = []
        for b in budgets:
            r = frame[(frame["strategy"] == name) & (frame["budget"] == b)].iloc[0]
            cells.append("-" if r["returned"] == 0 else
                         f"{r['regret_pp_median']:.2f} [{r['regret_pp_q1']:.2f}–"
                         f"{r['regret_pp_q3']:.2f}] (rank {r['rank_median']:.0f})"
                         + ("" if r["returned"] == r["runs"] else
                            f" {r['returned']}/{r['runs']} runs"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(frame: pd.DataFrame) -> list[str]:
    """The issue's targets, read off the table: the default's regret at <= 30 % of the bench's
    compute, the default against random search at every budget, and which strategies reach the
    regret target soonest."""
    def median(name: str, budget: float) -> float:
        row = frame[(frame["strategy"] == name) & (frame["budget"] == budget)]
        return float(row["regret_pp_median"].iloc[0]) if not row.empty else float("nan")

    budgets = sorted(frame["budget"].unique())

    def first_reaching(name: str) -> float | None:
        return next((b for b in budgets if median(name, b) <= TARGET_REGRET), None)

    lines = ["Targets:", ""]
    names = list(frame["strategy"].unique())
    if DEFAULT in names:
        at = first_reaching(DEFAULT)
        met = at is not None and at <= TARGET_BUDGET
        lines.append(f"- {DEFAULT}: median regret <= {TARGET_REGRET} pt with <= "
                     f"{100 * TARGET_BUDGET:g} % of the compute: **{'met' if met else 'missed'}**"
                     + (f" (first at {100 * at:g} %)" if at is not None else
                        " (not at any budget measured)"))
    if DEFAULT in names and BASELINE in names:
        cells = []
        for b in budgets:
            mine, theirs = median(DEFAULT, b), median(BASELINE, b)
            word = "beats" if mine < theirs else "ties" if mine == theirs else "loses to"
            cells.append(f"{100 * b:g} %: {word} ({mine:.2f} vs {theirs:.2f})")
        lines.append(f"- {DEFAULT} against {BASELINE}, median regret: " + "; ".join(cells))
    reach = sorted((b, n) for n in names if (b := first_reaching(n)) is not None)
    lines.append("- First budget at which each strategy's median regret is <= "
                 f"{TARGET_REGRET} pt: " + (", ".join(f"{n} {100 * b:g} %" for b, n in reach)
                                            if reach else "none"))
    return lines


def single_seed_floor(bench: Bench) -> list[str]:
    """The regret of training every point once, with one seed, and returning the best: how far
    a single seed's ranking misleads at the top, whatever the strategy."""
    cells = []
    for seed in range(bench.seeds):
        pick = max(bench.points.values(), key=lambda p: (p.curves[seed][-1], -p.macs))
        cells.append(f"seed {seed}: {100 * bench.regret(pick.key):.2f} pt (rank"
                     f" {bench.rank(pick.key)})")
    return ["- Noise floor: every point trained once with one seed, the best one returned: "
            + "; ".join(cells) + " (how loosely one seed ranks the top points: regrets of"
            " that size are within a single seed's noise)"]


def figure(frame: pd.DataFrame, racing: pd.DataFrame | None = None):
    """Regret against compute per strategy, the IQR as a band; + racing dashed, at its median
    compute (front end + racing; its regret against the pooled truth of every bench seed)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in frame["strategy"].unique():
        mine = frame[frame["strategy"] == name]
        x = (100 * mine["budget"]).tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=mine["regret_pp_q3"].tolist()
                                 + mine["regret_pp_q1"].tolist()[::-1], fill="toself",
                                 opacity=0.15, line=dict(width=0), showlegend=False,
                                 hoverinfo="skip", legendgroup=name))
        fig.add_trace(go.Scatter(x=x, y=mine["regret_pp_median"].tolist(), mode="lines+markers",
                                 name=name, legendgroup=name))
        raced = (racing[(racing["strategy"] == name) & (racing["mode"] == "+ racing")]
                 if racing is not None else ())
        if len(raced):
            fig.add_trace(go.Scatter(x=(100 * raced["compute_median"]).tolist(),
                                     y=raced["regret_pp_median"].tolist(), mode="lines+markers",
                                     line=dict(dash="dash"), name=f"{name} + racing",
                                     legendgroup=name))
    fig.update_layout(xaxis_title="compute (% of the bench's training seconds)",
                      yaxis_title="regret (points of validation accuracy), median and IQR",
                      title=machine(), template="plotly_white", width=900, height=520)
    return fig


def _racing(results: list[dict[str, Any]], bench: Bench, budgets: tuple[float, ...],
            settings: VerifySettings, args: argparse.Namespace
            ) -> tuple[pd.DataFrame, list[str]]:
    """Every replay read alone and + racing against the pooled truth: the table and its lines."""
    from benchmarks import strategy_racing as sr  # it imports this module

    truth = sr.pooled_truth(bench, args.extra)
    print(f"Racing: {truth.note}", flush=True)
    frame = sr.summarize(results, truth, budgets, settings)
    return frame, [*sr.markdown(frame, truth, settings, machine()), "",
                   *sr.verdicts(frame, machine())]


def timed_default_replay(bench_dir: Path, speed: float) -> float:
    """Wall seconds of `run_search.py --replay` with the default 20-trial budget (a process)."""
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        space = Path(tmp) / "default.toml"
        space.write_text(strategy_space(load_bench(bench_dir), STRATEGIES[
            "TPE + ASHA (default)"], 20))
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--space", str(space),
                        "--replay", str(bench_dir), "--replay-speed", str(speed), "--name", "r",
                        "--results-dir", tmp], check=True, capture_output=True, timeout=600)
        return time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=ROOT / "results" / "bench" / "spectrum_bench")
    p.add_argument("--repeats", type=int, default=30, help="search seeds per strategy")
    p.add_argument("--trials", type=int, default=400,
                   help="trial cap per replay (the compute budget ends it first)")
    p.add_argument("--speed", type=float, default=200.0, help="replay speed-up")
    p.add_argument("--jobs", type=int, default=2, help="replays at once (each its own Ray)")
    p.add_argument("--strategy", action="append", choices=list(STRATEGIES), dest="strategies",
                   help="replay only this strategy (repeatable; default: all)")
    p.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS),
                   help="fractions of the bench's compute to read the searches at")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "strategies")
    race = p.add_argument_group("racing after each search (+ racing; nas.answer.race)")
    race.add_argument("--no-racing", dest="racing", action="store_false",
                      help="measure each strategy alone only")
    race.add_argument("--extra", type=Path, action="append", default=[],
                      help="another bench folder with more seeds of the same points, pooled by"
                      " arch_key into the truth and the verification draws (repeatable)")
    race.add_argument("--confidence", type=float, default=0.9, help="[verify] confidence")
    race.add_argument("--max-seeds", type=int, default=4, help="[verify] max_seeds_per_point"
                      " (a point gets no more seeds than the bench has of it)")
    race.add_argument("--race-budget-s", type=float,
                      help="[verify] budget_core_s (default: 10 %% of the bench's compute)")
    race.add_argument("--noise-prior-sd", type=float, default=0.0,
                      help="[verify] noise_prior_sd (accuracy, 0-1); 0: none")
    race.add_argument("--noise-prior-df", type=float, default=0.0,
                      help="[verify] noise_prior_df; with --noise-prior-sd")
    return p.parse_args(argv)


def verify_settings(args: argparse.Namespace, bench: Bench) -> VerifySettings:
    """The race's [verify] settings from the flags (a one-line exit for one out of range)."""
    budget = args.race_budget_s if args.race_budget_s is not None else 0.1 * bench.compute_s()
    try:
        return VerifySettings(confidence=args.confidence, max_seeds_per_point=args.max_seeds,
                              budget_core_s=budget, noise_prior_sd=args.noise_prior_sd,
                              noise_prior_df=args.noise_prior_df).check()
    except VerifyError as err:
        raise SystemExit(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budgets = tuple(sorted(args.budgets))
    if not all(0 < b <= 1 for b in budgets):
        raise SystemExit(f"--budgets {args.budgets}: each must be a fraction in (0, 1]")
    strategies = {n: STRATEGIES[n] for n in (args.strategies or STRATEGIES)}
    bench = load_bench(args.bench)
    settings = verify_settings(args, bench)
    total = bench.compute_s()
    header = [f"# Search strategies on {bench.run_dir.name}",
              "", f"Bench: {len(bench.points)} points x {bench.seeds} seeds x {bench.epochs}"
              f" epochs, {total / 3600:.2f} h of measured training; best point mean final"
              f" accuracy {100 * bench.best().final:.2f} %. {args.repeats} seeds per strategy,"
              f" replay speed {args.speed:g}x. {machine()}"]
    print("\n".join(header), flush=True)
    budget_s = max(budgets) * total
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(REPLAYS)
    cached = [r for r in load_replays(log) if r["strategy"] in strategies and reusable(
        r, strategies[r["strategy"]], budget_s, args.speed, args.trials)]
    earlier = {(r["strategy"], r["seed"]): r for r in cached
               if not args.racing or raceable(r)}
    if len(earlier) < len(cached):
        print(f"{len(cached) - len(earlier)} cached replays lack replay_seed or curve (cached"
              " before racing was measured): replaying them again", flush=True)
    results = [earlier[(name, seed)] for name in strategies for seed in range(args.repeats)
               if (name, seed) in earlier]
    # seed by seed, so that an interrupted run has every strategy at its first seeds
    jobs = [(name, seed, strategy_space(bench, settings, args.trials), args.speed,
             budget_s, args.trials, str(args.bench))
            for seed in range(args.repeats) for name, settings in strategies.items()
            if (name, seed) not in earlier]
    print(f"{len(results)} replays from {log}, {len(jobs)} to run", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"),
                             initializer=_start_worker) as pool:
        for done in pool.map(replay, jobs):
            done["settings"] = strategies[done["strategy"]]
            append_replay(log, done)
            results.append(done)
            print(f"  {done['strategy']:<22} seed {done['seed']:>2}: {len(done['table'])}"
                  f" trials, {done['wall_s']:.1f} s", flush=True)
    elapsed = time.perf_counter() - start
    frame = summarize(results, bench, budgets)
    racing = _racing(results, bench, budgets, settings, args) if args.racing else None
    wall20 = timed_default_replay(args.bench, args.speed)
    text = markdown(frame, bench, header) + "\n\n" + "\n".join(
        verdicts(frame) + single_seed_floor(bench)) + (
        "\n\n" + "\n".join(racing[1]) if racing else "") + (
        f"\n\nA replayed 20-trial default search (`run_search.py --replay`, speed"
        f" {args.speed:g}x) took {wall20:.1f} s wall (target < 60 s). {len(jobs)} replays ran"
        f" in {elapsed:.0f} s, {args.jobs} at a time; {len(earlier)} were"
        f" read back from `{log.name}`.\n")
    atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    atomic_write(args.out.with_suffix(".csv"), lambda tmp: frame.to_csv(tmp, index=False))
    if racing:
        atomic_write(args.out.with_suffix(".racing.csv"),
                     lambda tmp: racing[0].to_csv(tmp, index=False))
    fig = figure(frame, racing[0] if racing else None)
    fig.write_html(args.out.with_suffix(".html"), include_plotlyjs="cdn")
    png = write_png(fig, args.out.with_suffix(".png"))
    print(text)
    print(f"Wrote {args.out.with_suffix('.md')}, .csv, .html" + (", .png" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
