"""Where a run's trials write checkpoints when that is not the run folder (--storage-path): a
shared mount or an object store, named by a URI pyarrow (hence Ray) opens; the driver copies
each trial's best checkpoint from there into the run folder, and fetches it again when gone."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nas.results.checkpoints import checkpoint_metrics, plain_location, trial_checkpoint
from nas.results.errors import RunFolderError
from nas.results.meta import read_meta
from nas.results.names import CHECKPOINT_METRICS, EXPERIMENT, checkpoint_path, trial_dirname
from nas.results.values import text

META_KEY = "storage_path"  # meta.json: the run's own folder in the storage (a URI)


class StoreError(ValueError):
    """A --storage-path that cannot hold the run's checkpoints; the message is one line."""


def run_uri(storage_path: str, run_name: str) -> str:
    """The run's folder inside a --storage-path URI (before its query, which S3 options use);
    credentials in the URI are refused: they would be recorded in meta.json."""
    parts = urlsplit(storage_path)
    if parts.scheme and "@" in parts.netloc:
        raise StoreError(f"--storage-path {_shown(parts)}: credentials do not belong in the URI"
                         " (meta.json records it); set them in every node's environment (for"
                         " S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if len(parts.scheme) <= 1:  # a plain path (a one-letter scheme is a Windows drive)
        return str(Path(storage_path).expanduser().resolve() / run_name)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{run_name}"))


def open_uri(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) of a URI or a plain path; one line when it cannot."""
    from pyarrow import ArrowInvalid, fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (ArrowInvalid, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreError(f"--storage-path {uri}: pyarrow cannot open it ({first}); expected a"
                         " path (a mount every node shares) or a URI such as s3://BUCKET/PREFIX"
                         "?endpoint_override=HOST:PORT") from None


def prepare(uri: str, resume: bool) -> None:
    """Check that the storage answers and holds no other run's experiment there; create the
    run's folder. One line per fault."""
    filesystem, path = open_uri(uri)
    try:
        experiment = filesystem.get_file_info(f"{path}/{EXPERIMENT}")
        if experiment.type.name != "NotFound" and not resume:
            raise StoreError(f"--storage-path: {uri} already holds a run's experiment; choose"
                             " another --name, or --resume that run")
        filesystem.create_dir(path, recursive=True)
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise StoreError(f"--storage-path {uri}: {first}") from None


def trial_fs_dir(uri: str, trial_id: str) -> tuple[Any, str]:
    """(filesystem, path) of a trial's folder in the run's storage."""
    filesystem, path = open_uri(uri)
    return filesystem, f"{path}/{EXPERIMENT}/{trial_dirname(trial_id)}"


def mirror_best(filesystem: Any, remote_trial: str, local_trial: Path) -> None:
    """Copy the trial's complete checkpoints from the storage into the run folder (Ray keeps
    one per trial there: the best); a copy is renamed into place only once complete."""
    from pyarrow import fs

    found = filesystem.get_file_info(fs.FileSelector(remote_trial, allow_not_found=True))
    for info in found:
        name = info.path.rstrip("/").rsplit("/", 1)[-1]
        if info.type == fs.FileType.Directory and name.startswith("checkpoint_"):
            _copy_folder(filesystem, info.path, local_trial / name)


def _copy_folder(filesystem: Any, remote: str, local: Path) -> None:
    from pyarrow import fs

    if checkpoint_metrics(local) is not None:
        return  # copied already (the table is rewritten at every trial's end)
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{local.name}-", dir=local.parent))
    try:
        fs.copy_files(remote, str(partial), source_filesystem=filesystem,
                      destination_filesystem=fs.LocalFileSystem())
        if checkpoint_metrics(partial) is None:
            return  # still being written, or cut short: not a checkpoint to keep
        if local.exists():
            shutil.rmtree(local)
        partial.rename(local)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def fetch_checkpoint(run_dir: Path, uri: str, trial_id: str, checkpoint: str) -> Path | None:
    """The trial's checkpoint folder copied from the storage into the run folder (where the
    table says it is), or None when the storage does not have it complete."""
    local = run_dir / checkpoint_path(trial_id, checkpoint)
    try:
        filesystem, remote = trial_fs_dir(uri, trial_id)
        if filesystem.get_file_info(f"{remote}/{checkpoint}/{CHECKPOINT_METRICS}").size is None:
            return None
        _copy_folder(filesystem, f"{remote}/{checkpoint}", local)
    except (OSError, StoreError) as err:
        raise RunFolderError(f"{run_dir}: trial {trial_id}'s checkpoint is not in the run folder"
                             f" and could not be read from {uri}: {str(err).splitlines()[0]}"
                             ) from None
    with contextlib.suppress(OSError):
        return local if checkpoint_metrics(local) is not None else None
    return None


def _shown(parts) -> str:
    """A URI with its credentials left out."""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def find_checkpoint(run_dir: Path, row: dict[str, Any]) -> Path | None:
    """The trial's recorded best checkpoint in the run folder, fetched from the run's
    --storage-path first when the folder lacks it (a copy made elsewhere, a mirror removed)."""
    found = trial_checkpoint(run_dir, row)
    recorded = text(row.get("checkpoint"))
    if found is not None or not recorded:
        return found
    uri = read_meta(run_dir).get(META_KEY)
    if not uri or not plain_location(str(row["trial_id"]), Path(recorded).name):
        return None
    return fetch_checkpoint(run_dir, uri, str(row["trial_id"]), Path(recorded).name)
