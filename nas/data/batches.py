"""CIFAR-10 batches folders: the binary and python layouts, finding one, reading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from nas.data.core import DataError, ImageSet, image_set
from nas.data.unpickle import unpickle

BIN_DIRNAME = "cifar-10-batches-bin"
PY_DIRNAME = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
)
CIFAR_TEST_BATCH = "test_batch"
CIFAR_NUM_CLASSES = 10
CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE  # 3,072 bytes: R plane, G plane, B plane
CIFAR_RECORD = 1 + CIFAR_PIXELS  # label byte + pixels = 3,073 bytes


class BatchesDir(NamedTuple):
    """A CIFAR-10 batches folder and its layout."""

    layout: Literal["bin", "py"]
    path: Path


def _layout_files(layout: Literal["bin", "py"]) -> tuple[str, ...]:
    """File names a complete batches folder of `layout` holds."""
    batches = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)
    if layout == "bin":
        return (*(f"{name}.bin" for name in batches), "batches.meta.txt")
    return (*batches, "batches.meta")


def find_batches_dir(directory: Path) -> BatchesDir | None:
    """The CIFAR-10 batches folder that `directory` is or directly holds, else None."""
    if not directory.is_dir():
        return None
    layouts: tuple[tuple[Literal["bin", "py"], str], ...] = (
        ("bin", BIN_DIRNAME),
        ("py", PY_DIRNAME),
    )
    # The binary layout wins when both exist: it needs no unpickling.
    for layout, name in layouts:
        if directory.name == name or any((directory / f).is_file() for f in _layout_files(layout)):
            return BatchesDir(layout, directory)
    for layout, name in layouts:
        if (directory / name).is_dir():
            return BatchesDir(layout, directory / name)
    return None


def _file_size(path: Path) -> int:
    """Size of `path` in bytes, as a DataError when it is missing or unreadable."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: missing CIFAR-10 file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def _check_labels(labels: np.ndarray, path: Path) -> None:
    """Raise when a label is outside 0..9, naming the first bad record."""
    bad = np.flatnonzero((labels < 0) | (labels >= CIFAR_NUM_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: record {i} has label {int(labels[i])}, CIFAR-10 labels are "
            f"0-{CIFAR_NUM_CLASSES - 1} (corrupt file?)"
        )


def read_cifar_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of one binary CIFAR-10 batch file."""
    size = _file_size(path)
    if size == 0 or size % CIFAR_RECORD:
        raise DataError(
            f"{path}: {size} bytes is not a positive multiple of the {CIFAR_RECORD}-byte "
            "CIFAR-10 record (truncated, or not a CIFAR-10 batch)"
        )
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if raw.size != size:
        raise DataError(f"{path}: read {raw.size} bytes, expected {size} (file changed?)")
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    _check_labels(labels, path)
    return records[:, 1:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), labels


def _describe(value: Any) -> str:
    """Short description of a value for error messages."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _py_batch_arrays(batch: Any, path: Path) -> tuple[np.ndarray, Any]:
    """The b"data" array and b"labels" value of an unpickled batch, type-checked."""
    if not isinstance(batch, dict):
        raise DataError(
            f"{path}: expected a dict with b'data' and b'labels', got {_describe(batch)}"
        )
    data = batch.get(b"data")
    ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
    if not ok or data.shape[1] != CIFAR_PIXELS or data.shape[0] == 0:
        raise DataError(
            f"{path}: b'data' must be a non-empty uint8 array of shape (N, {CIFAR_PIXELS}), "
            f"got {_describe(data)}"
        )
    return data, batch.get(b"labels")


def _py_labels(labels: Any, count: int, path: Path) -> np.ndarray:
    """The b"labels" value as int64, checked for length and range."""
    arr = np.asarray(labels) if isinstance(labels, list | tuple | np.ndarray) else None
    if arr is None or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: b'labels' must be a list of ints, got {_describe(labels)}")
    if arr.size != count:
        raise DataError(f"{path}: {arr.size} labels for {count} images")
    arr = arr.astype(np.int64)
    _check_labels(arr, path)
    return arr


def read_cifar_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of one python-layout CIFAR-10 batch."""
    data, labels = _py_batch_arrays(unpickle(path), path)
    images = data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    return images, _py_labels(labels, images.shape[0], path)


def _check_class_names(names: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """Return `names` if they are ten distinct class names, else raise."""
    if len(names) != CIFAR_NUM_CLASSES or len(set(names)) != len(names):
        raise DataError(
            f"{path}: expected {CIFAR_NUM_CLASSES} distinct class names, got {len(names)}: "
            f"{', '.join(names)}"
        )
    return names


def _read_bin_class_names(path: Path) -> tuple[str, ...]:
    """Class names from batches.meta.txt, one a line (blank lines ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing CIFAR-10 file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read class names ({exc})") from exc
    return _check_class_names(tuple(s for line in text.splitlines() if (s := line.strip())), path)


def _read_py_class_names(path: Path) -> tuple[str, ...]:
    """Class names from the b"label_names" entry of the batches.meta pickle."""
    meta = unpickle(path)
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise DataError(f"{path}: expected a dict with b'label_names', a list of names")
    try:
        decoded = tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: class names are not UTF-8 ({exc})") from exc
    return _check_class_names(decoded, path)


def _require_files(batches: BatchesDir) -> None:
    """Raise naming every file a complete batches folder lacks, before reading any."""
    missing = [
        name for name in _layout_files(batches.layout) if not (batches.path / name).is_file()
    ]
    if missing:
        raise DataError(f"{batches.path}: missing CIFAR-10 file(s): {', '.join(missing)}")


def read_cifar10(batches: BatchesDir) -> tuple[ImageSet, ImageSet]:
    """The five training batches (as one set) and the official test batch of a batches folder."""
    _require_files(batches)
    if batches.layout == "bin":
        read_batch, suffix = read_cifar_bin_batch, ".bin"
        classes = _read_bin_class_names(batches.path / "batches.meta.txt")
    else:
        read_batch, suffix = read_cifar_py_batch, ""
        classes = _read_py_class_names(batches.path / "batches.meta")
    parts = [read_batch(batches.path / f"{name}{suffix}") for name in CIFAR_TRAIN_BATCHES]
    train = image_set(
        np.concatenate([images for images, _ in parts]),
        np.concatenate([labels for _, labels in parts]),
        classes,
    )
    test = image_set(*read_batch(batches.path / f"{CIFAR_TEST_BATCH}{suffix}"), classes)
    return train, test
