"""The trials table written and read back (CSV, Parquet), a run's verification rounds' included; a
genotype as columns, parsed strictly."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from nas.arch.genotype import Genotype, GenotypeError, Stage
from nas.results.atomic import atomic_write
from nas.results.errors import RunFolderError, first_line
from nas.results.names import META, PARQUET, ROUND_COLUMN, TABLE, VERIFY_DIR, stage_column


def genotype_columns(arch: Genotype) -> dict[str, Any]:
    """Every genotype field as a flat column: s1_kind, s1_groups, ..., plus positions."""
    row: dict[str, Any] = {"spectrum_position": round(arch.spectrum_position(), 4),
                           "stages": len(arch.stages), "resolution": arch.resolution}
    for i, stage in enumerate(arch.stages, start=1):
        for field in dataclasses.fields(Stage):
            row[stage_column(i, field.name)] = getattr(stage, field.name)
        row[stage_column(i, "position")] = round(stage.spectrum_position(), 4)
    return row


def write_table(run_dir: Path, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Write trials.csv and trials.parquet atomically, one row per trial."""
    frame = pd.DataFrame(list(rows))
    if not frame.empty:
        frame = frame.sort_values("trial_id", kind="stable").reset_index(drop=True)
    atomic_write(run_dir / TABLE, lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(run_dir / PARQUET, lambda tmp: _typed(frame).to_parquet(tmp, index=False))
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: a choice list like [1, 2, "depthwise"] becomes text
    (the CSV reads it back that way too)."""
    mixed = [c for c in frame.columns if frame[c].dtype == object
             and len({type(v) for v in frame[c].dropna()}) > 1]
    return frame.astype(dict.fromkeys(mixed, "string")) if mixed else frame


def read_table(run_dir: Path) -> pd.DataFrame:
    """The trials table (empty when no trial has finished yet)."""
    return read_csv(run_dir / TABLE)


def round_dirs(run_dir: Path) -> list[Path]:
    """The run's verification rounds, in order."""
    folder = run_dir / VERIFY_DIR
    return sorted(p for p in folder.glob("round-*") if p.is_dir()) if folder.is_dir() else []


def all_trials(run_dir: Path) -> pd.DataFrame:
    """The front end's trials and every verification round's (column ROUND_COLUMN: 0 for the
    front end, n for round n); a run never verified: its table as it is."""
    front = read_table(run_dir)
    rounds = [read_table(folder).assign(**{ROUND_COLUMN: n})
              for n, folder in enumerate(round_dirs(run_dir), start=1)]
    rounds = [frame for frame in rounds if not frame.empty]
    if not rounds:
        return front
    return pd.concat([front.assign(**{ROUND_COLUMN: 0}), *rounds], ignore_index=True)


def read_csv(path: Path) -> pd.DataFrame:
    """A results CSV that may be missing or still empty; trial ids stay text; a damaged one
    (truncated, not CSV) is a one-line RunFolderError naming it."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        # Ray's ids are 8 hex digits: '00012345' or '1e234567' must not become numbers
        return pd.read_csv(path, dtype={"trial_id": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise RunFolderError(f"{path}: not a readable CSV table ({first_line(err)})") from None


def read_trials(run_dir: Path) -> list[dict[str, Any]]:
    """A finished or running search's trials as rows; a folder with none is an error."""
    if not (run_dir / META).is_file():
        raise RunFolderError(f"{run_dir}: not a search run folder (no {META})")
    table = read_table(run_dir)
    if table.empty:
        raise RunFolderError(f"{run_dir}: no finished trials yet ({TABLE} is missing or empty)")
    return table.to_dict("records")


def parse_genotype(raw: Any, where: str) -> Genotype:
    """Strictly parsed and validated: unknown keys, wrong types, unknown choices are refused."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        return Genotype.from_dict(data, where)
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{where}: not valid JSON ({err})") from None
    except GenotypeError as err:
        raise RunFolderError(f"{err} (refusing to use this genotype)") from None
