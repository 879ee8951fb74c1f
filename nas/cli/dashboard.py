"""`run_search.py dashboard RUN_DIR`: serve a run's live dashboard, or write it to one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.main import program
from nas.dashboard import DEFAULT_PORT, DEFAULT_REFRESH_S, DashboardRequest, dashboard


def parser() -> argparse.ArgumentParser:
    """Flags of the dashboard action."""
    p = argparse.ArgumentParser(
        prog=f"{program()} dashboard",
        description="Dashboard of a search's run folder: accuracy vs cost with the Pareto"
        " front, the spectrum per stage, factor effects, parameter importance, learning"
        " curves and the trials table. Served on 127.0.0.1 (refreshing while the search"
        " runs), or written to one self-contained HTML file with --out.")
    p.add_argument("run_dir", type=Path, help="the run folder, e.g. results/<name>")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--out", type=Path, help="write a self-contained HTML file (opens offline)"
                   " and exit instead of serving")
    p.add_argument("--refresh", type=float, default=DEFAULT_REFRESH_S,
                   help="seconds between the served page's checks for new trials (default"
                   f" {DEFAULT_REFRESH_S:g})")
    return p


def main(argv: list[str]) -> int:
    """The dashboard action."""
    args = parser().parse_args(argv)
    return dashboard(DashboardRequest(args.run_dir, args.out, args.port, args.refresh))
