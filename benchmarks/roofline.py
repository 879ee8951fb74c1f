"""The machine's roofline at the current torch thread count: peak GFLOP/s and GB/s, measured.

Peak compute is a large square GEMM (what oneDNN/BLAS reach at best; a convolution cannot beat
it); bandwidth is a STREAM triad `a = b + s * c` counted as three arrays moved, once with arrays
far larger than the last-level cache (DRAM) and once with arrays that fit in it together
(cache). A layer's bound is max(FLOPs / peak, bytes / bandwidth), the bandwidth being the
cache one when the layer's tensors fit in the last-level cache, DRAM otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

GEMM_SIDE = 2048  # 17 GFLOP per product: long enough to time, short enough on 1 core
DRAM_ARRAY_BYTES = 128 * 2**20  # three of them are 12x a 32 MiB L3
FALLBACK_L3_BYTES = 32 * 2**20  # when sysfs does not say


@dataclass(frozen=True)
class Roof:
    """Peak GFLOP/s and GB/s on this machine at `threads` torch threads."""

    threads: int
    dtype: str
    gflops: float
    dram_gbs: float
    cache_gbs: float
    cache_bytes: int  # last-level cache size: tensors up to this size get cache bandwidth

    def bound_seconds(self, flops: float, bytes_: float, working_set: float) -> float:
        """The roofline's lower bound on the time of `flops` over `bytes_` of traffic."""
        gbs = self.cache_gbs if working_set <= self.cache_bytes else self.dram_gbs
        return max(flops / (self.gflops * 1e9), bytes_ / (gbs * 1e9))

    def bound_by(self, flops: float, bytes_: float, working_set: float) -> str:
        """'compute' or 'memory': which roof bounds the layer."""
        gbs = self.cache_gbs if working_set <= self.cache_bytes else self.dram_gbs
        return "compute" if flops / self.gflops >= bytes_ / gbs else "memory"

    def line(self) -> str:
        """One line for a report's header."""
        return (f"roofline at {self.threads} thread(s): {self.gflops:.1f} GFLOP/s ({self.dtype}"
                f" {GEMM_SIDE}^2 GEMM), triad {self.dram_gbs:.1f} GB/s DRAM,"
                f" {self.cache_gbs:.1f} GB/s in cache (working sets <="
                f" {self.cache_bytes / 2**20:.0f} MiB); ridge {self.gflops / self.dram_gbs:.1f}"
                f" FLOP/byte (DRAM), {self.gflops / self.cache_gbs:.1f} (cache)")


def last_level_cache_bytes() -> int:
    """Size of the CPU's largest cache from sysfs (Linux), else 32 MiB."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=FALLBACK_L3_BYTES)


def best_seconds(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_gflops(dtype: torch.dtype, side: int = GEMM_SIDE, repeats: int = 5) -> float:
    """Best GFLOP/s of a side x side x side matrix product."""
    a = torch.randn(side, side).to(dtype)
    b = torch.randn(side, side).to(dtype)
    out = torch.empty(side, side, dtype=dtype)
    return 2 * side**3 / best_seconds(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def triad_gbs(array_bytes: int, repeats: int = 5) -> float:
    """Best GB/s of a = b + 3 c over fp32 arrays of `array_bytes` each (three arrays counted)."""
    n = array_bytes // 4
    a, b, c = torch.empty(n), torch.rand(n), torch.rand(n)
    seconds = best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a), repeats)
    return 3 * array_bytes / seconds / 1e9


def measure_roof(dtype: torch.dtype = torch.float32, repeats: int = 10) -> Roof:
    """Measure the roofline at torch's current thread count."""
    cache = last_level_cache_bytes()
    return Roof(
        threads=torch.get_num_threads(),
        dtype=str(dtype).removeprefix("torch."),
        gflops=gemm_gflops(dtype, repeats=repeats),
        dram_gbs=triad_gbs(DRAM_ARRAY_BYTES, repeats),
        # three arrays at a quarter of the cache each: resident after the warm-up call
        cache_gbs=triad_gbs(cache // 4, repeats * 4),
        cache_bytes=cache,
    )
