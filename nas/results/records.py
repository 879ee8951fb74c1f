"""What a trial reports after each epoch, and the one rule that gives a trial its status."""

from __future__ import annotations

from typing import TypedDict


class TrialReport(TypedDict, total=False):
    """What a trial reports to Ray Tune after each epoch (and once if it never trains); the
    monitor turns the last one into a trials-table row."""

    arch_key: str  # Genotype.key(): equal architectures, equal keys
    genotype: str  # Genotype.to_json()
    params: int
    macs: int
    reference: str  # the reference point's name, '' for a sampled point
    seed: int  # the first seed it trained with (repeats use the next ones)
    device: str  # where it trained: cpu / cuda
    node_id: str  # the Ray node it ran on (nodes of one machine share an address)
    precision: str  # what it trained, validated and measured latency in: fp32 / bf16
    latency_ms: float  # measured forward time of one image
    # and the [latency] section's columns, named by nas.latency.settings: latency_ms@RUNTIME:bN
    # and latency_p90_ms@RUNTIME:bN per setting (NaN: not measured), latency_runtimes (JSON)
    val_acc: float  # this epoch's validation accuracy, mean over the seeds
    val_acc_std: float  # ... its sample std over the seeds (0 for one seed)
    seed_val_accs: list[float]  # ... per seed
    held_out_acc: float  # after the last epoch of the full budget, [verify].held_out's images
    # (only when it is > 0), mean over the seeds
    seed_held_out_accs: list[float]  # ... per seed
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


def trial_status(result: TrialReport, max_epochs: int, error: bool) -> str:
    """completed / stopped (by ASHA) / diverged / infeasible / failed: the one rule the trials
    table and the Optuna study both follow."""
    if error or not result.get("training_iteration"):
        return "failed"  # raised, or never reported anything
    if result.get("status") in ("diverged", "infeasible"):
        return result["status"]
    return "completed" if len(result.get("curve") or ()) >= max_epochs else "stopped"
