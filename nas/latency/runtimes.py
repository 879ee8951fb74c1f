"""Each runtime as a runner: a model prepared once, then one forward pass per call."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.machine import native_bf16_cpu
from nas.train.device import synchronize

Run = Callable[[], object]  # one forward pass on the prepared input


class Unavailable(RuntimeError):
    """A runtime this machine cannot measure; the message says why, in one line."""


@dataclass(frozen=True)
class Runner:
    """A runtime ready to time: `make(batch)` returns a call that runs one batch."""

    choice: str  # what was measured, in words: 'onnxruntime 1.32.0 CPU, graph opt all, ...'
    make: Callable[[int], Run]


def runner(runtime: str, model: nn.Module, input_shape: tuple[int, ...], threads: int,
           device: torch.device) -> Runner:
    """The runner of `runtime` for an eval-mode `model`; Unavailable when it cannot run here."""
    makers = {"torch": _torch_nchw, "torch_cl": _torch_cl, "torch_bf16": _torch_bf16,
              "onnxruntime": _onnxruntime, "torch_compile": _torch_compile}
    return makers[runtime](model, input_shape, threads, device)


def _eager(model: nn.Module, input_shape, device, memory_format, dtype) -> Callable[[int], Run]:
    def make(batch: int) -> Run:
        x = torch.randn(batch, *input_shape, device=device).contiguous(memory_format=memory_format)
        cast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())

        def run():
            with torch.inference_mode(), cast:
                out = model(x)
            synchronize(device)
            return out
        return run
    return make


def _where(device: torch.device, threads: int) -> str:
    return f"{device.type}, {threads} thread{'s' if threads > 1 else ''}"


def _torch_nchw(model, input_shape, threads, device) -> Runner:
    model = model.to(device, memory_format=torch.contiguous_format)
    return Runner(f"torch {torch.__version__} eager, fp32, NCHW, {_where(device, threads)}",
                  _eager(model, input_shape, device, torch.contiguous_format, None))


def _torch_cl(model, input_shape, threads, device) -> Runner:
    model = model.to(device, memory_format=torch.channels_last)
    return Runner(f"torch {torch.__version__} eager, fp32, channels_last,"
                  f" {_where(device, threads)}",
                  _eager(model, input_shape, device, torch.channels_last, None))


def _torch_bf16(model, input_shape, threads, device) -> Runner:
    if not _native_bf16(device):
        raise Unavailable(_NO_BF16)
    model = model.to(device, memory_format=torch.channels_last)
    return Runner(f"torch {torch.__version__} eager, bf16 autocast, channels_last,"
                  f" {_where(device, threads)}",
                  _eager(model, input_shape, device, torch.channels_last, torch.bfloat16))


def _torch_compile(model, input_shape, threads, device) -> Runner:
    model = model.to(device, memory_format=torch.channels_last)
    try:
        compiled = torch.compile(model, dynamic=False)
        with torch.inference_mode():  # compile now, so a missing compiler is said here
            compiled(torch.randn(1, *input_shape, device=device).contiguous(
                memory_format=torch.channels_last))
    except Exception as err:  # inductor raises many types; the user needs one line
        raise Unavailable(f"torch.compile failed: {type(err).__name__}: {first_line(err)}"
                          ) from None
    return Runner(f"torch {torch.__version__} torch.compile (inductor), fp32, channels_last,"
                  f" {_where(device, threads)}",
                  _eager(compiled, input_shape, device, torch.channels_last, None))


def unavailable(runtime: str, device: torch.device | str = "cpu") -> str | None:
    """Why `runtime` cannot be measured here, from the cheap checks (a package, a CPU flag);
    None when it may run (torch.compile is only known once it compiles)."""
    device = torch.device(device)
    if runtime == "onnxruntime":
        return _onnx_missing()
    if runtime == "torch_bf16" and not _native_bf16(device):
        return _NO_BF16
    return None


def _onnx_missing() -> str | None:
    """Why ONNX Runtime cannot run here (it or the exporter's onnx not importable), or None."""
    missing, broken = [], []
    for name in ("onnxruntime", "onnx"):
        try:  # imported, not looked up: a package that is there can still fail to load
            importlib.import_module(name)
        except ImportError as err:
            if isinstance(err, ModuleNotFoundError) and err.name == name:
                missing.append(name)
            else:  # installed, but something it needs is not
                broken.append(f"{name} ({first_line(err)})")
    if missing:
        return f"{' and '.join(missing)} not installed: pip install 'spectrum-nas[onnx]'"
    if broken:
        return f"cannot import {'; '.join(broken)}"
    return None


_NO_BF16 = ("no native bf16 here (a CPU needs avx512_bf16 or amx_bf16): an emulated bf16 is"
            " not what a deployment would run")


def _native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return native_bf16_cpu()


def _onnxruntime(model, input_shape, threads, device) -> Runner:
    why = _onnx_missing()
    if why:
        raise Unavailable(why)
    import onnxruntime as ort

    graph = onnx_bytes(model.to("cpu", memory_format=torch.contiguous_format), input_shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)

    def make(batch: int) -> Run:
        feed = {"images": rng.standard_normal((batch, *input_shape), dtype=np.float32)}
        return lambda: session.run(None, feed)
    return Runner(f"onnxruntime {ort.__version__} CPUExecutionProvider, fp32, graph"
                  f" optimization all, {threads} intra-op thread{'s' if threads > 1 else ''}",
                  make)


def onnx_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The eval-mode model as an ONNX graph with a dynamic batch. torch's TorchScript exporter:
    under a second where the dynamo exporter takes ~25 s, and the graph ORT optimises is alike."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    buffer = io.BytesIO()
    example = torch.randn(1, *input_shape)
    try:
        with warnings.catch_warnings(), torch.no_grad():  # deprecation notes users cannot act on
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (example,), buffer, dynamo=False,
                              input_names=["images"], output_names=["output"],
                              dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
    except Exception as err:  # the exporter raises many types
        raise Unavailable(f"ONNX export failed: {type(err).__name__}: {first_line(err)}"
                          ) from None
    return buffer.getvalue()


def first_line(err: BaseException) -> str:
    """The error's first line, at most 200 characters (a runtime's reason is one line)."""
    return (str(err).strip().splitlines() or ["no message"])[0][:200]
