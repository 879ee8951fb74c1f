"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The shared real CIFAR-10 subset: $NAS_DATA_DIR, else the repo's sibling ../shared copy."""
    env = os.environ.get("NAS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/cifar10-subset"
    if not path.is_dir():
        # CI always provides the subset; a silent skip would hide a broken setup.
        pytest.fail(
            f"CIFAR-10 test data not found at {path}; set NAS_DATA_DIR to the "
            "cifar10-subset folder (it holds cifar-10-batches-bin/)",
            pytrace=False,
        )
    return path


SEARCH_OUT = "search.out"  # beside a fixture's run folder: what its search printed


def _search(tmp_path_factory, cifar_dir: Path, spec: dict, name: str) -> Path:
    """Run a real search once per test session and return its run folder (its stdout in
    SEARCH_OUT beside it)."""
    from tests.searchkit import run_cli, write_space

    folder = tmp_path_factory.mktemp(name)
    space = write_space(folder, spec)
    env = dict(os.environ, NAS_DATA_DIR=str(cifar_dir))
    done = run_cli("--space", str(space), "--name", name, "--results-dir", str(folder), env=env)
    if done.returncode != 0:
        pytest.fail(f"the {name} search failed:\n{done.stderr[-3000:]}", pytrace=False)
    (folder / SEARCH_OUT).write_text(done.stdout)
    return folder / name


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, cifar_dir) -> Path:
    """A finished real search (8 trials, ASHA-stopped and completed ones, 2 references)."""
    from tests.searchkit import TINY

    return _search(tmp_path_factory, cifar_dir, TINY, "tiny")


@pytest.fixture(scope="session")
def raced_run(tmp_path_factory, cifar_dir) -> Path:
    """A finished search with a [verify] race after it: verification rounds, an answer."""
    from tests.searchkit import RACED

    return _search(tmp_path_factory, cifar_dir, RACED, "raced")


@pytest.fixture(scope="session")
def broken_run(tmp_path_factory, cifar_dir) -> Path:
    """A finished real search whose trials failed (bad genotype) and diverged."""
    from tests.searchkit import BROKEN

    return _search(tmp_path_factory, cifar_dir, BROKEN, "broken")


@pytest.fixture(scope="session")
def latency_run(tmp_path_factory, cifar_dir) -> Path:
    """A finished real search that timed every trial on torch, torch_cl and onnxruntime at
    batch 1 and 2, NSGA-II on accuracy and the ONNX Runtime latency at batch 1."""
    from tests.searchkit import LATENCY

    return _search(tmp_path_factory, cifar_dir, LATENCY, "latency")


@pytest.fixture
def locks():
    """Run-folder locks a test takes, released at its end whatever happened (one process holds
    them: nas.results.lock keeps the held folder per process)."""
    taken = []
    yield taken
    for lock in taken:
        lock.release()


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server on a unix socket (tests.pgkit); skipped where PostgreSQL is
    not installed, but failed in CI (CI=true), which installs it."""
    import shutil

    from tests.pgkit import start_postgres

    server = start_postgres()
    if isinstance(server, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{server} (CI installs it: .ci/run)", pytrace=False)
        pytest.skip(server)
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
