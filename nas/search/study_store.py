"""Where a search's Optuna study lives and under which name (--storage, --study): created by
one driver, joined on purpose by others, found again on --resume; its storage calls retried
across a database restart."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nas.results.errors import disk_full, first_line
from nas.results.names import STUDY_KEY, optuna_url

# Optuna keeps study names up to 512 characters; a plain name is also a safe shell word
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# ~31 s in all: a database restart takes seconds; a server gone for longer ends the search
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
T = TypeVar("T")


class StudyError(ValueError):
    """The study cannot be used as asked; the message is one line naming the flag."""


def check_study_name(name: str | None) -> None:
    """--study: a plain name (letters, digits, '.', '_', '-'; 128 at most)."""
    if name is not None and not STUDY_NAME.fullmatch(name):
        raise StudyError(f"--study {name!r}: must be a plain name of letters, digits, '.', '_'"
                         " or '-' (128 at most, starting with a letter or digit)")


def shown(url: str) -> str:
    """The URL as it may be printed or recorded: its password hidden ('***')."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def hide_password(argv: list[str], url: str | None) -> list[str]:
    """A command line as it may be recorded: --storage's password hidden."""
    if not url or shown(url) == url:
        return list(argv)
    return [arg.replace(url, shown(url)) for arg in argv]


def open_storage(url: str, attempts: int = 3):
    """Optuna's RDB storage at `url`; a pooled connection is tested before each use, so one a
    database restart closed is replaced instead of failing the next call."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (IntegrityError, ProgrammingError):
            # drivers starting at once on an empty database both create Optuna's tables; the
            # one that loses the race finds them made on its next try
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def refuse_existing(url: str, name: str) -> None:
    """Refuse a new run whose default study name (its --name) is taken in a shared storage:
    two drivers with one --name would otherwise share a study by accident."""
    if name in _study_names(url):
        raise taken(shown(url), name)


def taken(where: str, name: str) -> StudyError:
    """The one-line refusal of a study name already in the storage (checked early, and again
    by the database when two drivers create at once)."""
    return StudyError(f"--storage {where} already holds a study named {name!r}: pass"
                      f" --study {name} to join it on purpose, or choose another --name")


def _study_names(url: str) -> list[str]:
    import optuna

    return optuna.get_all_study_names(open_storage(url))


def open_study(storage, name: str, directions: Sequence[str], sampler, join: bool,
               where: str) -> tuple[Any, bool]:
    """(the study, whether this driver created it). Creating is the database's atomic insert of
    a unique name, so of drivers starting at once exactly one creates (and enqueues the
    reference points); the others join, when `join` allows it."""
    import optuna

    def create(load: bool):
        return optuna.create_study(storage=storage, sampler=sampler, study_name=name,
                                   pruner=optuna.pruners.NopPruner(), directions=directions,
                                   load_if_exists=load)

    try:
        return create(False), True
    except optuna.exceptions.DuplicatedStudyError:
        if not join:
            raise taken(where, name) from None
    study = create(True)
    theirs = [d.name.lower() for d in study.directions]
    if theirs != [d.lower() for d in directions]:
        raise StudyError(f"--study {name}: the study in {where} optimises {theirs}, this space"
                         f" {list(directions)}: join it with a space of the same objectives")
    return study, False


def retried(call: Callable[[], T], where: str,
            delays: Sequence[float] = RETRY_DELAYS_S) -> T:
    """`call` (a storage call of the study), tried again while the database does not answer;
    still failing, one line naming the storage (the error it stands for is its cause)."""
    errors = _transient_errors()
    for delay in (*delays, None):
        try:
            return call()
        except errors as err:
            if disk_full(err):  # SQLite on a full disk: waiting frees nothing
                raise
            if delay is None:
                raise StudyError(f"the Optuna study's storage {where} did not answer for"
                                 f" {sum(delays):.0f} s ({first_line(err.__cause__ or err)});"
                                 " finished trials are kept: --resume once it answers") from err
            time.sleep(delay)
    raise AssertionError("unreachable")


def _transient_errors() -> tuple[type[BaseException], ...]:
    """A lost or refused connection, as Optuna (wrapping SQLAlchemy) or SQLAlchemy raise it."""
    import optuna
    from sqlalchemy.exc import InterfaceError, OperationalError

    return optuna.exceptions.StorageInternalError, OperationalError, InterfaceError


def storage_label(url: str | None, run_dir: Path) -> str:
    """How messages name the study's storage."""
    return shown(url) if url else optuna_url(run_dir)


def recorded(name: str, url: str | None) -> dict[str, str | None]:
    """meta.json's record of the study: its name and its storage's URL without the password
    (None: the run folder's own SQLite)."""
    return {"name": name, "storage": shown(url) if url else None}


def resumed_study(meta: dict[str, Any], study: str | None, url: str | None
                  ) -> tuple[str | None, str | None]:
    """(study name, storage URL) a resume continues, from meta.json, checked against the
    --study and --storage given again (a run from before meta.json kept them: as given)."""
    record = meta.get(STUDY_KEY)
    if not isinstance(record, dict):
        return study, url
    name, kept = record.get("name"), record.get("storage")
    if study is not None and study != name:
        raise StudyError(f"--study {study}: this run's study is {name!r} (meta.json); leave"
                         " --study out to continue it")
    if url is None:
        if kept and "***" in kept:  # SQLAlchemy's mark of a hidden password
            raise StudyError(f"this run's study is in {kept}, whose password meta.json does not"
                             " keep: resume with the same --storage URL, password included")
        return name, kept
    if kept is None or shown(url) != kept:
        where = kept or "the run folder's optuna.db"
        raise StudyError(f"--storage {shown(url)}: this run's study is in {where}; resume with"
                         " that storage" + (" (leave --storage out)" if kept is None else ""))
    return name, url
