"""ImageNet-style subsets from an ImageFolder tree, decoded once into an .npz cache."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data.core import (
    ClassSelection,
    DataError,
    ImageSet,
    default_cache_dir,
    image_set,
    is_int,
    preview,
)
from nas.data.decode import decode_files, worker_count
from nas.data.folder_cache import folder_cache_key, read_folder_cache, write_folder_cache
from nas.data.splits import resolve_classes

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png"})
DEFAULT_FOLDER_RESOLUTION = 64


@dataclass(frozen=True)
class FolderData:
    """Decoded image-folder splits plus what this load did (for logs and tests)."""

    train: ImageSet
    test: ImageSet | None  # the val/ folder, kept as the held-out test split
    skipped: tuple[str, ...]  # unreadable files left out, relative to the root
    decoded: int  # images decoded by this call; 0 when the cache was reused
    cache_file: Path


def _class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the class folders in `split_dir` (hidden folders ignored)."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Sorted image files directly in `folder` (hidden files ignored)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def _list_split(
    split_dir: Path, names: Sequence[str], per_class: int | None
) -> list[tuple[int, Path]]:
    """(label, path) pairs of the first `per_class` files of each class (all when None)."""
    pairs: list[tuple[int, Path]] = []
    root = split_dir.parent
    for label, name in enumerate(names):
        folder = split_dir / name
        if not folder.is_dir():
            raise DataError(f"{folder}: missing class folder (class {name!r} is in train/)")
        files = _image_files(folder)
        if not files:
            raise DataError(f"{folder}: empty class folder (no .jpeg/.jpg/.png files)")
        for path in (folder, *files):
            _check_inside(path, root)
        pairs.extend((label, path) for path in files[:per_class])
    return pairs


def _check_inside(path: Path, root: Path) -> None:
    """Refuse a symbolic link (or a link above it) that leads out of the ImageFolder root:
    a tree handed to the search must not make it read files from elsewhere."""
    target = path.resolve()
    if not target.is_relative_to(root):
        raise DataError(f"{path}: a symbolic link to {target}, outside the ImageFolder root"
                        f" {root}; copy the file into the tree or remove the link")


def _decode_tree(
    root: Path,
    names: Sequence[str],
    train_files: Sequence[tuple[int, Path]],
    test_files: Sequence[tuple[int, Path]] | None,
    resolution: int,
    workers: int,
) -> dict[str, np.ndarray]:
    """Decode the train (and val/) files into the arrays the cache stores."""
    train_images, train_labels, skipped = decode_files(train_files, resolution, workers)
    test_images = np.empty((0, 3, resolution, resolution), dtype=np.uint8)
    test_labels = np.empty(0, dtype=np.int64)
    if test_files is not None:
        test_images, test_labels, test_skipped = decode_files(test_files, resolution, workers)
        skipped += test_skipped
    return {
        "classes": np.array(names, dtype=str),
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
        "has_test": np.array(test_files is not None),
        "skipped": np.array([p.relative_to(root).as_posix() for p in skipped], dtype=str),
    }


def _check_class_counts(
    labels: np.ndarray, names: Sequence[str], per_class: int | None, split_dir: Path
) -> None:
    """Raise for classes with no readable image; warn for classes short of `per_class`."""
    counts = np.bincount(labels, minlength=len(names))
    empty = [name for name, count in zip(names, counts, strict=True) if count == 0]
    if empty:
        raise DataError(f"{split_dir}: no readable images for class(es) {preview(empty)}")
    short = [
        f"{n} ({c})" for n, c in zip(names, counts, strict=True) if per_class and c < per_class
    ]
    if short:
        logger.warning(
            "%s: %d class(es) have fewer than per_class=%d readable images; using what exists: %s",
            split_dir,
            len(short),
            per_class,
            preview(short),
        )


def _folder_splits(
    root: Path, classes: ClassSelection, per_class: int | None
) -> tuple[tuple[str, ...], list[tuple[int, Path]], list[tuple[int, Path]] | None]:
    """Chosen class names and the (label, path) lists of train/ and, if present, val/."""
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(
            f"{root}: no train/ folder; expected an ImageFolder tree {root}/train/<class>/*.jpg "
            f"(and optionally {root}/val/<class>/...)"
        )
    available = _class_folders(train_dir)
    if not available:
        raise DataError(f"{train_dir}: no class folders")
    names = tuple(available[i] for i in resolve_classes(available, classes))
    train_files = _list_split(train_dir, names, per_class)
    val_dir = root / "val"
    test_files = _list_split(val_dir, names, None) if val_dir.is_dir() else None
    return names, train_files, test_files


def _folder_threads(resolution: int, per_class: int | None, workers: int | None) -> int:
    """Check the image-folder options; return the number of decoding threads."""
    if not is_int(resolution) or resolution < 1:
        raise DataError(f"resolution={resolution!r}: expected an int >= 1")
    if per_class is not None and (not is_int(per_class) or per_class < 1):
        raise DataError(f"per_class={per_class!r}: expected an int >= 1 or None (all)")
    return worker_count(workers)


def _decode_and_cache(
    root: Path,
    names: tuple[str, ...],
    files: tuple[list[tuple[int, Path]], list[tuple[int, Path]] | None],
    resolution: int,
    threads: int,
    cache_file: Path,
) -> dict[str, np.ndarray]:
    """Decode the (train, val) file lists and store the result in `cache_file`."""
    arrays = _decode_tree(root, names, files[0], files[1], resolution, threads)
    try:
        write_folder_cache(cache_file, arrays)
    except OSError as exc:
        # The run can go on without a cache; only the next load gets slower.
        logger.warning(
            "could not write image cache %s (%s); next load decodes again", cache_file, exc
        )
    return arrays


def load_imagefolder(
    root: str | os.PathLike[str],
    *,
    classes: ClassSelection = None,
    per_class: int | None = None,
    resolution: int = DEFAULT_FOLDER_RESOLUTION,
    workers: int | None = None,
    cache_dir: Path | None = None,
) -> FolderData:
    """Decode (or reuse the cache of) an ImageFolder subset: train/ and, if present, val/."""
    threads = _folder_threads(resolution, per_class, workers)
    root = Path(root).expanduser().resolve()
    names, train_files, test_files = _folder_splits(root, classes, per_class)
    key = folder_cache_key(root, names, per_class, resolution, train_files, test_files)
    cache_file = (cache_dir or default_cache_dir() / "imagefolder") / f"{root.name}-{key[:24]}.npz"
    arrays = read_folder_cache(cache_file, names, resolution)
    decoded = 0
    if arrays is None:
        files = (train_files, test_files)
        arrays = _decode_and_cache(root, names, files, resolution, threads, cache_file)
        decoded = len(train_files) + len(test_files or ())
    else:
        logger.info("reusing decoded images from %s", cache_file)
    return _folder_data(root, names, per_class, arrays, decoded, cache_file)


def _folder_data(
    root: Path,
    names: tuple[str, ...],
    per_class: int | None,
    arrays: dict[str, np.ndarray],
    decoded: int,
    cache_file: Path,
) -> FolderData:
    """Check the decoded arrays, report skipped files and wrap them as a FolderData."""
    skipped = tuple(str(s) for s in arrays["skipped"].tolist())
    if skipped:
        logger.warning(
            "skipped %d unreadable image(s) under %s: %s", len(skipped), root, preview(skipped, 5)
        )
    _check_class_counts(arrays["train_labels"], names, per_class, root / "train")
    test = None
    if bool(arrays["has_test"]):
        _check_class_counts(arrays["test_labels"], names, None, root / "val")
        test = image_set(arrays["test_images"], arrays["test_labels"], names)
    train = image_set(arrays["train_images"], arrays["train_labels"], names)
    return FolderData(
        train=train, test=test, skipped=skipped, decoded=decoded, cache_file=cache_file
    )
