"""What the dashboard shows, from a run folder: meta, trials, retrain, fronts, fidelities."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.latency.settings import (
    RUNTIMES_COLUMN,
    LatencyError,
    is_latency_name,
    latency_names,
    parse,
)
from nas.results.meta import read_meta
from nas.results.names import (
    ANSWER_JSON,
    META,
    RETRAIN_CSV,
    STUDY_CSV,
    STUDY_JSON,
    SUPERNET_CSV,
    TABLE,
    stage_numbers,
)
from nas.results.ranking import best_trial, scored_rows
from nas.results.table import all_trials, read_csv, round_dirs


@dataclass(frozen=True)
class Run:
    """One snapshot of a run folder."""

    run_dir: Path
    meta: dict[str, Any]
    space: dict[str, Any]  # the raw TOML of the space copy ({} when unreadable)
    table: pd.DataFrame  # every finished trial, as in trials.csv
    retrain: pd.DataFrame | None  # per trial and epochs: runs, seeds, test mean/std (or None)
    version: str  # changes whenever one of the files above changes
    study: pd.DataFrame | None = None  # study.csv, when the run was tabulated as a study
    study_labels: tuple[str, ...] = ()  # study.csv's row-label columns, from study.json
    scores: pd.DataFrame | None = None  # supernet.csv, when a supernet (or proxy) scored points
    answer: dict[str, Any] | None = None  # answer.json, once the run has answered

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def scored(self) -> pd.DataFrame:
        """Trials with a finite validation accuracy (failed / diverged ones have none)."""
        return scored_rows(self.table)

    @property
    def stages(self) -> list[int]:
        """Stage numbers present in the table (from its s<i>_kind columns)."""
        return stage_numbers(self.table.columns)

    def best(self) -> pd.Series | None:
        """The best full-budget trial (nas.results.ranking.ranked), else the best stopped one."""
        return best_trial(self.table)

    @property
    def max_epochs(self) -> int:
        """The budget's epochs (meta.json), else the longest curve of the table."""
        longest = max((len(curve(c)) for c in self.table.get("curve", [])), default=0)
        return int(self.meta.get("budget", {}).get("epochs") or longest or 1)


ACC_AT = "val_acc_at_epoch"  # the column at_epoch() adds: each shown trial's accuracy there
LATENCY = "latency_ms"  # every trial's latency at its training's precision, on its device


def latency_columns(run: Run) -> list[str]:
    """The run's latency columns: latency_ms, then each [latency] setting's (latency_ms@...)."""
    return [c for c in (LATENCY, *latency_names(run.table.columns)) if c in run.table]


def default_latency(run: Run) -> str:
    """The latency the cost view shows first: the search's latency objective, else latency_ms."""
    metrics = run.space.get("objectives", {}).get("metrics", [])
    chosen = [m for m in metrics if isinstance(m, str) and is_latency_name(m)]
    return next((m for m in chosen if m in run.table), LATENCY)


def runtime_choice(table: pd.DataFrame, column: str) -> str:
    """What a latency column measured, in words ('onnxruntime 1.23 CPUExecutionProvider, ...'):
    the first row's record of its runtime; '' when none says."""
    if column == LATENCY:
        return "torch eager at the training's precision, on the trial's device"
    try:
        runtime = parse(column).runtime
    except LatencyError:
        return ""
    for raw in table.get(RUNTIMES_COLUMN, pd.Series(dtype=str)).dropna():
        try:
            choice = json.loads(raw).get(runtime, "")
        except (ValueError, AttributeError):
            continue
        if choice:
            return str(choice)
    return ""


@dataclass(frozen=True)
class Fidelity:
    """One epoch at which the comparison views put every shown trial side by side."""

    epoch: int
    trials: int  # scored trials with an accuracy at this epoch
    scored: int  # all scored trials
    max_epochs: int

    @property
    def label(self) -> str:
        """What each chart prints: the epoch, how many trials, whether it is the full budget."""
        budget = ", the full budget" if self.epoch >= self.max_epochs else ""
        who = (f"all {self.trials} trials reached it" if self.trials == self.scored
               else f"the {self.trials} of {self.scored} trials that reached it")
        return f"val acc at epoch {self.epoch}{budget} ({who})"


def fidelities(run: Run) -> list[Fidelity]:
    """Every epoch some scored trial reached, with how many trials it compares."""
    scored = run.scored
    lengths = [len(_finite(curve(c))) for c in scored.get("curve", [])]
    top = max(lengths, default=0)
    return [Fidelity(e, sum(n >= e for n in lengths), len(lengths), run.max_epochs)
            for e in range(1, top + 1)]


def default_epoch(options: list[Fidelity]) -> int | None:
    """The largest epoch every scored trial reached (epoch 1 after ASHA's first rung)."""
    common = [f.epoch for f in options if f.trials == f.scored]
    return max(common) if common else (options[0].epoch if options else None)


def full_budget_epoch(options: list[Fidelity]) -> int | None:
    """The full budget's epoch when some trial reached it (the second view), else None."""
    last = options[-1] if options else None
    return last.epoch if last is not None and last.epoch >= last.max_epochs else None


def at_epoch(scored: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """The scored trials with an accuracy at `epoch`, that accuracy in column ACC_AT."""
    values = [_at(curve(c), epoch) for c in scored.get("curve", pd.Series(dtype=str))]
    frame = scored.assign(**{ACC_AT: pd.Series(values, index=scored.index, dtype=float)})
    return frame[np.isfinite(frame[ACC_AT])]


def _at(points: list[float | None], epoch: int) -> float:
    value = points[epoch - 1] if len(points) >= epoch else None
    return math.nan if value is None else value


def _finite(points: list[float | None]) -> list[float | None]:
    """The curve up to its last finite epoch (a trailing gap is no epoch reached)."""
    while points and points[-1] is None:
        points = points[:-1]
    return points


def version(run_dir: Path) -> str:
    """A short fingerprint of the files the dashboard reads (size and mtime)."""
    parts = []
    rounds = [str(r.relative_to(run_dir) / TABLE) for r in round_dirs(run_dir)]
    for name in (META, TABLE, RETRAIN_CSV, STUDY_CSV, STUDY_JSON, SUPERNET_CSV, ANSWER_JSON,
                 *rounds):
        try:
            stat = (run_dir / name).stat()
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:-")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def load_run(run_dir: Path) -> Run:
    """Read a run folder; a folder without meta.json is not a run."""
    run_dir = Path(run_dir)
    if not (run_dir / META).is_file():
        raise FileNotFoundError(f"{run_dir}: no {META}, so not a run folder (a search writes it"
                                " as it starts)")
    stamp = version(run_dir)  # before reading: a change meanwhile shows on the next poll
    meta = read_meta(run_dir)
    space = _space(run_dir, meta)
    study = read_csv(run_dir / STUDY_CSV) if (run_dir / STUDY_CSV).exists() else None
    return Run(run_dir, meta, space, _table(run_dir),
               retrain_summary(read_csv(run_dir / RETRAIN_CSV)) if (run_dir / RETRAIN_CSV).exists()
               else None, stamp, study, _study_labels(run_dir, study, space),
               read_csv(run_dir / SUPERNET_CSV) if (run_dir / SUPERNET_CSV).exists() else None,
               _answer(run_dir))


def _answer(run_dir: Path) -> dict[str, Any] | None:
    """answer.json, or None when the run has none yet (or it cannot be read as one)."""
    try:
        answer = json.loads((run_dir / ANSWER_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) and isinstance(answer.get("tier"), list) else None


def _study_labels(run_dir: Path, study: pd.DataFrame | None, space: dict[str, Any]
                  ) -> tuple[str, ...]:
    """The columns that name study.csv's rows, as its study.json records them (a folder
    tabulated before study.json existed: the space copy's [study] rows)."""
    if study is None:
        return ()
    try:
        labels = json.loads((run_dir / STUDY_JSON).read_text())["labels"]
    except FileNotFoundError:
        labels = space.get("study", {}).get("rows")
        if not labels:
            raise FileNotFoundError(f"{run_dir / STUDY_JSON}: missing, and the space names no"
                                    f" [study] rows; run `run_search.py study {run_dir}` to"
                                    " write it") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FileNotFoundError(f"{run_dir / STUDY_JSON}: unreadable ({err}); run"
                                f" `run_search.py study {run_dir}` to write it again") from None
    missing = [c for c in labels if c not in study.columns]
    if missing:
        raise FileNotFoundError(f"{run_dir / STUDY_JSON}: labels {missing} are not columns of"
                                f" {STUDY_CSV}; run `run_search.py study {run_dir}` again")
    return tuple(labels)


def _space(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    try:
        return tomllib.loads((run_dir / meta["space_file"]).read_text())
    except (KeyError, OSError, tomllib.TOMLDecodeError):
        return {}


def _table(run_dir: Path) -> pd.DataFrame:
    """Every trial of the run, its verification rounds' included, numbers as numbers."""
    table = all_trials(run_dir)
    for column in ("best_val_acc", "final_val_acc", "params", "macs", LATENCY,
                   *latency_names(table.columns)):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def retrain_summary(raw: pd.DataFrame) -> pd.DataFrame:
    """Per retrained trial and epoch budget: runs, seeds with a test accuracy, its mean and
    sample std (NaN for one seed). Runs without an accuracy (diverged) count only as runs."""
    columns = ["trial_id", "epochs", "runs", "seeds", "test_mean", "test_std"]
    if raw.empty or not {"trial_id", "test_acc"} <= set(raw.columns):
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame({
        "trial_id": raw["trial_id"].astype(str),
        "epochs": pd.to_numeric(raw["epochs"], errors="coerce") if "epochs" in raw else np.nan,
        "test_acc": pd.to_numeric(raw["test_acc"], errors="coerce")})
    grouped = frame.groupby(["trial_id", "epochs"], dropna=False)["test_acc"]
    out = pd.DataFrame({"runs": grouped.size(), "seeds": grouped.count(),
                        "test_mean": grouped.mean(), "test_std": grouped.std(ddof=1)})
    return out.reset_index()[columns]


def final_tests(retrain: pd.DataFrame | None) -> pd.DataFrame:
    """One row per trial: its retrain at the largest epoch budget (the final number)."""
    if retrain is None or retrain.empty:
        return pd.DataFrame(columns=["trial_id", "epochs", "runs", "seeds", "test_mean",
                                     "test_std"]).set_index("trial_id")
    ordered = retrain.sort_values("epochs", na_position="first", kind="stable")
    return ordered.drop_duplicates("trial_id", keep="last").set_index("trial_id")


def describe_test(row: pd.Series) -> str:
    """'0.8123 ± 0.0040 over 3 seeds (20 epochs)' and the like."""
    if not row["seeds"]:
        return f"no test accuracy ({int(row['runs'])} run(s) diverged)"
    spread = f" ± {row['test_std']:.4f}" if row["seeds"] > 1 else ""
    budget = f", {int(row['epochs'])} epochs" if np.isfinite(row["epochs"]) else ""
    return (f"{row['test_mean']:.4f}{spread} over {int(row['seeds'])} seed(s){budget}"
            + (f"; {int(row['runs'] - row['seeds'])} run(s) without accuracy"
               if row["runs"] > row["seeds"] else ""))


def curve(value: Any) -> list[float | None]:
    """A trial's per-epoch validation accuracies; NaN (a diverged epoch) becomes a gap."""
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        points = json.loads(value)
    except ValueError:
        return []
    return [float(v) if isinstance(v, int | float) and math.isfinite(v) else None
            for v in points]


def pareto_mask(cost: pd.Series, acc: pd.Series) -> pd.Series:
    """True where no other trial is at least as cheap and strictly more accurate."""
    order = sorted(cost.index, key=lambda i: (cost[i], -acc[i]))
    mask = pd.Series(False, index=cost.index)
    best = -math.inf
    for i in order:
        if acc[i] > best:
            mask[i], best = True, acc[i]
    return mask
