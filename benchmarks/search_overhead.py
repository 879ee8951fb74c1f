"""Search overhead: wall time of a fixed search against its trials' own time / concurrency.

    NAS_DATA_DIR=../shared/data/cifar10-subset python -m benchmarks.search_overhead

Ray Tune starts and schedules trials, Optuna samples, ASHA decides; this measures what that
costs on top of the trials' own work. Target: <= 1.10 with 2 concurrent trials on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nas.search.engine import SearchOptions, search

SPACE = """
name = "overhead"
[data]
dataset = "cifar10"
val_size = 1000          # the default search's split: trials of realistic length
train_size = 4000
[macro]
strides = [1, 2, 2]
widths = [16, 32, 64]
depths = [1, 1, 1]
stem_widths = [16]
stem_strides = [1]
[blocks]
kind = ["spectrum"]
spectrum = [0.0, 0.4, 1.0]
order = ["dw_pw", "pw_dw"]
[train]
epochs = 3
batch_size = 100
warmup_epochs = 0.5
[search]
trials = 10
concurrency = 2
grace_period = 3   # = epochs: equal-length trials, so ASHA's tail idling is not counted
reduction_factor = 2
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "overhead.toml"
        space.write_text(SPACE)
        start = time.monotonic()
        outcome = search(
            SearchOptions(
                space=space,
                trials=args.trials,
                concurrency=args.concurrency,
                name="overhead",
                results_dir=Path(folder),
            )
        )
        total = time.monotonic() - start
    table = outcome.table
    trial_time = table["wall_s"].sum() / args.concurrency
    train_time = table["train_s"].sum() / args.concurrency
    print(
        f"trials: {len(table)} ({table['status'].value_counts().to_dict()}),"
        f" concurrency {args.concurrency}"
    )
    print(f"search wall time (Tuner.fit):              {outcome.seconds:8.1f} s")
    print(f"whole command incl. Ray start and data:    {total:8.1f} s")
    print(
        f"sum of trial times / concurrency:          {trial_time:8.1f} s"
        f"   ratio {outcome.seconds / trial_time:.3f}  (target <= 1.10)"
    )
    print(
        f"sum of training-only times / concurrency:  {train_time:8.1f} s"
        f"   ratio {outcome.seconds / train_time:.3f}  (excludes validation and latency)"
    )


if __name__ == "__main__":
    main()
