"""Training images/s of `nas.train.fit` against the conventional PyTorch CIFAR-10 loop.

The conventional loop is the one PyTorch's CIFAR-10 tutorial writes: a Dataset that returns
one image at a time with per-sample random crop (zero padding 4), flip and normalization, a
DataLoader (best of the --workers counts), NCHW tensors and a plain step loop. Both sides
train the same network from the same weights with the same batch size, optimizer settings,
thread count and number of images; a breakdown swaps one factor at a time (precision, memory
format, data path). Every row also shows its achieved training GFLOP/s: the analytic MACs
of one forward pass x 6 (forward, and a backward pass of twice its cost, at 2 FLOPs per MAC)
x images/s.

`--spectrum` instead times the trainer at every spectrum position of a bench's macro (and
each `--levers` transform against it), `--profile` prints a per-layer profile of one training
step against the machine's roofline, `--concurrency` compares one trial on all `--threads`
cores with as many one-thread trials at once (see benchmarks/spectrum_throughput.py).

Run from the repository root:  python -m benchmarks.trainer_throughput --preset regular
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmarks import spectrum_throughput
from benchmarks.common import default_data_dir, load_note, machine
from benchmarks.conv_levers import depthwise_in_nchw
from benchmarks.spectrum_points import CLOCKS, DEFAULT_SPACE
from nas.arch.cost import cost
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset
from nas.data import DataSpec, ImageSet, Splits, load_splits
from nas.train.config import TrainConfig
from nas.train.trainer import fit

LR = 0.05  # small and constant-ish: throughput must not depend on training going anywhere
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
TUTORIAL = "tutorial, fp32, NCHW"  # the baseline's label prefix
BENCH = Path(__file__).resolve().parents[1] / "results" / "bench" / "spectrum_bench_gamma1"


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


def user_autocast(precision: str) -> contextlib.AbstractContextManager:
    """What a user writes for bf16 on CPU (PyTorch's AMP recipe): autocast forward and loss."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tutorial_epoch(
    model: nn.Module,
    splits: Splits,
    batch_size: int,
    workers: int,
    channels_last: bool,
    precision: str = "fp32",
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
        with user_autocast(precision):
            loss = F.cross_entropy(model(images.contiguous(memory_format=memory_format)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def fit_epoch(
    model: nn.Module,
    splits: Splits,
    batch_size: int,
    channels_last: bool,
    compile_: bool,
    precision: str = "fp32",
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
        precision=precision,
    )
    return fit(model, splits, cfg).history[0].epoch_seconds


def compute_only_epoch(
    model: nn.Module,
    splits: Splits,
    batch_size: int,
    channels_last: bool,
    precision: str = "fp32",
    mixed_layout: bool = False,
) -> float:
    """Train on one fixed pre-normalized batch as many steps as an epoch: the compute ceiling."""
    if mixed_layout:
        model = depthwise_in_nchw(model)
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
        with user_autocast(precision):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
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
    p.add_argument(
        "--precision",
        default="all",
        choices=("all", "fp32", "bf16"),
        help="precisions fit and the compute-only loop are timed in (the tutorial baseline is"
        " always fp32 NCHW; 'all' also times the tutorial loop in bf16)",
    )
    p.add_argument("--compile", action="store_true", help="also time fit with torch.compile")
    p.add_argument(
        "--mixed-layout",
        action="store_true",
        help="also time the compute-only loop with depthwise convs in NCHW, the rest"
        " channels_last",
    )
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    modes = p.add_argument_group("spectrum modes (--precision all means the trainer's own, auto)")
    modes.add_argument("--spectrum", action="store_true",
                       help="images/s and GFLOP/s at every spectrum position of --space")
    modes.add_argument("--profile", action="store_true",
                       help="per-layer profile of one training step of --point (else --preset)"
                       " against the measured roofline")
    modes.add_argument("--concurrency", action="store_true",
                       help="one trial x --threads threads against --threads trials x 1 thread")
    modes.add_argument("--space", type=Path, default=DEFAULT_SPACE)
    modes.add_argument("--points", choices=("positions", "all"), default="positions",
                       help="one point per (spectrum, order), or the whole grid")
    modes.add_argument("--point", action="append", default=[], metavar="KEY=VALUE,...",
                       help="only the matching points, e.g. spectrum=0.8,order=dw_pw")
    modes.add_argument("--levers", nargs="*", default=[], choices=spectrum_throughput.VARIANTS,
                       help="conv transforms and trainer settings timed (or profiled) against"
                       " the baseline")
    modes.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                       help="cpu: process CPU seconds, immune to time-slicing at --threads 1")
    modes.add_argument("--steps", type=int, default=5, help="--profile: steps profiled")
    modes.add_argument("--bench", type=Path, default=BENCH if BENCH.is_dir() else None,
                       help="a bench run folder whose recorded train_s the table shows")
    modes.add_argument("--json", action="store_true", help="also print the results as JSON")
    return p.parse_args(argv)


def precisions(args: argparse.Namespace) -> list[str]:
    """The precisions `--precision` asks for."""
    return ["fp32", "bf16"] if args.precision == "all" else [args.precision]


def benchmark_splits(args: argparse.Namespace) -> Splits:
    """A stratified `--images` subset of the training images and an empty validation split."""
    return load_splits(DataSpec(val_size=0, train_size=args.images), args.data_dir)


Run = Callable[[nn.Module, Splits], float]


def timed_runs(args: argparse.Namespace) -> dict[str, Run]:
    """Label -> function training one epoch and returning its seconds, in measuring order."""
    bs = args.batch_size
    runs: dict[str, Run] = {
        f"{TUTORIAL}, workers={w}": (
            lambda m, s, w=w: tutorial_epoch(m, s, bs, w, channels_last=False)
        )
        for w in args.workers
    }
    for p in precisions(args):
        runs |= {
            f"fit, {p}, NCHW": lambda m, s, p=p: fit_epoch(m, s, bs, False, False, p),
            f"fit, {p}, channels_last": lambda m, s, p=p: fit_epoch(m, s, bs, True, False, p),
            f"compute only, {p}, NCHW": lambda m, s, p=p: compute_only_epoch(m, s, bs, False, p),
            f"compute only, {p}, channels_last": (
                lambda m, s, p=p: compute_only_epoch(m, s, bs, True, p)
            ),
        }
        if args.mixed_layout:
            runs[f"compute only, {p}, channels_last, depthwise NCHW"] = (
                lambda m, s, p=p: compute_only_epoch(m, s, bs, True, p, mixed_layout=True)
            )
        if args.compile:
            runs[f"fit, {p}, channels_last, compile"] = (
                lambda m, s, p=p: fit_epoch(m, s, bs, True, True, p)
            )
    return runs


def best_tutorial(seconds: dict[str, list[float]]) -> str:
    """Label of the fastest tutorial-loop run (fp32, NCHW)."""
    labels = [k for k in seconds if k.startswith(f"{TUTORIAL}, workers=")]
    return min(labels, key=lambda k: min(seconds[k]))


def tutorial_variants(args: argparse.Namespace, workers: int) -> dict[str, Run]:
    """The tutorial loop at the best worker count in channels_last, and in bf16 when asked."""
    bs = args.batch_size
    runs: dict[str, Run] = {
        "tutorial, fp32, channels_last, best workers": (
            lambda m, s: tutorial_epoch(m, s, bs, workers, channels_last=True)
        )
    }
    if args.precision == "all":
        runs["tutorial, bf16, NCHW, best workers"] = lambda m, s: tutorial_epoch(
            m, s, bs, workers, channels_last=False, precision="bf16"
        )
    return runs


def measure(args: argparse.Namespace, initial: nn.Module, splits: Splits) -> dict[str, list[float]]:
    """Seconds of every run in every one of `--repeats` rounds, each run from the same weights."""
    seconds: dict[str, list[float]] = {}

    def record(label: str, run: Run) -> None:
        took = run(copy.deepcopy(initial), splits)
        seconds.setdefault(label, []).append(took)
        print(f"  {label:52s} {took:7.2f} s", flush=True)

    for round_ in range(1, args.repeats + 1):
        print(f"round {round_}/{args.repeats}", flush=True)
        for label, run in timed_runs(args).items():
            record(label, run)
        workers = int(best_tutorial(seconds).rsplit("=", 1)[1])
        for label, run in tutorial_variants(args, workers).items():
            record(label, run)
    return seconds


def warm_up(args: argparse.Namespace, initial: nn.Module, splits: Splits) -> None:
    """Run every variant on two batches first, so one-off kernel set-up is not timed."""
    two = ImageSet(
        splits.train.images[: 2 * args.batch_size],
        splits.train.labels[: 2 * args.batch_size],
        splits.train.classes,
    )
    small = Splits(train=two, val=splits.val, test=None, mean=splits.mean, std=splits.std)
    for run in (timed_runs(args) | tutorial_variants(args, 0)).values():
        run(copy.deepcopy(initial), small)


def ratio_table(rate: dict[str, float], base: str) -> dict[str, float]:
    """The attributed ratios whose rows were measured."""
    fits = [k for k in rate if k.startswith("fit, ") and k.endswith(", channels_last")]
    best_fit = max(fits, key=rate.__getitem__)
    pairs = {
        f"headline: fit (best precision: {best_fit.split(', ')[1]}) / tutorial (fp32 NCHW)": (
            best_fit, base),
        "precision, fit (channels_last): bf16 / fp32": (
            "fit, bf16, channels_last", "fit, fp32, channels_last"),
        "precision, tutorial loop (NCHW): bf16 / fp32": (
            "tutorial, bf16, NCHW, best workers", base),
        "precision, compute only (channels_last): bf16 / fp32": (
            "compute only, bf16, channels_last", "compute only, fp32, channels_last"),
        "memory format, tutorial loop: channels_last / NCHW": (
            "tutorial, fp32, channels_last, best workers", base),
    }
    for p in ("fp32", "bf16"):
        pairs |= {
            f"memory format, fit, {p}: channels_last / NCHW": (
                f"fit, {p}, channels_last", f"fit, {p}, NCHW"),
            f"memory format, compute only, {p}: channels_last / NCHW": (
                f"compute only, {p}, channels_last", f"compute only, {p}, NCHW"),
            f"layout, compute only, {p}: depthwise NCHW / all channels_last": (
                f"compute only, {p}, channels_last, depthwise NCHW",
                f"compute only, {p}, channels_last"),
            f"fit ({p}, channels_last) share of its compute ceiling": (
                f"fit, {p}, channels_last", f"compute only, {p}, channels_last"),
            f"torch.compile, fit, {p}: compiled / eager": (
                f"fit, {p}, channels_last, compile", f"fit, {p}, channels_last"),
        }
    pairs |= {
        "data path + loop, fp32 NCHW: fit / tutorial": ("fit, fp32, NCHW", base),
        "data path + loop, fp32 channels_last: fit / tutorial": (
            "fit, fp32, channels_last", "tutorial, fp32, channels_last, best workers"),
        "tutorial (fp32 NCHW) share of its compute ceiling": (base, "compute only, fp32, NCHW"),
    }
    return {label: rate[a] / rate[b] for label, (a, b) in pairs.items() if a in rate and b in rate}


def report(seconds: dict[str, list[float]], images: int, macs: int) -> float:
    """Print images/s and GFLOP/s per run (fastest round) and the ratios; return the headline."""
    rate = {label: images / min(s) for label, s in seconds.items()}
    base = best_tutorial(seconds)
    # The spread between rounds shows how much other load on the machine disturbed a run.
    print(f"\n{'run':54s} {'images/s':>9s} {'GFLOP/s':>8s} {'spread':>7s}")
    for label, s in seconds.items():
        gflops = 6 * macs * rate[label] / 1e9
        print(f"{label:54s} {rate[label]:9.1f} {gflops:8.1f} {max(s) / min(s) - 1:6.0%}")
    ratios = ratio_table(rate, base)
    print()
    for label, value in ratios.items():
        print(f"{label:64s} {value:5.2f}x")
    return next(iter(ratios.values()))


def main(argv: list[str] | None = None) -> float | dict:
    """Measure and print; return the headline ratio (a mode's summary for the modes)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    if args.spectrum or args.profile or args.concurrency:
        print(f"before: {load_note()}", flush=True)
        summary = spectrum_throughput.run(args)
        print(f"after: {load_note()} (a load above --threads means the figures are disturbed)")
        return summary
    splits = benchmark_splits(args)
    torch.manual_seed(0)
    genotype = preset(args.preset, width=args.width)
    initial = build(genotype)
    images = len(splits.train) // args.batch_size * args.batch_size
    params, macs = cost(genotype).params, cost(genotype).macs
    print(
        f"{args.preset} width={args.width} ({params:,} params, {macs / 1e6:.1f}M MACs per image),"
        f" batch {args.batch_size}, {images} images per run, {args.threads} threads,"
        f" torch {torch.__version__}"
    )
    print(f"before: {load_note()}", flush=True)
    warm_up(args, initial, splits)
    seconds = measure(args, initial, splits)
    ratio = report(seconds, images, macs)
    print(f"after: {load_note()} (a load above --threads means the figures are disturbed)")
    return ratio


if __name__ == "__main__":
    main()
