"""What every benchmark shares: where the data is, what machine it runs on."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import torch

from nas.machine import RELEVANT_CPU_FLAGS, cpu_info, native_bf16_cpu, relevant_cpu_flags

SHARED_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def default_data_dir() -> Path | None:
    """$NAS_DATA_DIR, else the checkout's sibling shared subset, else None (the loader's cache)."""
    if os.environ.get("NAS_DATA_DIR"):
        return Path(os.environ["NAS_DATA_DIR"])
    return SHARED_SUBSET if SHARED_SUBSET.is_dir() else None


def machine() -> str:
    """'CPU: <model>, <n> cores; flags: avx2 fma (no avx512f, ...); no native bf16 ...' for a
    benchmark's header: the flags decide which kernels oneDNN runs (AVX-512, bf16, AMX)."""
    model, flags = cpu_info()
    have = relevant_cpu_flags(flags)
    lacks = [f for f in RELEVANT_CPU_FLAGS if f not in have]
    bf16 = "native bf16" if native_bf16_cpu(flags or None) else "no native bf16 (emulated)"
    return (f"CPU: {model or 'unknown'}, {os.cpu_count()} cores; flags: {' '.join(have) or 'none'}"
            + (f" (no {', '.join(lacks)})" if lacks else "")
            + f"; {bf16}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}")


def load_note() -> str:
    """The 1-minute load average against the core count: other work skews every timing."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def timed(command: list[str], env: dict[str, str],
          cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command to its end; its wall seconds and its result (failing loudly)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done
