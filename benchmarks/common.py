"""What every benchmark shares: where the data is."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def default_data_dir() -> Path | None:
    """$NAS_DATA_DIR, else the checkout's sibling shared subset, else None (the loader's cache)."""
    if os.environ.get("NAS_DATA_DIR"):
        return Path(os.environ["NAS_DATA_DIR"])
    return SHARED_SUBSET if SHARED_SUBSET.is_dir() else None
