"""Data sets as device-ready uint8 tensors: CIFAR-10 and ImageNet-style subsets.

CIFAR-10 is read from the official binary layout (``cifar-10-batches-bin``, plain
numpy) or the official python layout (``cifar-10-batches-py``, through an unpickler
that only rebuilds numpy arrays). It is looked for in, by precedence: the
``data_dir`` argument (the CLI's ``--data-dir``), ``$NAS_DATA_DIR``, then the
per-user cache (``$XDG_CACHE_HOME/spectrum-nas`` or ``~/.cache/spectrum-nas``), where
it is downloaded when missing.

ImageNet-style subsets come from an ImageFolder tree (``train/<class>/*.jpg``,
optionally ``val/<class>/...``), decoded once in parallel into a ``.npz`` cache.

``load_splits(DataSpec(...))`` is the one entry point the search and benchmarks use.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import http.client
import json
import logging
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import types
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, Literal, NamedTuple, TypeAlias

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CIFAR10_BINARY_MD5",
    "CIFAR10_BINARY_URL",
    "DATASETS",
    "DATA_DIR_ENV",
    "DEFAULT_FOLDER_RESOLUTION",
    "BatchesDir",
    "ClassSelection",
    "DataError",
    "DataSpec",
    "FolderData",
    "ImageSet",
    "Splits",
    "UnsafePickleError",
    "channel_stats",
    "decode_image",
    "default_cache_dir",
    "download_cifar10",
    "find_batches_dir",
    "load_cifar10",
    "load_imagefolder",
    "load_splits",
    "locate_cifar10",
    "make_splits",
    "read_cifar10",
    "read_cifar_bin_batch",
    "read_cifar_py_batch",
    "resolve_classes",
    "stratified_split",
    "subset_classes",
]

logger = logging.getLogger(__name__)

CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_BINARY_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
DATA_DIR_ENV = "NAS_DATA_DIR"
CACHE_SUBDIR = "spectrum-nas"
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

DATASETS = ("cifar10", "imagefolder")
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png"})
DEFAULT_FOLDER_RESOLUTION = 64
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
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20

ClassSelection: TypeAlias = int | Sequence[str | int] | None


class DataError(ValueError):
    """A data set is missing, malformed, or was asked for with invalid options."""


class UnsafePickleError(DataError, pickle.UnpicklingError):
    """A CIFAR-10 pickle referenced a global outside the numpy-array allow-list."""


class _DownloadFailed(Exception):
    """The archive could not be fetched (offline, bad URL, server error)."""


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
    """Train / validation (carved from training data) / official test splits."""

    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    mean: tuple[float, ...]  # per channel, in [0, 1] units, from the train split
    std: tuple[float, ...]


class BatchesDir(NamedTuple):
    """A CIFAR-10 batches folder and its layout."""

    layout: Literal["bin", "py"]
    path: Path


@dataclass(frozen=True)
class FolderData:
    """Decoded image-folder splits plus what this load did (for logs and tests)."""

    train: ImageSet
    test: ImageSet | None  # the val/ folder, kept as the held-out test split
    skipped: tuple[str, ...]  # unreadable files left out, relative to the root
    decoded: int  # images decoded by this call; 0 when the cache was reused
    cache_file: Path


# ---------------------------------------------------------------------------
# Where CIFAR-10 lives


def default_cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/spectrum-nas, else ~/.cache/spectrum-nas."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / CACHE_SUBDIR


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


# ---------------------------------------------------------------------------
# Download


def _archive_name(url: str) -> str:
    """The archive's file name, taken from the URL path."""
    return PurePosixPath(urllib.parse.urlsplit(url).path).name or "cifar-10.tar.gz"


def _md5_of(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stream_to(url: str, out: BinaryIO) -> str:
    """Copy `url` into `out`; return the MD5 of what was written."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # URLError, timeouts and refused connections are OSErrors; ValueError is a malformed URL.
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _DownloadFailed(str(reason)) from exc
    return digest.hexdigest()


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download `url` to a temp file beside `dest`, check its MD5, then rename it into place."""
    logger.info("downloading %s to %s", url, dest)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _stream_to(url, out)
        if got != md5:
            raise DataError(
                f"downloaded {url} has MD5 {got}, expected {md5}: the file is corrupt or not "
                "the CIFAR-10 archive; nothing was kept"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that could land outside the target or are not plain files/folders."""
    name = member.name
    unsafe = (
        PureWindowsPath(name).anchor != ""  # "/x", "\\x", "C:x": absolute or drive-relative
        or ".." in PurePosixPath(name).parts
        or ".." in PureWindowsPath(name).parts
    )
    if unsafe:
        raise DataError(f"{archive}: refusing archive member with unsafe path {name!r}")
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"{archive}: refusing archive member {name!r}: only regular files and folders are "
            "allowed (no links, devices or FIFOs)"
        )


def _extract_into(archive: Path, staging: Path) -> None:
    """Extract `archive` into `staging` after checking every member."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive)
            # filter="data" repeats the checks in the standard library: defence in depth. Python
            # 3.11.0-3.11.3 lack extraction filters; the member checks above still apply there.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **safe)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: cannot extract the archive ({exc})") from exc


def _extract_batches(archive: Path, cache_dir: Path) -> BatchesDir:
    """Extract `archive` in a staging folder, then move its batches folder into `cache_dir`."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_dir))
    try:
        _extract_into(archive, staging)
        found = find_batches_dir(staging)
        if found is None or found.path == staging:
            raise DataError(f"{archive}: holds no {BIN_DIRNAME}/ or {PY_DIRNAME}/ folder")
        target = cache_dir / found.path.name
        try:
            os.replace(found.path, target)
        except OSError:
            # A parallel process (say, another trial) extracted first: use its copy.
            if not target.is_dir():
                raise
        return BatchesDir(found.layout, target)
    except DataError:
        # An archive we refuse to extract is useless; do not keep it around.
        archive.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_cifar10(
    cache_dir: Path, *, url: str = CIFAR10_BINARY_URL, md5: str = CIFAR10_BINARY_MD5
) -> BatchesDir:
    """Download the CIFAR-10 archive into `cache_dir`, verify its MD5 and extract it safely."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / _archive_name(url)
    # A verified archive left by an earlier run spares a download.
    if not (archive.is_file() and _md5_of(archive) == md5):
        _fetch(url, archive, md5)
    return _extract_batches(archive, cache_dir)


# ---------------------------------------------------------------------------
# Reading CIFAR-10 files


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


def _unpickle(path: Path) -> Any:
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
    data, labels = _py_batch_arrays(_unpickle(path), path)
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
    meta = _unpickle(path)
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


def _image_set(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> ImageSet:
    """Wrap numpy arrays (no copy when already contiguous) as an ImageSet."""
    return ImageSet(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        classes=classes,
    )


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
    train = _image_set(
        np.concatenate([images for images, _ in parts]),
        np.concatenate([labels for _, labels in parts]),
        classes,
    )
    test = _image_set(*read_batch(batches.path / f"{CIFAR_TEST_BATCH}{suffix}"), classes)
    return train, test


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    url: str = CIFAR10_BINARY_URL,
    md5: str = CIFAR10_BINARY_MD5,
) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 (train, official test), located as `locate_cifar10` does."""
    return read_cifar10(locate_cifar10(data_dir, download=download, url=url, md5=md5))


# ---------------------------------------------------------------------------
# Class subsets and splits


def _is_int(value: Any) -> bool:
    """True for ints (numpy ints included) but not bools."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _preview(names: Sequence[str], limit: int = 20) -> str:
    """Comma-separated names, cut short for very long lists."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def _class_index(name_or_index: str | int, available: Sequence[str]) -> int:
    """Index of one class given by name or index."""
    if isinstance(name_or_index, str):
        if name_or_index not in available:
            raise DataError(f"unknown class {name_or_index!r}; available: {_preview(available)}")
        return available.index(name_or_index)
    if _is_int(name_or_index) and 0 <= name_or_index < len(available):
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
    if _is_int(classes):
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
    """Turn an int count or a fraction of `total` into a count, checking its range."""
    low = 0 if allow_zero else 1
    if _is_int(size):
        count = int(size)
    elif isinstance(size, float) and 0.0 <= size <= 1.0:
        count = round(size * total)
        # A positive fraction of a non-empty pool should never round to nothing.
        count = max(count, 1) if size > 0 and total > 0 else count
    else:
        raise DataError(f"{name}={size!r}: expected an int count or a float fraction in [0, 1]")
    if not low <= count <= total:
        raise DataError(f"{name}={size!r} gives {count} images; {low}..{total} are available")
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
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    total = int(labels.size)
    if total == 0:
        raise DataError("cannot split an empty data set")
    n_val = _resolve_size(val_size, total, "val_size", allow_zero=True)
    if n_val >= total:
        raise DataError(f"val_size={val_size!r} leaves no training images ({total} in all)")
    rng = np.random.default_rng(seed)
    val = _stratified_sample(labels, np.arange(total), n_val, rng)
    rest = np.setdiff1d(np.arange(total), val, assume_unique=True)
    n_train = (
        rest.size
        if train_size is None
        else _resolve_size(train_size, int(rest.size), "train_size", allow_zero=False)
    )
    return _stratified_sample(labels, rest, n_train, rng), val


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NCHW images, in [0, 1] units."""
    arr = images.cpu().numpy()
    if arr.shape[0] == 0:
        raise DataError("cannot compute mean/std of an empty training split")
    levels = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(arr.shape[1]):
        # A 256-bin histogram gives exact moments without a float copy of the whole split.
        hist = np.bincount(arr[:, channel].ravel(), minlength=256).astype(np.float64)
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
    seed: int = 0,
) -> Splits:
    """Carve a seeded, stratified validation split from `train`; `test` is only class-subset."""
    if test is not None and test.classes != train.classes:
        raise DataError("train and test sets have different class names")
    train = subset_classes(train, classes)
    test = subset_classes(test, classes) if test is not None else None
    train_idx, val_idx = stratified_split(
        train.labels, val_size=val_size, train_size=train_size, seed=seed
    )
    train_part = _take(train, train_idx)
    mean, std = channel_stats(train_part.images)
    return Splits(train=train_part, val=_take(train, val_idx), test=test, mean=mean, std=std)


# ---------------------------------------------------------------------------
# ImageFolder subsets


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


def _worker_count(workers: int | None) -> int:
    """Threads to decode with: `workers`, or one per CPU (at most 32)."""
    if workers is None:
        return min(32, os.cpu_count() or 1)
    if not _is_int(workers) or workers < 1:
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


def _decode_files(
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
    for label, name in enumerate(names):
        folder = split_dir / name
        if not folder.is_dir():
            raise DataError(f"{folder}: missing class folder (class {name!r} is in train/)")
        files = _image_files(folder)
        if not files:
            raise DataError(f"{folder}: empty class folder (no .jpeg/.jpg/.png files)")
        pairs.extend((label, path) for path in files[:per_class])
    return pairs


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


def _folder_cache_key(
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


def _read_folder_cache(
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


def _write_folder_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an .npz atomically (temp file + rename), never pickling."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for key, array in arrays.items():
                # What np.savez does, but with allow_pickle=False on every numpy version.
                with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _decode_tree(
    root: Path,
    names: Sequence[str],
    train_files: Sequence[tuple[int, Path]],
    test_files: Sequence[tuple[int, Path]] | None,
    resolution: int,
    workers: int,
) -> dict[str, np.ndarray]:
    """Decode the train (and val/) files into the arrays the cache stores."""
    train_images, train_labels, skipped = _decode_files(train_files, resolution, workers)
    test_images = np.empty((0, 3, resolution, resolution), dtype=np.uint8)
    test_labels = np.empty(0, dtype=np.int64)
    if test_files is not None:
        test_images, test_labels, test_skipped = _decode_files(test_files, resolution, workers)
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
        raise DataError(f"{split_dir}: no readable images for class(es) {_preview(empty)}")
    short = [
        f"{n} ({c})" for n, c in zip(names, counts, strict=True) if per_class and c < per_class
    ]
    if short:
        logger.warning(
            "%s: %d class(es) have fewer than per_class=%d readable images; using what exists: %s",
            split_dir,
            len(short),
            per_class,
            _preview(short),
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
    if not _is_int(resolution) or resolution < 1:
        raise DataError(f"resolution={resolution!r}: expected an int >= 1")
    if per_class is not None and (not _is_int(per_class) or per_class < 1):
        raise DataError(f"per_class={per_class!r}: expected an int >= 1 or None (all)")
    return _worker_count(workers)


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
        _write_folder_cache(cache_file, arrays)
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
    key = _folder_cache_key(root, names, per_class, resolution, train_files, test_files)
    cache_file = (cache_dir or default_cache_dir() / "imagefolder") / f"{root.name}-{key[:24]}.npz"
    arrays = _read_folder_cache(cache_file, names, resolution)
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
            "skipped %d unreadable image(s) under %s: %s", len(skipped), root, _preview(skipped, 5)
        )
    _check_class_counts(arrays["train_labels"], names, per_class, root / "train")
    test = None
    if bool(arrays["has_test"]):
        _check_class_counts(arrays["test_labels"], names, None, root / "val")
        test = _image_set(arrays["test_images"], arrays["test_labels"], names)
    train = _image_set(arrays["train_images"], arrays["train_labels"], names)
    return FolderData(
        train=train, test=test, skipped=skipped, decoded=decoded, cache_file=cache_file
    )


# ---------------------------------------------------------------------------
# What to load, and the one entry point


@dataclass(frozen=True)
class DataSpec:
    """What to load: data set, class subset, split sizes and (image folders) decoding options."""

    dataset: str = "cifar10"  # "cifar10" | "imagefolder"
    root: Path | None = None  # imagefolder only: the folder holding train/ (and val/)
    val_size: int | float = 0.1  # count, or fraction of the training images
    train_size: int | float | None = None  # count or fraction of what val leaves; None = all
    classes: int | tuple[str, ...] | None = None  # None = all, N = first N, or names
    per_class: int | None = None  # imagefolder only: first N files of each class; None = all
    resolution: int | None = None  # imagefolder only; None = DEFAULT_FOLDER_RESOLUTION
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalise the forms config files and CLIs produce (str paths, lists) so the spec
        # stays hashable; validate() judges the values.
        if isinstance(self.root, str | os.PathLike):
            object.__setattr__(self, "root", Path(self.root))
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))

    def validate(self) -> None:
        """Raise DataError (one line, naming the field and what is allowed) for a bad spec."""
        problem = self._dataset_problem() or self._split_problem() or self._folder_problem()
        if problem:
            raise DataError(f"DataSpec.{problem}")

    def _dataset_problem(self) -> str | None:
        """What is wrong with dataset/root, if anything."""
        if self.dataset not in DATASETS:
            allowed = ", ".join(repr(d) for d in DATASETS)
            return f"dataset: expected one of {allowed}, got {self.dataset!r}"
        if self.dataset == "imagefolder" and not isinstance(self.root, Path):
            return (
                "root: dataset='imagefolder' needs a folder holding train/<class>/, "
                f"got {self.root!r}"
            )
        if self.dataset == "cifar10" and self.root is not None:
            return (
                "root: only for dataset='imagefolder'; CIFAR-10 comes from --data-dir, "
                f"${DATA_DIR_ENV} or the per-user cache"
            )
        return None

    def _split_problem(self) -> str | None:
        """What is wrong with val_size/train_size/classes/seed, if anything."""
        val, train, classes = self.val_size, self.train_size, self.classes
        if not (_is_int(val) and val >= 0) and not (isinstance(val, float) and 0.0 <= val < 1.0):
            return f"val_size: expected an int >= 0 or a float in [0, 1), got {val!r}"
        int_ok = _is_int(train) and train >= 1
        if (
            train is not None
            and not int_ok
            and not (isinstance(train, float) and 0.0 < train <= 1.0)
        ):
            return f"train_size: expected None, an int >= 1 or a float in (0, 1], got {train!r}"
        names_ok = (
            isinstance(classes, tuple)
            and len(classes) > 0
            and all(isinstance(c, str) and c for c in classes)
            and len(set(classes)) == len(classes)
        )
        if classes is not None and not (_is_int(classes) and classes >= 1) and not names_ok:
            return (
                f"classes: expected None, an int >= 1 or a tuple of distinct names, got {classes!r}"
            )
        if not (_is_int(self.seed) and self.seed >= 0):
            return f"seed: expected an int >= 0, got {self.seed!r}"
        return None

    def _folder_problem(self) -> str | None:
        """What is wrong with the imagefolder-only fields, if anything."""
        if self.dataset == "cifar10":
            if self.per_class is not None:
                return "per_class: only for dataset='imagefolder'; use train_size for CIFAR-10"
            if self.resolution not in (None, CIFAR_SIDE):
                side = f"{CIFAR_SIDE}x{CIFAR_SIDE}"
                return f"resolution: CIFAR-10 is {side} and is not resized; use None"
            return None
        if self.per_class is not None and not (_is_int(self.per_class) and self.per_class >= 1):
            return f"per_class: expected None (all) or an int >= 1, got {self.per_class!r}"
        if self.resolution is not None and not (_is_int(self.resolution) and self.resolution >= 1):
            return (
                f"resolution: expected None ({DEFAULT_FOLDER_RESOLUTION}) or an int >= 1, "
                f"got {self.resolution!r}"
            )
        return None


def load_splits(
    spec: DataSpec, data_dir: str | os.PathLike[str] | None = None, *, workers: int | None = None
) -> Splits:
    """Load what `spec` describes as train/val/test splits; `data_dir` locates CIFAR-10."""
    spec.validate()
    if spec.dataset == "cifar10":
        train, test = load_cifar10(data_dir)
        classes: ClassSelection = spec.classes
    else:
        assert spec.root is not None  # validate() guarantees it
        folder = load_imagefolder(
            spec.root,
            classes=spec.classes,
            per_class=spec.per_class,
            resolution=spec.resolution or DEFAULT_FOLDER_RESOLUTION,
            workers=workers,
        )
        # Classes were already chosen (and relabelled) while listing the folders.
        train, test, classes = folder.train, folder.test, None
    return make_splits(
        train,
        test,
        val_size=spec.val_size,
        train_size=spec.train_size,
        classes=classes,
        seed=spec.seed,
    )
