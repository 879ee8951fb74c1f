"""The search engine: Ray Tune schedules trials (ASHA), Optuna picks the points."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

import pandas as pd

from nas.data import DataSpec, load_splits
from nas.results import (
    EXPERIMENT,
    add_search_time,
    optuna_url,
    prepare_run_dir,
    read_meta,
    read_table,
    trial_dirname,
    update_meta,
    write_meta,
)
from nas.search.space import Space, genotype, load_space, searched
from nas.search.trial import TrialSettings, run_trial

# Ray reads these at import. Always: quiet, no usage reporting.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
}
# Only for the local cluster we start: every Ray process on 127.0.0.1 (Ray otherwise binds
# and advertises the machine's network address), no token to manage. An existing cluster
# (--address) keeps the user's own settings.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


class SearchError(ValueError):
    """A search that cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class SearchOptions:
    """Everything the command line decides; None means 'from the space file'."""

    space: Path
    trials: int | None = None
    max_epochs: int | None = None
    concurrency: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 0.25 when CUDA is present, else 0
    data_dir: Path | None = None
    name: str | None = None
    seed: int | None = None
    resume: bool = False
    address: str | None = None
    storage: str | None = None
    results_dir: Path = Path("results")
    points: tuple[dict[str, Any], ...] = ()  # evaluate exactly these points (a bench), in order
    restore: bool = True  # on resume, continue Ray's experiment when it can be restored
    compute_budget_s: float | None = None  # end the search once its trials trained this long
    prepared: bool = False  # the caller made the run folder and keeps its own files there
    full_schedule: bool = False  # no early stopping: every trial trains max_epochs (verifying)


@dataclass(frozen=True)
class Budget:
    """The resolved size of a search."""

    trials: int
    epochs: int
    concurrency: int
    cpus_per_trial: float
    gpus_per_trial: float
    seed: int


def resolve_budget(space: Space, opts: SearchOptions, gpus_available: int) -> Budget:
    """Flags over the space file; a GPU grows the default budget (gpu_trials / gpu_epochs)."""
    gpus = opts.gpus_per_trial
    if gpus is None:
        gpus = 0.25 if gpus_available else 0.0
    search = space.search
    trials = opts.trials or (search.gpu_trials if gpus and search.gpu_trials else search.trials)
    epochs = opts.max_epochs or (search.gpu_epochs if gpus and search.gpu_epochs
                                 else space.train.epochs)
    if search.sampler == "grid":
        trials = min(trials, grid_size(space))
    concurrency = opts.concurrency or (int(gpus_available / gpus) if gpus else search.concurrency)
    for key, value in (("trials", trials), ("max-epochs", epochs), ("concurrency", concurrency)):
        if value < 1:
            raise SearchError(f"--{key}: {value} must be >= 1")
    if opts.cpus_per_trial <= 0 or gpus < 0:
        raise SearchError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    return Budget(trials, epochs, concurrency, opts.cpus_per_trial, gpus,
                  search.seed if opts.seed is None else opts.seed)


def grid_size(space: Space) -> int:
    """Points a grid sampler enumerates (the product of the searched choices)."""
    return math.prod(len(d.choices) for d in searched(space))


def default_name(space: Space) -> str:
    """'<space>-<UTC time>': new runs never land in an existing folder by accident."""
    return f"{space.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def _sampler(space: Space, seed: int):
    """The Optuna sampler the space asks for."""
    import optuna

    from nas.search.samplers import TuneGridSampler

    kind = space.search.sampler
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(8, space.search.trials))
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    grid = {d.name: list(d.choices) for d in searched(space)}
    return TuneGridSampler(grid, seed=seed)


def _objectives(space: Space) -> tuple[str | list[str], str | list[str]]:
    """Metric and mode for Optuna: accuracy alone, or accuracy and a cost (NSGA-II)."""
    metrics = list(space.objectives.metrics)
    if len(metrics) == 1:
        return "val_acc", "max"
    return metrics, ["max", "min"]


def _reference_points(space: Space) -> list[dict[str, Any]]:
    """Reference points as Optuna params (a grid enumerates them anyway)."""
    if space.search.sampler == "grid":
        return []
    names = {d.name for d in searched(space)}
    return [{k: v for k, v in params if k in names} for _, params in space.references]


def _settings(space: Space, budget: Budget) -> TrialSettings:
    """What every trial shares: the space, the training budget, reference keys."""
    device = "cuda" if budget.gpus_per_trial > 0 else "cpu"
    threads = max(1, int(budget.cpus_per_trial))
    train = dataclasses.replace(space.train, epochs=budget.epochs, seed=budget.seed,
                                device=device, cpu_threads=threads,
                                warmup_epochs=min(space.train.warmup_epochs, budget.epochs))
    refs = tuple((genotype(space, dict(params)).key(), name) for name, params in space.references)
    return TrialSettings(space=space, train=train, repeats=space.search.repeats, references=refs)


def start_ray(opts: SearchOptions) -> dict[str, float]:
    """Join a cluster (--address) or start a local one bound to 127.0.0.1."""
    for key, value in (QUIET_ENV | ({} if opts.address else LOCAL_ENV)).items():
        os.environ.setdefault(key, value)
    import ray

    if opts.address:
        ray.init(address=opts.address, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    return ray.cluster_resources()


def _check_resources(budget: Budget, resources: dict[str, float]) -> None:
    """Fail now rather than leave trials pending forever on a cluster that cannot run them."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if budget.cpus_per_trial > cpus:
        raise SearchError(f"--cpus-per-trial {budget.cpus_per_trial} > the {cpus:g} CPUs of the"
                          " Ray cluster")
    if budget.gpus_per_trial > gpus:
        raise SearchError(f"--gpus-per-trial {budget.gpus_per_trial} but the Ray cluster has"
                          f" {gpus:g} GPUs (use --gpus-per-trial 0 on a CPU machine)")


def _tuner(space: Space, budget: Budget, opts: SearchOptions, run_dir: Path, trainable,
           callbacks: list):
    """A new Tuner: Optuna search with the study in an RDB, ASHA, checkpoints, callbacks."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from nas.search.space import DefineByRun

    metric, mode = _objectives(space)
    storage = optuna.storages.RDBStorage(opts.storage or optuna_url(run_dir))
    searcher = OptunaSearch(
        space=DefineByRun(space), metric=metric, mode=mode,
        points_to_evaluate=list(opts.points) or _reference_points(space) or None,
        sampler=_sampler(space, budget.seed), storage=storage, study_name=run_dir.name)
    scheduler = ASHAScheduler(metric="val_acc", mode="max", time_attr="training_iteration",
                              max_t=budget.epochs,
                              grace_period=budget.epochs if opts.full_schedule
                              else min(space.search.grace_period, budget.epochs),
                              reduction_factor=space.search.reduction_factor)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=len(opts.points) or budget.trials,
                                    max_concurrent_trials=budget.concurrency,
                                    reuse_actors=True, trial_dirname_creator=_trial_folder),
        run_config=_run_config(run_dir, callbacks, opts.compute_budget_s),
    )


def _run_config(run_dir: Path, callbacks: list, compute_budget_s: float | None = None):
    """Where Ray writes, what it keeps (the best checkpoint per trial), how failures count,
    when the whole search stops."""
    from ray import tune

    from nas.search.budget import ComputeBudget

    stop = ComputeBudget(compute_budget_s) if compute_budget_s else None
    return tune.RunConfig(
        name=EXPERIMENT, storage_path=str(run_dir.resolve()), verbose=0, callbacks=callbacks,
        stop=stop,
        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_acc",
                                                checkpoint_score_order="max"))


def _trial_folder(trial) -> str:
    """Short trial folder names (top-level so the experiment state pickles)."""
    return trial_dirname(trial.trial_id)


@dataclass(frozen=True)
class Outcome:
    """What a finished (or interrupted) search leaves."""

    run_dir: Path
    table: pd.DataFrame
    interrupted: bool
    seconds: float


class TrialSource(Protocol):
    """Where trials get their results: training (the default) or a bench replay."""

    def trainable(self, space: Space, settings: TrialSettings, opts: SearchOptions,
                  run_dir: Path) -> Any:
        """The Ray Tune function trainable (with its parameters bound)."""
        ...


@dataclass(frozen=True)
class Training:
    """Trials train their point: the data loaded once and shared through Ray's object store."""

    def trainable(self, space: Space, settings: TrialSettings, opts: SearchOptions,
                  run_dir: Path) -> Any:
        from ray import tune

        splits = load_splits(data_spec(space, opts.data_dir), opts.data_dir)
        # what an exported model needs to be fed like the search fed it
        update_meta(run_dir, {"data": {"mean": list(splits.mean), "std": list(splits.std),
                                       "train_images": len(splits.train),
                                       "val_images": len(splits.val),
                                       "classes": splits.train.classes}})
        return tune.with_parameters(run_trial, settings=settings, splits=splits)


def run_search(opts: SearchOptions, out: TextIO = sys.stdout,
               source: TrialSource = Training()) -> Outcome:
    """Run (or resume) a search; the results folder is complete at every trial's end."""
    space = load_space(opts.space)
    run_dir = opts.results_dir / (opts.name or default_name(space))
    if opts.resume and not opts.name:
        raise SearchError("--resume needs --name: the run folder to continue")
    if not opts.prepared:
        prepare_run_dir(run_dir, opts.resume)
    if opts.resume:
        meta = read_meta(run_dir)
        space = load_space(run_dir / meta["space_file"])
        budget = Budget(**meta["budget"])
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A caller that runs many searches (benchmarks/search_strategies.py) starts Ray once;
    # Ray is not imported before start_ray has set the variables it reads at import.
    own_ray = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    resources = start_ray(opts) if own_ray else sys.modules["ray"].cluster_resources()
    try:
        if not opts.resume:
            budget = resolve_budget(space, opts, int(resources.get("GPU", 0)))
            write_meta(run_dir, space.path, {"budget": dataclasses.asdict(budget),
                                             "space": space.name, "argv": sys.argv,
                                             "started": datetime.now(UTC).isoformat()})
        _check_resources(budget, resources)
        return _fit(space, budget, opts, run_dir, out, source)
    finally:
        if own_ray:
            sys.modules["ray"].shutdown()


def data_spec(space: Space, data_dir: Path | None) -> DataSpec:
    """The space's data; --data-dir names the ImageFolder root for image-folder spaces."""
    if data_dir is not None and space.data.dataset == "imagefolder":
        return dataclasses.replace(space.data, root=Path(data_dir))
    return space.data


def _fit(space: Space, budget: Budget, opts: SearchOptions, run_dir: Path, out: TextIO,
         source: TrialSource) -> Outcome:
    """Prepare the trials' source, run the Tuner, report how it ended."""
    from ray import tune

    from nas.search.monitor import SearchMonitor

    settings = _settings(space, budget)
    trainable = tune.with_resources(source.trainable(space, settings, opts, run_dir),
                                    {"cpu": budget.cpus_per_trial, "gpu": budget.gpus_per_trial})
    monitor = SearchMonitor(run_dir, budget.trials, budget.epochs)
    start = time.monotonic()
    experiment = run_dir / EXPERIMENT
    if opts.resume and opts.restore and tune.Tuner.can_restore(str(experiment.resolve())):
        tuner = tune.Tuner.restore(str(experiment.resolve()), trainable=trainable,
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)  # the monitor comes back with it
    else:
        tuner = _tuner(space, budget, opts, run_dir, trainable, [monitor])
    tuner.fit()
    seconds = time.monotonic() - start
    add_search_time(run_dir, seconds)
    table = read_table(run_dir)
    return Outcome(run_dir, table, len(table) < budget.trials, seconds)
