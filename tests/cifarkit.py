"""A small copy of CIFAR-10 in the official binary layout, cut from the shared subset."""

from __future__ import annotations

import shutil
from pathlib import Path

from nas.data.batches import BIN_DIRNAME, CIFAR_RECORD, CIFAR_TEST_BATCH, CIFAR_TRAIN_BATCHES


def write_small_cifar(folder: Path, bin_dir: Path, records: int) -> Path:
    """All six batch files (the first `records` records of each) and the class names under
    folder/cifar-10-batches-bin/; returns `folder`, what --data-dir is pointed at."""
    out = folder / BIN_DIRNAME
    out.mkdir(parents=True)
    for name in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        with open(bin_dir / f"{name}.bin", "rb") as src:
            (out / f"{name}.bin").write_bytes(src.read(records * CIFAR_RECORD))
    shutil.copy(bin_dir / "batches.meta.txt", out)
    return folder
