"""Racing on a replayed fixture: it stops when the leader separates, when the budget is spent
and at the seed cap; it resumes from JSON; early-stopped points race when within the noise."""

import math

import pytest

from nas.answer.race import Candidate, Race, Request
from nas.answer.settings import VerifyError, VerifySettings
from nas.answer.stats import Noise

# seed -> accuracy: what the pipeline measures when it trains a point with that seed
CLEAR = {"A": {0: 0.700, 1: 0.705, 2: 0.695, 3: 0.700},
         "B": {0: 0.660, 1: 0.655, 2: 0.665, 3: 0.660},
         "C": {0: 0.500, 1: 0.505, 2: 0.495, 3: 0.500}}
EVEN = {"A": {0: 0.700, 1: 0.690, 2: 0.710, 3: 0.700, 4: 0.70},
        "B": {0: 0.695, 1: 0.705, 2: 0.690, 3: 0.700, 4: 0.70}}


def front_end(measured, cost_s=10.0):
    """Seed 0 of every point, as a single-seed search would leave them."""
    return [Candidate(k, (v[0],), (0,), cost_s) for k, v in measured.items()]


def replay(race, measured, rounds=100):
    """Run every request the race makes, round by round, from the measured table."""
    asked = []
    for _ in range(rounds):
        requests = race.next_requests()
        if not requests:
            break
        asked += requests
        for r in requests:
            race.record(r.key, r.seed, measured[r.key][r.seed], 10.0)
    return asked


def test_it_stops_once_the_leader_separates_and_trains_nothing_it_need_not():
    race = Race(VerifySettings(), front_end(CLEAR))
    first = race.next_requests()
    # no point has two seeds: nothing is separable, so the two best get a second seed
    assert first == [Request("A", 1, 10.0), Request("B", 1, 10.0)]
    asked = replay(race, CLEAR)
    standing = race.standing()
    # pooled noise from A and B: SS = 2 · 2 · .0025^2, df 2, sd .0035; A − B = .045 ± 2.92 ·
    # .0035: separated; C is .2 below: separated without ever training it again
    assert standing.stop == "resolved" and standing.tier.members == ("A",)
    assert [r.key for r in asked] == ["A", "B"] and standing.runs == 2
    assert standing.spent_core_s == 20.0


def test_it_stops_when_the_budget_is_spent():
    settings = VerifySettings(budget_core_s=35.0)
    race = Race(settings, front_end(EVEN))
    asked = replay(race, EVEN)
    standing = race.standing()
    assert standing.stop == "budget"
    assert standing.spent_core_s <= settings.budget_core_s < standing.spent_core_s + 10.0
    assert len(asked) == 3 and set(standing.tier.members) == {"A", "B"}


def test_it_stops_at_the_seed_cap_with_the_pair_unresolved():
    race = Race(VerifySettings(max_seeds_per_point=4), front_end(EVEN))
    replay(race, EVEN)
    standing = race.standing()
    assert standing.stop == "cap" and set(standing.tier.members) == {"A", "B"}
    assert {k: len(v) for k, v in race.samples().items()} == {"A": 4, "B": 4}


def test_a_resumed_race_asks_for_the_same_runs_and_ends_the_same():
    settings = VerifySettings(budget_core_s=55.0)
    race = Race(settings, front_end(EVEN))
    replay(race, EVEN, rounds=2)
    resumed = Race.from_json(race.to_json())
    assert resumed.next_requests() == race.next_requests() != []
    assert resumed.to_json() == race.to_json()
    # the same state rebuilt from the runs (a pipeline replaying its trials.csv rows)
    rebuilt = Race(settings, front_end(EVEN))
    for run in race.runs:
        assert rebuilt.record(run.key, run.seed, run.acc, run.seconds)
        assert not rebuilt.record(run.key, run.seed, run.acc, run.seconds)  # a replay: no-op
    assert rebuilt.next_requests() == race.next_requests()
    replay(race, EVEN)
    replay(resumed, EVEN)
    assert race.standing() == resumed.standing()


def test_pending_runs_are_not_asked_again_and_count_against_the_budget():
    race = Race(VerifySettings(budget_core_s=15.0), front_end(EVEN))
    first = race.next_requests()
    assert first == [Request("A", 1, 10.0)]  # only one fits in 15 core-seconds
    assert race.next_requests(pending=first) == []
    assert race.standing(pending=first).stop is None  # waiting on the run, not stopped


def test_fresh_seeds_skip_every_front_end_seed():
    race = Race(VerifySettings(), [Candidate("A", (0.7, 0.71), (3, 4), 1.0),
                                   Candidate("B", (0.7,), (0,), 1.0)])
    assert {r.key: r.seed for r in race.next_requests()} == {"A": 5, "B": 5}
    with pytest.raises(ValueError, match="front-end seed"):
        race.record("B", 0, 0.7, 1.0)


def test_early_stopped_points_race_only_within_the_epoch_k_noise():
    known = VerifySettings(noise="prior", noise_prior_sd=0.005, noise_prior_df=math.inf)
    leader = Candidate("A", (0.70,), (0,), 10.0, curve=(0.35, 0.52, 0.62, 0.66, 0.70))
    near = Candidate("D", (), (0,), 10.0, curve=(0.34, 0.50, 0.60), stopped=True)
    far = Candidate("E", (), (0,), 10.0, curve=(0.10, 0.20, 0.30), stopped=True)
    # at epoch 3: D is .02 behind with sd .02 a run (gap sd .028): within the noise; E is .32
    race = Race(known, [leader, near, far], {3: Noise(0.02, 50.0, "epoch 3")})
    assert race.standing().eligible == ("D",)
    assert {r.key for r in race.next_requests()} == {"A", "D"}
    race.record("D", 1, 0.60, 10.0)  # once trained, D is judged by its full-budget result
    assert race.standing().eligible == () and race.standing().tier.members == ("A",)
    never = VerifySettings(noise="prior", noise_prior_sd=0.005, noise_prior_df=math.inf,
                           early="never")
    assert Race(never, [leader, near, far]).standing().eligible == ()
    with pytest.raises(ValueError, match="epoch-k noise"):
        Race(known, [leader, near])


@pytest.mark.parametrize(("field", "value"), [
    ("confidence", 1.0), ("confidence", 0.2), ("max_seeds_per_point", 1),
    ("budget_core_s", -1.0), ("budget_core_s", math.nan), ("noise", "bench"),
    ("noise_prior_sd", -0.1), ("noise_prior_df", -1.0), ("early", "always")])
def test_settings_errors_name_the_field(field, value):
    with pytest.raises(VerifyError, match=rf"^\[verify\]\.{field}: "):
        VerifySettings(**{field: value}).check()


def test_settings_round_trip_and_refuse_unknown_keys():
    settings = VerifySettings(confidence=0.95, noise_prior_sd=0.017, noise_prior_df=72.0)
    assert VerifySettings.from_dict(settings.to_dict()) == settings
    assert VerifySettings.from_dict({"budget_core_s": "inf"}).budget_core_s == math.inf
    with pytest.raises(VerifyError, match=r"\[verify\]\.seeds: unknown"):
        VerifySettings.from_dict({"seeds": 3})
    with pytest.raises(VerifyError, match=r"\[verify\]\.max_seeds_per_point: 2.5"):
        VerifySettings.from_dict({"max_seeds_per_point": 2.5})
    with pytest.raises(VerifyError, match=r"\[verify\]\.noise: 'prior' needs"):
        VerifySettings(noise="prior").check()
