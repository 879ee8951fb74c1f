"""Whether a run folder's Optuna study (optuna.db) can be read, and a warning when it cannot."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path

from nas.results.errors import first_line
from nas.results.names import OPTUNA_DB


def warn_study_db(run_dir: Path, action: str) -> None:
    """One line on stderr when optuna.db is damaged, for the actions that do not need it
    (export, retrain, dashboard read trials.csv and the checkpoints): say so, go on."""
    problem = check_study_db(run_dir)
    if problem:
        print(f"run_search.py {action}: warning: {problem}; only --resume and the parameter"
              f" importances need it (trials.csv and the checkpoints are used)", file=sys.stderr)


def check_study_db(run_dir: Path) -> str | None:
    """Why the run folder's optuna.db cannot be read (truncated, not SQLite, damaged), or None
    when it reads or is absent (a study kept elsewhere with --storage)."""
    path = run_dir / OPTUNA_DB
    if not path.is_file():
        return None
    try:
        # read-only: a running search may be writing it
        with contextlib.closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as err:
        return f"{path}: not a readable SQLite database ({first_line(err)})"
    if verdict != "ok":
        return f"{path}: damaged SQLite database ({verdict})"
    if "studies" not in tables:
        return f"{path}: holds no Optuna study (no 'studies' table)"
    return None
