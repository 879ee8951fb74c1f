"""A small trials table written by hand: known seed curves, costs and factor levels."""

from __future__ import annotations

import json

import pandas as pd

# point -> (groups, order, final accuracy of seeds 0 and 1, latency ms)
POINTS = {"g1-dw": ("1", "dw_pw", (0.560, 0.580), 3.0),
          "g1-pw": ("1", "pw_dw", (0.600, 0.610), 3.2),
          "g4-dw": ("4", "dw_pw", (0.570, 0.575), 2.0),
          "g4-pw": ("4", "pw_dw", (0.605, 0.615), 2.2),
          "g32-dw": ("32", "dw_pw", (0.520, 0.530), 1.0),
          "g32-pw": ("32", "pw_dw", (0.550, 0.555), 1.1)}
EPOCHS = 3


def curve(final: float) -> list[float]:
    """Three epochs rising to `final`: final - .2, final - .1, final."""
    return [round(final - 0.2, 4), round(final - 0.1, 4), final]


def row(key: str, groups: str, order: str, finals, latency: float, **extra) -> dict:
    """One trials-table row of a 2-stage space (stage 1 and 2 share their choices)."""
    curves = [curve(f) for f in finals]
    return {"trial_id": f"t-{key}", "status": "completed", "arch_key": key,
            "params": 1000 * len(key), "macs": 10_000 * int(groups), "latency_ms": latency,
            "seed_curves": json.dumps(curves), "epoch_s_curve": json.dumps([20.0] * EPOCHS),
            "wall_s": 70.0, "train_s": 60.0, "s1_width": 32, "s2_width": 64,
            "s1_groups": int(groups), "s2_groups": 2 * int(groups), "s1_order": order,
            "s2_order": order, **extra}


def trials_table() -> pd.DataFrame:
    """The six points, an ASHA-stopped one, a failed one and a verification run (seed 5)."""
    rows = [row(k, *v) for k, v in POINTS.items()]
    stopped = row("g8-pw", "8", "pw_dw", (0.45,), 2.0, status="stopped")
    stopped["seed_curves"] = json.dumps([[0.45]])
    stopped["epoch_s_curve"] = json.dumps([20.0])
    rows.append(stopped)
    rows.append({"trial_id": "t-bad", "status": "failed", "arch_key": "bad", "wall_s": 5.0})
    rows.append(row("g4-pw", "4", "pw_dw", (0.620,), 2.2, seed=5, trial_id="t-verify"))
    return pd.DataFrame(rows)
