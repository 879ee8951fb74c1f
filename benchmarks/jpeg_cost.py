"""What the JPEG-q75 copy of CIFAR-10 costs: airbench's recipe trained on the real subset's
training images and on the same records' JPEG copies, each tested on both copies of its test images.

Run from the repository root, the full copy built (../shared/data/cifar10-full/README.md):

    python -m benchmarks.jpeg_cost --jpeg ~/.cache/spectrum-nas/cifar10-full --seeds 3

The real-pixel subset (6,000 records) is the official first 1,000 of each batch file; the JPEG
copy's first 1,000 of each are the same records (labels checked one by one). Each (copy trained
on, seed) is a `cifar_quality` record in --out, so an interrupted study resumes where it stopped;
`--report` only tabulates the records there (--out/jpeg_cost.md): the 2x2 of accuracies and the
JPEG effects as paired differences over seeds with 90 % t intervals.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks import cifar_quality
from benchmarks.common import SHARED_SUBSET
from nas.answer.stats import mean_interval, pooled_noise
from nas.data.batches import BIN_DIRNAME, CIFAR_RECORD, CIFAR_TEST_BATCH, CIFAR_TRAIN_BATCHES
from nas.results.atomic import atomic_write

COPIES = ("real", "jpeg")
CONFIDENCE = 0.9
# (label, trained on, tested on) minus (trained on, tested on): what each row isolates
EFFECTS = (("JPEG test images, network trained on real", ("real", "jpeg"), ("real", "real")),
           ("JPEG test images, network trained on JPEG", ("jpeg", "jpeg"), ("jpeg", "real")),
           ("JPEG training images, tested on real", ("jpeg", "real"), ("real", "real")),
           ("the copy (JPEG train and test) vs real", ("jpeg", "jpeg"), ("real", "real")))


def recipe(epochs: int, batch_size: int) -> list[str]:
    """airbench94's ingredients as cifar_quality options, its per-1,024-image rates scaled to
    `batch_size` (so 1,024 gives --lr 1.5) and its warmup at 23 % of the epochs."""
    return ["--preset", "airbench", "--whiten", "--whiten-bias-epochs", "3",
            "--epochs", str(epochs), "--batch-size", str(batch_size),
            "--lr", str(1.5 * batch_size / 1024), "--momentum", "0.85",
            "--weight-decay", "1.3e-3", "--label-smoothing", "0.2", "--crop-pad", "2",
            "--schedule", "linear", "--warmup-epochs", f"{0.23 * epochs:g}",
            "--lr-start", "0.2", "--lr-end", "0.07", "--bias-lr-scale", "64",
            "--lookahead", "0.95", "--alternate-flip"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jpeg", type=Path, help="the built JPEG copy (build.py's DIR)")
    p.add_argument("--real", type=Path, default=SHARED_SUBSET, help="the real-pixel subset")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=256,
                   help="5,000 images make 5 batches of 1,024: too few steps (default 256)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/cifar_quality/jpeg_cost"))
    p.add_argument("--report", action="store_true", help="only tabulate the records in --out")
    args = p.parse_args(argv)
    if not args.report and args.jpeg is None:
        p.error("--jpeg: the built JPEG copy is required to train")
    if args.seeds < 2:
        p.error(f"--seeds {args.seeds}: at least 2 (an interval needs two paired differences)")
    return args


def labels(path: Path, records: int) -> bytes:
    """The label bytes of a batch file's first `records` records."""
    data = path.read_bytes()[: records * CIFAR_RECORD]
    return data[::CIFAR_RECORD]


def cut(jpeg: Path, real: Path, folder: Path) -> Path:
    """folder/cifar-10-batches-bin/ holding, per batch file, as many of the JPEG copy's first
    records as the real subset has, after checking their labels match one by one."""
    out = folder / BIN_DIRNAME
    out.mkdir(parents=True)
    for name in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        source, mine = jpeg / BIN_DIRNAME / f"{name}.bin", real / BIN_DIRNAME / f"{name}.bin"
        n = mine.stat().st_size // CIFAR_RECORD
        if labels(source, n) != labels(mine, n):
            raise SystemExit(f"{source}: its first {n} labels differ from {mine}'s: not copies"
                             " of the same records")
        with open(source, "rb") as src:
            (out / f"{name}.bin").write_bytes(src.read(n * CIFAR_RECORD))
    (out / "batches.meta.txt").write_bytes((real / BIN_DIRNAME / "batches.meta.txt").read_bytes())
    return folder


def record_path(out: Path, copy: str, seed: int) -> Path:
    """Where the run trained on `copy` with `seed` is recorded."""
    return out / f"train-{copy}-s{seed}.json"


def train(args: argparse.Namespace) -> None:
    """Train every (seed, copy) not yet recorded in --out, the two copies seed by seed."""
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jpeg-cut-") as tmp:
        dirs = {"real": args.real, "jpeg": cut(args.jpeg, args.real, Path(tmp))}
        for seed in range(args.seeds):
            for copy in COPIES:
                path = record_path(args.out, copy, seed)
                if path.is_file():
                    print(f"{path}: recorded, not trained again", flush=True)
                    continue
                other = dirs["jpeg" if copy == "real" else "real"]
                cifar_quality.main([*recipe(args.epochs, args.batch_size), "--seed", str(seed),
                                    "--precision", args.precision, "--threads",
                                    str(args.threads), "--data-dir", str(dirs[copy]),
                                    "--paired-test", str(other), "--record", str(path)])


def grid(record: dict, copy: str, key: str) -> dict[tuple[str, str], float]:
    """{(trained on, tested on): accuracy} of one record (its first run) at TTA level `key`."""
    run = next(iter(record["runs"].values()))[0]
    paired = run["paired_test"]
    other = "jpeg" if copy == "real" else "real"
    return {(copy, copy): paired["this"][key], (copy, other): paired["other"][key]}


def collect(out: Path, key: str) -> list[dict[tuple[str, str], float]]:
    """Per seed with both copies recorded, its 2x2 of accuracies."""
    seeds: dict[int, dict] = {}
    for copy in COPIES:
        for path in out.glob(f"train-{copy}-s*.json"):
            seed = int(path.stem.rsplit("-s", 1)[1])
            seeds.setdefault(seed, {}).update(grid(json.loads(path.read_text()), copy, key))
    return [cells for _, cells in sorted(seeds.items()) if len(cells) == 4]


def effect(cells: list[dict], plus: tuple[str, str], minus: tuple[str, str]):
    """The paired difference plus - minus over seeds, with its t interval."""
    diffs = [c[plus] - c[minus] for c in cells]
    return mean_interval(diffs, pooled_noise({"paired": diffs}), CONFIDENCE)


def report(out: Path) -> str:
    """The study's table from the records in `out`."""
    records = sorted(out.glob("train-*.json"))
    if not records:
        raise SystemExit(f"{out}: no train-*.json records to report")
    first = json.loads(records[0].read_text())
    lines = ["# What the JPEG-q75 copy of CIFAR-10 costs", "",
             f"airbench's recipe (`python -m benchmarks.jpeg_cost`), {first['train_images']:,}"
             f" training images, {first['test_images']:,} test images; {first['machine']};"
             f" commit {first['git_sha']}.", "",
             "| trained on → tested on | " + " | ".join(
                 label for _, label, *_ in cifar_quality.ACCURACIES) + " |",
             "|---" * (1 + len(cifar_quality.ACCURACIES)) + "|"]
    by_key = {key: collect(out, key) for key, *_ in cifar_quality.ACCURACIES}
    n = len(next(iter(by_key.values())))
    for cell in ((a, b) for a in COPIES for b in COPIES):
        lines.append(f"| {cell[0]} → {cell[1]} | " + " | ".join(
            f"{100 * statistics.fmean(c[cell] for c in cells):.2f}" if cells else "—"
            for cells in by_key.values()) + " |")
    lines += ["", f"Effects in points, mean over {n} seeds with both copies [90 % t interval]:",
              "", "| effect | " + " | ".join(
                  label for _, label, *_ in cifar_quality.ACCURACIES) + " |",
              "|---" * (1 + len(cifar_quality.ACCURACIES)) + "|"]
    for label, plus, minus in EFFECTS:
        cols = []
        for cells in by_key.values():
            if not cells:
                cols.append("—")
                continue
            i = effect(cells, plus, minus)
            cols.append(f"{100 * i.estimate:+.2f} [{100 * i.low:+.2f}, {100 * i.high:+.2f}]")
        lines.append(f"| {label} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Train what is missing (unless --report), then write and print the table."""
    args = parse_args(argv)
    if not args.report:
        train(args)
    text = report(args.out)
    atomic_write(args.out / "jpeg_cost.md", lambda p: p.write_text(text))
    print(text)
    return text


if __name__ == "__main__":
    main()
