"""Training images/s of `nas.train.fit` against the conventional PyTorch CIFAR-10 loop.

The conventional loop is the one PyTorch's CIFAR-10 tutorial writes: a Dataset that returns
one image at a time with per-sample random crop (zero padding 4), flip and normalization, a
DataLoader (best of the --workers counts), NCHW tensors and a plain step loop. Both sides
train the same network from the same weights with the same batch size, optimizer settings,
thread count and number of images; a breakdown swaps one factor at a time.

Run from the repository root:  python -m benchmarks.trainer_throughput --preset regular
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import default_data_dir
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset
from nas.data import DataSpec, ImageSet, Splits, load_splits
from nas.train.trainer import TrainConfig, fit

LR = 0.05  # small and constant-ish: throughput must not depend on training going anywhere
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


class TutorialCifar(Dataset):
    """One normalized, randomly cropped and flipped float image per __getitem__ (tutorial style)."""

    def __init__(self, data: ImageSet, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        """Keep the uint8 images; per-channel statistics as [C, 1, 1] tensors."""
        self.images = data.images
        self.labels = data.labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        """Number of images."""
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize on one image."""
        img = self.images[i]
        h, w = img.shape[-2:]
        padded = F.pad(img, (4, 4, 4, 4))  # torchvision's RandomCrop pads with zeros
        top, left = torch.randint(0, 9, (2,)).tolist()
        img = padded[:, top : top + h, left : left + w]
        if torch.rand(1).item() < 0.5:
            img = img.flip(-1)
        img = img.float().div(255)
        return (img - self.mean) / self.std, int(self.labels[i])


def tutorial_epoch(
    model: nn.Module, splits: Splits, batch_size: int, workers: int, channels_last: bool
) -> float:
    """Train one epoch the conventional way; return seconds (DataLoader start-up included)."""
    loader = DataLoader(
        TutorialCifar(splits.train, splits.mean, splits.std),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
    )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    start = time.perf_counter()
    for images, labels in loader:
        loss = F.cross_entropy(model(images.contiguous(memory_format=memory_format)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def fit_epoch(
    model: nn.Module, splits: Splits, batch_size: int, channels_last: bool, compile_: bool
) -> float:
    """Train one epoch with `nas.train.fit`; return its training seconds."""
    cfg = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        warmup_epochs=0,
        schedule="linear",
        label_smoothing=0.0,
        channels_last=channels_last,
        compile=compile_,
        device="cpu",
    )
    return fit(model, splits, cfg).history[0].epoch_seconds


def compute_only_epoch(
    model: nn.Module, splits: Splits, batch_size: int, channels_last: bool
) -> float:
    """Train on one fixed pre-normalized batch as many steps as an epoch: the compute ceiling."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    images = splits.train.images[:batch_size].float().div(255)
    images = images.contiguous(memory_format=memory_format)
    labels = splits.train.labels[:batch_size]
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    start = time.perf_counter()
    for _ in range(len(splits.train) // batch_size):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="regular", choices=sorted(PRESETS))
    p.add_argument("--width", type=int, default=32, help="preset base width")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=2048, help="training images per measurement")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="DataLoader worker counts tried for the tutorial loop (best is kept)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds over all variants; the fastest round of each is kept",
    )
    p.add_argument("--compile", action="store_true", help="also time fit with torch.compile")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    return p.parse_args(argv)


def load_note() -> str:
    """The 1-minute load average against the core count: other work skews every timing."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def benchmark_splits(args: argparse.Namespace) -> Splits:
    """A stratified `--images` subset of the training images and an empty validation split."""
    return load_splits(DataSpec(val_size=0, train_size=args.images), args.data_dir)


def timed_runs(args: argparse.Namespace) -> dict[str, Callable[[nn.Module, Splits], float]]:
    """Label -> function training one epoch and returning its seconds, in measuring order."""
    bs = args.batch_size
    runs: dict[str, Callable[[nn.Module, Splits], float]] = {
        f"tutorial, NCHW, workers={w}": (
            lambda m, s, w=w: tutorial_epoch(m, s, bs, w, channels_last=False)
        )
        for w in args.workers
    }
    runs |= {
        "fit, NCHW": lambda m, s: fit_epoch(m, s, bs, channels_last=False, compile_=False),
        "fit, channels_last": lambda m, s: fit_epoch(m, s, bs, channels_last=True, compile_=False),
        "compute only, NCHW": lambda m, s: compute_only_epoch(m, s, bs, channels_last=False),
        "compute only, channels_last": (
            lambda m, s: compute_only_epoch(m, s, bs, channels_last=True)
        ),
    }
    if args.compile:
        runs["fit, channels_last, compile"] = lambda m, s: fit_epoch(
            m, s, bs, channels_last=True, compile_=True
        )
    return runs


def best_tutorial(seconds: dict[str, list[float]]) -> str:
    """Label of the fastest tutorial-loop run."""
    labels = [k for k in seconds if k.startswith("tutorial, NCHW")]
    return min(labels, key=lambda k: min(seconds[k]))


def measure(args: argparse.Namespace, initial: nn.Module, splits: Splits) -> dict[str, list[float]]:
    """Seconds of every run in every one of `--repeats` rounds, each run from the same weights."""
    runs = timed_runs(args)
    seconds: dict[str, list[float]] = {}

    def record(label: str, run: Callable[[nn.Module, Splits], float]) -> None:
        took = run(copy.deepcopy(initial), splits)
        seconds.setdefault(label, []).append(took)
        print(f"  {label:40s} {took:7.2f} s", flush=True)

    for round_ in range(1, args.repeats + 1):
        print(f"round {round_}/{args.repeats}", flush=True)
        for label, run in runs.items():
            record(label, run)
        workers = int(best_tutorial(seconds).rsplit("=", 1)[1])
        record(
            "tutorial, channels_last, best workers",
            lambda m, s, w=workers: tutorial_epoch(m, s, args.batch_size, w, channels_last=True),
        )
    return seconds


def warm_up(args: argparse.Namespace, initial: nn.Module, splits: Splits) -> None:
    """Run every variant on two batches first, so one-off kernel set-up is not timed."""
    two = ImageSet(
        splits.train.images[: 2 * args.batch_size],
        splits.train.labels[: 2 * args.batch_size],
        splits.train.classes,
    )
    small = Splits(train=two, val=splits.val, test=None, mean=splits.mean, std=splits.std)
    for run in timed_runs(args).values():
        run(copy.deepcopy(initial), small)
    tutorial_epoch(copy.deepcopy(initial), small, args.batch_size, 0, channels_last=True)


def report(seconds: dict[str, list[float]], images: int) -> float:
    """Print images/s per run (fastest round) and the attributed ratios; return the headline."""
    rate = {label: images / min(s) for label, s in seconds.items()}
    base = best_tutorial(seconds)
    # The spread between rounds shows how much other load on the machine disturbed a run.
    print(f"\n{'run':42s} {'images/s':>9s} {'spread':>7s}")
    for label, s in seconds.items():
        print(f"{label:42s} {rate[label]:9.1f} {max(s) / min(s) - 1:6.0%}")
    ratios = {
        "headline: fit (channels_last) / best tutorial (NCHW)": (
            rate["fit, channels_last"] / rate[base]
        ),
        "memory format, tutorial loop: channels_last / NCHW": (
            rate["tutorial, channels_last, best workers"] / rate[base]
        ),
        "memory format, fit: channels_last / NCHW": (
            rate["fit, channels_last"] / rate["fit, NCHW"]
        ),
        "memory format, compute only: channels_last / NCHW": (
            rate["compute only, channels_last"] / rate["compute only, NCHW"]
        ),
        "data path + loop, NCHW: fit / tutorial": rate["fit, NCHW"] / rate[base],
        "data path + loop, channels_last: fit / tutorial": (
            rate["fit, channels_last"] / rate["tutorial, channels_last, best workers"]
        ),
        "tutorial (NCHW) share of its compute ceiling": rate[base] / rate["compute only, NCHW"],
        "fit (channels_last) share of its compute ceiling": (
            rate["fit, channels_last"] / rate["compute only, channels_last"]
        ),
    }
    if "fit, channels_last, compile" in rate:
        ratios["torch.compile, fit: compiled / eager"] = (
            rate["fit, channels_last, compile"] / rate["fit, channels_last"]
        )
    print()
    for label, value in ratios.items():
        print(f"{label:58s} {value:5.2f}x")
    return ratios["headline: fit (channels_last) / best tutorial (NCHW)"]


def main(argv: list[str] | None = None) -> float:
    """Measure and print; return the headline ratio."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = benchmark_splits(args)
    torch.manual_seed(0)
    initial = build(preset(args.preset, width=args.width))
    images = len(splits.train) // args.batch_size * args.batch_size
    params = sum(p.numel() for p in initial.parameters())
    print(
        f"{args.preset} width={args.width} ({params:,} params), batch {args.batch_size}, "
        f"{images} images per run, {args.threads} threads, torch {torch.__version__}"
    )
    print(f"before: {load_note()}", flush=True)
    warm_up(args, initial, splits)
    seconds = measure(args, initial, splits)
    ratio = report(seconds, images)
    print(f"after: {load_note()} (a load above --threads means the figures are disturbed)")
    return ratio


if __name__ == "__main__":
    main()
