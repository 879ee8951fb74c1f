"""The flags a search takes (budget, resources, run folder), shared by the search, study, bench
and supernet actions, and the SearchOptions they make."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.train.config import PRECISIONS  # torch-free: `--help` loads no torch


def add_search_flags(p: argparse.ArgumentParser) -> None:
    """The flags shared by the actions that search: budget, resources, run folder."""
    p.add_argument("--trials", type=int,
                   help="trials to run (default: the space's [search].trials)")
    p.add_argument("--max-epochs", type=int, help="epochs a trial trains at most (ASHA's max_t)")
    p.add_argument("--concurrency", type=int, help="trials running at once")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPU cores per trial (also its torch threads)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPU share per trial, e.g. 0.25 packs 4 trials on a GPU (default: 0.25"
                   " when CUDA is present, which also grows the budget to the space's gpu_trials"
                   " / gpu_epochs; else 0)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="training, validation and latency precision (default: the space's"
                   " [train].precision, itself 'auto': bf16 where the device computes it"
                   " natively, else fp32)")
    p.add_argument("--data-dir", type=Path,
                   help="data location (CIFAR-10 batches, or an ImageFolder root); default"
                   " $NAS_DATA_DIR, then the per-user cache")
    p.add_argument("--name", help="run folder name under --results-dir (default: space-time)")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--seed", type=int, help="sampler and training seed (default: the space's)")
    p.add_argument("--resume", action="store_true", help="continue the run named by --name")
    p.add_argument("--address", help="join an existing Ray cluster (host:port) instead of a"
                   " local one")
    p.add_argument("--storage-path", help="where trials write checkpoints when the cluster's"
                   " nodes do not share the run folder: a shared mount, or a URI pyarrow opens"
                   " (s3://BUCKET/PREFIX?endpoint_override=HOST:PORT); the driver copies each"
                   " trial's best into the run folder")
    p.add_argument("--storage", help="SQLAlchemy URL of the Optuna study (default: SQLite in"
                   " the run folder), e.g. postgresql+psycopg://USER@HOST/DB")
    p.add_argument("--study", help="name of the Optuna study, to share one among drivers with"
                   " their own run folders (default: the run folder's name)")


def search_options(args: argparse.Namespace, space: Path | None):
    """SearchOptions from parsed search flags."""
    from nas.search.engine import SearchOptions

    return SearchOptions(
        space=space, trials=args.trials, max_epochs=args.max_epochs,
        concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, precision=args.precision, data_dir=args.data_dir,
        name=args.name, seed=args.seed, resume=args.resume, address=args.address,
        storage_path=args.storage_path, storage=args.storage, study=args.study,
        results_dir=args.results_dir)
