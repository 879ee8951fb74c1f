"""Racing verification as pure decisions: which points still race the leader, which seeds to
run next within the seed cap and the core-second budget, and when to stop; resumable as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nas.answer.settings import VerifySettings
from nas.answer.stats import Noise, interval, pooled_noise
from nas.answer.tier import Tier, tier

FORMAT = "nas.answer.race/1"
STOPS = ("resolved", "budget", "cap")  # every pair separated / budget spent / seed cap reached


@dataclass(frozen=True)
class Candidate:
    """What the front end measured of one point."""

    key: str
    accs: tuple[float, ...] = ()  # full-budget accuracy of each front-end seed
    seeds: tuple[int, ...] = ()  # the seeds the front end trained it with
    cost_s: float = 0.0  # core-seconds of one full-budget training (the estimate before any)
    curve: tuple[float, ...] = ()  # front-end validation accuracy per epoch (mean over seeds)
    stopped: bool = False  # ASHA stopped it: no full-budget accuracy, its curve ends at epoch k
    max_seeds: int | None = None  # a cap below [verify]'s (a replayed bench has only so many)


@dataclass(frozen=True)
class Request:
    """Train point `key` once more at the full budget with `seed` (costs about cost_s)."""

    key: str
    seed: int
    cost_s: float


@dataclass(frozen=True)
class Run:
    """One recorded verification run."""

    key: str
    seed: int
    acc: float
    seconds: float  # core-seconds it took


@dataclass(frozen=True)
class Standing:
    """Where the race stands: the tier over the points with a full-budget result, the stopped
    points racing without one yet, what it spent, and why it stopped (None: still running)."""

    tier: Tier
    eligible: tuple[str, ...]
    spent_core_s: float
    runs: int
    stop: str | None

    @property
    def leader(self) -> str:
        return self.tier.leader


class Race:
    """A front end's candidates and the verification runs recorded so far; every decision is a
    function of these (so the JSON form resumes exactly)."""

    def __init__(self, settings: VerifySettings, candidates: Iterable[Candidate],
                 early_noise: Mapping[int, Noise] | None = None,
                 runs: Iterable[Run] = ()) -> None:
        self.settings = settings.check()
        self.candidates = {c.key: c for c in candidates}
        self.early_noise = dict(early_noise or {})
        self.runs: list[Run] = []
        _check_candidates(self.settings, self.candidates, self.early_noise)
        # fresh seeds: above every seed the front end used, so no run repeats one
        self.seed_base = 1 + max((s for c in self.candidates.values() for s in c.seeds),
                                 default=-1)
        for run in runs:
            self.record(run.key, run.seed, run.acc, run.seconds)

    # --- what the data says -----------------------------------------------------------------

    def samples(self) -> dict[str, list[float]]:
        """Every point's full-budget accuracies: the front end's, then the recorded runs'."""
        found = {k: list(c.accs) for k, c in self.candidates.items()}
        for run in self.runs:
            found[run.key].append(run.acc)
        return {k: v for k, v in found.items() if v}

    def noise(self) -> Noise:
        """The seed noise the decisions use: [verify].noise's source."""
        s = self.settings
        prior = Noise(s.noise_prior_sd, s.noise_prior_df, "prior")
        if s.noise == "prior":
            return prior
        return pooled_noise(self.samples(), prior if s.noise_prior_df > 0 else None)

    def spent_core_s(self) -> float:
        return sum(r.seconds for r in self.runs)

    def standing(self, pending: Iterable[Request] = ()) -> Standing:
        """The tier now and why the race stopped (None while requests remain)."""
        stop = self._decide(list(pending))[1]
        samples = self.samples()
        t = tier(samples, self.noise(), self.settings.confidence)
        return Standing(t, self._eligible(t), self.spent_core_s(), len(self.runs), stop)

    # --- what to do next --------------------------------------------------------------------

    def next_requests(self, pending: Iterable[Request] = ()) -> list[Request]:
        """The runs to start now: at most one per point, none for a point with a run pending
        (`pending`: requests started but not recorded; their cost counts as spent). The same
        state gives the same requests, so a resumed race asks again for what was lost."""
        return self._decide(list(pending))[0]

    def record(self, key: str, seed: int, acc: float, seconds: float) -> bool:
        """Add a finished run; False (and nothing changes) when (key, seed) is already in, as
        when a resumed pipeline replays its rows."""
        if key not in self.candidates:
            raise ValueError(f"record: {key!r} is not a candidate of this race")
        if not (math.isfinite(acc) and 0.0 <= acc <= 1.0):
            raise ValueError(f"record: {key} seed {seed}: accuracy {acc} must lie in [0, 1]")
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"record: {key} seed {seed}: seconds {seconds} must be >= 0")
        if seed in self.candidates[key].seeds:
            raise ValueError(f"record: {key} seed {seed} is a front-end seed, not a fresh one")
        if any(r.key == key and r.seed == seed for r in self.runs):
            return False
        self.runs.append(Run(key, int(seed), float(acc), float(seconds)))
        return True

    def cost_s(self, key: str) -> float:
        """One more full-budget run of `key`: the mean of its recorded runs, else the front
        end's estimate."""
        mine = [r.seconds for r in self.runs if r.key == key]
        return statistics.fmean(mine) if mine else self.candidates[key].cost_s

    def _seeds(self, key: str, pending: list[Request]) -> set[int]:
        return ({*self.candidates[key].seeds} | {r.seed for r in self.runs if r.key == key}
                | {r.seed for r in pending if r.key == key})

    def _room(self, key: str, pending: list[Request]) -> int:
        """Seeds the cap still allows `key` (front end, recorded and pending counted)."""
        cap = self.settings.max_seeds_per_point
        own = self.candidates[key].max_seeds
        cap = min(cap, own) if own is not None else cap
        full = len(self.candidates[key].accs) + sum(r.key == key for r in self.runs)
        return cap - full - sum(r.key == key for r in pending)

    def _eligible(self, t: Tier) -> tuple[str, ...]:
        """ASHA-stopped points with no full-budget result whose epoch-k accuracy is not
        separated from the leader's at epoch k (within the epoch-k noise), best first."""
        if self.settings.early == "never":
            return ()
        gaps = {}
        for key, c in self.candidates.items():
            if not c.stopped or key in t.means:
                continue
            k = len(c.curve)
            reference = self._at(t.leader, k)
            if reference is None:  # nothing measured at epoch k to judge it against
                continue
            noise = self.early_noise[k]
            se = noise.sd * math.sqrt(1 / max(1, len(self.candidates[t.leader].seeds))
                                      + 1 / max(1, len(c.seeds)))
            gap = interval(reference - c.curve[-1], se, noise.df, self.settings.confidence)
            if not gap.low > 0:
                gaps[key] = gap.estimate
        return tuple(sorted(gaps, key=lambda k: (gaps[k], k)))

    def _at(self, leader: str, epoch: int) -> float | None:
        """The leader's front-end accuracy at `epoch`, else the best completed curve's."""
        curve = self.candidates[leader].curve
        if len(curve) >= epoch:
            return curve[epoch - 1]
        return max((c.curve[epoch - 1] for c in self.candidates.values()
                    if not c.stopped and len(c.curve) >= epoch), default=None)

    def _decide(self, pending: list[Request]) -> tuple[list[Request], str | None]:
        """The requests to make now and, when there are none, why the race stopped."""
        samples = self.samples()
        noise = self.noise()
        t = tier(samples, noise, self.settings.confidence)
        racing = [*t.unresolved, *self._eligible(t)]
        if not racing:
            return [], "resolved"
        busy = {r.key for r in pending}
        counts = Counter({k: len(v) for k, v in samples.items()}) + Counter(r.key for r in pending)
        leader = t.leader
        if not noise.known:
            # nothing can be separated before the noise is measured: a second seed of the two
            # best points measures it where it matters
            wanted = [leader, *t.unresolved[:1]]
        else:
            leader_full = self._room(leader, pending) <= 0
            # the leader takes part in every pair, so it gets a seed each round (up to the cap);
            # the most threatening contenders go first, each catching up with the leader
            wanted = [leader] + [k for k in sorted(t.unresolved, key=lambda k: t.gaps[k].p_positive)
                                 if counts[k] <= counts[leader] or leader_full]
            wanted += self._eligible(t)
        wanted = [k for k in wanted if k not in busy and self._room(k, pending) > 0]
        if not wanted:
            return [], None if pending else "cap"
        left = (self.settings.budget_core_s - self.spent_core_s()
                - sum(r.cost_s for r in pending))
        requests = []
        for key in wanted:
            cost = self.cost_s(key)
            if cost <= left:
                left -= cost
                seeds = self._seeds(key, pending)
                seed = next(s for s in range(self.seed_base, self.seed_base + len(seeds) + 1)
                            if s not in seeds)
                requests.append(Request(key, seed, cost))
        if not requests:
            return [], None if pending else "budget"
        return requests, None

    # --- JSON -------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The whole state: settings, candidates, epoch-k noise and every recorded run."""
        return json.dumps({
            "format": FORMAT,
            "settings": self.settings.to_dict(),
            "candidates": [dataclasses.asdict(c) for c in self.candidates.values()],
            "early_noise": {str(k): n.to_dict() for k, n in sorted(self.early_noise.items())},
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Race:
        """A race from to_json's text (a ValueError for anything else)."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a race state (format must be {FORMAT!r})")
        candidates = [Candidate(c["key"], tuple(c["accs"]), tuple(c["seeds"]), c["cost_s"],
                                tuple(c["curve"]), c["stopped"], c["max_seeds"])
                      for c in data["candidates"]]
        early = {int(k): Noise.from_dict(v) for k, v in data["early_noise"].items()}
        return cls(VerifySettings.from_dict(data["settings"]), candidates, early,
                   [Run(**r) for r in data["runs"]])


def _check_candidates(settings: VerifySettings, candidates: dict[str, Candidate],
                      early_noise: dict[int, Noise]) -> None:
    """One-line errors for candidates a race cannot use."""
    if not any(c.accs for c in candidates.values()):
        raise ValueError("race: no candidate has a full-budget accuracy")
    for c in candidates.values():
        if len(c.seeds) < len(c.accs):
            raise ValueError(f"race: {c.key}: {len(c.accs)} accuracies but {len(c.seeds)} seeds")
        if c.stopped and c.accs:
            raise ValueError(f"race: {c.key}: stopped early, yet has full-budget accuracies")
        if c.stopped and settings.early == "noise":
            if not c.curve:
                raise ValueError(f"race: {c.key}: stopped early with no curve")
            if len(c.curve) not in early_noise:
                raise ValueError(f"race: {c.key}: stopped at epoch {len(c.curve)}, and no"
                                 " epoch-k noise was given for it (early_noise)")
