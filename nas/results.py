"""The run folder: meta.json, a copy of the space file and the trials table, written atomically."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.arch.genotype import Genotype, Stage

TABLE = "trials.csv"
PARQUET = "trials.parquet"
META = "meta.json"
STATUSES = ("completed", "stopped", "diverged", "infeasible", "failed")
SCORED = ("completed", "stopped")  # statuses whose accuracy is a real measurement
PACKAGES = ("spectrum-nas", "torch", "optuna", "ray", "numpy", "pandas")
CHECKPOINT_METRICS = "metrics.json"  # epoch and val_acc of a checkpoint folder


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, or missing on resume)."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """The process umask (reading it means setting it; put it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    """Atomically write pretty JSON."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs a new folder; a resumed one needs the old folder."""
    if resume and not (run_dir / META).exists():
        raise RunFolderError(f"{run_dir}: nothing to resume (no {META}); start it without --resume")
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise RunFolderError(f"{run_dir}: already holds a run; pass --resume to continue it,"
                             " or --name for a new one (results are never overwritten)")
    run_dir.mkdir(parents=True, exist_ok=True)


def git_sha(repo: Path) -> str | None:
    """HEAD's SHA, with '-dirty' when tracked files differ; None outside a git checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def hardware() -> dict[str, Any]:
    """What the run ran on."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _cpu_model() -> str | None:
    """The CPU's marketing name where the OS tells it (Linux), else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the results."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_meta(run_dir: Path, space_file: Path, extra: dict[str, Any]) -> None:
    """meta.json (versions, git SHA, hardware, settings) and a copy of the space file."""
    shutil.copyfile(space_file, run_dir / space_file.name)
    repo = Path(__file__).resolve().parents[1]
    write_json(run_dir / META, {"versions": versions(), "git_sha": git_sha(repo),
                                "hardware": hardware(), "space_file": space_file.name, **extra})


def update_meta(run_dir: Path, changes: dict[str, Any]) -> None:
    """Set some of meta.json's fields (atomically, the others kept)."""
    write_json(run_dir / META, read_meta(run_dir) | changes)


def add_search_time(run_dir: Path, seconds: float) -> None:
    """Add a (possibly resumed) search's wall time to meta.json's search_s."""
    previous = float(read_meta(run_dir).get("search_s", 0.0))
    update_meta(run_dir, {"search_s": round(previous + seconds, 1)})


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's meta.json."""
    return json.loads((run_dir / META).read_text())


def genotype_columns(arch: Genotype) -> dict[str, Any]:
    """Every genotype field as a flat column: s1_kind, s1_groups, ..., plus positions."""
    row: dict[str, Any] = {"spectrum_position": round(arch.spectrum_position(), 4),
                           "stages": len(arch.stages), "resolution": arch.resolution}
    for i, stage in enumerate(arch.stages, start=1):
        for field in dataclasses.fields(Stage):
            row[f"s{i}_{field.name}"] = getattr(stage, field.name)
        row[f"s{i}_position"] = round(stage.spectrum_position(), 4)
    return row


def write_table(run_dir: Path, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Write trials.csv and trials.parquet atomically, one row per trial."""
    frame = pd.DataFrame(list(rows))
    if not frame.empty:
        frame = frame.sort_values("trial_id", kind="stable").reset_index(drop=True)
    atomic_write(run_dir / TABLE, lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(run_dir / PARQUET, lambda tmp: _typed(frame).to_parquet(tmp, index=False))
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: a choice list like [1, 2, "depthwise"] becomes text
    (the CSV reads it back that way too)."""
    mixed = [c for c in frame.columns if frame[c].dtype == object
             and len({type(v) for v in frame[c].dropna()}) > 1]
    return frame.astype(dict.fromkeys(mixed, "string")) if mixed else frame


def best_checkpoint(trial_dir: Path) -> Path | None:
    """The trial's kept checkpoint folder with the highest validation accuracy."""
    scored = []
    for folder in trial_dir.glob("checkpoint_*"):
        try:
            scored.append((json.loads((folder / CHECKPOINT_METRICS).read_text())["val_acc"],
                           folder.name, folder))
        except (OSError, ValueError, KeyError):
            continue  # a checkpoint being written or removed right now
    return max(scored)[2] if scored else None


def number(value: Any) -> float | None:
    """A finite float, or None for missing / NaN / text."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def text(value: Any) -> str:
    """'' for missing values (NaN in a read-back table)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def scored_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Trials with a finite accuracy from a real measurement (not failed, not diverged)."""
    if table.empty or "best_val_acc" not in table:
        return table.iloc[:0]
    accuracy = pd.to_numeric(table["best_val_acc"], errors="coerce")
    return table[table["status"].isin(SCORED) & np.isfinite(accuracy)]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Scored trials best first: one rule for the dashboard, the report, export and retrain.

    Ties go to the cheaper architecture (fewer MACs), then the smaller trial id, so every view
    names the same trial.
    """
    scored = scored_rows(table)
    if scored.empty:
        return scored
    keys = pd.DataFrame({
        "acc": -pd.to_numeric(scored["best_val_acc"]),
        "macs": pd.to_numeric(scored.get("macs", pd.Series(0, index=scored.index)),
                              errors="coerce").fillna(0),
        "id": scored["trial_id"].astype(str)}, index=scored.index)
    return scored.loc[keys.sort_values(["acc", "macs", "id"], kind="stable").index]


def best_trial(table: pd.DataFrame) -> pd.Series | None:
    """The first of ranked(table), or None when no trial is scored."""
    order = ranked(table)
    return None if order.empty else order.iloc[0]


def read_table(run_dir: Path) -> pd.DataFrame:
    """The trials table (empty when no trial has finished yet)."""
    return read_csv(run_dir / TABLE)


def read_csv(path: Path) -> pd.DataFrame:
    """A results CSV that may be missing or still empty; trial ids stay text."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        # Ray's ids are 8 hex digits: '00012345' or '1e234567' must not become numbers
        return pd.read_csv(path, dtype={"trial_id": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
