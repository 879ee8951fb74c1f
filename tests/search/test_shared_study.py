"""One Optuna study in PostgreSQL shared by several drivers (--storage, --study), each with its
own run folder, for real: a server of its own (the `postgres` fixture), searches as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from nas.results.names import OPTUNA_RUN_ATTR, OPTUNA_STATUS_ATTR, OPTUNA_TRIAL_ATTR
from nas.search.study_store import (
    StudyError,
    check_study_name,
    hide_password,
    recorded,
    resumed_study,
    shown,
)
from tests.searchkit import ROOT, TINY, run_cli, variant, write_space

# 1-epoch trials, one at a time per driver: two drivers share the machine's 2 cores
SHARED = variant(TINY, name="shared", train={"epochs": 1}, search={"trials": 3, "concurrency": 1})


@pytest.fixture(autouse=True)
def _data(cifar_dir, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(cifar_dir))


def start(space: Path, results: Path, name: str, *flags: str) -> subprocess.Popen:
    """A search driver as its own process (its own local Ray cluster)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_search.py"), "--space", str(space), "--name", name,
         "--results-dir", str(results), *flags], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-3000:]
    return output


def resume(space: Path, results: Path, name: str) -> None:
    """`--resume --name NAME` alone (no --storage, no --study), which must succeed."""
    done = run_cli("--space", str(space), "--name", name, "--results-dir", str(results),
                   "--resume")
    assert done.returncode == 0, done.stderr[-3000:]


def rows(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})


def wait_for_rows(run_dir: Path, proc: subprocess.Popen, count: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / "trials.csv").exists() and len(rows(run_dir)) >= count:
            return
        time.sleep(0.5)
    pytest.fail(f"{run_dir}: not {count} rows in time (rc {proc.poll()})")


def study_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def by_run(trials: list[optuna.trial.FrozenTrial]) -> dict[str, list[str]]:
    """Each driver's (run folder's) Ray trial ids in the study."""
    split: dict[str, list[str]] = {}
    for t in trials:
        if OPTUNA_TRIAL_ATTR in t.user_attrs:  # not a proposal screened on paper (no trial)
            split.setdefault(t.user_attrs[OPTUNA_RUN_ATTR], []).append(
                t.user_attrs[OPTUNA_TRIAL_ATTR])
    return split


def assert_references_once(trials: list[optuna.trial.FrozenTrial]) -> None:
    """TINY's two reference points were enqueued once: two fixed trials, distinct points."""
    fixed = [json.dumps(t.system_attrs["fixed_params"], sort_keys=True) for t in trials
             if "fixed_params" in t.system_attrs]
    assert len(fixed) == 2 and len(set(fixed)) == 2, fixed


def test_two_drivers_at_once_share_one_study(tmp_path, postgres):
    url = postgres.createdb("two")
    space = write_space(tmp_path, SHARED)
    flags = ("--storage", url, "--study", "spectrum")
    drivers = {name: start(space, tmp_path, name, *flags) for name in ("a", "b")}
    for proc in drivers.values():
        finish(proc)
    trials = study_trials(url, "spectrum")
    tables = {name: rows(tmp_path / name) for name in drivers}
    # every trial of both, each once, each run folder's table its own trials; a proposal
    # screened on paper (a repeat of a point trained already, by either driver, or one
    # infeasible) is in the study, told at once, and was never a trial
    trained = [t for t in trials if OPTUNA_TRIAL_ATTR in t.user_attrs]
    assert len(trained) == sum(len(t) for t in tables.values()) == 6
    screened = [t for t in trials if t not in trained]
    assert all(t.user_attrs.get(OPTUNA_STATUS_ATTR) in ("repeat", "infeasible")
               for t in screened), [t.user_attrs for t in screened]
    assert all(t.state.is_finished() for t in trials)
    split = by_run(trials)
    assert {name: sorted(ids) for name, ids in split.items()} == {
        name: sorted(table["trial_id"]) for name, table in tables.items()}
    assert_references_once(trials)
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["optuna_study"] == {"name": "spectrum", "storage": shown(url)}


@pytest.mark.slow  # ~1.2 min; .ci/run runs it with the distributed tests
def test_a_driver_resumed_later_continues_the_shared_study(tmp_path, postgres):
    url = postgres.createdb("resumed")
    space = write_space(tmp_path, variant(SHARED, search={"trials": 6}))
    first = start(space, tmp_path, "a", "--storage", url, "--study", "later")
    wait_for_rows(tmp_path / "a", first, 1)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    assert first.returncode == 130
    before = rows(tmp_path / "a")
    assert 1 <= len(before) <= 4  # so the resumed driver asks at least one new trial
    joined = run_cli("--space", str(space), "--name", "b", "--results-dir", str(tmp_path),
                     "--storage", url, "--study", "later", "--trials", "2")
    assert joined.returncode == 0, joined.stderr[-3000:]
    # the run recorded its study and (password-free) storage: --resume alone finds them
    resume(space, tmp_path, "a")
    after = rows(tmp_path / "a")
    assert len(after) == 6 and set(before["trial_id"]) <= set(after["trial_id"])
    trials = study_trials(url, "later")
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == 6 + 2
    split = by_run(finished)
    assert sorted(split["a"]) == sorted(after["trial_id"])
    assert sorted(split["b"]) == sorted(rows(tmp_path / "b")["trial_id"])
    assert_references_once(trials)
    # each driver's sampler read the other's results from the shared study: B asked all its
    # trials after A's first had finished, and A, resumed, asked some after all of B's
    mine = {run: [t for t in finished if t.user_attrs[OPTUNA_RUN_ATTR] == run] for run in "ab"}
    assert min(t.datetime_start for t in mine["b"]) > min(
        t.datetime_complete for t in mine["a"])
    assert max(t.datetime_start for t in mine["a"]) > max(
        t.datetime_complete for t in mine["b"])


def test_a_database_restart_mid_search_is_carried_through(tmp_path, postgres):
    url = postgres.createdb("restart")
    space = write_space(tmp_path, variant(SHARED, search={"trials": 4}))
    proc = start(space, tmp_path, "r", "--storage", url, "--study", "restart")
    wait_for_rows(tmp_path / "r", proc, 1)
    postgres.restart()  # every connection of the driver's pool is closed under it
    output = finish(proc)
    table = rows(tmp_path / "r")
    assert len(table) == 4, output[-2000:]
    trials = study_trials(url, "restart")
    told = [t for t in trials if OPTUNA_STATUS_ATTR in t.user_attrs
            and OPTUNA_TRIAL_ATTR in t.user_attrs]  # screened proposals were never trials
    assert sorted(t.user_attrs[OPTUNA_TRIAL_ATTR] for t in told) == sorted(table["trial_id"])
    assert all(t.state.is_finished() for t in told)
    # a trial being asked when the connection broke is asked again; the half-made one is FAIL
    abandoned = [t for t in trials if t not in told]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in abandoned), abandoned


@pytest.mark.slow  # ~2 min: the driver waits out its retries (~31 s) before it ends
def test_a_database_gone_for_longer_ends_the_driver_and_its_resume_settles_the_study(
        tmp_path, postgres):
    url = postgres.createdb("outage")
    space = write_space(tmp_path, variant(SHARED, search={"trials": 4}))
    proc = start(space, tmp_path, "o", "--storage", url, "--study", "outage")
    wait_for_rows(tmp_path / "o", proc, 1)
    postgres.stop()
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        postgres.start()  # the server is the session's
    assert proc.returncode != 0, output[-2000:]
    last = output.strip().splitlines()[-1]
    assert "did not answer" in last and "--resume" in last, output[-2000:]
    kept = rows(tmp_path / "o")
    resume(space, tmp_path, "o")
    table = rows(tmp_path / "o")
    assert len(table) == 4 and set(kept["trial_id"]) <= set(table["trial_id"])
    trials = study_trials(url, "outage")
    told = [t for t in trials if OPTUNA_STATUS_ATTR in t.user_attrs
            and OPTUNA_TRIAL_ATTR in t.user_attrs]  # screened proposals were never trials
    assert sorted(t.user_attrs[OPTUNA_TRIAL_ATTR] for t in told) == sorted(table["trial_id"])
    # nothing of this run left half-told in the study (a trial whose ask the outage cut
    # before it got its run attribute cannot be attributed in a shared study, and is left)
    running = [(t.number, t.user_attrs) for t in trials
               if t.state == optuna.trial.TrialState.RUNNING and t.user_attrs]
    assert not running


def test_a_study_name_taken_in_the_storage_is_refused_in_one_line(tmp_path, postgres):
    url = postgres.createdb("taken")
    optuna.create_study(study_name="x", storage=url)  # another driver's, or an earlier run's
    space = write_space(tmp_path, SHARED)
    done = run_cli("--space", str(space), "--name", "x", "--results-dir", str(tmp_path),
                   "--storage", url)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "already holds a study named 'x': pass --study x to join it" in done.stderr
    assert not (tmp_path / "x").exists()


def test_a_bad_study_name_is_one_line():
    with pytest.raises(StudyError, match="--study 'a b': must be a plain name"):
        check_study_name("a b")
    check_study_name("cifar_spectrum-2.0")


def test_no_password_reaches_meta_json():
    url = "postgresql+psycopg://nas:secret@db.example/nas"
    assert recorded("s", url) == {"name": "s",
                                  "storage": "postgresql+psycopg://nas:***@db.example/nas"}
    assert recorded("s", None) == {"name": "s", "storage": None}
    argv = ["run_search.py", "--storage", url]
    assert "secret" not in " ".join(hide_password(argv, url))


def test_a_resume_finds_its_study_or_says_what_to_pass():
    meta = {"optuna_study": {"name": "s", "storage": "postgresql+psycopg://nas@db/nas"}}
    assert resumed_study(meta, None, None) == ("s", "postgresql+psycopg://nas@db/nas")
    with pytest.raises(StudyError, match="--study t: this run's study is 's'"):
        resumed_study(meta, "t", None)
    hidden = {"optuna_study": {"name": "s", "storage": "postgresql+psycopg://nas:***@db/nas"}}
    with pytest.raises(StudyError, match="resume with the same --storage URL, password"):
        resumed_study(hidden, None, None)
    full = "postgresql+psycopg://nas:pw@db/nas"
    assert resumed_study(hidden, None, full) == ("s", full)
    with pytest.raises(StudyError, match=r"this run's study is in the run folder's optuna\.db"):
        resumed_study({"optuna_study": {"name": "s", "storage": None}}, None, full)
    assert resumed_study({}, None, None) == (None, None)  # a run from before: as given


def test_a_lost_connection_is_tried_again_then_named_in_one_line():
    from nas.search.study_store import retried

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise optuna.exceptions.StorageInternalError("connection lost")
        return "told"

    assert retried(flaky, "postgresql+psycopg://nas@db/nas", delays=(0, 0, 0)) == "told"
    assert len(calls) == 3

    def down():
        raise optuna.exceptions.StorageInternalError("server closed the connection")

    with pytest.raises(StudyError) as err:
        retried(down, "postgresql+psycopg://nas@db/nas", delays=(0, 0))
    text = str(err.value)
    assert "\n" not in text and "postgresql+psycopg://nas@db/nas did not answer" in text
    assert "--resume" in text


def test_drivers_creating_the_tables_at_once_try_again(monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from nas.search import study_store

    calls = []

    def storage(url, engine_kwargs):  # the second driver loses the race to create the schema
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError("CREATE TABLE alembic_version", {}, Exception("exists"))
        return "the storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr(study_store.time, "sleep", lambda s: None)
    assert study_store.open_storage("postgresql+psycopg://u@/db") == "the storage"
    assert len(calls) == 2
