"""The Optuna sampler a space asks for: its settings resolved (for meta.json) and built."""

from __future__ import annotations

from typing import Any

import optuna

from nas.search.space.points import searched
from nas.search.space.types import Space

STARTUP_TRIALS = 8  # TPE's random trials before it models, at most (min with the trial count)
POPULATION = 8  # NSGA-II's trials per generation


def sampler_settings(space: Space, seed: int) -> dict[str, Any]:
    """Every setting the sampler is built with, defaults filled in: what meta.json records."""
    search = space.search
    settings: dict[str, Any] = {"name": search.sampler, "seed": seed}
    if search.sampler == "tpe":
        multivariate = (search.multivariate if search.multivariate is not None
                        else len(space.objectives.metrics) == 1)  # Optuna's own default
        settings |= {"n_startup_trials": (search.n_startup_trials if search.n_startup_trials
                                          is not None else min(STARTUP_TRIALS, search.trials)),
                     "multivariate": multivariate, "group": search.group}
    elif search.sampler == "nsga2":
        settings["population_size"] = search.population_size or POPULATION
    return settings


def build_sampler(space: Space, settings: dict[str, Any]) -> optuna.samplers.BaseSampler:
    """The sampler `settings` (from sampler_settings) describe."""
    kind, seed = settings["name"], settings["seed"]
    if kind == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=settings["n_startup_trials"],
            multivariate=settings["multivariate"], group=settings["group"])
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed,
                                             population_size=settings["population_size"])
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    grid = {d.name: list(d.choices) for d in searched(space)}
    return TuneGridSampler(grid, seed=seed)


class TuneGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose after_trial does not stop the study.

    Ray Tune asks and tells outside study.optimize, where stop() only raises (Ray logs it as a
    warning after the last point); the run's length is already Ray's num_samples = grid size.
    Module level, because Ray pickles the searcher into its experiment checkpoint.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None
