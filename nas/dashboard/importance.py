"""Optuna parameter importances of a run's study, or a note saying why there are none."""

from __future__ import annotations

import warnings
from pathlib import Path

from nas.results import OPTUNA_DB

MIN_TRIALS = 4  # below this the top-10% set PED-ANOVA compares against is a single trial


def importances(run_dir: Path) -> tuple[dict[str, float], str]:
    """(parameter -> importance, note); an empty dict when they cannot be computed."""
    db = run_dir / OPTUNA_DB
    if not db.is_file():
        return {}, (f"No {OPTUNA_DB} in the run folder (a study kept elsewhere with --storage is"
                    " not read), so no parameter importances.")
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState

    # Read-only: the dashboard must never write to a study a running search is writing.
    storage = f"sqlite:///file:{db.resolve()}?mode=ro&uri=true"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns about experimental features and targets
        try:
            study = _load(optuna, storage, run_dir.name)
        except Exception as err:  # a corrupt or foreign database: say so, keep the page
            return {}, f"Could not read the Optuna study in {OPTUNA_DB}: {err}"
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(done) < MIN_TRIALS:
            return {}, (f"Parameter importances need at least {MIN_TRIALS} finished trials in"
                        f" the study; it has {len(done)} so far.")
        varied = sorted({k for t in done for k in t.params
                         if len({repr(u.params.get(k)) for u in done}) > 1})
        if len(varied) < 2:
            what = f"only {varied[0]} varies" if varied else "no parameter varies"
            return {}, (f"In the {len(done)} finished trials {what}, so there is nothing to rank"
                        " (importances are shares of the variation).")
        # PED-ANOVA (Optuna's default, no scikit-learn) treats lower targets as better, so a
        # two-objective study ranks by minus the first objective, the validation accuracy.
        target = (lambda t: -t.values[0]) if len(study.directions) > 1 else None
        try:
            ranked = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                           params=varied, target=target)
        except Exception as err:  # Optuna's own limits (e.g. a distribution change on resume)
            return {}, f"Optuna could not compute importances: {err}"
    if not any(v > 0 for v in ranked.values()):
        return {}, (f"Optuna's PED-ANOVA found no parameter that separates the best trials"
                    f" from the rest ({len(done)} finished trials).")
    objective = "validation accuracy" + (" (first objective)" if target else "")
    return ranked, (f"PED-ANOVA over {len(done)} finished trials: how much each parameter's"
                    f" distribution in the top 10% by {objective} differs from all trials.")


def _load(optuna, storage: str, name: str):
    """The study named after the run folder, else the database's only study (a renamed run)."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return optuna.load_study(study_name=None, storage=storage)
