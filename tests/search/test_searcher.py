"""The searcher against the installed Ray Tune and Optuna: every way a trial ends, told as the
Optuna state it is; the sampler settings a space resolves to."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from nas.search.samplers import build_sampler, sampler_settings
from nas.search.searcher import StudySearcher
from nas.search.space.load import load_space
from nas.search.space.points import DefineByRun
from tests.searchkit import write_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = "search_spaces/cifar_spectrum.toml"


def searcher(directions=("maximize",), metrics=("val_acc",), max_epochs=3) -> StudySearcher:
    space = load_space(SPACE)
    study = optuna.create_study(directions=list(directions),
                                sampler=build_sampler(space, sampler_settings(space, 0)))
    return StudySearcher(study, DefineByRun(space), list(metrics), max_epochs)


def told(s: StudySearcher, trial_id: str) -> optuna.trial.FrozenTrial:
    (trial,) = [t for t in s.study.trials if t.user_attrs.get("trial_id") == trial_id]
    return trial


def epochs(curve: list[float]) -> dict[int, float]:
    return dict(enumerate(curve, start=1))


def test_every_ending_is_told_as_its_optuna_state():
    s = searcher()
    assert isinstance(s, Searcher)
    for trial_id in "abcdef":
        config = s.suggest(trial_id)
        assert config and set(config) <= {d for d in s.study.trials[-1].params}
    # as Ray passes results to searchers: flattened (constraints/<limit>)
    s.on_trial_result("a", {"curve": [0.2], "training_iteration": 1, "val_acc": 0.2})
    s.on_trial_complete("a", {"curve": [0.2, 0.3, 0.35], "training_iteration": 3,
                              "status": "running", "val_acc": 0.35,
                              "constraints/max_params": -0.4})
    # ASHA stopped b after one epoch: Ray never passed that result to on_trial_result
    s.on_trial_complete("b", {"curve": [0.15], "training_iteration": 1, "status": "running",
                              "val_acc": 0.15, "constraints/max_params": -0.1})
    s.on_trial_complete("c", {"training_iteration": 1, "status": "infeasible",
                              "val_acc": math.nan, "constraints/max_params": 0.25})
    s.on_trial_complete("d", {"curve": [0.1, 0.12], "training_iteration": 3,
                              "status": "diverged", "val_acc": math.nan})
    s.on_trial_complete("e", {"curve": [], "training_iteration": 1, "status": "diverged",
                              "val_acc": math.nan})
    s.on_trial_complete("f", None, error=True)

    a, b, c, d, e, f = (told(s, t) for t in "abcdef")
    assert (a.state, a.value, a.intermediate_values) == (TrialState.COMPLETE, 0.35,
                                                         epochs([0.2, 0.3, 0.35]))
    assert a.constraints == {"max_params": -0.4}
    assert (b.state, b.value, b.intermediate_values) == (TrialState.PRUNED, 0.15, {1: 0.15})
    assert (c.state, c.value, c.intermediate_values) == (TrialState.PRUNED, None, {})
    assert c.constraints == {"max_params": 0.25}  # infeasible: its constraint, no accuracy
    assert (d.state, d.value, d.intermediate_values) == (TrialState.PRUNED, 0.12,
                                                         epochs([0.1, 0.12]))
    assert (e.state, e.value) == (TrialState.FAIL, None)  # diverged before any epoch ended
    assert (f.state, f.value) == (TrialState.FAIL, None)
    assert [t.user_attrs["status"] for t in (a, b, c, d, e, f)] == [
        "completed", "stopped", "infeasible", "diverged", "diverged", "failed"]
    s.on_trial_complete("a", {"curve": [0.9], "training_iteration": 3})  # a repeated notice
    assert told(s, "a").value == 0.35


def test_tpe_reads_the_constraint_and_keeps_sampling():
    s = searcher()
    for i in range(10):  # past n_startup_trials: TPE models every trial, infeasible ones too
        s.suggest(str(i))
        result = ({"training_iteration": 1, "status": "infeasible", "val_acc": math.nan,
                   "constraints/max_params": 0.5} if i % 2 else
                  {"curve": [0.1 * i, 0.1 * i, 0.1 * i], "training_iteration": 3,
                   "status": "running", "val_acc": 0.1 * i, "constraints/max_params": -0.5})
        s.on_trial_complete(str(i), result)
    infeasible = [t for t in s.study.trials if t.constraints.get("max_params", 0) > 0]
    assert len(infeasible) == 5 and all(t.value is None for t in infeasible)
    assert s.suggest("next")  # a constrained study still samples


def test_two_objectives_complete_with_accuracy_and_cost():
    s = searcher(("maximize", "minimize"), ("val_acc", "macs"))
    s.suggest("a")
    s.suggest("b")
    s.on_trial_complete("a", {"curve": [0.2, 0.3, 0.4], "training_iteration": 3,
                              "status": "running", "val_acc": 0.4, "macs": 1000})
    s.on_trial_complete("b", {"curve": [0.2], "training_iteration": 1, "status": "running",
                              "val_acc": 0.2, "macs": 500})
    assert told(s, "a").state == TrialState.COMPLETE and told(s, "a").values == [0.4, 1000]
    # Optuna keeps no intermediate values for two objectives: pruned, without a value
    assert told(s, "b").state == TrialState.PRUNED and told(s, "b").values is None


def test_searcher_state_survives_a_checkpoint(tmp_path):
    s = searcher()
    s.suggest("a")
    s.on_trial_result("a", {"curve": [0.2], "training_iteration": 1})
    s.save(str(tmp_path / "searcher.pkl"))
    again = searcher()
    again.restore(str(tmp_path / "searcher.pkl"))
    again.on_trial_complete("a", {"curve": [0.2, 0.25], "training_iteration": 2,
                                  "status": "running"})
    # the restored searcher tells the same storage: the in-memory study came along
    assert told(again, "a").intermediate_values == {1: 0.2, 2: 0.25}
    assert told(again, "a").state == TrialState.PRUNED
    assert pickle.loads(pickle.dumps(again.define)) == again.define


def test_a_restored_searcher_fails_the_trials_of_its_run_no_ray_trial_holds(tmp_path):
    space = load_space(SPACE)
    study = optuna.create_study()
    s = StudySearcher(study, DefineByRun(space), ["val_acc"], 3, run="mine")
    other = StudySearcher(study, DefineByRun(space), ["val_acc"], 3, run="theirs")
    s.suggest("held")  # Ray resumes this one
    s.suggest("lost")  # its tell never reached the database
    other.suggest("x")  # another driver's, still training
    s.trials.pop("lost")
    s.save(str(tmp_path / "searcher.pkl"))
    s.restore(str(tmp_path / "searcher.pkl"))  # an in-memory study comes back as a copy
    states = {t.user_attrs["trial_id"]: t.state for t in s.study.trials}
    assert states == {"held": TrialState.RUNNING, "lost": TrialState.FAIL,
                      "x": TrialState.RUNNING}


def test_sampler_settings_default_to_the_old_fixed_values_and_are_settable(tmp_path):
    space = load_space(SPACE)
    assert sampler_settings(space, 3) == {"name": "tpe", "seed": 3, "n_startup_trials": 8,
                                          "multivariate": True, "group": False}
    small = write_space(tmp_path, '[search]\ntrials = 5\n', "small.toml")
    assert sampler_settings(load_space(small), 0)["n_startup_trials"] == 5
    custom = write_space(tmp_path, "[search]\nn_startup_trials = 2\nmultivariate = true\n"
                         "group = true\n", "custom.toml")
    settings = sampler_settings(load_space(custom), 0)
    assert (settings["n_startup_trials"], settings["group"]) == (2, True)
    with pytest.warns(optuna.exceptions.ExperimentalWarning):  # Optuna's own note on group
        assert isinstance(build_sampler(load_space(custom), settings), optuna.samplers.TPESampler)
    nsga = load_space("search_spaces/imagenet_subset.toml")
    assert sampler_settings(nsga, 0) == {"name": "nsga2", "seed": 0, "population_size": 8}
    sized = write_space(tmp_path, '[objectives]\nmetrics = ["val_acc", "macs"]\n[search]\n'
                        'sampler = "nsga2"\npopulation_size = 4\n', "sized.toml")
    assert sampler_settings(load_space(sized), 0)["population_size"] == 4
    assert isinstance(build_sampler(load_space(sized), sampler_settings(load_space(sized), 0)),
                      optuna.samplers.NSGAIISampler)


def test_stopped_as_complete_tells_a_stopped_trial_its_last_accuracy():
    space = load_space(SPACE)
    study = optuna.create_study(sampler=build_sampler(space, sampler_settings(space, 0)))
    s = StudySearcher(study, DefineByRun(space), ["val_acc"], 3, stopped_as="complete")
    for trial_id in "abc":
        s.suggest(trial_id)
    s.on_trial_complete("a", {"curve": [0.15], "training_iteration": 1, "status": "running"})
    s.on_trial_complete("b", {"curve": [0.2, 0.3, 0.35], "training_iteration": 3,
                              "status": "running"})
    s.on_trial_complete("c", {"curve": [0.1, 0.12], "training_iteration": 2,
                              "status": "diverged"})
    a, b, c = (told(s, t) for t in "abc")
    assert (a.state, a.value, a.user_attrs["status"]) == (TrialState.COMPLETE, 0.15, "stopped")
    assert (b.state, b.value) == (TrialState.COMPLETE, 0.35)
    assert c.state == TrialState.PRUNED  # only ASHA's stops change: a diverged trial is not one


def test_stopped_as_is_a_checked_search_setting(tmp_path):
    text = Path(SPACE).read_text().replace("[search]\n", '[search]\nstopped_as = "complete"\n', 1)
    assert load_space(write_space(tmp_path, text)).search.stopped_as == "complete"
    assert load_space(SPACE).search.stopped_as == "pruned"
    bad = text.replace('stopped_as = "complete"', 'stopped_as = "finished"')
    with pytest.raises(ValueError, match="stopped_as"):
        load_space(write_space(tmp_path, bad, "bad.toml"))


def test_a_failed_trial_a_resume_ran_again_gets_its_result_as_a_new_trial():
    space = load_space(SPACE)
    study = optuna.create_study()
    s = StudySearcher(study, DefineByRun(space), ["val_acc"], 3, run="mine")
    other = StudySearcher(study, DefineByRun(space), ["val_acc"], 3, run="theirs")
    params = s.suggest("lost")  # its node died; Ray gave it up
    other.suggest("lost")  # another driver's trial of the same Ray id (ids are per driver)
    s.on_trial_complete("lost", None, error=True)
    other.on_trial_complete("lost", None, error=True)
    done = {"curve": [0.2, 0.3, 0.4], "training_iteration": 3, "status": "running",
            "constraints/max_params": -0.5}
    s.on_trial_complete("lost", done)  # --resume ran it again (resume_errored)
    mine = [t for t in study.trials if t.user_attrs.get("run") == "mine"]
    assert [t.state for t in mine] == [TrialState.FAIL, TrialState.COMPLETE]  # the FAIL stays
    again = mine[1]
    assert again.params == params and again.value == 0.4
    assert again.intermediate_values == epochs([0.2, 0.3, 0.4])
    assert again.constraints == {"max_params": -0.5}
    assert again.user_attrs["status"] == "completed" and again.user_attrs["trial_id"] == "lost"
    s.on_trial_complete("lost", done)  # a repeated notice adds nothing
    s.on_trial_complete("lost", None, error=True)  # nor does failing again
    assert len(study.trials) == 3
    theirs = [t for t in study.trials if t.user_attrs.get("run") == "theirs"]
    assert [t.state for t in theirs] == [TrialState.FAIL]  # the other driver's untouched


class Screen:
    """A paper check: the first `infeasible` proposals break a limit; a point's key is its
    params, so a repeated proposal is a repeated point."""

    def __init__(self, infeasible: int = 0):
        self.left = infeasible

    def __call__(self, params):
        self.left -= 1
        return repr(sorted(params.items())), ({"max_params": 0.5} if self.left >= 0 else None)


def screened(s: StudySearcher) -> list[optuna.trial.FrozenTrial]:
    return [t for t in s.study.trials if "skipped" in t.user_attrs]


def test_infeasible_proposals_are_told_on_paper_and_cost_no_trial():
    s = searcher()
    s.check = Screen(infeasible=3)
    config = s.suggest("a")
    assert config and len(s.study.trials) == 4
    skipped = screened(s)
    assert len(skipped) == 3 and all(
        t.state == TrialState.PRUNED and t.constraints == {"max_params": 0.5}
        and t.user_attrs["status"] == "infeasible" and "trial_id" not in t.user_attrs
        for t in skipped)
    assert told(s, "a").state == TrialState.RUNNING  # the one Ray trains


def test_a_repeated_point_is_told_what_it_scored_and_not_trained_again():
    s = searcher()
    s.check = Screen()
    config = s.suggest("a")
    s.on_trial_complete("a", {"curve": [0.2, 0.3, 0.4], "training_iteration": 3,
                              "status": "running", "val_acc": 0.4,
                              "arch_key": repr(sorted(config.items()))})
    s.study.enqueue_trial(config)  # the same point proposed again (as a sampler may)
    again = s.suggest("b")
    (repeat,) = screened(s)
    assert repeat.params == config and again != config
    assert (repeat.state, repeat.value, repeat.user_attrs["status"]) == (
        TrialState.COMPLETE, 0.4, "repeat")
    assert repeat.intermediate_values == {1: 0.2, 2: 0.3, 3: 0.4}


def test_a_space_of_nothing_but_infeasible_points_still_ends():
    from nas.search.searcher import MAX_SKIPS

    s = searcher()
    s.check = Screen(infeasible=10 ** 6)
    assert s.suggest("a")  # taken as it is after MAX_SKIPS screened proposals
    assert len(screened(s)) == MAX_SKIPS


def test_a_point_in_training_is_not_proposed_twice_at_once():
    s = searcher()
    s.check = Screen()
    config = s.suggest("a")  # in training
    s.study.enqueue_trial(config)
    again = s.suggest("b")
    (twin,) = screened(s)
    assert twin.params == config and again != config
    assert (twin.state, twin.user_attrs["status"]) == (TrialState.FAIL, "repeat")
    s.on_trial_complete("a", None, error=True)  # a failed point is no longer in training
    s.study.enqueue_trial(config)
    assert s.suggest("c") == config
