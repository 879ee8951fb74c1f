"""Where and how a model runs: the device, torch's CPU threads, waiting for queued work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def resolve_device(name: str) -> torch.device:
    """Map "auto" | "cpu" | "cuda" to a torch.device ("auto" prefers CUDA when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("TrainConfig.device is 'cuda' but CUDA is not available")
    return torch.device(name)


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


def synchronize(device: torch.device) -> None:
    """Wait for queued device work so wall-clock timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
