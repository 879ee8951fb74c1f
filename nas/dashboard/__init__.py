"""`run_search.py dashboard RUN_DIR`: serve a run's live dashboard, or write it to one file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PORT = 8050


def parser() -> argparse.ArgumentParser:
    """Flags of the dashboard action."""
    p = argparse.ArgumentParser(
        prog="run_search.py dashboard",
        description="Dashboard of a search's run folder: accuracy vs cost with the Pareto"
        " front, the spectrum per stage, factor effects, parameter importance, learning"
        " curves and the trials table. Served on 127.0.0.1 (refreshing while the search"
        " runs), or written to one self-contained HTML file with --out.")
    p.add_argument("run_dir", type=Path, help="the run folder, e.g. results/<name>")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--out", type=Path, help="write a self-contained HTML file (opens offline)"
                   " and exit instead of serving")
    p.add_argument("--refresh", type=float, default=5.0,
                   help="seconds between the served page's checks for new trials (default 5)")
    return p


def main(argv: list[str]) -> int:
    """Exit code 0, or 2 with a one-line error."""
    args = parser().parse_args(argv)
    if not 0 <= args.port <= 65535 or args.refresh <= 0:
        print("run_search.py dashboard: error: --port must be 0..65535 and --refresh > 0",
              file=sys.stderr)
        return 2
    from nas.dashboard.data import load_run
    from nas.results.study_db import warn_study_db

    run = load_run(args.run_dir)  # FileNotFoundError: the CLI prints it as one line
    warn_study_db(args.run_dir, "dashboard")
    if args.out:
        from nas.dashboard.page import write_html

        write_html(run, args.out)
        print(f"Wrote {args.out} ({len(run.table)} trials); open it in a browser, offline too.")
        return 0
    from nas.dashboard.server import serve

    try:
        return serve(args.run_dir, args.port, args.refresh)
    except OSError as err:  # e.g. the port is taken
        print(f"run_search.py dashboard: error: cannot serve on 127.0.0.1:{args.port}: {err}",
              file=sys.stderr)
        return 2
