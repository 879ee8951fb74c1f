"""Optuna's GridSampler for Ray Tune, without its end-of-grid study.stop()."""

from __future__ import annotations

import optuna


class TuneGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose after_trial does not stop the study.

    Ray Tune asks and tells outside study.optimize, where stop() only raises (Ray logs it as a
    warning after the last point); the run's length is already Ray's num_samples = grid size.
    Module level, because Ray pickles the searcher into its experiment checkpoint.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None
