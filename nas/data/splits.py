"""Class subsets, seeded stratified train/val (and held-out) splits and per-channel statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from nas.data.core import (
    ClassSelection,
    DataError,
    HeldOutError,
    ImageSet,
    Splits,
    is_int,
    preview,
)

# Images per bincount call in channel_stats: bounds its int64 copy to about 8 MB a channel.
_STATS_CHUNK = 1024


def _class_index(name_or_index: str | int, available: Sequence[str]) -> int:
    """Index of one class given by name or index."""
    if isinstance(name_or_index, str):
        if name_or_index not in available:
            raise DataError(f"unknown class {name_or_index!r}; available: {preview(available)}")
        return available.index(name_or_index)
    if is_int(name_or_index) and 0 <= name_or_index < len(available):
        return int(name_or_index)
    raise DataError(
        f"classes: {name_or_index!r} is neither a class name nor an index in "
        f"0..{len(available) - 1}"
    )


def resolve_classes(available: Sequence[str], classes: ClassSelection) -> tuple[int, ...]:
    """Ascending indices of the chosen classes: None = all, int N = first N, else names/indices."""
    count = len(available)
    if classes is None:
        return tuple(range(count))
    if is_int(classes):
        if not 1 <= classes <= count:
            raise DataError(f"classes={classes}: expected a number of classes in 1..{count}")
        return tuple(range(int(classes)))
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise DataError(f"classes: expected None, an int or a sequence of names, got {classes!r}")
    chosen = [_class_index(c, available) for c in classes]
    if not chosen:
        raise DataError("classes: an empty selection; give at least one class")
    if len(set(chosen)) != len(chosen):
        raise DataError(f"classes: duplicates in {list(classes)!r}")
    # Dataset order, not the order given: the same set of classes always gets the same labels.
    return tuple(sorted(chosen))


def _take(data: ImageSet, indices: np.ndarray) -> ImageSet:
    """The images at `indices`, as a new ImageSet."""
    idx = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    return ImageSet(data.images[idx], data.labels[idx], data.classes)


def subset_classes(data: ImageSet, classes: ClassSelection) -> ImageSet:
    """Keep only the chosen classes, relabelled 0..k-1 in dataset order."""
    keep = resolve_classes(data.classes, classes)
    if keep == tuple(range(len(data.classes))):
        return data
    lut = np.full(len(data.classes), -1, dtype=np.int64)
    lut[list(keep)] = np.arange(len(keep))
    new_labels = lut[data.labels.cpu().numpy()]
    rows = np.flatnonzero(new_labels >= 0)
    kept = _take(data, rows)
    names = tuple(data.classes[i] for i in keep)
    return ImageSet(kept.images, torch.from_numpy(new_labels[rows]), names)


def _resolve_size(size: int | float, total: int, name: str, *, allow_zero: bool) -> int:
    """Turn an int count or a fraction of `total` into a count, checking its lower bound."""
    low = 0 if allow_zero else 1
    if is_int(size):
        count = int(size)
    elif isinstance(size, float) and 0.0 <= size <= 1.0:
        count = round(size * total)
        # A positive fraction of a non-empty pool should never round to nothing.
        count = max(count, 1) if size > 0 and total > 0 else count
    else:
        raise DataError(f"{name}={size!r}: expected an int count or a float fraction in [0, 1]")
    if count < low:
        raise DataError(f"{name}={size!r}: expected at least {low} image(s)")
    return count


def _proportional_quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """Split `n` over classes in proportion to `counts` (largest remainder, exact integers)."""
    total = int(counts.sum())
    quotas = counts * n // total
    remainders = counts * n % total
    # Largest remainders get the leftovers; a stable sort breaks ties by class order.
    order = np.argsort(-remainders, kind="stable")
    quotas[order[: n - int(quotas.sum())]] += 1
    return quotas


def _stratified_sample(
    labels: np.ndarray, pool: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """`n` sorted indices from `pool`, each class represented in proportion to its size."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    pool_labels = labels[pool]
    classes, counts = np.unique(pool_labels, return_counts=True)
    quotas = _proportional_quotas(counts.astype(np.int64), n)
    picks = [
        rng.choice(pool[pool_labels == c], size=int(q), replace=False)
        for c, q in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def stratified_split(
    labels: np.ndarray | torch.Tensor,
    *,
    val_size: int | float,
    train_size: int | float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, per-class-stratified (train, val) index arrays; train_size counts the rest."""
    train, val, _ = stratified_splits(labels, val_size=val_size, train_size=train_size,
                                      seed=seed)
    return train, val


def stratified_splits(
    labels: np.ndarray | torch.Tensor,
    *,
    val_size: int | float,
    train_size: int | float | None = None,
    held_out: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, per-class-stratified (train, val, held-out) index arrays, disjoint: val first,
    then train from the rest, then `held_out` images from what both leave (drawn last, so
    train and val are the same with or without it)."""
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    total = int(labels.size)
    if total == 0:
        raise DataError("cannot split an empty data set")
    n_val = _resolve_size(val_size, total, "val_size", allow_zero=True)
    if n_val > total:
        raise DataError(f"val_size={val_size!r} asks for {n_val:,} validation images; the data"
                        f" holds {total:,} training images")
    if n_val == total:
        raise DataError(f"val_size={val_size!r} leaves no training images (the data holds"
                        f" {total:,} training images)")
    rng = np.random.default_rng(seed)
    val = _stratified_sample(labels, np.arange(total), n_val, rng)
    rest = np.setdiff1d(np.arange(total), val, assume_unique=True)
    n_train = (
        rest.size
        if train_size is None
        else _resolve_size(train_size, int(rest.size), "train_size", allow_zero=False)
    )
    if n_train > rest.size:
        # One line that names both fields: it is their sum the data cannot hold.
        raise DataError(f"train_size={train_size!r} + val_size={val_size!r} asks for"
                        f" {n_train + n_val:,} images; the data holds {total:,} training images"
                        f" ({rest.size:,} left after validation)")
    train = _stratified_sample(labels, rest, n_train, rng)
    if not (is_int(held_out) and held_out >= 0):
        raise HeldOutError(f"held_out: expected an int >= 0, got {held_out!r}")
    left = np.setdiff1d(rest, train, assume_unique=True)
    if held_out > left.size:
        raise HeldOutError(f"held_out: {held_out:,} images requested, only {left.size:,}"
                           " training images are left after val_size and train_size")
    return train, val, _stratified_sample(labels, left, int(held_out), rng)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NCHW images, in [0, 1] units."""
    arr = images.cpu().numpy()
    if arr.shape[0] == 0:
        raise DataError("cannot compute mean/std of an empty training split")
    levels = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(arr.shape[1]):
        # A 256-bin histogram gives exact moments without a float copy of the whole split;
        # counted in chunks, as bincount widens its input to int64 (8x a 50,000-image split).
        hist = sum(
            np.bincount(arr[i : i + _STATS_CHUNK, channel].ravel(), minlength=256)
            for i in range(0, arr.shape[0], _STATS_CHUNK)
        ).astype(np.float64)
        mean = float(hist @ levels / hist.sum())
        var = float(hist @ (levels - mean) ** 2 / hist.sum())
        means.append(mean / 255.0)
        stds.append(math.sqrt(var) / 255.0)
    return tuple(means), tuple(stds)


def make_splits(
    train: ImageSet,
    test: ImageSet | None = None,
    *,
    val_size: int | float = 0.1,
    train_size: int | float | None = None,
    classes: ClassSelection = None,
    held_out: int = 0,
    seed: int = 0,
) -> Splits:
    """Carve a seeded, stratified validation split from `train` (and, with `held_out`, that
    many images neither split uses); `test` is only class-subset."""
    if test is not None and test.classes != train.classes:
        raise DataError("train and test sets have different class names")
    train = subset_classes(train, classes)
    test = subset_classes(test, classes) if test is not None else None
    train_idx, val_idx, held_idx = stratified_splits(
        train.labels, val_size=val_size, train_size=train_size, held_out=held_out, seed=seed
    )
    train_part = _take(train, train_idx)
    mean, std = channel_stats(train_part.images)
    return Splits(train=train_part, val=_take(train, val_idx), test=test, mean=mean, std=std,
                  held_out=_take(train, held_idx) if held_out else None)
