"""The run folder as one contract: every file and folder name in it, the trials table's columns,
the record a trial reports, the one atomic writer, reading trials and checkpoints, the ranking.

Every other module spells a run folder's names through this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
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
LOCK = ".search.lock"  # flock'ed by the one search using the folder; records its PID and start
RETRAIN_CSV = "retrain.csv"  # one row per retrained (trial, seed, epochs)
RETRAIN_JSON = "retrain.json"  # retrain settings and per-trial mean/std
STUDY_CSV = "study.csv"  # one row per level of a study, seeds pooled
STUDY_MD = "study.md"  # the same table in Markdown, with the compute used
STUDY_JSON = "study.json"  # study.csv's own metadata: which columns label its rows
BENCH_MD = "bench.md"  # what a bench says: tables by choice, rank agreement, the front
BENCH_HTML = "bench.html"  # its figure: accuracy along the spectrum
BENCH_PNG = "bench.png"  # the same figure as an image, where headless Chromium is installed
SUPERNET_CSV = "supernet.csv"  # one row per point scored by the supernet (or a proxy), best first
SUPERNET_JSON = "supernet.json"  # the supernet's settings, training curve and compute
SUPERNET_DIR = "supernet"  # the supernet's checkpoint (MODEL_FILE, STATE_FILE)
# A checkpoint folder (Ray's checkpoint_<n>/ inside trial_<id>/).
MODEL_FILE = "model.pt"  # the state dict alone: loadable with torch.load(weights_only=True)
STATE_FILE = "trainer.pt"  # optimizer, schedule and RNG state, to resume an interrupted trial
GENOTYPE_FILE = "genotype.json"
CHECKPOINT_METRICS = "metrics.json"  # epoch, val_acc and the other files' sizes (a manifest)
_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]+")  # Ray's ids; anything else never becomes a path
_CHECKPOINT = re.compile(r"checkpoint_[0-9]+")
STAGE_COLUMN = re.compile(r"^s(\d+)_(\w+)$")

STATUSES = ("completed", "stopped", "diverged", "infeasible", "failed")
SCORED = ("completed", "stopped")  # statuses whose accuracy is a real measurement
FULL_BUDGET = "completed"  # trained every epoch of the budget: the results ranked first
# In optuna.db: each Optuna trial's user attributes name its Ray trial and its table status.
OPTUNA_TRIAL_ATTR = "trial_id"
OPTUNA_STATUS_ATTR = "status"
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
    precision: str  # what it trained, validated and measured latency in: fp32 / bf16
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
    status: str  # running / diverged / infeasible (trial_status decides completed / stopped)
    reason: str  # why a trial is diverged or infeasible
    simulated_s: float  # a bench replay: the measured training seconds it replayed
    replay_seed: int  # a bench replay: the bench seed whose curve it replayed
    clock_s: float  # a bench replay: time.time() of the report (Ray's timestamp is whole s)
    constraints: dict[str, float]  # [constraints] limit -> cost / limit - 1 (<= 0: within it)
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


def trial_status(result: TrialReport, max_epochs: int, error: bool) -> str:
    """completed / stopped (by ASHA) / diverged / infeasible / failed: the one rule the trials
    table and the Optuna study both follow."""
    if error or not result.get("training_iteration"):
        return "failed"  # raised, or never reported anything
    if result.get("status") in ("diverged", "infeasible"):
        return result["status"]
    return "completed" if len(result.get("curve") or ()) >= max_epochs else "stopped"


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


def open_run_dir(run_dir: Path, resume: bool, prepared: bool = False) -> RunLock:
    """Lock the run folder before anything is written to it: a new run needs a new (or empty)
    folder, a resumed one the old folder; a folder another search holds is refused. A prepared
    folder (a caller's, e.g. a supernet's, whose files it keeps) is used as it is."""
    parent = run_dir.parent
    if parent.exists() and not parent.is_dir():
        raise RunFolderError(f"--results-dir {parent}: exists and is not a folder")
    nothing = f"{run_dir}: nothing to resume (no {META}); start it without --resume"
    if resume and not run_dir.is_dir():
        raise RunFolderError(nothing)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"{run_dir}: cannot create the run folder ({describe_os_error(err)})"
                             ) from None
    lock = RunLock.acquire(run_dir, created)  # a folder in use is refused before all else
    if resume and not (run_dir / META).is_file():
        lock.release()
        raise RunFolderError(nothing)
    if not resume and not prepared and any(p.name != LOCK for p in run_dir.iterdir()):
        lock.release()
        raise RunFolderError(f"{run_dir}: already holds a run; pass --resume to continue it,"
                             " or --name for a new one (results are never overwritten)")
    lock.fresh = not resume and not prepared  # empty until now: a failed start may empty it
    return lock


def describe_os_error(err: OSError) -> str:
    """'No space left on device: results/x/meta.json' rather than a traceback."""
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


_HELD: dict[str, Path] = {}  # the run folder this process holds the lock of (at most one)
_HEARTBEAT_S = 2.0  # how often a holder stamps the lock file: a killed search's last sign of life


class RunLock:
    """An exclusive flock on a run folder's lock file, held for a whole search. The kernel
    drops it when the process ends, however it ends (SIGKILL included); the file records the
    holder's PID and start time, and a heartbeat (its mtime) so a killed search's time counts."""

    def __init__(self, run_dir: Path, fd: int, created: bool, carried_s: float):
        self.run_dir, self._fd, self.created, self.carried_s = run_dir, fd, created, carried_s
        self.fresh = False  # a new run's folder (absent or empty when locked)
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        _HELD["run_dir"] = run_dir

    @classmethod
    def acquire(cls, run_dir: Path, created: bool = False) -> RunLock:
        """Take the lock or raise RunFolderError naming the search that holds it."""
        path = run_dir / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunFolderError(f"{path}: cannot open the run folder's lock"
                                 f" ({describe_os_error(err)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_record(fd)
            os.close(fd)
            raise RunFolderError(
                f"{run_dir}: in use by another search (PID {holder.get('pid', '?')}, started"
                f" {holder.get('started', '?')}); wait for it to end, or choose another --name"
            ) from None
        previous, last_beat = _lock_record(fd), os.fstat(fd).st_mtime
        carried = float(previous.get("carried_s", 0.0))
        if "started_unix" in previous:  # its holder died without recording its time
            carried += max(0.0, last_beat - float(previous["started_unix"]))
        lock = cls(run_dir, fd, created, carried)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        lock._record({"pid": os.getpid(), "started": started, "started_unix": time.time(),
                      "carried_s": round(carried, 1)})
        return lock

    def _record(self, data: dict[str, Any]) -> None:
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        if data:
            os.write(self._fd, json.dumps(data).encode())

    def _heartbeat(self) -> None:
        while not self._stop.wait(_HEARTBEAT_S):
            try:
                os.utime(self._fd)
            except OSError:
                return  # closed meanwhile

    def time_recorded(self) -> None:
        """This search's time (and any carried from a killed one) is now in meta.json."""
        self.carried_s = 0.0

    def discard(self) -> None:
        """A new run whose start failed before any trial ran: remove the folder it created, or
        empty the empty folder it was given, so the same command can simply be run again."""
        if not self.fresh:
            return
        if self.created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            for child in self.run_dir.iterdir():
                if child.name != LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.fresh = False

    def release(self) -> None:
        """Hand the folder back; time not yet in meta.json stays recorded for the next search."""
        if self._fd < 0:
            return
        self._stop.set()
        try:
            if self.run_dir.is_dir():
                self._record({"carried_s": round(self.carried_s, 1)} if self.carried_s else {})
        except OSError:
            pass  # e.g. the disk is full: the next start counts from the stale record instead
        os.close(self._fd)
        self._fd = -1
        _HELD.pop("run_dir", None)


def _lock_record(fd: int) -> dict[str, Any]:
    """What a lock file says about its (last) holder; {} when empty or unreadable."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def held_run_dir() -> Path:
    """The run folder this process holds the lock of: where a restored Ray experiment's
    driver-side objects (the monitor, the Optuna storage) write, wherever it was first run."""
    if "run_dir" not in _HELD:
        raise RunFolderError("no run folder is locked by this process")
    return _HELD["run_dir"]


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
    """What the run ran on: the CPU's model and the flags that bound its training speed too."""
    import torch

    from nas.machine import cpu_info, native_bf16_cpu, relevant_cpu_flags

    model, flags = cpu_info()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": model,
        "cpu_flags": relevant_cpu_flags(flags),
        "cpu_native_bf16": native_bf16_cpu(flags or None),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


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
    atomic_write(run_dir / space_file.name, lambda tmp: shutil.copyfile(space_file, tmp))
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
    """The run's meta.json; a missing or damaged one is a one-line RunFolderError."""
    path = run_dir / META
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir}: not a search run folder (no {META})") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFolderError(f"{path}: unreadable or not valid JSON ({_first_line(err)})"
                             ) from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _first_line(err: BaseException) -> str:
    """An exception's message on one line (pandas and sqlite messages can span several)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def warn_study_db(run_dir: Path, action: str) -> None:
    """One line on stderr when optuna.db is damaged, for the actions that do not need it
    (export, retrain, dashboard read trials.csv and the checkpoints): say so, go on."""
    problem = check_study_db(run_dir)
    if problem:
        print(f"run_search.py {action}: warning: {problem}; only --resume and the parameter"
              f" importances need it (trials.csv and the checkpoints are used)", file=sys.stderr)


def check_study_db(run_dir: Path) -> str | None:
    """Why the run folder's optuna.db cannot be read (truncated, not SQLite, damaged), or None
    when it reads or is absent (a study kept elsewhere with --storage)."""
    path = run_dir / OPTUNA_DB
    if not path.is_file():
        return None
    try:
        # read-only: a running search may be writing it
        with contextlib.closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as err:
        return f"{path}: not a readable SQLite database ({_first_line(err)})"
    if verdict != "ok":
        return f"{path}: damaged SQLite database ({verdict})"
    if "studies" not in tables:
        return f"{path}: holds no Optuna study (no 'studies' table)"
    return None


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


def checkpoint_metrics(folder: Path) -> dict[str, Any] | None:
    """A checkpoint folder's metrics.json when every file it lists has the listed size; None
    for a folder still being copied, or one a full disk or a crash left incomplete."""
    try:
        metrics = json.loads((folder / CHECKPOINT_METRICS).read_text())
        float(metrics["val_acc"])
        # checkpoints from before the manifest: a non-empty model.pt is the best evidence
        sizes = metrics.get("files") or {MODEL_FILE: max(1, (folder / MODEL_FILE).stat().st_size)}
        if not all((folder / name).stat().st_size == size for name, size in sizes.items()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return metrics


def prune_incomplete_checkpoints(trial_dir: Path) -> list[Path]:
    """Remove a trial's incomplete checkpoint folders (Ray copies checkpoints file by file, so
    a full disk leaves empty files); return what was removed."""
    removed = []
    for folder in trial_dir.glob("checkpoint_*"):
        if folder.is_dir() and checkpoint_metrics(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def best_checkpoint(trial_dir: Path) -> Path | None:
    """The trial's kept, complete checkpoint folder with the highest validation accuracy."""
    scored = []
    for folder in trial_dir.glob("checkpoint_*"):
        metrics = checkpoint_metrics(folder)
        if metrics is not None:
            scored.append((float(metrics["val_acc"]), folder.name, folder))
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


def measured_on(row: dict[str, Any] | pd.Series) -> str:
    """'cpu, fp32': where a trial trained and timed its latency, and in what precision."""
    parts = (text(row.get("device")), text(row.get("precision")))
    return ", ".join(part for part in parts if part) or "?"


def scored_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Trials with a finite accuracy from a real measurement (not failed, not diverged)."""
    if table.empty or "best_val_acc" not in table:
        return table.iloc[:0]
    accuracy = pd.to_numeric(table["best_val_acc"], errors="coerce")
    return table[table["status"].isin(SCORED) & np.isfinite(accuracy)]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Scored trials best first: one rule for the dashboard, the report, export and retrain.

    Full-budget (completed) trials come first, by their best epoch's accuracy, then the ones
    ASHA stopped early (a 1-epoch accuracy never outranks a full-budget one). Ties go to the
    cheaper architecture (fewer MACs), then the smaller trial id, so every view names the same
    trial.
    """
    scored = scored_rows(table)
    if scored.empty:
        return scored
    keys = pd.DataFrame({
        "early": scored["status"] != FULL_BUDGET,
        "acc": -pd.to_numeric(scored["best_val_acc"]),
        "macs": pd.to_numeric(scored.get("macs", pd.Series(0, index=scored.index)),
                              errors="coerce").fillna(0),
        "id": scored["trial_id"].astype(str)}, index=scored.index)
    return scored.loc[keys.sort_values(["early", "acc", "macs", "id"], kind="stable").index]


def best_trial(table: pd.DataFrame) -> pd.Series | None:
    """The first of ranked(table), or None when no trial is scored."""
    order = ranked(table)
    return None if order.empty else order.iloc[0]


def fidelity_text(best: pd.Series | dict, max_epochs: Any) -> str:
    """Which fidelity a best trial's accuracy is at: 'full budget, best of 6 epochs'."""
    epochs = int(best["epochs"])
    if best["status"] == FULL_BUDGET:
        return f"full budget, best of {epochs} epochs"
    return (f"best of {epochs} epochs: stopped early, no trial has finished the full budget"
            f" of {max_epochs} epochs yet")


def read_table(run_dir: Path) -> pd.DataFrame:
    """The trials table (empty when no trial has finished yet)."""
    return read_csv(run_dir / TABLE)


def read_csv(path: Path) -> pd.DataFrame:
    """A results CSV that may be missing or still empty; trial ids stay text; a damaged one
    (truncated, not CSV) is a one-line RunFolderError naming it."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        # Ray's ids are 8 hex digits: '00012345' or '1e234567' must not become numbers
        return pd.read_csv(path, dtype={"trial_id": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise RunFolderError(f"{path}: not a readable CSV table ({_first_line(err)})") from None


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
    """The trial's recorded best checkpoint folder, resolved inside this run folder.

    The table records it relative to the run folder (ray/trial_<id>/checkpoint_<n>; runs from
    before that recorded an absolute path): looking under run_dir first keeps a moved or
    copied run folder pointing at its own checkpoints.
    """
    recorded, trial_id = text(row.get("checkpoint")), str(row["trial_id"])
    if not recorded:
        return None
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else []
    if _TRIAL_ID.fullmatch(trial_id) and _CHECKPOINT.fullmatch(path.name):
        candidates.insert(0, run_dir / checkpoint_path(trial_id, path.name))
    return next((c for c in candidates if (c / MODEL_FILE).is_file()), None)


def checkpoint_path(trial_id: str, checkpoint: str) -> Path:
    """Where a trial's checkpoint folder is, relative to the run folder (what the table says)."""
    return Path(EXPERIMENT) / trial_dirname(trial_id) / checkpoint
