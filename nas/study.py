"""`run_search.py study`: run a space's grid with seeds, then tabulate it per row (mean ± std).

A study is a search space with a [study] section: the dimensions that label the table's rows
and a reference point as the baseline. `study SPACE.toml` runs the search and tabulates it;
`study RUN_DIR` tabulates a finished run again. Only trials that trained the full budget count
(a stopped, diverged or failed trial would compare unequal things); each row pools the
final-epoch validation accuracies of its seeds.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nas.search.resume import space_copy

if TYPE_CHECKING:
    from nas.search.engine import SearchOptions
from nas.results.atomic import atomic_write, write_json
from nas.results.meta import read_meta
from nas.results.names import META, STUDY_CSV, STUDY_JSON, STUDY_MD, stage_column
from nas.results.table import read_table
from nas.results.values import METRICS, number, shown, text
from nas.search.space.points import dimensions
from nas.search.space.types import Space


class StudyError(ValueError):
    """A study that cannot be tabulated; the message names the file and the problem."""


def seed_accuracies(row: dict[str, Any]) -> list[float]:
    """The trial's final validation accuracy per seed (one value for a single-seed trial)."""
    raw = text(row.get("seed_val_accs"))
    values = json.loads(raw) if raw else []
    if not values and number(row.get("final_val_acc")) is not None:
        values = [number(row["final_val_acc"])]
    return [float(v) for v in values]


def row_labels(space: Space) -> list[str]:
    """The dimensions naming the rows: the study's, else every searched one."""
    if space.study.rows:
        return list(space.study.rows)
    return [d.name for d in dimensions(space) if len(d.choices) > 1]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def tabulate(table: pd.DataFrame, space: Space) -> pd.DataFrame:
    """One row per combination of the row dimensions, in the space's order of choices."""
    labels = row_labels(space)
    choices = {d.name: d.choices for d in dimensions(space)}
    records = table.to_dict("records")
    baseline = [r for r in records if text(r.get("reference")) == space.study.baseline
                and r.get("status") == "completed"] if space.study.baseline else []
    out = []
    for combo in itertools.product(*(choices[name] for name in labels)):
        key = [str(v) for v in combo]
        mine = [r for r in records
                if [text(r.get(f"param_{name}")) for name in labels] == key]
        if not mine:
            continue
        done = [r for r in mine if r.get("status") == "completed"]
        accs = [a for r in done for a in seed_accuracies(r)]
        mean, std = _mean_std(accs) if accs else (math.nan, math.nan)
        out.append({
            **dict(zip(labels, key, strict=True)),
            "reference": ", ".join(sorted({text(r.get("reference")) for r in mine} - {""})),
            "seeds": len(accs), "val_acc_mean": mean, "val_acc_std": std,
            "seed_val_accs": json.dumps([round(a, 4) for a in accs]),
            "excluded": ", ".join(f"{r['trial_id']} {r['status']}" for r in mine
                                  if r.get("status") != "completed"),
            "epochs": _same(done, "epochs"),
            "params": _same(done or mine, "params"), "macs": _same(done or mine, "macs"),
            "latency_ms": _median(done, "latency_ms"),
            "stage_widths": _same(done or mine, "stage_widths"),
            "stage_groups": _same(done or mine, "stage_groups"),
            "train_s_per_seed": (sum(number(r.get("train_s")) or 0.0 for r in done) / len(accs)
                                 if accs else math.nan),
            "trial_ids": " ".join(str(r["trial_id"]) for r in mine),
            "is_baseline": bool(baseline) and any(r is baseline[0] for r in mine),
        })
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    base = frame[frame["is_baseline"]]
    frame["delta_pp"], frame["delta_se_pp"] = math.nan, math.nan
    if not base.empty:
        b = base.iloc[0]
        b_var = (b["val_acc_std"] ** 2 / b["seeds"]) if b["seeds"] > 1 else math.nan
        frame["delta_pp"] = 100 * (frame["val_acc_mean"] - b["val_acc_mean"])
        frame["delta_se_pp"] = 100 * ((frame["val_acc_std"] ** 2 / frame["seeds"]) + b_var) ** 0.5
        frame.loc[frame["is_baseline"], ["delta_pp", "delta_se_pp"]] = 0.0, math.nan
    return frame


def _same(rows: list[dict[str, Any]], key: str) -> Any:
    """The rows' common value of a column (the first row's where they differ), '' for none."""
    return _column(rows[0], key) if rows else ""


def _column(row: dict[str, Any], key: str) -> Any:
    """A table column, or a per-stage summary ('stage_widths': '48/96/184') from s1_.., s2_.."""
    if key in ("stage_widths", "stage_groups"):
        stage_key = {"stage_widths": "width", "stage_groups": "groups"}[key]
        parts, stage = [], 1
        while stage_column(stage, stage_key) in row:
            parts.append(str(int(number(row[stage_column(stage, stage_key)]) or 0)))
            stage += 1
        return "/".join(parts)
    return row.get(key)


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = [v for v in (number(r.get(key)) for r in rows) if v is not None]
    return statistics.median(values) if values else math.nan


def _pct(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f}" + ("" if math.isnan(std) else f" ± {100 * std:.1f}")


def _delta(row: pd.Series) -> str:
    if row["is_baseline"]:
        return "baseline"
    if math.isnan(row["delta_pp"]):
        return "-"
    se = "" if math.isnan(row["delta_se_pp"]) else f" ± {row['delta_se_pp']:.1f}"
    return f"{row['delta_pp']:+.1f}{se}"


def markdown_table(frame: pd.DataFrame, space: Space) -> str:
    """The study's table as Markdown: labels, accuracy, difference, cost, time."""
    labels = row_labels(space)
    varying = [k for k in ("stage_widths", "stage_groups") if frame[k].nunique() > 1]
    baseline = space.study.baseline
    head = [*labels, *(k.replace("_", " ") for k in varying), "seeds",
            METRICS["val_acc_mean"].label]
    if baseline:
        head.append(f"Δ vs {baseline} (pp ± SE)")
    costs = ("params", "macs", "latency_ms", "train_s_per_seed")
    head += [METRICS[c].label for c in costs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = [str(r[k]) for k in labels] + [str(r[k]) for k in varying]
        cells += [str(r["seeds"]), _pct(r["val_acc_mean"], r["val_acc_std"])]
        if baseline:
            cells.append(_delta(r))
        cells += [shown(c, r[c]) for c in costs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compute_note(table: pd.DataFrame, meta: dict[str, Any]) -> str:
    """What the run cost and where: trials, seeds, epochs, core time, wall time, machine."""
    budget, hw = meta.get("budget", {}), meta.get("hardware", {})
    cpus = float(budget.get("cpus_per_trial", 1.0))
    trial_s = sum(number(v) or 0.0 for v in table.get("wall_s", []))
    wall = number(meta.get("search_s"))
    machine = hw.get("cpu_model") or hw.get("processor", "?")
    gpus = f", GPUs {', '.join(hw['gpus'])}" if hw.get("gpus") else ", no GPU"
    return (f"Compute: {len(table)} trials, <= {budget.get('epochs', '?')} epochs, "
            f"{budget.get('concurrency', '?')} at a time, {cpus:g} CPU core(s) each; trial time"
            f" {trial_s / 60:.1f} min ({trial_s * cpus / 60:.1f} core-min)"
            + (f", search wall time {wall / 60:.1f} min" if wall is not None else "")
            + f". Machine: {hw.get('cpu_count', '?')} cores ({machine}){gpus}; torch"
            f" {meta.get('versions', {}).get('torch', '?')}; git {meta.get('git_sha', '?')}.")


def write_study(run_dir: Path) -> str:
    """Tabulate a run folder into study.csv and study.md; return the Markdown."""
    if not (run_dir / META).exists():
        raise StudyError(f"{run_dir}: not a run folder (no {META})")
    meta = read_meta(run_dir)
    space = space_copy(run_dir, meta)
    table = read_table(run_dir)
    if table.empty:
        raise StudyError(f"{run_dir}: no finished trial to tabulate yet")
    frame = tabulate(table, space)
    atomic_write(run_dir / STUDY_CSV, lambda tmp: frame.to_csv(tmp, index=False))
    write_json(run_dir / STUDY_JSON, {"labels": row_labels(space),
                                      "baseline": space.study.baseline or None,
                                      "space_file": meta["space_file"]})
    title = space.study.title or f"Study {space.name}"
    command = " ".join(meta.get("argv", [])) or "?"
    body = "\n\n".join([
        f"## {title}", markdown_table(frame, space),
        "Validation accuracy after the last epoch, mean ± sample std over seeds; Δ is the"
        " difference of means in percentage points ± its standard error.",
        compute_note(table, meta), f"Command: `python {command}`",
        f"Dashboard: `python run_search.py dashboard {run_dir}`"])
    atomic_write(run_dir / STUDY_MD, lambda tmp: tmp.write_text(body + "\n"))
    return body


@dataclass(frozen=True)
class StudyRequest:
    """A study as asked: a study space to search (the options' space too), or a finished run
    folder to tabulate again."""

    target: Path
    options: SearchOptions


def study(request: StudyRequest) -> int:
    """Search the study space (unless given a run folder), then tabulate it: exit 0, or 130
    when the search was interrupted."""
    from nas.search.engine import check_options

    check_options(request.options)  # a 0 is refused even where no search runs
    code = 0
    if request.target.is_dir():
        run_dir = request.target
    else:
        from nas.search.engine import search
        from nas.search.report import summarize

        outcome = search(request.options)
        print(summarize(outcome, f"study {request.target}"))
        run_dir, code = outcome.run_dir, 130 if outcome.interrupted else 0
    print(write_study(run_dir))
    print(f"Written: {run_dir / STUDY_CSV}, {run_dir / STUDY_MD}, {run_dir / STUDY_JSON}")
    return code
