"""Tiny search spaces and a runner shared by the search tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name = "tiny"
[data]
dataset = "cifar10"
val_size = 300
train_size = 600
[macro]
strides = [1, 2]
widths = [8, 16]
depths = [1, 1]
stem_widths = [8]
stem_strides = [2]
[blocks]
kind = ["spectrum"]
spectrum = [0.0, 0.5, 1.0]
order = ["dw_pw", "pw_dw"]
mid_act = ["none", "relu"]
[train]
epochs = 4
batch_size = 100
lr = 0.1
warmup_epochs = 0.5
[search]
trials = 8
concurrency = 2
grace_period = 1
reduction_factor = 2
[references]
regular = { spectrum = 0.0, order = "dw_pw" }
separable = { spectrum = 1.0, order = "dw_pw" }
"""

# Width 18 cannot hold four equal inception branches: the inception/18 point is a bad genotype
# that fails in its trial (the space check passes it, since width 18 suits a spectrum block);
# inception/64 has 6,706 params, over max_params (infeasible on paper, never trained); an absurd
# learning rate makes the other four diverge.
BROKEN = """
name = "broken"
[data]
dataset = "cifar10"
val_size = 200
train_size = 400
[macro]
strides = [2]
widths = [[16, 18, 64]]
depths = [1]
stem_widths = [8]
stem_strides = [2]
[blocks]
kind = ["inception", "spectrum"]
[train]
epochs = 2
batch_size = 100
lr = 1e12
[constraints]
max_params = 4000
[search]
sampler = "grid"
trials = 6
concurrency = 2
"""

# A study: two points of the spectrum at matched params, two seeds each, tabulated.
STUDY = """
name = "tiny_study"
[data]
dataset = "cifar10"
val_size = 300
train_size = 600
[macro]
strides = [1, 2]
widths = [16, 32]
depths = [1, 1]
stem_widths = [8]
stem_strides = [2]
match_params = 4000
[blocks]
kind = ["spectrum"]
groups = [1, "depthwise"]
shared = ["groups"]
[train]
epochs = 2
batch_size = 100
lr = 0.1
warmup_epochs = 0.5
[search]
sampler = "grid"
trials = 2
repeats = 2
concurrency = 2
grace_period = 2
[references]
separable = { groups = "depthwise" }
[study]
title = "Tiny study"
rows = ["groups"]
baseline = "separable"
"""


def write_space(folder: Path, text: str, name: str = "space.toml") -> Path:
    """A space file in `folder`."""
    path = folder / name
    path.write_text(text)
    return path


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python run_search.py ARGS` in a subprocess (its own Ray, its own stdout)."""
    env = dict(env or os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


# An ImageFolder search with two objectives (accuracy, MACs) through NSGA-II.
FOLDER = """
name = "folder"
[data]
dataset = "imagefolder"
root = "unused-when---data-dir-is-given"
classes = 3
per_class = 40
val_size = 30
resolution = 24
[macro]
strides = [2, 2]
widths = [8, 16]
depths = [1, 1]
stem_widths = [8]
stem_strides = [1]
stem_kernel = 5
stem_pool = true
[blocks]
kind = ["spectrum", "conv"]
spectrum = [0.0, 1.0]
[train]
epochs = 2
batch_size = 30
[objectives]
metrics = ["val_acc", "macs"]
[search]
sampler = "nsga2"
trials = 4
concurrency = 2
"""


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


# A bench: every point of a 2 x 2 space, two seeds, the whole (2-epoch) schedule.
BENCH = """
name = "tiny_bench"
[data]
dataset = "cifar10"
val_size = 200
train_size = 400
[macro]
strides = [1, 2]
widths = [8, 16]
depths = [1, 1]
stem_widths = [8]
stem_strides = [2]
[blocks]
kind = ["spectrum"]
spectrum = [0.0, 1.0]
order = ["dw_pw", "pw_dw"]
mid_act = ["relu"]
shared = ["spectrum", "order"]
[train]
epochs = 2
batch_size = 100
lr = 0.1
warmup_epochs = 0.5
[search]
sampler = "grid"
trials = 4
repeats = 2
concurrency = 2
grace_period = 2
"""


# A supernet space: per stage 2 spectrum positions, shared op order, mid act, residual and
# kernel: 64 points, every one a path of one supernet.
SUPERNET = """
name = "tiny_supernet"
[data]
dataset = "cifar10"
val_size = 200
train_size = 400
[macro]
strides = [1, 2]
widths = [8, 16]
depths = [1, 1]
stem_widths = [8]
stem_strides = [2]
[blocks]
kind = ["spectrum"]
spectrum = [0.0, 1.0]
order = ["dw_pw", "pw_dw"]
mid_act = ["none", "relu"]
residual = ["identity", "none"]
kernel = [3, 5]
units = [2]
shared = ["order", "mid_act", "residual", "kernel"]
[train]
epochs = 1
batch_size = 100
lr = 0.1
warmup_epochs = 0.5
[search]
concurrency = 2
"""
