"""Where and how a model runs: the device, its precision, CPU threads, the CPU allocator,
waiting for queued work."""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterable, Iterator

import torch

from nas.machine import native_bf16_cpu
from nas.train.config import PRECISIONS, RESOLVED_PRECISIONS


def resolve_device(name: str) -> torch.device:
    """Map "auto" | "cpu" | "cuda" to a torch.device ("auto" prefers CUDA when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("TrainConfig.device is 'cuda' but CUDA is not available")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device | str,
                      cpu_flags: Iterable[str] | None = None) -> str:
    """Map "auto" | "fp32" | "bf16" to "fp32" or "bf16" for `device`.

    "auto" is bf16 where the device computes it natively (CUDA with bf16 support, a CPU with
    avx512_bf16 or amx_bf16; `cpu_flags` None reads this machine's) and fp32 elsewhere: an
    emulated bf16 would be slower and less accurate at once.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)  # pre-Ampere GPUs emulate it
        return "bf16" if native else "fp32"
    if device.type == "cpu":
        return "bf16" if native_bf16_cpu(cpu_flags) else "fp32"
    return "fp32"


def resolved(precision: str) -> str:
    """`precision` when it is resolved ("fp32" or "bf16"); anything else, "auto" included, is a
    ValueError: a job resolves "auto" once, at its start, and passes the result down."""
    if precision not in RESOLVED_PRECISIONS:
        raise ValueError(f"needs a resolved precision ('fp32' or 'bf16'), got {precision!r}:"
                         " resolve 'auto' for the device with"
                         " nas.train.device.resolve_precision first")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device for a resolved "bf16"; a no-op for "fp32".

    Autocast casts only the ops on its lower-precision list (convolutions, linear layers,
    matmuls) to bf16; weights, BatchNorm statistics, the loss and the optimizer step stay fp32.
    """
    if resolved(precision) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the body with torch's intra-op thread count set to `n`, then restore it."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# glibc mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 2**20
_TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed tensor memory for reuse; False where it is not glibc.

    By default glibc hands every block above a moving threshold (at most 32 MiB) straight back
    to the kernel when freed and trims the heap's top: a training step then page-faults its
    activations in afresh every time (measured ~10-20 % of a CPU step, all of it system time
    and page zeroing). A fixed threshold at glibc's 32 MiB ceiling and a 1 GiB trim threshold
    keep the memory in the process for the next step; the numbers computed do not change.
    Process-wide and idempotent; the peak memory stays what the step needs.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def synchronize(device: torch.device) -> None:
    """Wait for queued device work so wall-clock timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
