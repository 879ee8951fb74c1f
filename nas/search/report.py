"""Text views of a space (dry run) and of a finished search (summary)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

import pandas as pd

from nas.arch.cost import cost
from nas.arch.describe import describe_arch, millions
from nas.arch.genotype import Genotype, GenotypeError
from nas.latency.settings import (
    PREFIX,
    RUNTIMES_COLUMN,
    LatencyConfig,
    is_latency_name,
    latency_names,
)
from nas.results.meta import read_meta
from nas.results.names import EXPERIMENT, META, OPTUNA_DB, PARQUET, SCORED, TABLE
from nas.results.ranking import best_trial, fidelity_text
from nas.results.values import measured_on, number, text
from nas.search.memory import MemoryShare, gib, trial_bytes
from nas.search.samplers import sampler_settings
from nas.search.space.enumerate import count_architectures
from nas.search.space.points import dimensions, genotype, sample_params, violation
from nas.search.space.types import Space
from nas.train.device import resolve_precision


def describe_space(space: Space, sample: int = 200, memory: MemoryShare | None = None) -> str:
    """What --dry-run prints: dimensions, size, cost range of a sample, reference points, and
    (given the trials' share of memory) the points whose training would not fit in it."""
    lines = [f"Space {space.name} ({space.path})",
             f"Data: {space.data.dataset}, validation {space.data.val_size}, "
             f"classes {space.data.classes or 'all'}",
             f"Macro: {len(space.macro.strides)} stages, widths {list(space.macro.widths)}, "
             f"depths {list(space.macro.depths)}, strides {list(space.macro.strides)}",
             "Dimensions:"]
    for dim in dimensions(space):
        mark = "searched" if len(dim.choices) > 1 else "fixed   "
        lines.append(f"  {mark} {dim.name:<22} {', '.join(map(str, dim.choices))}")
    lines.append(f"Distinct architectures: {count_architectures(space):,}")
    costs, feasible, archs = [], 0, []
    for params in sample_params(space, sample, seed=0):
        try:
            arch = genotype(space, params)
        except GenotypeError:
            continue
        archs.append(arch)
        costs.append(cost(arch))
        feasible += violation(space, arch) is None
    if costs:
        p = sorted(c.params for c in costs)
        m = sorted(c.macs for c in costs)
        lines.append(f"Sample of {len(costs)}: params {p[0]:,} .. {p[-1]:,} (median "
                     f"{statistics.median(p):,.0f}); MACs {millions(m[0])} .. {millions(m[-1])}"
                     f"; {feasible}/{len(costs)} within the constraints")
    if memory is not None and archs:
        lines.append(memory_line(space, archs, memory))
    lines.append("Reference points:")
    for name, params in space.references:
        arch = genotype(space, dict(params))
        c = cost(arch)
        lines.append(f"  {name:<18} {c.params:>9,} params {millions(c.macs):>7} MACs  "
                     f"position {arch.spectrum_position():.2f}")
    lines.append(latency_line(space.latency, space.objectives.metrics))
    s = space.search
    settings = ", ".join(f"{k} {v}" for k, v in sampler_settings(space, s.seed).items()
                         if k not in ("name", "seed"))
    lines.append(f"Budget: {s.trials} trials x <= {s.max_t or space.train.epochs} epochs, sampler"
                 f" {s.sampler}{f' ({settings})' if settings else ''}, repeats {s.repeats},"
                 f" concurrency {s.concurrency}, ASHA grace {s.grace_period} reduction"
                 f" {s.reduction_factor}")
    if (v := space.verify) is not None:
        cap = (f"{v.budget_core_s:,.0f} core-seconds" if math.isfinite(v.budget_core_s)
               else "no core-second cap")
        prior = (f", noise prior sd {100 * v.noise_prior_sd:.1f} pt ({v.noise_prior_df:g} df)"
                 if v.noise_prior_df else "")
        held = f", scored on {v.held_out:,} held-out images" if v.held_out else ""
        lines.append(f"Then a [verify] race at {100 * v.confidence:g} % confidence: up to"
                     f" {v.max_seeds_per_point} seeds a point, {cap}{prior}{held}"
                     " (--no-verify: none)")
    return "\n".join(lines)


def latency_line(config: LatencyConfig, objectives: tuple[str, ...] = ()) -> str:
    """What every trial times: runtimes x batches, how, and the runtimes this machine lacks."""
    from nas.latency.runtimes import unavailable  # loads onnxruntime to see that it works

    batches = ", ".join(map(str, config.batches))
    objective = [m for m in objectives if is_latency_name(m)]
    missing = [f"{r} not measured here ({why})" for r in config.runtimes
               if (why := unavailable(r))]
    return (f"Latency (CPU, {config.threads} thread{'s' if config.threads > 1 else ''},"
            f" {config.warmup} warm-up runs, {config.rounds} rounds of {config.repeats}):"
            f" {', '.join(config.runtimes)} at batch {batches}"
            + (f"; objective {objective[0]}" if objective else "")
            + "".join(f"; {m}" for m in missing))


def runtime_latencies(row: dict | pd.Series) -> str:
    """'latency per runtime (CPU, median ms): torch:b1 1.20, onnxruntime:b1 0.41', with the
    runtimes a row could not measure and why; '' for a row without [latency] columns."""
    shown = [f"{name.removeprefix(PREFIX)} {value:.2f}" for name in latency_names(row.keys())
             if (value := number(row.get(name))) is not None]
    try:
        choices = json.loads(text(row.get(RUNTIMES_COLUMN)) or "{}")
    except ValueError:
        choices = {}
    skipped = [f"{runtime} {why}" for runtime, why in sorted(choices.items())
               if str(why).startswith("not measured")]
    if not shown and not skipped:
        return ""
    return "latency per runtime (CPU, median ms): " + ", ".join(shown + skipped)


def memory_line(space: Space, sample: list[Genotype], memory: MemoryShare) -> str:
    """The largest sampled point's estimated training memory, and how many sampled and
    reference points exceed a trial's share (they would be recorded infeasible)."""
    # precision resolved once for every point, as the trials on this CPU would resolve it
    train = dataclasses.replace(space.train, device="cpu",
                                precision=resolve_precision(space.train.precision, "cpu"))
    models = space.search.repeats
    refs = [genotype(space, dict(params)) for _, params in space.references]
    needs = [trial_bytes(a, train, models) for a in sample]
    over = sum(need > memory.per_trial for need in needs)
    refs_over = sum(trial_bytes(a, train, models) > memory.per_trial for a in refs)
    largest = max(needs)
    return (f"Memory (on paper): largest sampled point ~{gib(largest)} to train; {over}/"
            f"{len(sample)} sampled and {refs_over}/{len(refs)} reference points exceed"
            f" {memory.text()}")


def summarize(outcome, action: str = "") -> str:
    """The closing report: how trials ended, the best architecture, where the results are;
    an interrupted run says how to continue it (`action`: the run_search.py words before the
    flags, e.g. 'bench' or 'study search_spaces/x.toml')."""
    table, run_dir = outcome.table, outcome.run_dir
    minutes, seconds = divmod(int(outcome.seconds), 60)
    counts = table["status"].value_counts().to_dict() if "status" in table else {}
    ended = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    head = "Search interrupted" if outcome.interrupted else "Search finished"
    lines = [f"{head} after {minutes}m{seconds:02d}s: {len(table)} trials ({ended or 'none'})"]
    best = best_trial(table)
    max_epochs = read_meta(run_dir).get("budget", {}).get("epochs", "?")
    if best is None:
        lines.append("No trial produced a validation accuracy.")
    else:
        arch = Genotype.from_json(best["genotype"])
        ref = f", reference point '{best['reference']}'" if text(best.get("reference")) else ""
        lines += [f"Best ({fidelity_text(best, max_epochs)}): trial {best['trial_id']}{ref}:"
                  f" val_acc {best['best_val_acc']:.4f}, "
                  f"{int(best['params']):,} params, {millions(best['macs'])} MACs, "
                  f"latency {best['latency_ms']:.2f} ms ({measured_on(best)})"]
        per_runtime = runtime_latencies(best)
        lines += [f"  {per_runtime}"] if per_runtime else []
        lines.append(describe_arch(arch))
    refs = reference_results(table, max_epochs)
    if refs:
        lines.append("Reference points (best epoch each): " + ", ".join(refs))
    lines.append(f"Results: {run_dir / TABLE} (+ {PARQUET}, {META}, {OPTUNA_DB},"
                 f" Ray experiment in {run_dir / EXPERIMENT})")
    if outcome.interrupted:
        lines.append(f"Resume with: {resume_command(run_dir, action)}")
    return "\n".join(lines)


def resume_command(run_dir: Path, action: str = "") -> str:
    """The command that continues the run in `run_dir`."""
    words = ["python run_search.py", action, f"--name {run_dir.name}",
             f"--results-dir {run_dir.parent}", "--resume"]
    return " ".join(w for w in words if w)


def reference_results(table, max_epochs: object = "?") -> list[str]:
    """'regular 0.3400' per reference point (its best run, when a sampled point repeated it: a
    full-budget one first); one ASHA stopped says so ('0.2180 (stopped after 1 of 6 epochs)'),
    one without a real accuracy shows how it ended ('separable failed'), so no reference point
    silently drops out."""
    if "reference" not in table:
        return []
    results: dict[str, tuple[int, float, str]] = {}
    for _, row in table[table["reference"].map(text).astype(bool)].iterrows():
        acc = number(row.get("best_val_acc"))
        status = str(row.get("status"))
        if status in SCORED and acc is not None:
            early = "" if status == "completed" else (f" ({status} after {int(row['epochs'])}"
                                                      f" of {max_epochs} epochs)")
            shown = (int(status == "completed"), acc, f"{acc:.4f}{early}")
        else:
            shown = (-1, -1.0, status)
        name = str(row["reference"])
        results[name] = max(results.get(name, shown), shown)
    return [f"{name} {shown}" for name, (_, _, shown) in results.items()]
