"""A trial's checkpoint folders: complete or not, the best one, the one its table row names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from nas.results.names import CHECKPOINT_METRICS, MODEL_FILE, checkpoint_path
from nas.results.values import text

_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]+")  # Ray's ids; anything else never becomes a path
_CHECKPOINT = re.compile(r"checkpoint_[0-9]+")


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


def plain_location(trial_id: str, checkpoint: str) -> bool:
    """Whether a recorded trial id and checkpoint name are Ray's (so safe to join to a path)."""
    return bool(_TRIAL_ID.fullmatch(trial_id) and _CHECKPOINT.fullmatch(checkpoint))


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
    if plain_location(trial_id, path.name):
        candidates.insert(0, run_dir / checkpoint_path(trial_id, path.name))
    return next((c for c in candidates if (c / MODEL_FILE).is_file()), None)
