"""The run folder's lock in-process: refusals, release, the record and heartbeat, resume rules."""

import json
import os
import threading
import time
from datetime import datetime

import pytest

from nas.results import lock as lock_module
from nas.results.errors import RunFolderError
from nas.results.lock import RunLock, held_run_dir, open_run_dir
from nas.results.names import LOCK, META


def _record(run_dir):
    text = (run_dir / LOCK).read_text()
    return json.loads(text) if text else {}


def test_a_new_run_folder_is_created_locked_and_recorded(tmp_path, locks):
    run = tmp_path / "results" / "run"
    before = time.time()
    lock = open_run_dir(run, resume=False)
    locks.append(lock)
    assert run.is_dir() and lock.created and lock.fresh and lock.carried_s == 0.0
    assert held_run_dir() == run
    record = _record(run)
    assert record["pid"] == os.getpid() and record["carried_s"] == 0.0
    assert before - 1 <= record["started_unix"] <= time.time()
    started = datetime.fromisoformat(record["started"])  # UTC, whole seconds
    assert started.tzinfo is not None and abs(started.timestamp() - before) < 2
    assert [p.name for p in run.iterdir()] == [LOCK]


@pytest.mark.parametrize("resume", [False, True])
def test_a_held_folder_is_refused_with_one_line_naming_its_holder(tmp_path, locks, resume):
    run = tmp_path / "run"
    locks.append(open_run_dir(run, resume=False))
    (run / META).write_text("{}")  # a resumable run: only the lock stands in the way
    record = _record(run)
    # a second open file description conflicts even within this process
    with pytest.raises(RunFolderError) as refused:
        open_run_dir(run, resume=resume)
    message = str(refused.value)
    assert message == (f"{run}: in use by another search (PID {os.getpid()}, started"
                       f" {record['started']}); wait for it to end, or choose another --name")
    assert "\n" not in message
    assert _record(run) == record  # the refused open changed nothing
    assert held_run_dir() == run


def test_another_thread_is_refused_too_until_the_holder_releases(tmp_path, locks):
    run = tmp_path / "run"
    first = open_run_dir(run, resume=False)
    locks.append(first)
    outcomes = []

    def take():
        try:
            locks.append(RunLock.acquire(run))
            outcomes.append("taken")
        except RunFolderError as err:
            outcomes.append(str(err))

    def in_a_thread():
        thread = threading.Thread(target=take)
        thread.start()
        thread.join()
        return outcomes[-1]

    assert "in use by another search" in in_a_thread()
    first.release()
    assert in_a_thread() == "taken"


def test_release_frees_the_folder_and_empties_the_record(tmp_path, locks):
    run = tmp_path / "run"
    lock = open_run_dir(run, resume=False)
    lock.release()
    assert _record(run) == {}  # nothing carried: the next holder starts from nothing
    with pytest.raises(RunFolderError, match="no run folder is locked by this process"):
        held_run_dir()
    lock.release()  # a second release is a no-op
    (run / META).write_text("{}")
    again = open_run_dir(run, resume=True)
    locks.append(again)
    assert again.carried_s == 0.0 and not again.fresh and not again.created


def test_time_not_yet_recorded_is_carried_to_the_next_holder(tmp_path, locks):
    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock.acquire(run)
    lock.carried_s = 12.34
    lock.release()
    assert _record(run) == {"carried_s": 12.3}
    second = RunLock.acquire(run)
    assert second.carried_s == pytest.approx(12.3)
    second.time_recorded()  # its time went into meta.json: nothing left to carry
    second.release()
    assert _record(run) == {}
    locks.append(RunLock.acquire(run))
    assert locks[-1].carried_s == 0.0


def test_a_killed_holders_time_counts_up_to_its_last_heartbeat(tmp_path, locks):
    run = tmp_path / "run"
    run.mkdir()
    # a holder killed without releasing: its record stays, the kernel dropped its flock
    (run / LOCK).write_text(json.dumps({"pid": 1, "started_unix": 1000.0, "carried_s": 5.0}))
    os.utime(run / LOCK, (1100.0, 1100.0))  # its last heartbeat, 100 s after it started
    lock = RunLock.acquire(run)
    locks.append(lock)
    assert lock.carried_s == pytest.approx(105.0)
    assert _record(run)["carried_s"] == 105.0 and _record(run)["pid"] == os.getpid()


def test_the_holder_stamps_a_heartbeat_until_released(tmp_path, locks, monkeypatch):
    monkeypatch.setattr(lock_module, "_HEARTBEAT_S", 0.02)
    run = tmp_path / "run"
    lock = open_run_dir(run, resume=False)
    locks.append(lock)
    os.utime(run / LOCK, (1000.0, 1000.0))
    deadline = time.monotonic() + 3
    while (run / LOCK).stat().st_mtime == 1000.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (run / LOCK).stat().st_mtime > time.time() - 60
    lock.release()
    os.utime(run / LOCK, (1000.0, 1000.0))
    time.sleep(0.2)  # ten beats' time: a released lock beats no more
    assert (run / LOCK).stat().st_mtime == 1000.0


def test_resume_needs_an_existing_run(tmp_path, locks):
    missing = tmp_path / "missing"
    with pytest.raises(RunFolderError, match="nothing to resume"):
        open_run_dir(missing, resume=True)
    assert not missing.exists()  # refused before anything was created
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(RunFolderError, match=rf"{bare}: nothing to resume \(no {META}\)"):
        open_run_dir(bare, resume=True)
    locks.append(RunLock.acquire(bare))  # the refusal released its lock


def test_a_new_run_never_lands_in_a_used_folder(tmp_path, locks):
    run = tmp_path / "run"
    run.mkdir()
    (run / META).write_text("{}")
    with pytest.raises(RunFolderError, match="already holds a run; pass --resume"):
        open_run_dir(run, resume=False)
    locks.append(RunLock.acquire(run))  # the refusal released its lock
    locks.pop().release()
    # a prepared folder (a supernet's) is used with its files; it is not a fresh run
    prepared = open_run_dir(run, resume=False, prepared=True)
    locks.append(prepared)
    assert not prepared.fresh and not prepared.created


def test_an_empty_folder_or_one_with_only_a_lock_is_new(tmp_path, locks):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text("")  # left by a search that released it
    lock = open_run_dir(run, resume=False)
    locks.append(lock)
    assert lock.fresh and not lock.created


def test_discard_removes_what_a_failed_start_left(tmp_path, locks):
    created = open_run_dir(tmp_path / "new", resume=False)
    (tmp_path / "new" / META).write_text("{}")
    created.discard()
    created.release()
    assert not (tmp_path / "new").exists()  # the folder it created goes

    given = tmp_path / "given"
    given.mkdir()
    lock = open_run_dir(given, resume=False)
    locks.append(lock)
    (given / META).write_text("{}")
    (given / "ray").mkdir()
    lock.discard()
    assert [p.name for p in given.iterdir()] == [LOCK]  # the folder it was given stays, empty
    (given / META).write_text("{}")
    lock.discard()  # only once: a discarded run is no longer fresh
    assert (given / META).exists()


def test_a_resumed_run_is_never_discarded(tmp_path, locks):
    run = tmp_path / "run"
    run.mkdir()
    (run / META).write_text("{}")
    lock = open_run_dir(run, resume=True)
    locks.append(lock)
    lock.discard()
    assert (run / META).read_text() == "{}"


def test_a_results_dir_that_is_a_file_is_refused(tmp_path):
    parent = tmp_path / "results"
    parent.write_text("")
    with pytest.raises(RunFolderError, match=f"--results-dir {parent}: exists and is not a folder"):
        open_run_dir(parent / "run", resume=False)
