"""Pickled driver-side objects find the run folder again: a copied folder resumes into itself."""

import pickle
import shutil

import optuna
import pytest
from ray.tune.experiment import Experiment
from ray.tune.search import ConcurrencyLimiter, Searcher

from nas.results.errors import RunFolderError
from nas.results.lock import held_run_dir, open_run_dir
from nas.results.names import EXPERIMENT, META, OPTUNA_DB, optuna_url
from nas.search.relocate import RunSearchGenerator, RunStudyStorage


def _trials(run_dir, name="s"):
    return len(optuna.load_study(study_name=name, storage=optuna_url(run_dir)).trials)


def _copied_run(tmp_path, locks):
    """A run folder `a` with one told trial (its study pickled meanwhile), released and copied
    to `b`, whose lock this process then holds as a resumed search would."""
    first = tmp_path / "a"
    locks.append(open_run_dir(first, resume=False))
    (first / META).write_text("{}")
    storage = RunStudyStorage(first)
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask(), 1.0)
    blob = pickle.dumps((study, storage))  # as Ray pickles the searcher holding them
    locks.pop().release()
    copy = tmp_path / "b"
    shutil.copytree(first, copy)
    locks.append(open_run_dir(copy, resume=True))
    return first, copy, blob


def test_an_unpickled_study_writes_into_the_held_folder(tmp_path, locks):
    first, copy, blob = _copied_run(tmp_path, locks)
    assert held_run_dir() == copy
    study, storage = pickle.loads(blob)
    assert storage.url == optuna_url(copy)
    study.tell(study.ask(), 2.0)
    assert _trials(copy) == 2 and _trials(first) == 1  # the original is never written


def test_outside_a_search_the_recorded_location_stays(tmp_path, locks):
    first, _, blob = _copied_run(tmp_path, locks)
    locks.pop().release()
    with pytest.raises(RunFolderError):
        held_run_dir()
    study, storage = pickle.loads(blob)
    assert storage.url == optuna_url(first)
    study.tell(study.ask(), 2.0)
    assert _trials(first) == 2


def test_a_new_storage_lives_in_its_run_folder(tmp_path):
    storage = RunStudyStorage(tmp_path)
    assert storage.url == optuna_url(tmp_path) and (tmp_path / OPTUNA_DB).is_file()


class _Idle(Searcher):
    """A searcher with a state to save and nothing to suggest."""

    def __init__(self):
        super().__init__(metric="val_acc", mode="max")
        self.seen = 0

    def suggest(self, trial_id):
        return None

    def save(self, checkpoint_path):
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.seen, file)

    def restore(self, checkpoint_path):
        with open(checkpoint_path, "rb") as file:
            self.seen = pickle.load(file)


def _trainable(config):
    """Never run: the experiment is only saved and restored."""


def _saved_generator(run_dir):
    """A generator over an experiment stored in run_dir, saved as Ray checkpoints it."""
    generator = RunSearchGenerator(ConcurrencyLimiter(_Idle(), 2))
    generator.add_configurations([Experiment(EXPERIMENT, _trainable,
                                             storage_path=str(run_dir.resolve()))])
    generator.searcher.searcher.seen = 3
    (run_dir / EXPERIMENT).mkdir(exist_ok=True)
    generator.save_to_dir(str(run_dir / EXPERIMENT), "session")


def _restored(run_dir):
    generator = RunSearchGenerator(ConcurrencyLimiter(_Idle(), 2))
    generator.restore_from_dir(str(run_dir / EXPERIMENT))
    assert generator.searcher.searcher.seen == 3  # the searcher's own state came back too
    return generator._experiment.spec["storage"]


def test_a_restored_generator_creates_trials_in_the_held_folder(tmp_path, locks):
    first, copy = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    _saved_generator(first)
    shutil.copytree(first, copy)
    (copy / META).write_text("{}")
    locks.append(open_run_dir(copy, resume=True))
    storage = _restored(copy)
    assert storage.storage_fs_path == copy.resolve().as_posix()
    assert storage.experiment_fs_path == (copy / EXPERIMENT).resolve().as_posix()


def test_a_restored_generator_outside_a_search_keeps_its_location(tmp_path):
    first, copy = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    _saved_generator(first)
    shutil.copytree(first, copy)
    assert _restored(copy).storage_fs_path == first.resolve().as_posix()


def test_a_generator_state_without_an_experiment_is_restored_as_is(tmp_path, locks):
    locks.append(open_run_dir(tmp_path / "run", resume=False))
    generator = RunSearchGenerator(_Idle())
    generator.set_state({"counter": 4, "total_samples": 8, "finished": False,
                         "experiment": None})
    assert generator._experiment is None and generator._counter == 4
