"""`run_search.py study SPACE.toml | RUN_DIR`: run a study's grid with seeds and tabulate it."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.flags import add_search_flags, search_options
from nas.cli.main import program
from nas.results.names import STUDY_CSV, STUDY_JSON, STUDY_MD
from nas.study import StudyRequest, study


def parser() -> argparse.ArgumentParser:
    """Flags of the study action: the search's, with the space (or run folder) positional."""
    p = argparse.ArgumentParser(
        prog=f"{program()} study",
        description=f"Run a study space's grid (seeds = [search].repeats) and write {STUDY_CSV},"
        f" {STUDY_MD} and {STUDY_JSON} in its run folder; given a run folder, tabulate it"
        " again.")
    p.add_argument("target", type=Path, help="a study space (.toml) or a finished run folder")
    add_search_flags(p)
    return p


def main(argv: list[str]) -> int:
    """The study action."""
    args = parser().parse_args(argv)
    return study(StudyRequest(args.target, search_options(args, args.target)))
