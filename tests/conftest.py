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
