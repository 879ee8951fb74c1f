"""The run folder's lock: one search at a time, its PID, start and heartbeat, its uncounted time."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nas.results.errors import RunFolderError, describe_os_error
from nas.results.names import LOCK, META


def open_run_dir(run_dir: Path, resume: bool, prepared: bool = False) -> RunLock:
    """Lock the run folder before anything is written to it: a new run needs a new (or empty)
    folder, a resumed one the old folder; a folder another search holds is refused. A prepared
    folder (a caller's, e.g. a supernet's, whose files it keeps) is used as it is."""
    parent = run_dir.parent
    if parent.exists() and not parent.is_dir():
        raise RunFolderError(f"--results-dir {parent}: exists and is not a folder")
    nothing = f"{run_dir}: nothing to resume (no {META}); start it without --resume"
    if resume and not run_dir.is_dir():
        raise RunFolderError(nothing)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"{run_dir}: cannot create the run folder ({describe_os_error(err)})"
                             ) from None
    lock = RunLock.acquire(run_dir, created)  # a folder in use is refused before all else
    if resume and not (run_dir / META).is_file():
        lock.release()
        raise RunFolderError(nothing)
    if not resume and not prepared and any(p.name != LOCK for p in run_dir.iterdir()):
        lock.release()
        raise RunFolderError(f"{run_dir}: already holds a run; pass --resume to continue it,"
                             " or --name for a new one (results are never overwritten)")
    lock.fresh = not resume and not prepared  # empty until now: a failed start may empty it
    return lock


_HELD: dict[str, Path] = {}  # the run folder this process holds the lock of (at most one)
_HEARTBEAT_S = 2.0  # how often a holder stamps the lock file: a killed search's last sign of life


class RunLock:
    """An exclusive flock on a run folder's lock file, held for a whole search. The kernel
    drops it when the process ends, however it ends (SIGKILL included); the file records the
    holder's PID and start time, and a heartbeat (its mtime) so a killed search's time counts."""

    def __init__(self, run_dir: Path, fd: int, created: bool, carried_s: float):
        self.run_dir, self._fd, self.created, self.carried_s = run_dir, fd, created, carried_s
        self.fresh = False  # a new run's folder (absent or empty when locked)
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        _HELD["run_dir"] = run_dir

    @classmethod
    def acquire(cls, run_dir: Path, created: bool = False) -> RunLock:
        """Take the lock or raise RunFolderError naming the search that holds it."""
        path = run_dir / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunFolderError(f"{path}: cannot open the run folder's lock"
                                 f" ({describe_os_error(err)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_record(fd)
            os.close(fd)
            raise RunFolderError(
                f"{run_dir}: in use by another search (PID {holder.get('pid', '?')}, started"
                f" {holder.get('started', '?')}); wait for it to end, or choose another --name"
            ) from None
        previous, last_beat = _lock_record(fd), os.fstat(fd).st_mtime
        carried = float(previous.get("carried_s", 0.0))
        if "started_unix" in previous:  # its holder died without recording its time
            carried += max(0.0, last_beat - float(previous["started_unix"]))
        lock = cls(run_dir, fd, created, carried)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        lock._record({"pid": os.getpid(), "started": started, "started_unix": time.time(),
                      "carried_s": round(carried, 1)})
        return lock

    def _record(self, data: dict[str, Any]) -> None:
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        if data:
            os.write(self._fd, json.dumps(data).encode())

    def _heartbeat(self) -> None:
        while not self._stop.wait(_HEARTBEAT_S):
            try:
                os.utime(self._fd)
            except OSError:
                return  # closed meanwhile

    def time_recorded(self) -> None:
        """This search's time (and any carried from a killed one) is now in meta.json."""
        self.carried_s = 0.0

    def discard(self) -> None:
        """A new run whose start failed before any trial ran: remove the folder it created, or
        empty the empty folder it was given, so the same command can simply be run again."""
        if not self.fresh:
            return
        if self.created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            for child in self.run_dir.iterdir():
                if child.name != LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.fresh = False

    def release(self) -> None:
        """Hand the folder back; time not yet in meta.json stays recorded for the next search."""
        if self._fd < 0:
            return
        self._stop.set()
        try:
            if self.run_dir.is_dir():
                self._record({"carried_s": round(self.carried_s, 1)} if self.carried_s else {})
        except OSError:
            pass  # e.g. the disk is full: the next start counts from the stale record instead
        os.close(self._fd)
        self._fd = -1
        _HELD.pop("run_dir", None)


def _lock_record(fd: int) -> dict[str, Any]:
    """What a lock file says about its (last) holder; {} when empty or unreadable."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def held_run_dir() -> Path:
    """The run folder this process holds the lock of: where a restored Ray experiment's
    driver-side objects (the monitor, the Optuna storage) write, wherever it was first run."""
    if "run_dir" not in _HELD:
        raise RunFolderError("no run folder is locked by this process")
    return _HELD["run_dir"]
