"""--storage checked before anything starts: a SQLAlchemy URL of a known database, its driver
installed, its server answering; each fault one line that says what to do."""

from __future__ import annotations

import socket

CONNECT_TIMEOUT_S = 5.0
# driver modules SQLAlchemy imports by default, and what installs them
DRIVER_INSTALL = {"psycopg": "pip install 'spectrum-nas[postgres]' (psycopg 3)",
                  "psycopg2": "pip install psycopg2-binary", "MySQLdb": "pip install mysqlclient",
                  "pymysql": "pip install pymysql"}
# the default port of each network database, for a URL that names none
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433,
                 "oracle": 1521}


class StorageError(ValueError):
    """The --storage URL cannot hold the study; the message is one line naming the remedy."""


def check_storage(url: str | None) -> None:
    """Refuse a --storage URL that is not SQLAlchemy's, names an unknown database, lacks its
    driver, or whose server does not answer (None: the run folder's SQLite, always fine)."""
    if url is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"--storage {url!r} is not a database URL; expected"
                           f" DIALECT[+DRIVER]://USER@HOST[:PORT]/DATABASE, {_allowed()}"
                           ) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise StorageError(f"--storage {shown}: unknown database {parsed.drivername!r}"
                           f" ({_allowed()})") from None
    try:
        dialect.import_dbapi()
    except ImportError as err:
        module = err.name or parsed.drivername
        remedy = DRIVER_INSTALL.get(module, f"pip install the {module} package")
        raise StorageError(f"--storage {shown}: the {dialect.name} driver '{module}' is not"
                           f" installed: {remedy}") from None
    problem = unreachable(parsed.host, parsed.port or DEFAULT_PORTS.get(dialect.name))
    if problem:
        raise StorageError(f"--storage {shown}: {problem}; start the database server or fix the"
                           " URL's host and port")


def unreachable(host: str | None, port: int | None,
                timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at host:port, or None (no host: SQLite or a unix socket)."""
    if not host or port is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:
        return f"nothing answers at {host}:{port} ({err.strerror or err})"


def _allowed() -> str:
    return ("allowed: sqlite:///PATH, postgresql://, mysql://, mariadb://, oracle://, mssql://"
            " (SQLAlchemy's URLs)")
