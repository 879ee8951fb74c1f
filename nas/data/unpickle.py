"""An unpickler for CIFAR-10's python layout that rebuilds numpy arrays and nothing else."""

from __future__ import annotations

import codecs
import pickle
import types
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nas.data.core import DataError, UnsafePickleError


def _allowed_pickle_globals() -> types.MappingProxyType[tuple[str, str], Any]:
    """The globals that pickled numpy arrays and latin-1 byte strings need, and nothing else."""
    # Take numpy's own array builders from a live array rather than importing them by name:
    # they live in numpy.core.* in numpy 1.x and numpy._core.* in 2.x (with deprecation shims
    # under the old names); pickles name either, and both names map to the same object.
    probe = np.zeros(1, dtype=np.uint8)
    reconstruct = probe.__reduce__()[0]  # protocols 0-4
    frombuffer = probe.__reduce_ex__(5)[0]  # protocol 5 (Python 3.14's default)
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    # Protocol-2 pickles written by Python 3 encode bytes as _codecs.encode(str, "latin1").
    allowed[("_codecs", "encode")] = codecs.encode
    return types.MappingProxyType(allowed)


_PICKLE_GLOBALS = _allowed_pickle_globals()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy needs to rebuild arrays."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        # encoding="bytes" keeps Python 2 str keys and data as bytes, as the official files need.
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        """Return an allow-listed global; refuse every other one."""
        found = _PICKLE_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle global {module}.{name}; CIFAR-10 pickles "
                "may only reference numpy array builders (a tampered or foreign file?)"
            )
        return found


def unpickle(path: Path) -> Any:
    """Load one CIFAR-10 pickle with the numpy-only unpickler."""
    try:
        with path.open("rb") as f:
            return _NumpyOnlyUnpickler(f, path).load()
    except FileNotFoundError:
        raise DataError(f"{path}: missing CIFAR-10 file") from None
    except DataError:
        raise
    except Exception as exc:
        # A damaged pickle can fail with almost any exception type; report it as the file's fault.
        raise DataError(
            f"{path}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})"
        ) from exc
