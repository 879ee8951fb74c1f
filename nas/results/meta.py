"""meta.json: a run's provenance (code, versions, hardware), its settings and its search time."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from nas.results.atomic import atomic_write, write_json
from nas.results.errors import RunFolderError, first_line
from nas.results.names import META

PACKAGE = "spectrum-nas"  # this project's distribution name
PACKAGES = (PACKAGE, "torch", "optuna", "ray", "numpy", "pandas")


def git_sha(repo: Path) -> str | None:
    """HEAD's SHA of the git checkout holding `repo`, with '-dirty' when tracked files differ;
    None outside a checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def hardware() -> dict[str, Any]:
    """What the run ran on: the CPU's model and the flags that bound its training speed too."""
    import torch

    from nas.machine import cpu_info, native_bf16_cpu, relevant_cpu_flags

    model, flags = cpu_info()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": model,
        "cpu_flags": relevant_cpu_flags(flags),
        "cpu_native_bf16": native_bf16_cpu(flags or None),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the results."""
    return {name: installed_version(name) for name in PACKAGES}


def installed_version(name: str = PACKAGE) -> str | None:
    """An installed distribution's version; None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(workdir: Path) -> dict[str, str | None]:
    """Which code ran: the SHA of the git checkout the run started in (None outside one, e.g.
    an installed wheel run from any folder) and the installed package's version."""
    return {"git_sha": git_sha(workdir), "package_version": installed_version()}


def write_meta(run_dir: Path, space_file: Path, extra: dict[str, Any]) -> None:
    """meta.json (versions, provenance, hardware, settings) and a copy of the space file."""
    atomic_write(run_dir / space_file.name, lambda tmp: shutil.copyfile(space_file, tmp))
    # the working directory, not this file's: an installed package lives outside any checkout
    write_json(run_dir / META, {"versions": versions(), **provenance(Path.cwd()),
                                "hardware": hardware(), "space_file": space_file.name, **extra})


def update_meta(run_dir: Path, changes: dict[str, Any]) -> None:
    """Set some of meta.json's fields (atomically, the others kept)."""
    write_json(run_dir / META, read_meta(run_dir) | changes)


def add_search_time(run_dir: Path, seconds: float) -> None:
    """Add a (possibly resumed) search's wall time to meta.json's search_s."""
    previous = float(read_meta(run_dir).get("search_s", 0.0))
    update_meta(run_dir, {"search_s": round(previous + seconds, 1)})


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's meta.json; a missing or damaged one is a one-line RunFolderError."""
    path = run_dir / META
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir}: not a search run folder (no {META})") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFolderError(f"{path}: unreadable or not valid JSON ({first_line(err)})"
                             ) from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
