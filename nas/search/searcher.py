"""A Ray Tune Searcher over an Optuna study (ask/tell) that tells each trial's real outcome.

ASHA-stopped trials are PRUNED with their curve, infeasible ones PRUNED with their constraints
and no value, diverged ones PRUNED with the epochs they finished (FAIL with none), failed ones
FAIL. Ray's own OptunaSearch tells every trial that reports a value COMPLETE, and never passes
a stopping result on, so a 1-epoch accuracy reads like a finished one. Only public APIs of both
libraries are used: Ray's Searcher interface, Optuna's ask / tell / report / set_constraint.
"""

from __future__ import annotations

import contextlib
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from nas.results.atomic import atomic_write
from nas.results.names import (
    OPTUNA_RUN_ATTR,
    OPTUNA_STATUS_ATTR,
    OPTUNA_TRIAL_ATTR,
    SEED,
)
from nas.results.names import (
    OPTUNA_SKIPPED_ATTR as SKIPPED_ATTR,
)
from nas.results.records import TrialReport, trial_status
from nas.search.study_store import retried

MAX_SKIPS = 100  # proposals screened in a row before one is taken as it is (a nearly
# infeasible space must still end)

# How each status of the trials table is told to Optuna (diverged: PRUNED only with a curve).
STATES = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED,
          "infeasible": TrialState.PRUNED, "diverged": TrialState.PRUNED,
          "failed": TrialState.FAIL}


def outcome(result: TrialReport, error: bool, max_epochs: int, metrics: list[str],
            stopped_as: str = "pruned") -> tuple[str, TrialState, list[float] | None]:
    """(table status, Optuna state, values to tell) of a finished trial's last report;
    stopped_as "complete" tells an ASHA-stopped trial COMPLETE with its last accuracy."""
    status = trial_status(result, max_epochs, error)
    curve = finite_curve(result)
    state = STATES[status]
    if status == "stopped" and stopped_as == "complete" and curve:
        state = TrialState.COMPLETE
    if status == "diverged" and not curve:
        state = TrialState.FAIL  # diverged in its first epoch: nothing was measured
    if state != TrialState.COMPLETE:
        return status, state, None  # Optuna records a pruned trial's last intermediate value
    # the last epoch's accuracy (the full budget's but for stopped_as "complete"); a second
    # objective (a cost) comes from the report
    return status, state, [curve[-1][1], *(float(result[m]) for m in metrics[1:])]


def finite_curve(result: TrialReport) -> list[tuple[int, float]]:
    """(epoch, validation accuracy) of every finished epoch, epochs counted from 1."""
    return [(epoch, float(v)) for epoch, v in enumerate(result.get("curve") or (), start=1)
            if v is not None and math.isfinite(v)]


def constraints(result: dict[str, Any]) -> dict[str, float]:
    """The report's constraint values, nested as the trial reports them or flattened by Ray
    ('constraints/max_params') as its searchers receive them."""
    nested = dict(result.get("constraints") or {})
    flat = {key.split("/", 1)[1]: value for key, value in result.items()
            if key.startswith("constraints/")}
    return nested | flat


def _enqueue(study: optuna.Study, point: dict[str, Any]) -> None:
    """Queue a point; its seed, if it names one, rides along as a user attribute (the
    define-by-run function asks only the space's parameters)."""
    params = {k: v for k, v in point.items() if k != SEED}
    study.enqueue_trial(params, user_attrs={SEED: point[SEED]} if SEED in point else None)


class StudySearcher(Searcher):
    """Ray Tune's searcher over an Optuna study (ask on suggest, tell on complete)."""

    # what a searcher pickled before these existed reads back as
    run: str | None = None
    where = "the study's storage"
    check: Callable[[dict[str, Any]], Any] | None = None
    seen: dict[str, tuple[TrialState, list[float] | None, list[tuple[int, float]]]] | None = None
    flying: dict[str, str] | None = None  # Ray trial id -> arch key of a trial in training

    def __init__(self, study: optuna.Study, define: Callable[[optuna.Trial], Any],
                 metrics: list[str], max_epochs: int, points: list[dict[str, Any]] = (),
                 stopped_as: str = "pruned", run: str | None = None,
                 where: str = "the study's storage",
                 check: Callable[[dict[str, Any]], Any] | None = None):
        modes = ["max" if d == optuna.study.StudyDirection.MAXIMIZE else "min"
                 for d in study.directions]
        one = len(metrics) == 1
        super().__init__(metric=metrics[0] if one else metrics, mode=modes[0] if one else modes)
        self.study, self.define, self.metrics, self.max_epochs = study, define, metrics, max_epochs
        self.stopped_as = stopped_as
        # a shared study holds other drivers' trials: each is tagged with its run folder, as
        # Ray's trial ids (8 random hex digits) are unique only within one driver
        self.run, self.where = run, where
        self.trials: dict[str, optuna.Trial] = {}  # Ray trial id -> its running Optuna trial
        self.reported: dict[str, int] = {}  # Ray trial id -> epochs told as intermediate values
        # proposals screened on paper (nas.search.space.points.PaperCheck): infeasible ones and
        # repeats of a point this search trained are told at once and never become Ray trials
        self.check = check
        self.seen = {}  # arch key -> (state, values, curve) of the trial that trained it
        self.flying = {}
        for point in points:  # the reference points (or a program's), asked first
            retried(lambda point=point: _enqueue(study, point), where)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return False  # the space is the define-by-run function given above

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """A new Optuna trial; the define-by-run function asks its parameters."""
        trial = retried(lambda: self._ask(trial_id), self.where)
        self.trials[trial_id] = trial
        seed = trial.user_attrs.get(SEED)  # a verification run's point trains its own seed
        return dict(trial.params) | ({} if seed is None else {SEED: seed})

    def _ask(self, trial_id: str) -> optuna.Trial:
        for attempt in range(MAX_SKIPS + 1):
            trial = self._ask_once(trial_id, screen=attempt < MAX_SKIPS)
            if trial is not None:
                return trial
        raise AssertionError("unreachable: the last attempt is never screened")

    def _ask_once(self, trial_id: str, screen: bool) -> optuna.Trial | None:
        """One proposal: None when screening told it already (infeasible or a repeat)."""
        trial = self.study.ask()
        try:
            self.define(trial)
            if screen and self._screened(trial, trial_id):
                return None
            # the run first: an outage between the two writes then leaves a trial this run's
            # resume can settle (one with only a trial id belongs to no run in a shared study)
            if self.run is not None:
                trial.set_user_attr(OPTUNA_RUN_ATTR, self.run)
            trial.set_user_attr(OPTUNA_TRIAL_ATTR, trial_id)
        except Exception:
            # asked again: this half-made trial must not stay RUNNING in the study for ever
            with contextlib.suppress(Exception):
                retried(lambda: self.study.tell(trial, state=TrialState.FAIL,
                                                skip_if_finished=True), self.where)
            raise
        return trial

    def _screened(self, trial: optuna.Trial, trial_id: str) -> bool:
        """Tell a proposal that needs no training: infeasible on paper (PRUNED with its
        constraints, as a trained-as-infeasible trial is told), a point this search trained
        already (told as that trial was: same state, value and curve; with the same seed it
        would train to the same result), or one being trained now (FAIL: nothing to tell yet;
        the sampler asks again)."""
        found = self.check(trial.params) if self.check is not None else None
        if found is None:
            return False
        key, over = found
        flying = self.flying if self.flying is not None else {}
        running = key in flying.values()
        if self.run is not None and (over is not None or running or key in (self.seen or {})):
            trial.set_user_attr(OPTUNA_RUN_ATTR, self.run)
        if running and over is None:
            trial.set_user_attr(OPTUNA_STATUS_ATTR, "repeat")
            trial.set_user_attr(SKIPPED_ATTR, f"repeats {key}, in training now: not trained"
                                " twice at once")
            self.study.tell(trial, state=TrialState.FAIL)
            return True
        if over is not None:
            for name, value in over.items():
                trial.set_constraint(name, value)
            trial.set_user_attr(OPTUNA_STATUS_ATTR, "infeasible")
            trial.set_user_attr(SKIPPED_ATTR, "infeasible on paper: not trained")
            self.study.tell(trial, state=TrialState.PRUNED)
            return True
        if key not in (self.seen or {}):
            self.flying = flying | {trial_id: key}
            return False
        state, values, curve = self.seen[key]
        if len(self.study.directions) == 1:
            for epoch, value in curve:
                trial.report(value, epoch)
        trial.set_user_attr(OPTUNA_STATUS_ATTR, "repeat")
        trial.set_user_attr(SKIPPED_ATTR, f"repeats {key}: not trained again")
        self.study.tell(trial, values, state=state)
        return True

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Every finished epoch as an intermediate value at its epoch (live in optuna-dashboard)."""
        if trial_id in self.trials:
            retried(lambda: self._report(trial_id, self.trials[trial_id], result), self.where)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        """Tell the study the trial's state, curve, constraints and (if it completed) value."""
        trial = self.trials.get(trial_id)  # dropped once told: a search a lost database ended
        if trial is None:                    # keeps it, and its resume tells it
            if not error:
                retried(lambda: self._retell(trial_id, result or {}), self.where)
            return  # told already (Ray may repeat the notice after a restore)
        result = result or {}
        status, state, values = outcome(result, error, self.max_epochs, self.metrics,
                                        self.stopped_as)

        def tell() -> None:  # each step may run twice: Optuna keeps a repeated one once
            self._report(trial_id, trial, result)
            for key, value in constraints(result).items():
                trial.set_constraint(key, value)
            trial.set_user_attr(OPTUNA_STATUS_ATTR, status)
            self.study.tell(trial, values, state=state, skip_if_finished=True)

        retried(tell, self.where)
        key = result.get("arch_key")
        if key and state in (TrialState.COMPLETE, TrialState.PRUNED) and status in (
                "completed", "stopped"):
            self.seen = self.seen if self.seen is not None else {}
            self.seen[key] = (state, values, finite_curve(result))
        if self.flying:
            self.flying.pop(trial_id, None)
        self.trials.pop(trial_id, None)
        self.reported.pop(trial_id, None)

    def _retell(self, trial_id: str, result: dict[str, Any]) -> None:
        """A trial told FAIL that a resume ran again (--resume retries failed trials): its
        result goes into the study as a new trial; the FAIL stays, as what happened first."""
        mine = [t for t in self.study.get_trials(deepcopy=False)
                if t.user_attrs.get(OPTUNA_TRIAL_ATTR) == trial_id
                and (self.run is None or t.user_attrs.get(OPTUNA_RUN_ATTR) == self.run)]
        if not mine or any(t.state != TrialState.FAIL for t in mine):
            return  # not this run's, or its result is in already (a repeated notice)
        status, state, values = outcome(result, False, self.max_epochs, self.metrics,
                                        self.stopped_as)
        if state == TrialState.FAIL:
            return
        first = mine[0]
        single = len(self.study.directions) == 1
        self.study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=first.params, distributions=first.distributions,
            user_attrs=first.user_attrs | {OPTUNA_STATUS_ATTR: status},
            intermediate_values=dict(finite_curve(result)) if single else None,
            constraints=constraints(result) or None))

    def _report(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """Epochs of the curve not told yet (the curve holds every epoch, restored ones too)."""
        if len(self.study.directions) > 1:
            return  # Optuna keeps intermediate values for one objective only
        done = self.reported.get(trial_id, 0)
        for epoch, value in finite_curve(result):
            if epoch > done:
                trial.report(value, epoch)
                self.reported[trial_id] = epoch

    def save(self, checkpoint_path: str) -> None:
        """Pickled for Ray's experiment checkpoint (the study itself lives in its storage)."""
        state = pickle.dumps(self.__dict__)
        atomic_write(Path(checkpoint_path), lambda tmp: tmp.write_bytes(state))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
        retried(self._settle, self.where)

    def _settle(self) -> None:
        """Tell FAIL this run's trials the study still holds RUNNING that no Ray trial will
        report again (a search its lost database ended while it asked or told them)."""
        held = {trial.number for trial in self.trials.values()}
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            ours = self.run is None or trial.user_attrs.get(OPTUNA_RUN_ATTR) == self.run
            if ours and trial.number not in held:
                self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
