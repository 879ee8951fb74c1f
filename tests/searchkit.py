"""Tiny search spaces (one base plus overrides) and a runner shared by the search tests."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# What every fixture shares: a 2-stage CIFAR-10 space of spectrum blocks, trained briefly.
BASE: dict[str, Any] = {
    "name": "base",
    "data": {"dataset": "cifar10", "val_size": 200, "train_size": 400},
    "macro": {"strides": [1, 2], "widths": [8, 16], "depths": [1, 1], "stem_widths": [8],
              "stem_strides": [2]},
    "blocks": {"kind": ["spectrum"]},
    "train": {"epochs": 2, "batch_size": 100, "lr": 0.1, "warmup_epochs": 0.5},
    "search": {"concurrency": 2},
}


def variant(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """`base` with `overrides` merged in: a table into its table, any other value replacing,
    None removing the key."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = variant(merged[key], **value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 1e+20, inf and nan are TOML floats as Python writes them
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def render(space: dict[str, Any]) -> str:
    """TOML text of `space`: its top-level tables as [sections], tables below them inline."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in space.items() if not isinstance(v, dict)]
    for section, table in space.items():
        if isinstance(table, dict):
            lines.append(f"[{_key(section)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


TINY = variant(
    BASE, name="tiny", data={"val_size": 300, "train_size": 600},
    blocks={"spectrum": [0.0, 0.5, 1.0], "order": ["dw_pw", "pw_dw"], "mid_act": ["none", "relu"]},
    train={"epochs": 4},
    search={"trials": 8, "grace_period": 1, "reduction_factor": 2},
    references={"regular": {"spectrum": 0.0, "order": "dw_pw"},
                "separable": {"spectrum": 1.0, "order": "dw_pw"}})

# TINY with a race after it: two seeds a point at most, and a prior seed noise so the first
# round can already separate; stopped points join once the epoch-1 noise is measured.
RACED = variant(TINY, name="tiny_raced", train={"epochs": 2},
                search={"trials": 5, "grace_period": 1, "reduction_factor": 2},
                verify={"max_seeds_per_point": 2, "noise_prior_sd": 0.02,
                        "noise_prior_df": 8.0})

# Width 18 cannot hold four equal inception branches: the inception/18 point is a bad genotype
# that fails in its trial (the space check passes it, since width 18 suits a spectrum block);
# inception/64 has 6,706 params, over max_params (infeasible on paper, never trained); an absurd
# learning rate makes the other four diverge.
BROKEN = variant(
    BASE, name="broken",
    macro={"strides": [2], "widths": [[16, 18, 64]], "depths": [1]},
    blocks={"kind": ["inception", "spectrum"]},
    train={"lr": 1e12, "warmup_epochs": None},
    constraints={"max_params": 4000},
    search={"sampler": "grid", "trials": 6})

# A study: two points of the spectrum at matched params, two seeds each, tabulated.
STUDY = variant(
    BASE, name="tiny_study", data={"val_size": 300, "train_size": 600},
    macro={"widths": [16, 32], "match_params": 4000},
    blocks={"groups": [1, "depthwise"], "shared": ["groups"]},
    search={"sampler": "grid", "trials": 2, "repeats": 2, "grace_period": 2},
    references={"separable": {"groups": "depthwise"}},
    study={"title": "Tiny study", "rows": ["groups"], "baseline": "separable"})

# An ImageFolder search with two objectives (accuracy, MACs) through NSGA-II.
FOLDER = variant(
    BASE, name="folder",
    data={"dataset": "imagefolder", "root": "unused-when---data-dir-is-given", "classes": 3,
          "per_class": 40, "val_size": 30, "train_size": None, "resolution": 24},
    macro={"strides": [2, 2], "stem_strides": [1], "stem_kernel": 5, "stem_pool": True},
    blocks={"kind": ["spectrum", "conv"], "spectrum": [0.0, 1.0]},
    train={"batch_size": 30, "lr": None, "warmup_epochs": None},
    objectives={"metrics": ["val_acc", "macs"]},
    search={"sampler": "nsga2", "trials": 4})

# A bench: every point of a 2 x 2 space, two seeds, the whole (2-epoch) schedule.
BENCH = variant(
    BASE, name="tiny_bench",
    blocks={"spectrum": [0.0, 1.0], "order": ["dw_pw", "pw_dw"], "mid_act": ["relu"],
            "shared": ["spectrum", "order"]},
    search={"sampler": "grid", "trials": 4, "repeats": 2, "grace_period": 2})

# Latency per runtime (issue 27): every trial timed on three runtimes at two batch sizes (few
# runs: the numbers are checked for sense, not speed), and NSGA-II told the ONNX Runtime one.
LATENCY = variant(
    BASE, name="tiny_latency",
    blocks={"spectrum": [0.0, 1.0], "order": ["dw_pw", "pw_dw"]},
    train={"epochs": 1},
    latency={"runtimes": ["torch", "torch_cl", "onnxruntime"], "batches": [1, 2],
             "warmup": 1, "repeats": 5},
    objectives={"metrics": ["val_acc", "latency_ms@onnxruntime:b1"]},
    search={"sampler": "nsga2", "trials": 3})

# A supernet space: per stage 2 spectrum positions, shared op order, mid act, residual and
# kernel: 64 points, every one a path of one supernet.
SUPERNET = variant(
    BASE, name="tiny_supernet",
    blocks={"spectrum": [0.0, 1.0], "order": ["dw_pw", "pw_dw"], "mid_act": ["none", "relu"],
            "residual": ["identity", "none"], "kernel": [3, 5], "units": [2],
            "shared": ["order", "mid_act", "residual", "kernel"]},
    train={"epochs": 1})

def write_space(folder: Path, space: dict[str, Any] | str, name: str = "space.toml") -> Path:
    """A space file in `folder`: a space rendered as TOML, or TOML text as given."""
    path = folder / name
    path.write_text(space if isinstance(space, str) else render(space))
    return path


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python run_search.py ARGS` in a subprocess (its own Ray, its own stdout)."""
    env = dict(env or os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def image_folder(root: Path, cifar_dir: Path, classes: int = 3, per_class: int = 40) -> Path:
    """An ImageFolder tree of real CIFAR-10 images saved as PNG files."""
    from PIL import Image

    from nas.data import load_cifar10

    train, _ = load_cifar10(cifar_dir, download=False)
    for label in range(classes):
        folder = root / "train" / train.classes[label]
        folder.mkdir(parents=True)
        picks = (train.labels == label).nonzero().flatten()[:per_class]
        for i, index in enumerate(picks.tolist()):
            pixels = train.images[index].permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root
