"""The trials table's values read back (numbers, text, where measured) and shown (METRICS)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd


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
