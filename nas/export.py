"""`run_search.py export`: one trial as standalone PyTorch code, its trained weights, its genotype.

Which trial: `--trial ID`, or `--best` (the default) among the completed and stopped trials
that kept a checkpoint. `--objective val_acc` takes the first in the ranking the dashboard and
retrain use (full-budget trials first, by highest best_val_acc; ties to fewer MACs, then the
smaller id); `--objective params|macs|latency_ms` (or a runtime's latency the run recorded,
`latency_ms@onnxruntime:b1`, from the space's [latency]) takes the cheapest trial of the best one's
fidelity (full budget, or stopped when none finished it) whose accuracy is within `--tolerance`
of the best one. That trial is on the accuracy/cost Pareto front of those trials: a cheaper and
more accurate one would have been chosen.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from nas.arch.codegen import CLASS_NAME, CodegenError, Provenance, check_source, generate
from nas.arch.cost import cost
from nas.arch.describe import millions
from nas.arch.genotype import Genotype
from nas.arch.model import build
from nas.latency.settings import is_latency_name, latency_names
from nas.results.atomic import atomic_write
from nas.results.meta import read_meta
from nas.results.names import (
    ARTIFACTS,
    CHECKPOINT_METRICS,
    GENOTYPE_FILE,
    MODEL_FILE,
    OPTUNA_DB,
    SCORED,
    TABLE,
)
from nas.results.ranking import fidelity_text, ranked
from nas.results.store import find_checkpoint
from nas.results.study_db import warn_study_db
from nas.results.table import parse_genotype, read_trials
from nas.results.values import number, text
from nas.train.device import cpu_threads

OBJECTIVES = ("val_acc", "params", "macs", "latency_ms")
CODE_FILE = "model.py"
WEIGHTS_FILE = "weights.pt"
ONNX_FILE = "model.onnx"
TOLERANCE = 0.01  # accuracy a cheaper trial may give up (--objective other than val_acc)
MATCH_TOLERANCE = 1e-6  # the exported code runs the same ops in the same order: exact in practice


class ExportError(ValueError):
    """A trial that cannot be exported as asked; the message says why."""


# ---------------------------------------------------------------------------
# Which trial


def _describe_missing(row: dict[str, Any]) -> str:
    """Why a trial has nothing to export."""
    why = text(row.get("error")) or text(row.get("reason"))
    return f"status {row.get('status')}" + (f": {why}" if why else "")


def objectives(rows: list[dict[str, Any]]) -> list[str]:
    """What --objective may name for these trials: OBJECTIVES, then each runtime's latency
    their table records (the space's [latency] settings)."""
    recorded = dict.fromkeys(name for row in rows for name in latency_names(row))
    return [*OBJECTIVES, *recorded]


def check_objective(objective: str, rows: list[dict[str, Any]]) -> None:
    """A one-line ExportError unless `objective` is one of objectives(rows)."""
    allowed = objectives(rows)
    if objective in allowed:
        return
    why = ("this run's trials did not record it (its space's [latency] section did not"
           " configure that runtime and batch)" if is_latency_name(objective) else "unknown")
    raise ExportError(f"--objective {objective!r}: {why}; expected one of {', '.join(allowed)}")


def choose(run_dir: Path, rows: list[dict[str, Any]], trial: str | None = None,
           objective: str = "val_acc", tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The row to export: `trial`, or the best by `objective` (see the module docstring)."""
    if trial is not None:
        found = [r for r in rows if str(r["trial_id"]) == trial]
        if not found:
            ids = ", ".join(sorted(str(r["trial_id"]) for r in rows)[:12])
            raise ExportError(f"{run_dir}: no trial {trial!r} (trials: {ids})")
        if find_checkpoint(run_dir, found[0]) is None:
            raise ExportError(f"trial {trial} has no checkpoint to export"
                              f" ({_describe_missing(found[0])})")
        return found[0]
    check_objective(objective, rows)
    # completed and stopped trials only, in the ranking every view shares (results.ranking)
    scored = [r for r in ranked(pd.DataFrame(rows)).to_dict("records")
              if find_checkpoint(run_dir, r) is not None]
    if not scored:
        statuses = pd.Series([str(r.get("status")) for r in rows]).value_counts().to_dict()
        ended = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        raise ExportError(f"{run_dir}: no completed or stopped trial has a checkpoint to export"
                          f" ({ended})")
    if objective == "val_acc":
        return scored[0]
    best = number(scored[0]["best_val_acc"])
    # like with like: a 1-epoch accuracy near a full-budget one says nothing about the trial
    near = [r for r in scored if r["status"] == scored[0]["status"]
            and number(r["best_val_acc"]) >= best - tolerance
            and number(r.get(objective)) is not None]
    if not near:
        raise ExportError(f"--objective {objective}: no trial within {tolerance} of the best"
                          f" val_acc {best:.4f} records {objective}")
    return min(near, key=lambda r: (number(r[objective]), -number(r["best_val_acc"]),
                                    str(r["trial_id"])))


# ---------------------------------------------------------------------------
# Loading and checking one trial


@dataclass(frozen=True)
class Trial:
    """One trial's architecture and trained weights, checked against each other."""

    trial_id: str
    genotype: Genotype
    state: dict[str, torch.Tensor]
    model: nn.Module  # the search model with the weights loaded
    checkpoint: Path
    val_acc: float | None
    epoch: int | None


def load_trial(run_dir: Path, row: dict[str, Any]) -> Trial:
    """The row's genotype and its checkpoint's weights, loaded into the search model strictly."""
    trial_id = str(row["trial_id"])
    folder = find_checkpoint(run_dir, row)
    if folder is None:
        raise ExportError(f"trial {trial_id} has no checkpoint ({_describe_missing(row)})")
    genotype = parse_genotype(text(row.get("genotype")), f"trial {trial_id} genotype")
    try:
        saved = (folder / GENOTYPE_FILE).read_text()
    except OSError as err:
        raise ExportError(f"{folder / GENOTYPE_FILE}: cannot read ({err.strerror})") from None
    if parse_genotype(saved, str(folder / GENOTYPE_FILE)) != genotype:
        raise ExportError(f"{folder / GENOTYPE_FILE} differs from trial {trial_id}'s genotype in"
                          f" {TABLE}; refusing to guess which one the weights belong to")
    state = load_state(folder / MODEL_FILE)
    model = build(genotype)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{folder / MODEL_FILE} does not fit trial {trial_id}'s genotype: "
                          f"{' '.join(str(err).split())[:300]}") from None
    metrics = _metrics(folder)
    epoch = metrics.get("epoch")
    return Trial(trial_id, genotype, state, model.eval(), folder, number(metrics.get("val_acc")),
                 epoch if isinstance(epoch, int) else None)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors, read with weights_only=True (no arbitrary unpickling)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refusals and corrupt files come in many types
        raise ExportError(f"{path}: not a loadable state dict ({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ExportError(f"{path}: expected a state dict of named tensors")
    return state


def _metrics(folder: Path) -> dict[str, Any]:
    """The checkpoint's metrics.json ({} when unreadable: it only feeds the docstring)."""
    try:
        data = json.loads((folder / CHECKPOINT_METRICS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------
# Code: generate, format, check against the search model


def ruff_command() -> list[str] | None:
    """How to run ruff here: the module next to this Python, else ruff on PATH."""
    local = Path(sys.executable).parent / "ruff"
    if local.is_file():
        return [str(local)]
    found = shutil.which("ruff")
    return [found] if found else None


def format_source(source: str) -> tuple[str, bool]:
    """`ruff format` with its defaults (no project config); unchanged when ruff is missing."""
    command = ruff_command()
    if command is None:
        return source, False
    done = subprocess.run([*command, "format", "--isolated", "--stdin-filename", CODE_FILE, "-"],
                          input=source, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return source, False
    check_source(done.stdout)  # formatting only moves whitespace; checked all the same
    return done.stdout, True


def load_source(source: str) -> type[nn.Module]:
    """The generated class, from code that `check_source` accepted (imports torch only)."""
    namespace: dict[str, Any] = {"__name__": "spectrum_nas_export"}
    exec(compile(source, CODE_FILE, "exec"), namespace)  # our own code, checked above
    return namespace[CLASS_NAME]


def example_input(genotype: Genotype) -> torch.Tensor:
    """A fixed random batch at the genotype's input size (one image at ImageNet sizes)."""
    batch = 2 if genotype.resolution <= 64 else 1
    shape = (batch, genotype.in_channels, genotype.resolution, genotype.resolution)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def compare(source: str, trial: Trial) -> tuple[nn.Module, float]:
    """Load the weights into the generated class strictly; max |difference| to the search model."""
    net = load_source(source)().eval()
    net.load_state_dict(trial.state, strict=True)
    x = example_input(trial.genotype)
    # One thread: a correctness check, not a benchmark, and thread pools stall on busy machines.
    with cpu_threads(1), torch.inference_mode():
        diff = float((net(x) - trial.model(x)).abs().max())
    if not diff <= MATCH_TOLERANCE:
        raise ExportError(f"internal error: the generated code differs from the search model by"
                          f" {diff:.3g} (please report it with the genotype)")
    return net, diff


# ---------------------------------------------------------------------------
# The action


@dataclass(frozen=True)
class Exported:
    """What `export` wrote."""

    trial: Trial
    files: tuple[Path, ...]
    formatted: bool
    max_diff: float
    onnx_diff: float | None
    fidelity: str = ""  # which fidelity the trial's accuracy is at (results.ranking)
    artifacts: tuple[str, ...] = ()  # optuna.artifacts ids of the files, in the run's study


def outputs(out: Path, onnx: bool) -> list[Path]:
    """The files an export writes."""
    names = [CODE_FILE, WEIGHTS_FILE, GENOTYPE_FILE] + ([ONNX_FILE] if onnx else [])
    return [out / name for name in names]


def check_outputs(out: Path, onnx: bool, force: bool) -> None:
    """Refuse to overwrite earlier exports unless forced."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: exists and is not a folder")
    existing = [p.name for p in outputs(out, onnx) if p.exists()]
    if existing and not force:
        raise ExportError(f"--out {out}: already holds {', '.join(existing)}; pass --force to"
                          " overwrite, or choose another folder")


@dataclass(frozen=True)
class ExportRequest:
    """An export as asked: which run and trial (None: the best by `objective`), where to."""

    run_dir: Path
    out: Path
    trial: str | None = None
    objective: str | None = None  # None: val_acc; only without `trial`
    tolerance: float = TOLERANCE
    force: bool = False
    onnx: bool = False


def export(request: ExportRequest) -> Exported:
    """Choose, load, generate and check everything in memory; only then write the files."""
    run_dir, out, onnx, force = request.run_dir, request.out, request.onnx, request.force
    if request.trial is not None and request.objective is not None:
        raise ExportError("--objective chooses among trials; it does not go with --trial")
    if not 0 <= request.tolerance <= 1:
        raise ExportError(f"--tolerance {request.tolerance}: must be in [0, 1]")
    warn_study_db(run_dir, "export")
    check_outputs(out, onnx, force)
    if onnx:
        from nas.onnx_export import require

        require()
    row = choose(run_dir, read_trials(run_dir), request.trial, request.objective or "val_acc",
                 request.tolerance)
    loaded = load_trial(run_dir, row)
    meta = read_meta(run_dir)
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    provenance = Provenance(run=str(run_dir), trial_id=loaded.trial_id,
                            git_sha=meta.get("git_sha"), val_acc=loaded.val_acc,
                            epoch=loaded.epoch, mean=_floats(data.get("mean")),
                            std=_floats(data.get("std")))
    try:
        source, formatted = format_source(generate(loaded.genotype, provenance))
    except CodegenError as err:
        raise ExportError(f"refusing to export trial {loaded.trial_id}: {err}") from None
    net, diff = compare(source, loaded)
    check_outputs(out, onnx, force)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.contiguous() for k, v in loaded.state.items()}
    atomic_write(out / GENOTYPE_FILE, lambda p: p.write_text(loaded.genotype.to_json() + "\n"))
    atomic_write(out / WEIGHTS_FILE, lambda p: torch.save(weights, p))
    atomic_write(out / CODE_FILE, lambda p: p.write_text(source))
    onnx_diff = None
    if onnx:
        from nas.onnx_export import export_onnx

        with cpu_threads(1):
            onnx_diff = export_onnx(net, example_input(loaded.genotype), out / ONNX_FILE)
    fidelity = (fidelity_text(row, meta.get("budget", {}).get("epochs", "?"))
                if row.get("status") in SCORED else str(row.get("status")))
    from nas.search.artifacts import attach  # Optuna: imported only once the files exist

    files = tuple(outputs(out, onnx))
    return Exported(loaded, files, formatted, diff, onnx_diff, fidelity,
                    tuple(attach(run_dir, loaded.trial_id, files)))


def _floats(value: Any) -> tuple[float, ...] | None:
    """A list of numbers from meta.json as floats; None when absent or not numbers."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ExportError(f"meta.json data normalisation {value!r}: expected numbers")
    return tuple(float(v) for v in value)


def summary(done: Exported, run_dir: Path) -> str:
    """What the command prints."""
    t, c = done.trial, cost(done.trial.genotype)
    acc = f"val_acc {t.val_acc:.4f}" if t.val_acc is not None else "val_acc unknown"
    notes = ([f"epoch {t.epoch}"] if t.epoch is not None else []) + ([done.fidelity]
                                                                    if done.fidelity else [])
    at = f" ({'; '.join(notes)})" if notes else ""
    lines = [f"Exported trial {t.trial_id} of {run_dir}: {acc}{at}, {c.params:,} params,"
             f" {millions(c.macs)} MACs",
             f"  {done.files[0]}  class {CLASS_NAME}, torch only"
             + ("" if done.formatted else " (ruff not found: not formatted)"),
             f"  {done.files[1]}  {len(t.state)} tensors, load with strict=True; outputs equal"
             f" the search model's (max |diff| {done.max_diff:.1e})",
             f"  {done.files[2]}"]
    if done.onnx_diff is not None:
        lines.append(f"  {done.files[3]}  checked with onnxruntime (max |diff|"
                     f" {done.onnx_diff:.1e})")
    if done.artifacts:
        lines.append(f"  attached to the run's Optuna study as {len(done.artifacts)} artifacts"
                     f" (optuna-dashboard {run_dir / OPTUNA_DB} --artifact-dir"
                     f" {run_dir / ARTIFACTS})")
    return "\n".join(lines)
