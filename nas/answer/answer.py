"""The answer assembled: the top tier with intervals and costs, the cheapest member as the
practical pick, the per-factor effects at one fidelity, the words, and what it all cost."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from nas.answer.data import Cost, PointData, points_at, run_cost
from nas.answer.effects import FactorEffect, effects_of
from nas.answer.stats import Interval, Noise, pooled_noise
from nas.answer.tier import cheapest, tier
from nas.answer.words import recommend

PICK_BY = ("latency_ms", "macs", "params")


@dataclass(frozen=True)
class TierEntry:
    """One member of the top tier."""

    key: str
    mean: Interval  # mean accuracy over its seeds
    seeds: int
    gap: Interval | None  # leader − this point; None for the leader
    params: float | None
    macs: float | None
    latency_ms: float | None
    levels: dict[str, str]  # its level of every field per stage: 's2_groups' -> '16


@dataclass(frozen=True)
class Answer:
    """Which convolution, with how much confidence, and what finding it cost."""

    leader: str
    pick: str  # the cheapest member of the tier by pick_by
    pick_by: str
    tier: tuple[TierEntry, ...]  # leader first
    points: int  # points judged at the full budget
    noise: Noise  # the seed noise the tier rests on
    confidence: float
    fidelity: int  # the full budget's epochs: what the tier compares
    effects: tuple[FactorEffect, ...]
    effects_method: str
    effects_fidelity: int
    words: tuple[str, ...]
    cost: Cost
    source: str  # the data it rests on, in words


def build_answer(table: pd.DataFrame, epochs: int, *, effects_fidelity: int | None = None,
                 method: str = "pooled", confidence: float = 0.9, noise: Noise | None = None,
                 source: str = "", cores_per_trial: float = 1.0, pick_by: str = "latency_ms",
                 base_seed: int = 0, scores: str | None = None) -> Answer:
    """The answer from a trials table (front end and verification rows alike): the tier over
    the points measured at `epochs`, effects from every trial measured at `effects_fidelity`
    (default `epochs`); `noise` (default: pooled over the table's seeds) for the tier.
    `scores`: a column of per-seed full-budget accuracies that measures the points at
    `epochs` instead of their curves (e.g. SEED_HELD_OUT_ACCS; see points_at)."""
    if pick_by not in PICK_BY:
        raise ValueError(f"answer: pick_by {pick_by!r} must be one of {', '.join(PICK_BY)}")
    points = points_at(table, epochs, base_seed=base_seed, scores=scores)
    if not points:
        raise ValueError(f"answer: no trial has a result after {epochs} epochs")
    noise = noise or pooled_noise({k: p.accs for k, p in points.items()})
    t = tier({k: p.accs for k, p in points.items()}, noise, confidence)
    fidelity = effects_fidelity or epochs
    at = points if fidelity == epochs else points_at(table, fidelity, base_seed=base_seed)
    effects_noise = noise if fidelity == epochs else None  # None: pooled at that fidelity
    effects = effects_of(at, method, effects_noise, confidence)
    entries = tuple(_entry(points[k], t.means[k], None if k == t.leader else t.gaps[k])
                    for k in t.members)
    pick = _pick(entries, t.leader, pick_by, noise)
    return Answer(t.leader, pick, pick_by, entries, len(points), noise,
                  confidence, epochs, effects, method, fidelity,
                  recommend(effects, points[t.leader].widths),
                  run_cost(table, cores_per_trial), source)


def with_latency(answer: Answer, latency: Mapping[str, float], source: str) -> Answer:
    """The answer with its tier's latency_ms measured again (nas.search.retime; a point left
    out keeps its trials' figure), the pick made again from them, and `source` for its own."""
    entries = tuple(dataclasses.replace(e, latency_ms=latency.get(e.key, e.latency_ms))
                    for e in answer.tier)
    return dataclasses.replace(answer, tier=entries, source=source, pick=_pick(
        entries, answer.leader, answer.pick_by, answer.noise))


def _pick(entries: tuple[TierEntry, ...], leader: str, pick_by: str, noise: Noise) -> str:
    """The tier's cheapest by `pick_by`."""
    # with no seed noise measured nothing is separable, so the "tier" is every point: its
    # cheapest would be advice without evidence; the leader is the honest pick
    if not noise.known:
        return leader
    return cheapest([e.key for e in entries], {e.key: _or_inf(getattr(e, pick_by))
                                               for e in entries})


def _entry(p: PointData, mean: Interval, gap: Interval | None) -> TierEntry:
    kinds = {f"s{stage}_kind": kind for stage, kind in p.kinds.items()}
    return TierEntry(p.key, mean, len(p.accs), gap, p.params, p.macs, p.latency_ms,
                     {**kinds, **p.levels})


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value
