"""Train a zoo preset on the CIFAR-10 training images; report test accuracy, wall time, params.

Run from the repository root:  python -m benchmarks.cifar_quality --preset regular
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch

from benchmarks.common import default_data_dir
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset
from nas.data import DataSpec, load_splits
from nas.train.device import resolve_device
from nas.train.trainer import SCHEDULES, EpochReport, TrainConfig, evaluate, fit

DEFAULTS = TrainConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; training options default to TrainConfig's defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="regular", choices=sorted(PRESETS))
    p.add_argument("--width", type=int, default=32, help="preset base width")
    p.add_argument("--depth", type=int, default=2, help="blocks per stage")
    p.add_argument("--units", type=int, default=2, help="conv units per block")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=("sgd", "adamw"))
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--schedule", default=DEFAULTS.schedule, choices=SCHEDULES)
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help=f"default: {DEFAULTS.warmup_epochs}, or --epochs when that is fewer",
    )
    p.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing)
    p.add_argument("--crop-pad", type=int, default=DEFAULTS.crop_pad)
    p.add_argument("--no-tta", action="store_true", help="skip flip test-time augmentation")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-size", type=int, default=0, help="training images held out")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--json", action="store_true", help="also print the summary as JSON")
    return p.parse_args(argv)


def warmup_epochs(args: argparse.Namespace) -> float:
    """--warmup-epochs, else TrainConfig's default capped at --epochs (short smoke runs)."""
    if args.warmup_epochs is not None:
        return args.warmup_epochs
    return min(DEFAULTS.warmup_epochs, float(args.epochs))


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the options describe."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        schedule=args.schedule,
        warmup_epochs=warmup_epochs(args),
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        crop_pad=args.crop_pad,
        compile=args.compile,
        seed=args.seed,
        cpu_threads=args.threads,
        device=args.device,
        flip_tta=not args.no_tta,
    )


def print_epoch(report: EpochReport, epochs: int) -> None:
    """One progress line per epoch."""
    val = "" if math.isnan(report.val_acc) else f"  val {report.val_acc:.3f}"
    print(
        f"epoch {report.epoch:3d}/{epochs}  loss {report.train_loss:.3f}{val}  "
        f"lr {report.lr:.4f}  {report.epoch_seconds:5.1f} s  {report.images_per_s:6.0f} img/s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate on the official test images, print and return the summary."""
    args = parse_args(argv)
    cfg = train_config(args)
    start = time.perf_counter()
    splits = load_splits(DataSpec(val_size=args.val_size), args.data_dir)
    if splits.test is None:
        raise SystemExit("the data set has no official test split")
    torch.manual_seed(cfg.seed)
    model = build(preset(args.preset, width=args.width, depth=args.depth, units=args.units))
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.preset} width={args.width} depth={args.depth} units={args.units}: "
        f"{params:,} params; {len(splits.train)} train / {len(splits.test)} test images"
    )
    print(cfg)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    result = fit(model, splits, cfg, report=lambda r: print_epoch(r, cfg.epochs))
    test_acc = evaluate(
        model,
        splits.test,
        splits.mean,
        splits.std,
        batch_size=cfg.eval_batch_size,
        device=resolve_device(cfg.device),
        flip_tta=cfg.flip_tta,
        channels_last=cfg.channels_last,
    )
    summary = {
        "preset": args.preset,
        "width": args.width,
        "depth": args.depth,
        "units": args.units,
        "params": params,
        "status": result.status,
        "epochs_run": result.epochs_run,
        "test_acc": test_acc,
        "flip_tta": cfg.flip_tta,
        "train_seconds": result.train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "threads": args.threads,
        "config": dataclasses.asdict(cfg),
    }
    print(
        f"status {result.status}: test accuracy {test_acc:.4f} "
        f"({'flip TTA' if cfg.flip_tta else 'no TTA'}); train {result.train_seconds:.0f} s, "
        f"wall {summary['wall_seconds']:.0f} s (data, model, training, evaluation)"
    )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
