"""The live dashboard over HTTP on 127.0.0.1: the page, its data, plotly.js and nothing else."""

from __future__ import annotations

import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, TextIO
from urllib.parse import urlsplit

from nas.dashboard.data import load_run, version
from nas.dashboard.page import document, payload, to_json

HOST = "127.0.0.1"  # never another interface: the page shows paths, commands and errors
LOCAL_NAMES = {"127.0.0.1", "localhost"}  # Host headers accepted (defeats DNS rebinding)


class Dashboard:
    """The run's page and data, rebuilt only when the run folder's files change."""

    def __init__(self, run_dir: Path, refresh: float):
        self.run_dir, self.refresh = run_dir, refresh
        self._lock = threading.Lock()  # one rebuild at a time; pollers wait for it
        self._built: tuple[str, str, str] | None = None  # version, page, data JSON
        self._plotly: bytes | None = None

    def current(self) -> tuple[str, str, str]:
        """(version, page HTML, data JSON) for the folder as it is now."""
        with self._lock:
            if self._built is None or self._built[0] != version(self.run_dir):
                run = load_run(self.run_dir)
                data = payload(run)
                page = document(run, data, True, self.refresh,
                                '<script src="plotly.min.js"></script>')
                self._built = (run.version, page, to_json(data))
            return self._built

    def plotly_js(self) -> bytes:
        if self._plotly is None:
            from plotly.offline import get_plotlyjs

            self._plotly = get_plotlyjs().encode()
        return self._plotly


class Handler(BaseHTTPRequestHandler):
    """GET/HEAD of four exact paths; every other path is 404 (nothing maps to files)."""

    server: DashServer
    # An idle or trickling connection is closed after this long instead of holding its
    # thread for ever (the page itself polls every few seconds, each poll a fresh request).
    timeout = 30
    ROUTES: ClassVar[dict[str, str]] = {"/": "page", "/index.html": "page", "/data.json": "data",
              "/version.json": "version", "/plotly.min.js": "plotly"}

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host not in LOCAL_NAMES:
            return self._send(HTTPStatus.FORBIDDEN, b"localhost only\n", "text/plain", body)
        # Exact match on the raw path: '..', '%2e%2e' and any other spelling simply miss.
        route = self.ROUTES.get(urlsplit(self.path).path)
        if route is None:
            return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", body)
        dash = self.server.dashboard
        if route == "plotly":
            return self._send(HTTPStatus.OK, dash.plotly_js(), "text/javascript", body,
                              cache="max-age=86400")
        try:
            stamp, page, data = dash.current()
        except Exception as err:  # a run folder gone or broken meanwhile: say so, keep serving
            print(f"dashboard: {err}", file=sys.stderr)
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"{err}\n".encode(),
                              "text/plain", body)
        if route == "page":
            return self._send(HTTPStatus.OK, page.encode(), "text/html", body)
        text = data if route == "data" else json.dumps({"version": stamp})
        return self._send(HTTPStatus.OK, text.encode(), "application/json", body)

    def _send(self, status: HTTPStatus, content: bytes, kind: str, body: bool,
              cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args) -> None:
        pass  # the page polls every few seconds; a line per request would bury real output


class DashServer(ThreadingHTTPServer):
    """A threading HTTP server bound to 127.0.0.1 that knows its dashboard."""

    daemon_threads = True  # Ctrl-C must not wait for a browser's kept-alive connection

    def __init__(self, port: int, dashboard: Dashboard):
        self.dashboard = dashboard
        super().__init__((HOST, port), Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_port}/"


def serve(run_dir: Path, port: int, refresh: float, out: TextIO = sys.stdout) -> int:
    """Serve until Ctrl-C; exit code 0."""
    dashboard = Dashboard(run_dir, refresh)
    dashboard.current()  # a bad run folder fails here, before a URL is printed
    server = DashServer(port, dashboard)
    print(f"Dashboard of {run_dir}: {server.url}  (refreshes every {refresh:g} s;"
          " Ctrl-C stops it)", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
