"""A small bench written by hand: known curves for every point of a tiny space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nas.arch.cost import cost
from nas.bench.run import bench_points
from nas.results.atomic import write_json
from nas.results.names import META, TABLE
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.train.device import resolve_precision
from tests.searchkit import BENCH, write_space


def final_of(index: int) -> tuple[float, float]:
    """The two seeds' final accuracies of the index-th point (known, so tests can check)."""
    return 0.30 + 0.05 * index, 0.32 + 0.05 * index


def write_bench(folder: Path, epochs: int = 2, space: dict[str, Any] = BENCH,
                precision: str | None = None) -> Path:
    """A bench folder: meta.json, the space copy, one completed row per point, curves rising
    linearly to final_of(i), each epoch taking (i + 1) seconds per seed; its rows trained at
    `precision` (None: what 'auto' resolves to on this machine's CPU, as a bench here would)."""
    precision = precision or resolve_precision("auto", "cpu")
    folder.mkdir(parents=True, exist_ok=True)
    space_file = write_space(folder, space, "bench.toml")
    loaded = load_space(space_file)
    rows = []
    for i, params in enumerate(bench_points(loaded)):
        arch = genotype(loaded, params)
        finals = final_of(i)
        curves = [[round(f * (e + 1) / epochs, 4) for e in range(epochs)] for f in finals]
        c = cost(arch)
        rows.append({
            "trial_id": f"t{i:04d}", "status": "completed", "epochs": epochs,
            "arch_key": arch.key(), "genotype": arch.to_json(indent=None), "params": c.params,
            "macs": c.macs, "latency_ms": 1.0 + i, "precision": precision,
            "curve": json.dumps([sum(e) / 2 for e in zip(*curves, strict=True)]),
            "seed_curves": json.dumps(curves),
            "seed_loss_curves": json.dumps([[2.0 - 0.1 * e for e in range(epochs)]] * 2),
            "epoch_s_curve": json.dumps([2.0 * (i + 1)] * epochs),
            **{f"param_{k}": v for k, v in params.items()}})
    pd.DataFrame(rows).to_csv(folder / TABLE, index=False)
    budget = {"trials": len(rows), "epochs": epochs, "concurrency": 1, "cpus_per_trial": 1.0,
              "gpus_per_trial": 0.0, "seed": loaded.search.seed, "precision": "fp32"}
    write_json(folder / META, {"space_file": space_file.name, "budget": budget})
    return folder
