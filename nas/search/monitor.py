"""Driver-side Ray Tune callback: progress lines and the trials table, refreshed per trial."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback

from nas.arch.genotype import Genotype
from nas.latency.settings import is_latency_column
from nas.results.checkpoints import best_checkpoint, prune_incomplete_checkpoints
from nas.results.errors import DISK_FULL
from nas.results.lock import held_run_dir
from nas.results.names import (
    EXPERIMENT,
    HELD_OUT_ACC,
    SEED,
    SEED_HELD_OUT_ACCS,
    checkpoint_path,
    trial_dirname,
)
from nas.results.ranking import best_trial
from nas.results.records import TrialReport, trial_status
from nas.results.store import mirror_best
from nas.results.table import genotype_columns, read_table, write_table
from nas.results.values import number, text
from nas.search.cluster import node_death_window_s

LOST_ACTOR = "The actor"  # how Ray's errors for a trial whose process or node died begin

CARRIED = ("arch_key", "reference", SEED, "params", "macs", "latency_ms", "device",
           "precision", "reason", "node_id")
CURVES = ("seed_curves", "seed_loss_curves", "epoch_s_curve")  # kept as JSON text
REPLAYED = ("simulated_s", "replay_seed", "clock_s")  # only a bench replay's trials report these


def trial_row(trial, max_epochs: int, error: str | None) -> dict[str, Any]:
    """One tidy row: ids, status, every genotype field, cost, latency (and each [latency]
    setting's), curve, timing."""
    result: TrialReport = trial.last_result or {}
    trial_dir = held_run_dir() / EXPERIMENT / trial_dirname(trial.trial_id)
    if Path(trial.path).resolve() != trial_dir.resolve():  # written to --storage-path: copy
        mirror_best(trial.storage.storage_filesystem, trial.path, trial_dir)
    prune_incomplete_checkpoints(trial_dir)
    best = best_checkpoint(trial_dir)
    curve = [float(v) for v in result.get("curve") or []]
    row: dict[str, Any] = {"trial_id": trial.trial_id,
                           "status": trial_status(result, max_epochs, error is not None),
                           "error": error or ""}
    row |= {key: result.get(key) for key in CARRIED}
    row |= {key: value for key, value in result.items() if is_latency_column(key)}  # [latency]
    row |= {
        "best_val_acc": max(curve) if curve else None,
        "final_val_acc": curve[-1] if curve else None,
        "val_acc_std": result.get("val_acc_std"),
        "seed_val_accs": json.dumps([float(v) for v in result.get("seed_val_accs") or []]),
        "epochs": len(curve),
        "curve": json.dumps(curve),
        **{key: json.dumps(result.get(key) or []) for key in CURVES},
        "wall_s": round(result.get("time_total_s", 0.0), 3),
        "started_at": round(result["timestamp"] - result.get("time_total_s", 0.0), 3)
        if "timestamp" in result else None,
        "ended_at": result.get("timestamp"),
        "train_s": round(result.get("train_s", 0.0), 3),
        "checkpoint": str(checkpoint_path(trial.trial_id, best.name)) if best else "",
    }
    row |= {key: result[key] for key in REPLAYED if key in result}
    if HELD_OUT_ACC in result:  # [verify].held_out: scored after the full budget
        row[HELD_OUT_ACC] = result[HELD_OUT_ACC]
        row[SEED_HELD_OUT_ACCS] = json.dumps([float(v) for v in result[SEED_HELD_OUT_ACCS]])
    row |= {f"param_{k}": v for k, v in sorted(trial.config.items()) if k != SEED}
    if result.get("genotype"):
        row |= genotype_columns(Genotype.from_json(result["genotype"]))
        row["genotype"] = result["genotype"]
    return row


class SearchMonitor(Callback):
    """Writes a table row and a progress line as each trial ends."""

    def __init__(self, total: int, max_epochs: int):
        # Ray pickles its callbacks with the experiment state: plain data only, and no path,
        # since a resumed copy of the run folder must write into itself (held_run_dir).
        self.total, self.max_epochs = total, max_epochs
        self.start = time.monotonic()
        self.rows: dict[str, dict[str, Any]] = {}

    def setup(self, **info):
        """At the start of every fit, a resumed one too: earlier rows survive untouched."""
        self.start = time.monotonic()
        previous = read_table(held_run_dir())
        self.rows = {str(r["trial_id"]): r for r in previous.to_dict("records")}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trials, trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trials, trial, _error_text(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        """A failed trial Ray restarts (once) from its last checkpoint, on any node with room."""
        elapsed = int(time.monotonic() - self.start)
        error = _error_text(trial)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {trial.trial_id} failed: {error[:160]};"
              " retrying it from its last checkpoint", flush=True)
        if error.startswith(LOST_ACTOR):
            # its process or its node died: until Ray's health checks mark a dead node dead,
            # the retry could be placed there again (this hook runs before it is scheduled)
            time.sleep(node_death_window_s())

    def _finish(self, trials, trial, error: str | None) -> None:
        # the finishing trial still reads RUNNING inside these hooks
        running = sum(t.status == "RUNNING" and t is not trial for t in trials)
        row = trial_row(trial, self.max_epochs, error)
        self.rows[trial.trial_id] = row
        write_table(held_run_dir(), self.rows.values())
        print(self.progress_line(row, running), flush=True)
        if error and any(mark in error for mark in DISK_FULL):
            # every further trial would fail the same way: end the search (the engine says so)
            raise OSError(errno.ENOSPC, "No space left on device", str(trial.path))

    def best(self) -> dict[str, Any] | None:
        """The finished trial with the highest best validation accuracy."""
        best = best_trial(pd.DataFrame(list(self.rows.values())))
        return None if best is None else best.to_dict()

    def progress_line(self, row: dict[str, Any], running: int) -> str:
        """'[ 2:31] 7/24 done, 2 running | best 0.512 (...) | 5f3a stopped after 1 epoch'."""
        elapsed = int(time.monotonic() - self.start)
        best = self.best()
        # int(): a table with a failed row (no params) reads params back as floats
        best_text = (f"best val_acc {best['best_val_acc']:.3f} (pos {best['spectrum_position']:.2f}"
                     f", {int(best['params']):,} params)" if best else "no accuracy yet")
        acc = number(row.get("best_val_acc"))
        last = f"{row['trial_id']} {row['status']} after {row['epochs']} epochs"
        last += f", val_acc {acc:.3f}" if acc is not None else ""
        why = text(row.get("error")) or text(row.get("reason"))
        last += f": {why[:160]}" if why and row["status"] != "infeasible" else ""
        return (f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {len(self.rows)}/{self.total} done,"
                f" {running} running | {best_text} | {last}")


def _error_text(trial) -> str:
    """The last line of the trial's error (the exception message)."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).exists():
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()[:500]
    return "failed (no error file)"
