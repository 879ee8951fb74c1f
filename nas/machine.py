"""What machine this is: the CPU's model and feature flags, whether it computes bf16 natively,
its memory."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# x86 flags of native bf16 arithmetic: oneDNN runs bf16 convolutions and matmuls on these
# instructions; without them it emulates bf16 (up-converting to fp32), which is slower.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# What the records and benchmarks name: the vector ISAs that bound CPU training speed.
RELEVANT_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                      "amx_tile", "amx_bf16", "amx_int8")
CPUINFO = Path("/proc/cpuinfo")
# The one switch that makes this machine pass for the other kind of CPU, so that both
# resolutions of precision "auto" are exercised (tests, CI) on whichever CPU runs them.
FAKE_CPU_ENV = "NAS_FAKE_CPU"
FAKE_CPUS = {
    "bf16": ("avx2", "fma", "avx512f", "avx512_bf16"),  # as a Zen 4 EPYC: native bf16
    "avx2": ("avx2", "fma"),  # as a Zen 3 EPYC: bf16 emulated
}


def cpu_info(text: str | None = None) -> tuple[str | None, frozenset[str]]:
    """The CPU's model name and feature flags from /proc/cpuinfo's first processor (`text`
    overrides the file); (None, empty) where the OS does not tell (not Linux, no access).
    Reading this machine honours $NAS_FAKE_CPU (see fake_cpu)."""
    if text is None:
        fake = fake_cpu()
        try:
            model, flags = cpu_info(CPUINFO.read_text())
        except OSError:
            model, flags = None, frozenset()
        if fake is None:
            return model, flags
        # the other vector ISAs go: a faked CPU has exactly the flags its kind names
        kept = flags - set(RELEVANT_CPU_FLAGS)
        return f"{model or 'unknown CPU'} [{FAKE_CPU_ENV}={fake}]", kept | set(FAKE_CPUS[fake])
    model, flags = None, frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model is None:
            model = value.strip() or None
        elif key in ("flags", "features") and not flags:  # x86 says flags, ARM says Features
            flags = frozenset(value.split())
    return model, flags


def fake_cpu() -> str | None:
    """The CPU kind $NAS_FAKE_CPU asks this machine to pass for ("bf16" or "avx2"), else None."""
    value = os.environ.get(FAKE_CPU_ENV, "").strip()
    if not value:
        return None
    if value not in FAKE_CPUS:
        raise ValueError(f"${FAKE_CPU_ENV}={value!r}: allowed are {', '.join(FAKE_CPUS)}"
                         " (or unset: this machine's own flags)")
    return value


def native_bf16_cpu(flags: Iterable[str] | None = None) -> bool:
    """Whether the CPU with these feature flags (None: this machine's) computes bf16 natively."""
    if flags is None:
        _, flags = cpu_info()
        if not flags and fake_cpu() is None:  # no /proc/cpuinfo: ask torch's CPU probe
            return _torch_says_bf16()
    return any(flag in BF16_CPU_FLAGS for flag in flags)


def _torch_says_bf16() -> bool:
    """torch's cpuinfo-based probe (private, hence looked up defensively)."""
    import torch  # deferred: reading /proc/cpuinfo needs no torch

    probes = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if callable(probe))


def relevant_cpu_flags(flags: Iterable[str]) -> list[str]:
    """The flags of RELEVANT_CPU_FLAGS this CPU has, in that order."""
    present = set(flags)
    return [flag for flag in RELEVANT_CPU_FLAGS if flag in present]


# The one switch that sets the memory this machine passes for (bytes), so that the over-memory
# path is exercised without a network that fills a real machine.
MEMORY_ENV = "NAS_MEMORY_BYTES"


def memory_bytes() -> int:
    """This machine's physical memory in bytes ($NAS_MEMORY_BYTES overrides it)."""
    value = os.environ.get(MEMORY_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"${MEMORY_ENV}={value!r}: must be a positive number of bytes")
        return int(value)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
