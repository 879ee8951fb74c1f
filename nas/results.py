"""The run folder as one contract: every file and folder name in it, the trials table's columns,
the record a trial reports, the one atomic writer, reading trials and checkpoints, the ranking.

Every other module spells a run folder's names through this one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from nas.arch.genotype import Genotype, GenotypeError, Stage

# The run folder's files and folders.
TABLE = "trials.csv"  # one row per finished trial (TrialReport + the genotype's columns)
PARQUET = "trials.parquet"  # the same table, typed
META = "meta.json"  # versions, git SHA, hardware, settings, budget, search wall time
OPTUNA_DB = "optuna.db"  # the Optuna study (SQLite) unless --storage names another
EXPERIMENT = "ray"  # the Ray experiment folder, one trial_<id>/ folder per trial
RETRAIN_CSV = "retrain.csv"  # one row per retrained (trial, seed, epochs)
RETRAIN_JSON = "retrain.json"  # retrain settings and per-trial mean/std
STUDY_CSV = "study.csv"  # one row per level of a study, seeds pooled
STUDY_MD = "study.md"  # the same table in Markdown, with the compute used
STUDY_JSON = "study.json"  # study.csv's own metadata: which columns label its rows
BENCH_MD = "bench.md"  # what a bench says: tables by choice, rank agreement, the front
BENCH_HTML = "bench.html"  # its figure: accuracy along the spectrum
SUPERNET_CSV = "supernet.csv"  # one row per point scored by the supernet (or a proxy), best first
SUPERNET_JSON = "supernet.json"  # the supernet's settings, training curve and compute
SUPERNET_DIR = "supernet"  # the supernet's checkpoint (MODEL_FILE, STATE_FILE)
# A checkpoint folder (Ray's checkpoint_<n>/ inside trial_<id>/).
MODEL_FILE = "model.pt"  # the state dict alone: loadable with torch.load(weights_only=True)
STATE_FILE = "trainer.pt"  # optimizer, schedule and RNG state, to resume an interrupted trial
GENOTYPE_FILE = "genotype.json"
CHECKPOINT_METRICS = "metrics.json"  # epoch and val_acc of a checkpoint folder
_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]+")  # Ray's ids; anything else never becomes a path
_CHECKPOINT = re.compile(r"checkpoint_[0-9]+")
STAGE_COLUMN = re.compile(r"^s(\d+)_(\w+)$")

STATUSES = ("completed", "stopped", "diverged", "infeasible", "failed")
SCORED = ("completed", "stopped")  # statuses whose accuracy is a real measurement
PACKAGES = ("spectrum-nas", "torch", "optuna", "ray", "numpy", "pandas")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, missing, or holds unreadable files)."""


class TrialReport(TypedDict, total=False):
    """What a trial reports to Ray Tune after each epoch (and once if it never trains); the
    monitor turns the last one into a trials-table row."""

    arch_key: str  # Genotype.key(): equal architectures, equal keys
    genotype: str  # Genotype.to_json()
    params: int
    macs: int
    reference: str  # the reference point's name, '' for a sampled point
    device: str  # where it trained: cpu / cuda
    latency_ms: float  # measured forward time of one image
    val_acc: float  # this epoch's validation accuracy, mean over the seeds
    val_acc_std: float  # ... its sample std over the seeds (0 for one seed)
    seed_val_accs: list[float]  # ... per seed
    train_loss: float
    epoch_seconds: float
    images_per_s: float
    curve: list[float]  # val_acc of every finished epoch
    seed_curves: list[list[float]]  # ... per seed
    seed_loss_curves: list[list[float]]  # training loss of every finished epoch, per seed
    epoch_s_curve: list[float]  # training seconds of every finished epoch, summed over seeds
    train_s: float  # training seconds so far, summed over the seeds
    status: str  # running / diverged / infeasible (the monitor decides completed / stopped)
    reason: str  # why a trial is diverged or infeasible
    simulated_s: float  # a bench replay: the measured training seconds it replayed
    replay_seed: int  # a bench replay: the bench seed whose curve it replayed
    clock_s: float  # a bench replay: time.time() of the report (Ray's timestamp is whole s)
    # added by Ray Tune to every report
    training_iteration: int  # reports so far: the epoch
    time_total_s: float
    timestamp: float


# What the trials table's columns are called when shown, and how their values are written
# (pycls' metrics_info): the dashboard, study and retrain tables read it.
@dataclass(frozen=True)
class Metric:
    """One shown column: its label and how its values are written."""

    label: str
    render: Callable[[float], str]


METRICS: dict[str, Metric] = {
    "best_val_acc": Metric("best val acc", "{:.4f}".format),
    "final_val_acc": Metric("final val acc", "{:.4f}".format),
    "val_acc_mean": Metric("val acc % (mean ± std)", lambda v: f"{100 * v:.1f}"),
    "test_acc_mean": Metric("test acc (mean ± std)", "{:.4f}".format),
    "params": Metric("params", "{:,.0f}".format),
    "macs": Metric("MACs", lambda v: f"{v / 1e6:.2f}M"),
    "latency_ms": Metric("latency ms", "{:.2f}".format),
    "train_s_per_seed": Metric("train s / seed", "{:.0f}".format),
}


def shown(column: str, value: Any) -> str:
    """A value as METRICS writes its column; '-' for a missing one."""
    v = number(value)
    return "-" if v is None else METRICS[column].render(v)


def stage_column(stage: int, field: str) -> str:
    """The trials table's per-stage column: stage_column(1, "groups") == "s1_groups"."""
    return f"s{stage}_{field}"


def stage_numbers(columns: Iterable[str]) -> list[int]:
    """The stage numbers a table has columns for (from its s<i>_kind columns)."""
    found = (STAGE_COLUMN.match(str(c)) for c in columns)
    return sorted({int(m.group(1)) for m in found if m and m.group(2) == "kind"})


def trial_dirname(trial_id: str) -> str:
    """The folder Ray writes a trial into, inside the experiment folder."""
    return f"trial_{trial_id}"


def optuna_url(run_dir: Path) -> str:
    """The SQLAlchemy URL of the run folder's own Optuna study."""
    return f"sqlite:///{run_dir / OPTUNA_DB}"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over the target; on any
    failure the target is untouched and the temporary file removed (the one writer of nas)."""
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
            row[stage_column(i, field.name)] = getattr(stage, field.name)
        row[stage_column(i, "position")] = round(stage.spectrum_position(), 4)
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


def read_trials(run_dir: Path) -> list[dict[str, Any]]:
    """A finished or running search's trials as rows; a folder with none is an error."""
    if not (run_dir / META).is_file():
        raise RunFolderError(f"{run_dir}: not a search run folder (no {META})")
    table = read_table(run_dir)
    if table.empty:
        raise RunFolderError(f"{run_dir}: no finished trials yet ({TABLE} is missing or empty)")
    return table.to_dict("records")


def parse_genotype(raw: Any, where: str) -> Genotype:
    """Strictly parsed and validated: unknown keys, wrong types, unknown choices are refused."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        return Genotype.from_dict(data, where)
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{where}: not valid JSON ({err})") from None
    except GenotypeError as err:
        raise RunFolderError(f"{err} (refusing to use this genotype)") from None


def trial_checkpoint(run_dir: Path, row: dict[str, Any]) -> Path | None:
    """The trial's recorded best checkpoint folder, found inside this run folder first.

    The table stores absolute paths; looking under run_dir/ray/trial_<id>/ first keeps a
    moved or copied run folder pointing at its own checkpoints.
    """
    recorded, trial_id = text(row.get("checkpoint")), str(row["trial_id"])
    if not recorded:
        return None
    candidates = [Path(recorded)]
    if _TRIAL_ID.fullmatch(trial_id) and _CHECKPOINT.fullmatch(Path(recorded).name):
        candidates.insert(0, run_dir / EXPERIMENT / trial_dirname(trial_id) / Path(recorded).name)
    return next((c for c in candidates if (c / MODEL_FILE).is_file()), None)
