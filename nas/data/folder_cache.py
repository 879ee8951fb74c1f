"""The .npz cache of decoded image folders: its key, and reading and writing it safely."""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.core import DataError
from nas.results.atomic import atomic_write

logger = logging.getLogger(__name__)

# Bump when decoding changes, so caches written by older code are not reused.
_FOLDER_CACHE_FORMAT = 1
_FOLDER_CACHE_KEYS = (
    "classes",
    "train_images",
    "train_labels",
    "test_images",
    "test_labels",
    "has_test",
    "skipped",
)


def _file_entries(files: Sequence[tuple[int, Path]], root: Path) -> list[list[Any]]:
    """[label, relative path, size, mtime_ns] of each file, for the cache key."""
    entries = []
    for label, path in files:
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(f"{path}: cannot stat ({exc})") from exc
        entries.append([label, path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return entries


def folder_cache_key(
    root: Path,
    names: Sequence[str],
    per_class: int | None,
    resolution: int,
    train_files: Sequence[tuple[int, Path]],
    test_files: Sequence[tuple[int, Path]] | None,
) -> str:
    """Hash of the decode parameters and every selected file's relative path, size and mtime."""
    payload = {
        "format": _FOLDER_CACHE_FORMAT,
        "classes": list(names),
        "per_class": per_class,
        "resolution": resolution,
        "train": _file_entries(train_files, root),
        "test": None if test_files is None else _file_entries(test_files, root),
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def read_folder_cache(
    path: Path, names: Sequence[str], resolution: int
) -> dict[str, np.ndarray] | None:
    """The arrays of an earlier decode, or None when there is no usable cache file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _FOLDER_CACHE_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # A damaged cache only costs a re-decode; it must not stop the run.
        logger.warning("ignoring unreadable image cache %s (%s); decoding again", path, exc)
        return None
    shape_ok = arrays["train_images"].shape[1:] == (3, resolution, resolution)
    if tuple(arrays["classes"].tolist()) != tuple(names) or not shape_ok:
        logger.warning("ignoring image cache %s: it does not match the request", path)
        return None
    return arrays


def write_folder_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an .npz atomically, never pickling."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for key, array in arrays.items():
                # What np.savez does, but with allow_pickle=False on every numpy version.
                with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)

    atomic_write(path, write)
