"""The tier's latency measured again, together, once nothing else trains: the trials' figures
were each taken beside the other trials' training, and on a loaded machine their spread was
the load's (1.8 to 10.6 ms among tier points of one run), not the networks'."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

from nas.arch.genotype import Genotype
from nas.arch.model import build
from nas.latency.measure import time_runs
from nas.latency.runtimes import Unavailable, runner
from nas.results.atomic import atomic_write
from nas.train.device import cpu_threads

ROUNDS, REPEATS, WARMUP = 7, 10, 5  # each point's median: the lowest of its round medians


def retime(table: pd.DataFrame, keys: Iterable[str], threads: int = 1) -> dict[str, float]:
    """Batch-1 inference ms of each point (its trials' genotype and precision, channels_last
    as the trials timed it), the points interleaved round by round so a burst of other work
    meets all alike; a point without a genotype, timed on another device than the CPU by its
    trials, or in bf16 where this CPU has none native, is left out (its trials' figure
    stands)."""
    if "genotype" not in table:
        return {}
    runs = {}
    for key in keys:
        rows = table[(table["arch_key"] == key) & table["genotype"].notna()]
        if rows.empty or str(rows.iloc[0].get("device", "cpu")) != "cpu":
            continue
        genotype = Genotype.from_json(rows.iloc[0]["genotype"], where=f"{key}: genotype")
        runtime = "torch_bf16" if rows.iloc[0].get("precision") == "bf16" else "torch_cl"
        shape = (genotype.in_channels, genotype.resolution, genotype.resolution)
        try:
            runs[key] = runner(runtime, build(genotype).eval(), shape, threads,
                               torch.device("cpu")).make(1)
        except Unavailable:  # emulated bf16 times what no deployment runs
            continue
    if not runs:
        return {}
    with cpu_threads(threads):
        timed = time_runs(runs, WARMUP, REPEATS, ROUNDS)
    return {k: t.median_ms for k, t in timed.items() if math.isfinite(t.median_ms)}


def kept_retime(path: Path, table: pd.DataFrame, keys: Iterable[str],
                threads: int = 1) -> dict[str, float]:
    """`retime`, each point timed once per run folder: the figures are kept in `path` (JSON,
    written whole) and a later answer (a resumed run) reuses them, so it answers the same."""
    kept: dict[str, float] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
            kept = {str(k): float(v) for k, v in data.get("latency_ms", {}).items()}
        except (ValueError, TypeError, AttributeError):
            kept = {}  # unreadable: timed again and replaced
    keys = list(keys)
    missing = [k for k in keys if k not in kept]
    if missing:
        kept |= retime(table, missing, threads)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(
            {"latency_ms": kept, "threads": threads}, indent=2, sort_keys=True)))
    return {k: kept[k] for k in keys if k in kept}


def words(threads: int) -> str:
    """How the tier's latency was measured, for the answer's 'rests on' line."""
    return (f"the tier's latency re-timed together after the race (batch 1, {threads}"
            f" thread{'s' if threads != 1 else ''}, {ROUNDS} interleaved rounds)")

