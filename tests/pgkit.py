"""A throw-away PostgreSQL server for the tests: its own cluster in a short /tmp folder, run by
an unprivileged user, reachable only through a unix socket (no TCP port at all)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "postgres"  # the cluster's superuser (initdb -U), whoever runs the server
PORT = 5432  # with no TCP listener, the port only names the socket file (.s.PGSQL.5432)
TIMEOUT_S = 120


def pg_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries: on PATH, else Debian's
    /usr/lib/postgresql/<version>/bin (which apt does not put on PATH), newest version first."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


@dataclass
class Postgres:
    """A running server: `url(db)` is the SQLAlchemy URL of one of its databases."""

    bin: Path
    root: Path  # holds the socket, the cluster's data folder and the server's log

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@/{database}?host={self.root}"

    def _run(self, *argv: str) -> None:
        # PostgreSQL refuses to run as root: root hands the server to the `postgres` account
        as_user = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_user, *argv], capture_output=True, text=True,
                              timeout=TIMEOUT_S, cwd=self.root)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):"
                               f" {done.stderr.strip()[-2000:]}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-c listen_addresses='' -k {self.root} -p {PORT} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", str(TIMEOUT_S), "-o", options, action, *extra)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self._ctl("start")

    def createdb(self, name: str) -> str:
        """A new empty database; its URL."""
        self._run(str(self.bin / "createdb"), "-h", str(self.root), "-p", str(PORT), "-U",
                  USER, name)
        return self.url(name)

    def restart(self) -> None:
        """What an administrator's restart does: every connection is closed."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "immediate")

    def start(self) -> None:
        self._ctl("start")


def start_postgres() -> Postgres | str:
    """A new running server, or why there is none (no PostgreSQL binaries)."""
    binaries = pg_bin()
    if binaries is None:
        return ("no PostgreSQL server binaries (pg_ctl on PATH or /usr/lib/postgresql/*/bin);"
                " Debian: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # socket paths hold ~107 bytes
    if os.geteuid() == 0:
        shutil.chown(root, USER, USER)
    server = Postgres(binaries, root)
    try:
        server.init()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server
