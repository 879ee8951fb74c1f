"""ONNX export of an exported network, checked against torch with onnxruntime."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from nas.results.atomic import atomic_write

# torch's exporter (dynamo=True, the default since torch 2.9) needs onnx and onnxscript;
# onnxruntime runs the check.
PACKAGES = ("onnx", "onnxscript", "onnxruntime")
TOLERANCE = 1e-4  # onnxruntime's kernels differ from torch's in the last float32 bits


class OnnxError(ValueError):
    """ONNX export asked for but not possible here, or the exported graph disagrees with torch."""


def require() -> None:
    """Fail early, with the install command, when an ONNX package is missing."""
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise OnnxError(f"--onnx needs {', '.join(missing)}: pip install 'spectrum-nas[onnx]'")


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Write `model` (eval mode, dynamic batch) to `path`; return max |onnxruntime - torch|."""
    require()
    model = model.eval()
    # The exporter logs each phase and warns about optional torchvision ops: not for users.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1)
    try:
        with warnings.catch_warnings():  # torch-internal deprecations users cannot act on
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False,
                                        input_names=["images"], output_names=["output"],
                                        dynamic_shapes={"x": {0: batch}})
    except Exception as err:  # the exporter raises many types; the user needs one line
        raise OnnxError(f"ONNX export failed: {type(err).__name__}: {_first_line(err)}") from err
    atomic_write(path, lambda tmp: program.save(tmp, external_data=False))
    # A batch size other than the example's also checks that the batch stayed dynamic.
    generator = torch.Generator().manual_seed(1)
    x = torch.randn((example.shape[0] + 1, *example.shape[1:]), generator=generator)
    diff = max_difference(model, path, x)
    if not diff <= TOLERANCE:
        raise OnnxError(f"{path}: onnxruntime output differs from torch by {diff:.3g}")
    return diff


def max_difference(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and torch's outputs on `x`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.inference_mode():
        expected = model(x)
    return float((torch.from_numpy(got) - expected).abs().max())


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else "no message"
