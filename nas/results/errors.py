"""What goes wrong with a run folder: its one error type, and OS errors (a full disk) in words."""

from __future__ import annotations

import errno


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, missing, or holds unreadable files)."""


def first_line(err: BaseException) -> str:
    """An exception's message on one line (pandas and sqlite messages can span several)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def describe_os_error(err: OSError) -> str:
    """'No space left on device: results/x/meta.json' rather than a traceback."""
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


# How a full disk reads in a trial's error text or in Optuna's (SQLite's) errors.
DISK_FULL = ("No space left on device", "[Errno 28]", "database or disk is full")


def disk_full(err: BaseException) -> bool:
    """Whether an error, or one it was raised from (a trial's, Optuna's), is a full disk."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if any(mark in str(current) for mark in DISK_FULL):
            return True
        current = current.__cause__ or current.__context__
    return False
