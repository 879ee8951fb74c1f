"""Locating CIFAR-10 (--data-dir, $NAS_DATA_DIR, the per-user cache) and loading it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nas.data.batches import BIN_DIRNAME, PY_DIRNAME, BatchesDir, find_batches_dir, read_cifar10
from nas.data.core import DATA_DIR_ENV, DataError, ImageSet, default_cache_dir
from nas.data.download import (
    CIFAR10_BINARY_MD5,
    CIFAR10_BINARY_URL,
    _DownloadFailed,
    download_cifar10,
)


def _places_looked(directory: Path) -> list[Path]:
    """The paths `find_batches_dir` inspects for `directory`."""
    return [directory, directory / BIN_DIRNAME, directory / PY_DIRNAME]


def _not_found_message(places: Sequence[Path], why: str) -> str:
    """The single 'CIFAR-10 is not here' message: where we looked and how to fix it."""
    looked = ", ".join(str(p) for p in places)
    return (
        f"CIFAR-10 not found ({why}). Looked in: {looked}. Point at a copy with "
        f"--data-dir DIR or {DATA_DIR_ENV}=DIR, where DIR is a {BIN_DIRNAME}/ or "
        f"{PY_DIRNAME}/ folder or the folder that holds one."
    )


def _pointed_dir(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The user-chosen location and where the choice came from, if any."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "--data-dir"
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser(), f"${DATA_DIR_ENV}"
    return None


def locate_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    url: str = CIFAR10_BINARY_URL,
    md5: str = CIFAR10_BINARY_MD5,
) -> BatchesDir:
    """Find CIFAR-10 in `data_dir`, else $NAS_DATA_DIR, else the cache (downloading into it)."""
    pointed = _pointed_dir(data_dir)
    if pointed is not None:
        directory, source = pointed
        found = find_batches_dir(directory)
        if found is None:
            # A wrong explicit location is a mistake to report, not to paper over with a
            # 170 MB download somewhere else.
            raise DataError(
                _not_found_message(_places_looked(directory), f"{source} is {directory}")
            )
        return found
    cache = default_cache_dir()
    found = find_batches_dir(cache)
    if found is not None:
        return found
    places = _places_looked(cache)[1:]
    if not download:
        raise DataError(
            _not_found_message(places, "not in the per-user cache, and downloading is disabled")
        )
    try:
        return download_cifar10(cache, url=url, md5=md5)
    except _DownloadFailed as exc:
        why = f"not in the per-user cache, and downloading {url} failed: {exc}"
        raise DataError(_not_found_message(places, why)) from exc


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    url: str = CIFAR10_BINARY_URL,
    md5: str = CIFAR10_BINARY_MD5,
) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 (train, official test), located as `locate_cifar10` does."""
    return read_cifar10(locate_cifar10(data_dir, download=download, url=url, md5=md5))
