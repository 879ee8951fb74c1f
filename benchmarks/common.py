"""What every benchmark shares: where the data is, what machine it runs on."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def default_data_dir() -> Path | None:
    """$NAS_DATA_DIR, else the checkout's sibling shared subset, else None (the loader's cache)."""
    if os.environ.get("NAS_DATA_DIR"):
        return Path(os.environ["NAS_DATA_DIR"])
    return SHARED_SUBSET if SHARED_SUBSET.is_dir() else None


# The CPU flags that decide which kernels oneDNN runs (AVX-512, bf16, AMX).
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> str:
    """'CPU: <model>, <n> cores; flags: avx2 fma (no avx512f, ...)' for a benchmark's header."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags]
    lacks = [f for f in FLAGS if f not in flags]
    return (f"CPU: {model}, {os.cpu_count()} cores; flags: {' '.join(have) or 'none'}"
            + (f" (no {', '.join(lacks)})" if lacks else ""))
