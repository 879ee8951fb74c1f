"""Driver-side objects Ray pickles into the experiment that find the run folder again when
restored: a resumed copy (or moved) run folder writes only into itself, never the original."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import SearchGenerator

from nas.results.errors import RunFolderError
from nas.results.lock import held_run_dir
from nas.results.meta import read_meta
from nas.results.names import optuna_url
from nas.results.store import META_KEY as STORE_KEY


class RunStudyStorage(optuna.storages.RDBStorage):
    """optuna.db in the run folder. Ray pickles the searcher, and with it this storage's URL;
    unpickled by a search resuming a moved or copied folder, the URL is taken again from the
    folder that search holds the lock of."""

    def __init__(self, run_dir: Path):
        super().__init__(optuna_url(run_dir))

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # read outside a search (no folder held), the recorded location is all there is
        with contextlib.suppress(RunFolderError):
            state = {**state, "url": optuna_url(held_run_dir())}
        super().__setstate__(state)


class RunSearchGenerator(SearchGenerator):
    """Ray's SearchGenerator, whose saved experiment spec carries the storage location new
    trials are created in: restored, it points at the folder this search holds (Ray 2.60
    re-roots the restored trials, but not this spec, so new trials went to the original)."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if self._experiment is None:
            return
        with contextlib.suppress(RunFolderError):
            run_dir = held_run_dir()
            if read_meta(run_dir).get(STORE_KEY):
                return  # the trials write to the run's --storage-path, which does not move
            self._experiment.spec["storage"].storage_fs_path = run_dir.resolve().as_posix()
