"""The latency table of one device, runtime and batch: a JSON file in the user's cache, one row
per piece key, read and merged back on every write so an interrupted build resumes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.data.core import default_cache_dir
from nas.latency.settings import LatencyError
from nas.machine import cpu_info, relevant_cpu_flags
from nas.results.atomic import write_json

FORMAT = 1  # the file layout; a table of another format is refused, not guessed at


class TableError(LatencyError):
    """A table file that cannot be used; the message names the file and says what to do."""


def default_table_dir() -> Path:
    """$XDG_CACHE_HOME/spectrum-nas/latency, else ~/.cache/spectrum-nas/latency."""
    return default_cache_dir() / "latency"


def fingerprint(runtime: str, threads: int, device: torch.device) -> dict[str, Any]:
    """What a row's time depends on besides the piece: the processor (model and the vector ISAs
    that pick the kernels), the thread count and the runtime's version."""
    model, flags = cpu_info()
    found: dict[str, Any] = {"device": device.type, "threads": threads, "torch": torch.__version__}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
    else:
        found |= {"cpu": model or "unknown", "cpu_flags": relevant_cpu_flags(flags),
                  "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if runtime == "onnxruntime":
        try:
            found["onnxruntime"] = importlib.metadata.version("onnxruntime")
        except importlib.metadata.PackageNotFoundError:
            found["onnxruntime"] = None  # the runner says it is missing when a row is measured
    return found


@dataclass
class Table:
    """Rows of one (device, runtime, batch): piece key -> measured milliseconds."""

    path: Path
    runtime: str
    batch: int
    fingerprint: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    build_s: float = 0.0  # seconds spent measuring rows, over every session that added some
    choice: str = ""  # what the runner measured, in words

    def ms(self, key: str) -> float:
        """The row's milliseconds (the piece's own time, the call overhead taken out)."""
        return self.rows[key]["ms"]

    def save(self) -> None:
        """Write atomically, keeping rows another process added since this one was read."""
        if self.path.exists():
            other = read_table(self.path, self.runtime, self.batch, self.fingerprint)
            self.rows = other.rows | self.rows
            self.build_s = max(self.build_s, other.build_s)
        write_json(self.path, {"format": FORMAT, "runtime": self.runtime, "batch": self.batch,
                               "fingerprint": self.fingerprint, "choice": self.choice,
                               "build_s": round(self.build_s, 3), "rows": self.rows})


def table_path(folder: Path, runtime: str, batch: int, print_: dict[str, Any]) -> Path:
    """One file per runtime, batch and fingerprint: 'onnxruntime-b1-<12 hex>.json'."""
    digest = hashlib.sha256(json.dumps(print_, sort_keys=True).encode()).hexdigest()[:12]
    return folder / f"{runtime}-b{batch}-{digest}.json"


def open_table(folder: Path, runtime: str, batch: int, print_: dict[str, Any]) -> Table:
    """The table of this runtime, batch and fingerprint in `folder`: read, or new and empty."""
    path = table_path(folder, runtime, batch, print_)
    if not path.exists():
        return Table(path, runtime, batch, print_)
    return read_table(path, runtime, batch, print_)


def read_table(path: Path, runtime: str, batch: int, print_: dict[str, Any]) -> Table:
    """A table file, checked; anything else is a one-line TableError naming the file (a corrupt
    cache is not rebuilt behind the user's back: deleting it rebuilds it)."""
    fix = "delete it and the table is measured again"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TableError(f"{path}: not a latency table ({' '.join(str(err).split())[:120]});"
                         f" {fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TableError(f"{path}: not a latency table of format {FORMAT}; {fix}")
    if (data.get("runtime"), data.get("batch"), data.get("fingerprint")) != (runtime, batch,
                                                                             print_):
        raise TableError(f"{path}: measured for another runtime, batch or machine than its"
                         f" name says; {fix}")
    rows = data.get("rows")
    if not isinstance(rows, dict) or not all(_good_row(row) for row in rows.values()):
        raise TableError(f"{path}: a row without a finite 'ms'; {fix}")
    build_s = data.get("build_s", 0.0)
    return Table(path, runtime, batch, print_, rows,
                 float(build_s) if isinstance(build_s, int | float) else 0.0,
                 str(data.get("choice", "")))


def _good_row(row: Any) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("ms"), int | float)
            and not isinstance(row.get("ms"), bool) and math.isfinite(row["ms"]))
