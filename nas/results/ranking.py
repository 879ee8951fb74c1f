"""The one ranking every view uses: scored trials, full budget first, and the best one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nas.results.names import FULL_BUDGET, SCORED


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
