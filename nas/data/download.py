"""Downloading the CIFAR-10 archive: MD5-checked, extracted safely into the cache."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from nas.data.batches import BIN_DIRNAME, PY_DIRNAME, BatchesDir, find_batches_dir
from nas.data.core import DataError
from nas.results.atomic import atomic_write

logger = logging.getLogger(__name__)

CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_BINARY_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20


class _DownloadFailed(Exception):
    """The archive could not be fetched (offline, bad URL, server error)."""


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

    def write(tmp: Path) -> None:  # a failed or corrupt download leaves nothing behind
        with tmp.open("wb") as out:
            got = _stream_to(url, out)
        if got != md5:
            raise DataError(
                f"downloaded {url} has MD5 {got}, expected {md5}: the file is corrupt or not "
                "the CIFAR-10 archive; nothing was kept"
            )

    atomic_write(dest, write)


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
