"""Train a network on the CIFAR-10 training images with `fit`; report test accuracy, time, params.

Run from the repository root:  python -m benchmarks.cifar_quality --preset regular

`--preset` takes a zoo preset or `airbench` (airbench94's network, benchmarks/airbench_net.py;
`--whiten` initialises its stem from the training images' patches). `--seeds N` trains N seeds
and prints each accuracy's mean ± sample std; `--precision fp32 bf16` trains them in both
precisions and prints the difference with its standard error (the accuracy-parity study of
issue 12). `--record FILE` writes the summary with the machine, the git commit and every
setting as JSON; `--table DIR` writes DIR/table.md from the records there (accuracy against
minutes) and prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path

import torch

from benchmarks.airbench_net import airbench_net, whiten
from benchmarks.common import default_data_dir, load_note, machine
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset
from nas.data import DataSpec, ImageSet, Splits, load_splits
from nas.data.cifar import load_cifar10
from nas.results.atomic import atomic_write, write_json
from nas.results.meta import git_sha
from nas.train.augment import normalizer
from nas.train.config import PRECISIONS, SCHEDULES, TrainConfig
from nas.train.device import resolve_device, resolve_precision
from nas.train.trainer import EpochReport, evaluate, fit

DEFAULTS = TrainConfig()
# (record key, label, flip TTA, translate TTA): airbench94's TTA levels 0, 1, 2
ACCURACIES = (("test_acc", "no TTA", False, False), ("test_acc_tta", "flip TTA", True, False),
              ("test_acc_tta2", "flip+translate TTA", True, True))
AIRBENCH = "airbench"  # not a genotype preset: a fixed network (benchmarks/airbench_net.py)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; training options default to TrainConfig's defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="regular", choices=[*sorted(PRESETS), AIRBENCH])
    p.add_argument("--whiten", action="store_true",
                   help="airbench: its stem's filters whiten the training images' 2x2 patches")
    p.add_argument("--whiten-bias-epochs", type=int, default=None,
                   help="--whiten: train the stem's bias this many epochs, then freeze it"
                   " (airbench94: 3; default: never frozen)")
    p.add_argument("--width", type=int, default=32, help="preset base width")
    p.add_argument("--depth", type=int, default=2, help="blocks per stage")
    p.add_argument("--units", type=int, default=2, help="conv units per block")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=("sgd", "adamw"))
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--momentum", type=float, default=DEFAULTS.momentum)
    p.add_argument("--schedule", default=DEFAULTS.schedule, choices=SCHEDULES)
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help=f"default: {DEFAULTS.warmup_epochs}, or --epochs when that is fewer",
    )
    p.add_argument("--lr-start", type=float, default=DEFAULTS.lr_start,
                   help="linear/cosine: the peak's share the warmup starts from (airbench94: 0.2)")
    p.add_argument("--lr-end", type=float, default=DEFAULTS.lr_end,
                   help="linear/cosine: the peak's share the decay ends at (airbench94: 0.07)")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    p.add_argument("--bias-lr-scale", type=float, default=DEFAULTS.bias_lr_scale,
                   help="biases' and BN's learning rate over the rest's (airbench94: 64)")
    p.add_argument("--lookahead", type=float, default=DEFAULTS.lookahead,
                   help="lookahead EMA momentum, 0 off (airbench94: 0.95)")
    p.add_argument("--lookahead-every", type=int, default=DEFAULTS.lookahead_every)
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing)
    p.add_argument("--crop-pad", type=int, default=DEFAULTS.crop_pad)
    p.add_argument("--alternate-flip", action="store_true",
                   help="each image's flip drawn once, all inverted every other epoch (airbench94)")
    p.add_argument(
        "--no-tta",
        action="store_true",
        help="validate (--val-size) without flip test-time augmentation; the test accuracy is"
        " printed with and without it either way",
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--precision",
        nargs="+",
        default=[DEFAULTS.precision],
        choices=PRECISIONS,
        help="training and test precision; two (e.g. fp32 bf16) compare them seed by seed",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=1, help="seeds --seed .. --seed + N - 1")
    p.add_argument("--val-size", type=int, default=0, help="training images held out")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--paired-test", type=Path, metavar="DIR",
                   help="also test on DIR's official test images (e.g. the real-pixel subset"
                   " beside a JPEG copy) and on as many of --data-dir's, record by record")
    p.add_argument("--json", action="store_true", help="also print the summary as JSON")
    p.add_argument("--record", type=Path, help="write the summary (with machine, commit) here")
    p.add_argument("--table", type=Path, help="only tabulate the records in this folder")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds {args.seeds}: must be >= 1")
    if args.whiten and args.preset != AIRBENCH:
        p.error(f"--whiten: only with --preset {AIRBENCH} (its 2x2 stem is what is whitened)")
    if args.whiten_bias_epochs is not None and not args.whiten:
        p.error("--whiten-bias-epochs: only with --whiten (it freezes the whitened stem's bias)")
    return args


def warmup_epochs(args: argparse.Namespace) -> float:
    """--warmup-epochs, else TrainConfig's default capped at --epochs (short smoke runs)."""
    if args.warmup_epochs is not None:
        return args.warmup_epochs
    return min(DEFAULTS.warmup_epochs, float(args.epochs))


def train_config(args: argparse.Namespace, seed: int, precision: str) -> TrainConfig:
    """The TrainConfig the options describe, for one seed and precision."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        schedule=args.schedule,
        warmup_epochs=warmup_epochs(args),
        lr_start=args.lr_start,
        lr_end=args.lr_end,
        weight_decay=args.weight_decay,
        bias_lr_scale=args.bias_lr_scale,
        lookahead=args.lookahead,
        lookahead_every=args.lookahead_every,
        label_smoothing=args.label_smoothing,
        crop_pad=args.crop_pad,
        alternate_flip=args.alternate_flip,
        compile=args.compile,
        seed=seed,
        cpu_threads=args.threads,
        device=args.device,
        precision=precision,
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


def network(args: argparse.Namespace, splits: Splits) -> torch.nn.Module:
    """The network `--preset` names, initialised (under the caller's seed)."""
    if args.preset != AIRBENCH:
        return build(preset(args.preset, width=args.width, depth=args.depth, units=args.units))
    net = airbench_net(len(splits.train.classes))
    if args.whiten:  # on the images as the trainer feeds them: normalized, unaugmented
        scale, shift = normalizer(splits.mean, splits.std, torch.device("cpu"))
        whiten(net, splits.train.images[:5000].float() * scale + shift)
    return net


def freeze_stem_bias(model: torch.nn.Module, after: int | None, epochs: int):
    """The per-epoch report that prints progress and, after `after` epochs, stops training the
    whitened stem's bias (airbench94's whiten_bias_epochs); None: never."""
    def report(r: EpochReport) -> None:
        print_epoch(r, epochs)
        if after is not None and r.epoch == after:
            model[0].bias.requires_grad_(False)  # its grad stays None: SGD skips it from now
    return report


def paired_sets(data_dir: Path, splits: Splits) -> tuple[ImageSet, ImageSet]:
    """The data's first test images and DIR's test images, as many, checked record by record to
    carry the same labels (so they are copies of one another, pixels aside)."""
    _, other = load_cifar10(data_dir, download=False)
    n = len(other)
    if splits.test is None or len(splits.test) < n:
        raise SystemExit(f"--paired-test {data_dir}: {n} test images, the data has fewer")
    mine = ImageSet(splits.test.images[:n], splits.test.labels[:n], splits.test.classes)
    if not torch.equal(mine.labels, other.labels):
        raise SystemExit(f"--paired-test {data_dir}: its {n} test labels differ from the first"
                         f" {n} of --data-dir's: not copies of the same records")
    return mine, other


def accuracies(model: torch.nn.Module, images: ImageSet, splits: Splits, cfg: TrainConfig,
               device: torch.device, precision: str) -> dict[str, float]:
    """Accuracy on `images` at each TTA level, at the precision the model trained in."""
    return {key: evaluate(model, images, splits.mean, splits.std, batch_size=cfg.eval_batch_size,
                          device=device, flip_tta=flip, translate_tta=translate,
                          channels_last=cfg.channels_last, precision=precision)
            for key, _, flip, translate in ACCURACIES}


def train_one(args: argparse.Namespace, splits: Splits, seed: int, precision: str,
              paired: tuple[ImageSet, ImageSet] | None = None) -> dict:
    """Train one seed at one precision; test it at each TTA level (and on `paired`, the same
    records in two copies: (this data's, the other's)); its summary."""
    cfg = train_config(args, seed, precision)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = network(args, splits)
    device = resolve_device(cfg.device)
    resolved = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, device))
    result = fit(model, splits, resolved,
                 report=freeze_stem_bias(model, args.whiten_bias_epochs, cfg.epochs))
    accs = accuracies(model, splits.test, splits, cfg, device, result.precision)
    run = {"seed": seed, "precision": result.precision, "status": result.status,
           "epochs_run": result.epochs_run, **accs, "train_seconds": result.train_seconds,
           "wall_seconds": time.perf_counter() - start, "config": dataclasses.asdict(cfg)}
    if paired is not None:
        run["paired_test"] = {"images": len(paired[0]), **{
            name: accuracies(model, images, splits, cfg, device, result.precision)
            for name, images in zip(("this", "other"), paired, strict=True)}}
        print(f"the first {len(paired[0])} test records, flip TTA: this copy"
              f" {run['paired_test']['this']['test_acc_tta']:.4f}, --paired-test's"
              f" {run['paired_test']['other']['test_acc_tta']:.4f}", flush=True)
    tested = " / ".join(f"{accs[key]:.4f} ({label})" for key, label, *_ in ACCURACIES)
    print(
        f"seed {seed}, {result.precision}: {result.status}, test accuracy {tested};"
        f" train {result.train_seconds:.0f} s, wall {run['wall_seconds']:.0f} s; {load_note()}",
        flush=True,
    )
    return run


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict]) -> dict:
    """Per accuracy: mean, sample std, standard error of the mean, over the seeds."""
    out = {}
    for key, *_ in ACCURACIES:
        values = [r[key] for r in runs]
        mean, std = mean_std(values)
        out[key] = {"mean": mean, "std": std, "se": std / math.sqrt(len(values)), "n": len(values)}
    out["train_seconds"] = statistics.fmean(r["train_seconds"] for r in runs)
    return out


def print_comparison(by_precision: dict[str, dict]) -> dict:
    """Second precision minus the first, per accuracy, with the SE of the difference."""
    (first, a), (second, b) = list(by_precision.items())[:2]
    diffs = {}
    for key, label, *_ in ACCURACIES:
        diff = b[key]["mean"] - a[key]["mean"]
        se = math.hypot(a[key]["se"], b[key]["se"])
        within = abs(diff) <= 2 * se
        diffs[key] = {"difference": diff, "se": se, "within_2_se": within}
        verdict = "within 2 SE" if within else "NOT within 2 SE"
        print(f"{second} - {first} ({label}): {100 * diff:+.2f} points, SE {100 * se:.2f}"
              f" -> {verdict}")
    print(f"training time per seed: {first} {a['train_seconds']:.0f} s, {second}"
          f" {b['train_seconds']:.0f} s ({second} trains at"
          f" {a['train_seconds'] / b['train_seconds']:.2f}x the speed of {first})")
    return diffs


def extras(record: dict, config: dict) -> str:
    """The later ingredients a run used, in words ("—" for none); older records lack them."""
    parts = []
    if config.get("lr_start", 0.0) or config.get("lr_end", 0.0):
        parts.append(f"lr {config['lr_start']:g}→1→{config['lr_end']:g}")
    if config.get("alternate_flip"):
        parts.append("alternating flip")
    if record.get("whiten_bias_epochs") is not None:
        parts.append(f"stem bias {record['whiten_bias_epochs']} ep")
    return ", ".join(parts) or "—"


def percent(run: dict, key: str) -> str:
    """An accuracy as a percentage, "—" where the record predates it."""
    return f"{100 * run[key]:.2f}" if key in run else "—"


def table(folder: Path) -> str:
    """Every record's runs in `folder` as Markdown rows, fewest training seconds first."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        for run in (r for runs in record["runs"].values() for r in runs):
            c = run["config"]
            net = record["preset"] + (" (whitened)" if record.get("whiten") else "")
            accs = " | ".join(percent(run, key) for key, *_ in ACCURACIES)
            rows.append((run["train_seconds"], (
                f"| {net} | {c['epochs']} | {c['batch_size']} | {c['lr']:g} |"
                f" {c['label_smoothing']:g} | {c.get('bias_lr_scale', 1.0):g} |"
                f" {c.get('lookahead', 0.0):g} | {c['crop_pad']} | {extras(record, c)} |"
                f" {run['precision']} | {run['seed']} | {run['train_seconds'] / 60:.1f} |"
                f" {run['wall_seconds'] / 60:.1f} | {accs} | {record.get('machine', '?')};"
                f" {record.get('git_sha') or '?'} | {path.name} |")))
    tested = " | ".join(f"test % {label}" for _, label, *_ in ACCURACIES)
    head = ("| network | epochs | batch | lr | label smoothing | bias lr x | lookahead | crop pad"
            f" | also | precision | seed | train min | wall min | {tested}"
            " | machine; commit | record |\n" + "|---" * 18 + "|")
    return "\n".join([head, *(row for _, row in sorted(rows))]) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Train every seed at every precision, test on the official test images, summarize."""
    args = parse_args(argv)
    if args.table is not None:
        text = table(args.table)
        atomic_write(args.table / "table.md", lambda p: p.write_text(text))
        print(text)
        return {}
    start = time.perf_counter()
    print(machine())
    splits = load_splits(DataSpec(val_size=args.val_size), args.data_dir)
    if splits.test is None:
        raise SystemExit("the data set has no official test split")
    params = sum(p.numel() for p in network(args, splits).parameters())
    shape = ("" if args.preset == AIRBENCH
             else f" width={args.width} depth={args.depth} units={args.units}")
    print(f"{args.preset}{shape}{' whitened' if args.whiten else ''}: {params:,} params;"
          f" {len(splits.train)} train / {len(splits.test)} test images")
    print(train_config(args, args.seed, args.precision[0]))
    print(load_note(), flush=True)
    paired = None if args.paired_test is None else paired_sets(args.paired_test, splits)
    runs: dict[str, list[dict]] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        for precision in args.precision:  # interleaved: machine load hits both alike
            runs.setdefault(precision, []).append(
                train_one(args, splits, seed, precision, paired))
    print()
    by_precision = {}
    for asked, mine in runs.items():
        stats = by_precision[asked] = aggregate(mine)
        parts = [f"{label} {100 * stats[key]['mean']:.2f} ± {100 * stats[key]['std']:.2f}"
                 for key, label, *_ in ACCURACIES]
        print(f"{asked} (ran as {mine[0]['precision']}), {len(mine)} seeds, test accuracy % mean"
              f" ± std: {'; '.join(parts)}; {stats['train_seconds']:.0f} s training per seed")
    summary = {"preset": args.preset, "whiten": args.whiten,
               "whiten_bias_epochs": args.whiten_bias_epochs, "width": args.width,
               "depth": args.depth, "units": args.units, "params": params, "runs": runs,
               "stats": by_precision, "wall_seconds": time.perf_counter() - start,
               "threads": args.threads, "train_images": len(splits.train),
               "test_images": len(splits.test), "machine": machine(),
               "git_sha": git_sha(Path(__file__).resolve().parents[1]),
               "data_dir": str(args.data_dir),
               "paired_test": None if args.paired_test is None else str(args.paired_test)}
    if len(by_precision) > 1:
        summary["comparison"] = print_comparison(by_precision)
    print(f"wall {summary['wall_seconds']:.0f} s (data, models, training, evaluation);"
          f" {load_note()}")
    if args.json:
        print(json.dumps(summary))
    if args.record is not None:
        write_json(args.record, summary)
    return summary


if __name__ == "__main__":
    main()
