"""Exported files attached to the run's Optuna study as optuna.artifacts, for optuna-dashboard."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from nas.results.names import ARTIFACTS, OPTUNA_DB, OPTUNA_TRIAL_ATTR, optuna_url
from nas.results.study_db import check_study_db


def attach(run_dir: Path, trial_id: str, files: tuple[Path, ...]) -> list[str]:
    """Upload `files` named '<trial_id>-<file>' to the study in the run folder's optuna.db (an
    RDB the user named with --storage is left alone); their artifact ids, [] when there is no
    such study or trial. Optuna refuses attributes on a finished trial, so they go to the study
    (which optuna-dashboard lists too), named after the trial and tagged with its number."""
    if not (run_dir / OPTUNA_DB).is_file() or check_study_db(run_dir) is not None:
        return []  # a damaged study was warned about already: the export stands without it
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    storage = optuna.storages.RDBStorage(optuna_url(run_dir))
    names = optuna.get_all_study_names(storage)
    if len(names) != 1:  # one search, one study: anything else is not ours to write to
        return []
    study = optuna.load_study(study_name=names[0], storage=storage)
    trial = next((t for t in study.get_trials(deepcopy=False)
                  if t.user_attrs.get(OPTUNA_TRIAL_ATTR) == trial_id), None)
    if trial is None:
        return []
    store = run_dir / ARTIFACTS
    store.mkdir(exist_ok=True)
    ids = []
    with tempfile.TemporaryDirectory() as tmp:
        for file in files:  # the artifact's name is its file's: copy under the trial's name
            named = Path(tmp) / f"{trial_id}-{file.name}"
            shutil.copyfile(file, named)
            ids.append(upload_artifact(artifact_store=FileSystemArtifactStore(str(store)),
                                       file_path=str(named), study_or_trial=study))
    study.set_user_attr(f"artifacts:{trial_id}", {"trial_number": trial.number,
                                                   "artifact_ids": ids})
    return ids
