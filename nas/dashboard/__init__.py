"""A run's dashboard: served live on 127.0.0.1, or written to one self-contained HTML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8050
DEFAULT_REFRESH_S = 5.0


@dataclass(frozen=True)
class DashboardRequest:
    """A dashboard as asked: the run folder, and a file to write or a port to serve on."""

    run_dir: Path
    out: Path | None = None  # write this HTML file and return instead of serving
    port: int = DEFAULT_PORT  # 0 picks a free one
    refresh: float = DEFAULT_REFRESH_S  # seconds between the served page's checks


def dashboard(request: DashboardRequest) -> int:
    """Write the page, or serve it until interrupted; exit code 0 (2: cannot serve)."""
    if not 0 <= request.port <= 65535 or not request.refresh > 0:
        raise ValueError("--port must be 0..65535 and --refresh > 0")
    from nas.dashboard.data import load_run
    from nas.results.study_db import warn_study_db

    run = load_run(request.run_dir)  # FileNotFoundError: the CLI prints it as one line
    warn_study_db(request.run_dir, "dashboard")
    if request.out:
        from nas.dashboard.page import write_html

        write_html(run, request.out)
        print(f"Wrote {request.out} ({len(run.table)} trials); open it in a browser, offline too.")
        return 0
    from nas.dashboard.server import serve

    try:
        return serve(request.run_dir, request.port, request.refresh)
    except OSError as err:  # e.g. the port is taken
        raise ValueError(f"cannot serve on 127.0.0.1:{request.port}: {err}") from None
