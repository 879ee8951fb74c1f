"""Inference latency of a model: median wall-clock time of one forward pass."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from nas.train.device import autocast, resolved, synchronize


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: torch.device | str,
    *,
    batch_size: int = 1,
    warmup: int = 10,
    iters: int = 50,
    channels_last: bool = True,
    precision: str = "fp32",
) -> float:
    """Median ms of one inference-mode forward pass on a [batch_size, *input_shape] input, at
    the resolved `precision` (a search measures at its training's)."""
    if batch_size < 1 or warmup < 0 or iters < 1:
        raise ValueError(
            f"need batch_size >= 1, warmup >= 0, iters >= 1; got {batch_size}, {warmup}, {iters}"
        )
    precision = resolved(precision)
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch_size, *input_shape, device=device).contiguous(memory_format=memory_format)
    model = model.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(device, precision):
            for _ in range(warmup):
                model(x)
            times = [_time_once(model, x, device) for _ in range(iters)]
    finally:
        model.train(was_training)
    return statistics.median(times) * 1e3


def _time_once(model: nn.Module, x: torch.Tensor, device: torch.device) -> float:
    """Seconds of one synchronized forward pass."""
    synchronize(device)
    start = time.perf_counter()
    model(x)
    synchronize(device)
    return time.perf_counter() - start
