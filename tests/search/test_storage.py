"""--storage checked on its own: each fault one line naming the cause and the remedy."""

from __future__ import annotations

import importlib.util
import socket

import pytest

from nas.search.storage import StorageError, check_storage, unreachable


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sqlite_and_no_storage_pass():
    check_storage(None)
    check_storage("sqlite:///somewhere/optuna.db")


@pytest.mark.parametrize(("url", "named"), [
    ("foo://x", ["unknown database 'foo'", "sqlite", "postgresql", "mysql"]),
    ("not a url", ["is not a database URL", "DIALECT[+DRIVER]://"]),
])
def test_an_unknown_scheme_lists_what_is_allowed(url, named):
    with pytest.raises(StorageError) as err:
        check_storage(url)
    for part in named:
        assert part in str(err.value)


@pytest.mark.skipif(importlib.util.find_spec("MySQLdb") is not None, reason="driver installed")
def test_a_missing_driver_names_the_package_and_hides_the_password():
    with pytest.raises(StorageError) as err:
        check_storage("mysql://user:secret@127.0.0.1/db")
    text = str(err.value)
    assert "'MySQLdb' is not installed: pip install mysqlclient" in text
    assert "secret" not in text and "***" in text


def test_a_host_that_does_not_answer_is_named_with_its_port():
    port = closed_port()
    assert unreachable("127.0.0.1", port) == (f"nothing answers at 127.0.0.1:{port}"
                                              " (Connection refused)")
    assert unreachable(None, 5432) is None  # a unix socket: the driver connects
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert unreachable("127.0.0.1", server.getsockname()[1]) is None
