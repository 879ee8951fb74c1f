"""Shared pieces of nas.data: errors, image sets, splits, the cache folder, small checks."""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

DATA_DIR_ENV = "NAS_DATA_DIR"
CACHE_SUBDIR = "spectrum-nas"

ClassSelection: TypeAlias = int | Sequence[str | int] | None


class DataError(ValueError):
    """A data set is missing, malformed, or was asked for with invalid options."""


class HeldOutError(DataError):
    """More held-out images asked for than the training images left after val and train hold;
    the message starts with the field, `held_out: ...`, for the caller to name its table."""


class UnsafePickleError(DataError, pickle.UnpicklingError):
    """A CIFAR-10 pickle referenced a global outside the numpy-array allow-list."""


@dataclass(frozen=True)
class ImageSet:
    """Images as one uint8 NCHW tensor with int64 labels and class names."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Splits:
    """Train / validation (carved from training data) / official test splits, and an optional
    held-out split carved from the training images neither train nor val uses."""

    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    mean: tuple[float, ...]  # per channel, in [0, 1] units, from the train split
    std: tuple[float, ...]
    held_out: ImageSet | None = None  # None: none asked for


def default_cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/spectrum-nas, else ~/.cache/spectrum-nas."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / CACHE_SUBDIR


def is_int(value: Any) -> bool:
    """True for ints (numpy ints included) but not bools."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def preview(names: Sequence[str], limit: int = 20) -> str:
    """Comma-separated names, cut short for very long lists."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def image_set(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> ImageSet:
    """Wrap numpy arrays (no copy when already contiguous) as an ImageSet."""
    return ImageSet(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        classes=classes,
    )
