"""The top tier: the leader and every point whose accuracy is not separable from it."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas.answer.stats import Interval, Noise, difference, mean_interval, two_sided


@dataclass(frozen=True)
class Tier:
    """The leader, the members (leader first, then by mean), and for every other point the
    interval of leader − point: a point is a member while that interval reaches zero."""

    leader: str
    members: tuple[str, ...]
    gaps: dict[str, Interval]  # leader − point, every point but the leader
    means: dict[str, Interval]  # every point's mean over its seeds
    noise: Noise
    confidence: float

    @property
    def unresolved(self) -> tuple[str, ...]:
        """The members other than the leader: the pairs still to separate."""
        return self.members[1:]


def leader_of(samples: Mapping[str, Sequence[float]]) -> str:
    """The point with the highest mean (ties: more seeds, then the smaller key)."""
    if not samples:
        raise ValueError("leader_of: no point has a result")
    return min(samples, key=lambda k: (-statistics.fmean(samples[k]), -len(samples[k]), k))


def tier(samples: Mapping[str, Sequence[float]], noise: Noise,
         confidence: float = 0.9) -> Tier:
    """The points not separable from the leader: those whose interval of leader − point at
    `confidence` reaches zero (with no noise estimate, nothing is separable)."""
    samples = {k: v for k, v in samples.items() if len(v)}
    leader = leader_of(samples)
    q = two_sided(confidence, noise.df) if noise.known else None  # one quantile for all
    gaps = {k: difference(samples[leader], v, noise, confidence, q)
            for k, v in samples.items() if k != leader}
    means = {k: mean_interval(v, noise, confidence, q) for k, v in samples.items()}
    members = [k for k, gap in gaps.items() if not gap.low > 0]
    members.sort(key=lambda k: (-means[k].estimate, k))
    return Tier(leader, (leader, *members), gaps, means, noise, confidence)


def cheapest(members: Sequence[str], costs: Mapping[str, float]) -> str:
    """The member with the lowest cost (ties: the earlier member, i.e. the better mean)."""
    return min(members, key=lambda k: (costs[k], members.index(k)))
