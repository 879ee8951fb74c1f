"""The scored points with their predicted latency, and ranked by accuracy/latency fronts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas.arch.genotype import Genotype
from nas.latency.front import front_ranks
from nas.latency.model import DEFAULT_CONFIG, LatencyModel
from nas.latency.settings import LatencyConfig, parse

FRONT = "front"  # 1: no other scored point both scores higher and is predicted faster


def predicted_column(name: str) -> str:
    """'latency_ms@onnxruntime:b1' -> 'predicted_latency_ms@onnxruntime:b1'."""
    return f"predicted_{parse(name).name}"


def with_latency(table: pd.DataFrame, name: str, pareto: bool,
                 config: LatencyConfig | None = None, folder: Path | None = None
                 ) -> tuple[pd.DataFrame, LatencyModel]:
    """The scores table with each point's predicted latency on `name`'s runtime and batch (the
    latency table in the user's cache, its missing rows measured now) and its front; with
    `pareto`, ranked front by front (best score first within one) instead of by score alone."""
    setting = parse(name)
    model = LatencyModel(setting.runtime, setting.batch, config or DEFAULT_CONFIG, folder)
    archs = [Genotype.from_json(g) for g in table["genotype"]]
    model.ensure(archs)
    table = table.drop(columns=["rank"]).copy()
    table[predicted_column(name)] = [model.predict(a) for a in archs]
    table[FRONT] = front_ranks(table["score"].tolist(), table[predicted_column(name)].tolist())
    if pareto:
        table = table.sort_values([FRONT, "score", predicted_column(name), "arch_key"],
                                  ascending=[True, False, True, True], kind="stable")
    table = table.reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table, model
