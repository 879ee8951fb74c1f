"""Optuna parameter importances at one fidelity (one epoch's accuracy), or why there are none."""

from __future__ import annotations

import warnings

import pandas as pd

from nas.dashboard.data import ACC_AT
from nas.results.values import text

MIN_TRIALS = 4  # below this the top-10% set PED-ANOVA compares against is a single trial
PARAM = "param_"  # the trials table's columns of the searched parameters


def importances(shown: pd.DataFrame) -> tuple[dict[str, float], str]:
    """(parameter -> importance, note) over the trials of `shown` (nas.dashboard.data.at_epoch):
    each at its accuracy at the one epoch, so a 1-epoch and a 6-epoch accuracy never mix.

    optuna.db cannot give this: a pruned trial's value is its last epoch's, a completed one's
    its final epoch's. The trials are told to an in-memory study instead, at that epoch.
    """
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    columns = [c for c in shown.columns if str(c).startswith(PARAM)]
    params = [{c[len(PARAM):]: text(v) for c, v in row.items() if c in columns and text(v)}
              for _, row in shown.iterrows()]
    if len(params) < MIN_TRIALS:
        return {}, (f"Parameter importances need at least {MIN_TRIALS} trials at this epoch;"
                    f" there are {len(params)}.")
    choices = {c[len(PARAM):]: sorted({p[c[len(PARAM):]] for p in params if c[len(PARAM):] in p})
               for c in columns}
    varied = sorted(name for name, values in choices.items() if len(values) > 1)
    if len(varied) < 2:
        what = f"only {varied[0]} varies" if varied else "no parameter varies"
        return {}, (f"In the {len(params)} trials {what}, so there is nothing to rank"
                    " (importances are shares of the variation).")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no 'study created' line per redraw
    try:
        study = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for point, acc in zip(params, shown[ACC_AT], strict=True):
        study.add_trial(optuna.trial.create_trial(
            params=point, value=float(acc),
            distributions={k: optuna.distributions.CategoricalDistribution(choices[k])
                           for k in point}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns about experimental features
        try:
            ranked = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                           params=varied)
        except Exception as err:  # Optuna's own limits, e.g. too few trials with every param
            return {}, f"Optuna could not compute importances: {err}"
    if not any(v > 0 for v in ranked.values()):
        return {}, (f"Optuna's PED-ANOVA found no parameter that separates the best trials"
                    f" from the rest ({len(params)} trials).")
    return ranked, (f"PED-ANOVA over {len(params)} trials: how much each parameter's"
                    " distribution in the top 10% by validation accuracy at this epoch differs"
                    " from all of them.")
