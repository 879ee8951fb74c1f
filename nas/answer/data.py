"""A trials table read for the answer: each point's seed accuracies at one fidelity, its cost
and its level of every factor per stage; the front end's candidates for a race."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from nas.answer.race import Candidate
from nas.results.values import number, text

FIELDS = ("groups", "order", "mid_act", "residual")  # the convolution spectrum's factors
SPECTRUM_ONLY = ("order", "mid_act")  # the choices only a spectrum block makes
USABLE = ("completed", "stopped")  # rows whose curves are real measurements


@dataclass(frozen=True)
class PointData:
    """One point at one fidelity: every seed's accuracy, cost and factor levels."""

    key: str
    accs: tuple[float, ...]  # validation accuracy after `fidelity` epochs, one per seed
    seeds: tuple[int, ...]
    params: float | None
    macs: float | None
    latency_ms: float | None
    levels: dict[str, str] = field(default_factory=dict)  # 's2_groups' -> '16'
    widths: dict[int, int] = field(default_factory=dict)  # stage -> channels
    kinds: dict[int, str] = field(default_factory=dict)  # stage -> block kind, where recorded


@dataclass(frozen=True)
class Cost:
    """What a set of trials cost: core-seconds (wall seconds x cores), rows and seeds."""

    core_s: float
    trials: int
    seeds: int


def seed_curves(row: dict) -> list[list[float]]:
    """A row's per-seed validation curves (its mean curve as one seed when none is kept)."""
    raw = text(row.get("seed_curves")) or (f"[{text(row.get('curve'))}]"
                                           if text(row.get("curve")) else "[]")
    try:
        return [[float(v) for v in seed] for seed in json.loads(raw)]
    except (TypeError, ValueError) as err:
        raise ValueError(f"trial {text(row.get('trial_id')) or '?'}: seed_curves is not a JSON"
                         f" list of lists ({err})") from None


def row_seeds(row: dict, count: int, base_seed: int) -> list[int]:
    """The seeds a row trained: its `seed` column onwards if it has one (a verification run),
    else base_seed, base_seed + 1, ... (how a search's repeats are seeded)."""
    first = number(row.get("seed"))
    start = int(first) if first is not None else base_seed
    return list(range(start, start + count))


def points_at(table: pd.DataFrame, fidelity: int, fields: Sequence[str] = FIELDS,
              base_seed: int = 0, scores: str | None = None) -> dict[str, PointData]:
    """Every point with a measurement after `fidelity` epochs, its seeds pooled over its rows
    (one value per (point, seed): a repeated trial with the same seed is not new data).

    `scores` names a column of per-seed accuracies measured after the full budget (a JSON
    list, e.g. SEED_HELD_OUT_ACCS): a seed that trained `fidelity` epochs is then scored by
    it, and a row without it is no measurement at all (scores from two sets of images are
    never compared)."""
    found: dict[str, dict] = {}
    for row in table.to_dict("records"):
        if text(row.get("status")) not in USABLE:
            continue
        curves = seed_curves(row)
        key = text(row.get("arch_key"))
        point = found.setdefault(key, {"accs": {}, "row": row})
        held = row_scores(row, scores, len(curves)) if scores else None
        for i, (seed, curve) in enumerate(zip(row_seeds(row, len(curves), base_seed), curves,
                                              strict=True)):
            if len(curve) < fidelity:
                continue
            acc = curve[fidelity - 1] if held is None else held[i]
            if acc is not None and math.isfinite(acc):
                point["accs"].setdefault(seed, acc)
    return {key: _point(key, p["accs"], p["row"], fields)
            for key, p in found.items() if p["accs"]}


def row_scores(row: dict, column: str, seeds: int) -> list[float | None]:
    """A row's per-seed scores in `column` (a JSON list, one per seed); None for each seed
    where the row has none."""
    raw = text(row.get(column))
    if not raw:
        return [None] * seeds
    try:
        values = [float(v) for v in json.loads(raw)]
    except (TypeError, ValueError) as err:
        raise ValueError(f"trial {text(row.get('trial_id')) or '?'}: {column} is not a JSON"
                         f" list of numbers ({err})") from None
    if len(values) != seeds:
        raise ValueError(f"trial {text(row.get('trial_id')) or '?'}: {column} holds"
                         f" {len(values)} values for {seeds} seed(s)")
    return list(values)


def _point(key: str, accs: dict[int, float], row: dict, fields: Sequence[str]) -> PointData:
    """One point's PointData from its pooled seeds and its first row's columns."""
    levels, widths, kinds = {}, {}, {}
    for column, value in row.items():
        match = re.fullmatch(r"s(\d+)_(\w+)", str(column))
        if not match or text(value) == "":
            continue
        stage, name = int(match.group(1)), match.group(2)
        if name in fields:
            levels[column] = _level(value)
        elif name == "width" and number(value) is not None:
            widths[stage] = int(number(value))
        elif name == "kind":
            kinds[stage] = text(value)
    for stage, kind in kinds.items():
        if kind != "spectrum":  # a conv or ResNeXt block has no op order or mid activation:
            for name in SPECTRUM_ONLY:  # its table columns hold the space's defaults, not data
                levels.pop(f"s{stage}_{name}", None)
    seeds = tuple(sorted(accs))
    return PointData(key, tuple(accs[s] for s in seeds), seeds, number(row.get("params")),
                     number(row.get("macs")), number(row.get("latency_ms")), levels, widths,
                     kinds)


def _level(value) -> str:
    """A factor level as text: 16.0 (pandas reads integer columns with gaps as floats) -> '16'."""
    as_number = number(value)
    if as_number is not None and as_number == int(as_number) and not isinstance(value, bool):
        return str(int(as_number))
    return text(value)


def run_cost(table: pd.DataFrame, cores_per_trial: float = 1.0) -> Cost:
    """Core-seconds of every row (wall_s, else train_s, x cores per trial), rows, seeds."""
    core_s, seeds = 0.0, 0
    for row in table.to_dict("records"):
        seconds = number(row.get("wall_s"))
        seconds = seconds if seconds is not None else number(row.get("train_s")) or 0.0
        core_s += seconds * cores_per_trial
        seeds += len(seed_curves(row)) if text(row.get("status")) in USABLE else 0
    return Cost(core_s, len(table), seeds)


def candidates(table: pd.DataFrame, epochs: int, cores_per_trial: float = 1.0,
               base_seed: int = 0, scores: str | None = None) -> list[Candidate]:
    """A front end's trials as race candidates: completed points with their full-budget seed
    accuracies (from the `scores` column when given, see points_at), ASHA-stopped ones with
    their curve; cost_s is one seed's training core-seconds scaled to the full budget."""
    full = points_at(table, epochs, base_seed=base_seed, scores=scores)
    found: dict[str, Candidate] = {}
    for row in table.to_dict("records"):
        status, key = text(row.get("status")), text(row.get("arch_key"))
        if status not in USABLE or key in found:
            continue
        curves = seed_curves(row)
        if not curves or not curves[0]:
            continue
        mean = tuple(sum(c[e] for c in curves) / len(curves) for e in range(min(map(len, curves))))
        cost = _seed_cost(row, len(curves), len(mean), epochs) * cores_per_trial
        if key in full:
            p = full[key]
            found[key] = Candidate(key, p.accs, p.seeds, cost, mean)
        elif status == "stopped":
            seeds = tuple(row_seeds(row, len(curves), base_seed))
            found[key] = Candidate(key, (), seeds, cost, mean, stopped=True)
    return list(found.values())


def _seed_cost(row: dict, seeds: int, trained: int, epochs: int) -> float:
    """Seconds of one seed's full-budget training, from the row's per-epoch seconds."""
    raw = text(row.get("epoch_s_curve"))
    try:
        per_epoch = [float(v) for v in json.loads(raw)] if raw else []
    except (TypeError, ValueError):
        per_epoch = []
    if per_epoch:
        return sum(per_epoch) / len(per_epoch) * epochs / seeds
    seconds = number(row.get("train_s")) or number(row.get("wall_s")) or 0.0
    return seconds / max(1, trained) * epochs / seeds
