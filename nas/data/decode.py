"""Decoding image files to square uint8 CHW arrays, in parallel threads."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nas.data.core import DataError, is_int

logger = logging.getLogger(__name__)


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """Decode one image as RGB, resize its shorter side to `resolution`, center-crop; uint8 CHW."""
    with Image.open(path) as img:
        # JPEG draft mode decodes at a reduced scale that is still >= the target: much faster.
        img.draft("RGB", (resolution, resolution))
        rgb = img.convert("RGB")
    width, height = rgb.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    resized = rgb.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    crop = resized.crop((left, top, left + resolution, top + resolution))
    return np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)


def _decode_or_none(path: Path, resolution: int) -> np.ndarray | None:
    """`decode_image`, or None when the file cannot be decoded."""
    try:
        return decode_image(path, resolution)
    except Exception as exc:
        # Pillow raises many exception types on damaged files; one bad image must not stop a run.
        logger.debug("cannot decode %s: %s", path, exc)
        return None


def worker_count(workers: int | None) -> int:
    """Threads to decode with: `workers`, or one per CPU (at most 32)."""
    if workers is None:
        return min(32, os.cpu_count() or 1)
    if not is_int(workers) or workers < 1:
        raise DataError(f"workers={workers!r}: expected an int >= 1 or None (one per CPU)")
    return int(workers)


def _decode_all(
    paths: Sequence[Path], resolution: int, workers: int
) -> Iterator[np.ndarray | None]:
    """Decode `paths` in order, in parallel when `workers` > 1."""
    task = functools.partial(_decode_or_none, resolution=resolution)
    if workers == 1 or len(paths) < 2:
        yield from map(task, paths)
        return
    # Threads suffice: Pillow releases the GIL while decoding and resampling, and threads
    # need no pickling of paths or pixel arrays.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(task, paths)


def decode_files(
    files: Sequence[tuple[int, Path]], resolution: int, workers: int
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Decode (label, path) pairs into images, labels and the unreadable paths."""
    images = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    skipped: list[Path] = []
    kept = 0
    decoded = _decode_all([path for _, path in files], resolution, workers)
    for (label, path), image in zip(files, decoded, strict=True):
        if image is None:
            skipped.append(path)
            continue
        images[kept], labels[kept] = image, label
        kept += 1
    return images[:kept], labels[:kept], skipped
