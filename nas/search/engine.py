"""The search engine: Ray Tune schedules trials (ASHA), Optuna picks the points."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from nas.data import DataSpec, HeldOutError, Splits, load_splits
from nas.latency.settings import is_latency_name
from nas.latency.settings import parse as parse_latency
from nas.results.checkpoints import prune_incomplete_checkpoints
from nas.results.errors import RunFolderError, disk_full
from nas.results.lock import RunLock, open_run_dir
from nas.results.meta import add_search_time, read_meta, update_meta, write_meta
from nas.results.names import EXPERIMENT, HELD_OUT_IMAGES, STUDY_KEY, trial_dirname
from nas.results.store import META_KEY as STORE_KEY
from nas.results.store import open_uri, prepare, run_uri
from nas.results.study_db import check_study_db
from nas.results.table import read_table
from nas.search import study_store
from nas.search.cluster import check_resources, check_shared, start_ray, stop_ray
from nas.search.memory import memory_share, over_memory
from nas.search.resume import Budget, saved_run
from nas.search.space.load import load_space
from nas.search.space.points import genotype, searched, smallest_params
from nas.search.space.types import Space
from nas.search.storage import check_storage
from nas.search.trial import TrialSettings, run_trial
from nas.train.device import resolve_precision

RETRIES = 1  # times Ray restarts a failed trial before it counts as failed


class SearchError(ValueError):
    """A search that cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class SearchOptions:
    """What a user asks of a search (the command line's flags); None means 'from the space
    file'."""

    space: Path
    trials: int | None = None
    max_epochs: int | None = None
    concurrency: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 0.25 when CUDA is present, else 0
    precision: str | None = None  # "auto" | "fp32" | "bf16"; None: the space's [train]
    data_dir: Path | None = None
    name: str | None = None
    seed: int | None = None
    resume: bool = False
    address: str | None = None
    storage_path: str | None = None  # checkpoints' home when nodes do not share the run folder
    storage: str | None = None
    study: str | None = None  # the Optuna study's name; None: the run folder's
    results_dir: Path = Path("results")


@dataclass(frozen=True)
class ProgramOptions:
    """What only a program asks of a search (a bench, a verification, a benchmark), never a
    flag."""

    # evaluate exactly these points (a bench, a verification round), in order; a point's
    # 'seed' key (nas.results.names.SEED), if any, is the seed it trains with
    points: tuple[dict[str, Any], ...] = ()
    restore: bool = True  # on resume, continue Ray's experiment when it can be restored
    compute_budget_s: float | None = None  # end the search once its trials trained this long
    prepared: bool = False  # the caller made the run folder and keeps its own files there
    full_schedule: bool = False  # no early stopping: every trial trains max_epochs (verifying)


def resolve_budget(space: Space, opts: SearchOptions, gpus_available: int) -> Budget:
    """Flags over the space file; a GPU grows the default budget (gpu_trials / gpu_epochs)."""
    gpus = opts.gpus_per_trial
    if gpus is None:
        gpus = 0.25 if gpus_available else 0.0
    asked = space.search
    check_options(opts)
    # `is None`, not `or`: an explicit 0 is refused above, never read as "the default"
    trials = opts.trials if opts.trials is not None else (
        asked.gpu_trials if gpus and asked.gpu_trials else asked.trials)
    epochs = opts.max_epochs if opts.max_epochs is not None else (
        asked.gpu_epochs if gpus and asked.gpu_epochs else asked.max_t or space.train.epochs)
    if asked.sampler == "grid":
        trials = min(trials, grid_size(space))
    concurrency = opts.concurrency if opts.concurrency is not None else (
        max(1, int(gpus_available / gpus)) if gpus else asked.concurrency)
    return Budget(trials, epochs, concurrency, opts.cpus_per_trial, gpus,
                  asked.seed if opts.seed is None else opts.seed,
                  opts.precision or space.train.precision)


def check_options(opts: SearchOptions) -> None:
    """The flags on their own: budgets >= 1, resources and seed in range, a plain --name,
    --resume with a --name."""
    for key, value, low in (("trials", opts.trials, 1), ("max-epochs", opts.max_epochs, 1),
                            ("concurrency", opts.concurrency, 1), ("seed", opts.seed, 0),
                            ("gpus-per-trial", opts.gpus_per_trial, 0)):
        if value is not None and value < low:
            raise SearchError(f"--{key}: {value} must be >= {low}")
    if not opts.cpus_per_trial > 0:
        raise SearchError(f"--cpus-per-trial: {opts.cpus_per_trial} must be > 0")
    if opts.name is not None and not plain_name(opts.name):
        raise SearchError(f"--name {opts.name!r}: must be a plain folder name (no '/', not '.'"
                          " or '..'); the run folder is --results-dir/NAME")
    if opts.resume and not opts.name:
        raise SearchError("--resume needs --name: the run folder to continue")
    study_store.check_study_name(opts.study)


def check_latency_objective(space: Space) -> None:
    """A latency objective's runtime runs on this machine: else no trial could tell Optuna a
    value (the cheap checks: a package, a CPU flag)."""
    from nas.latency.runtimes import unavailable

    for name in filter(is_latency_name, space.objectives.metrics[1:]):
        why = unavailable(parse_latency(name).runtime)
        if why:
            raise SearchError(f"{space.path}: [objectives].metrics: {name} cannot be measured"
                              f" on this machine: {why}")


def plain_name(name: str) -> bool:
    """A single path component that stays inside its parent folder."""
    separators = {os.sep, os.altsep or os.sep, "\0"}
    return name not in ("", ".", "..") and not any(c in name for c in separators)


def grid_size(space: Space) -> int:
    """Points a grid sampler enumerates (the product of the searched choices)."""
    return math.prod(len(d.choices) for d in searched(space))


def default_name(space: Space) -> str:
    """'<space>-<UTC time>': new runs never land in an existing folder by accident."""
    return f"{space.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def scheduler_settings(space: Space, budget: Budget, full_schedule: bool = False
                       ) -> dict[str, Any]:
    """ASHA's settings as the search uses them (what meta.json records); a full schedule's
    grace period is the whole budget (no early stopping)."""
    return {"name": "asha", "metric": "val_acc", "mode": "max",
            "time_attr": "training_iteration", "max_t": budget.epochs,
            "grace_period": budget.epochs if full_schedule
            else min(space.search.grace_period, budget.epochs),
            "reduction_factor": space.search.reduction_factor}


def search_settings(space: Space, budget: Budget, full_schedule: bool = False
                    ) -> dict[str, Any]:
    """The sampler's, the scheduler's and the searcher's resolved settings, for meta.json and
    the Tuner."""
    from nas.search.samplers import sampler_settings

    return {"sampler": sampler_settings(space, budget.seed),
            "scheduler": scheduler_settings(space, budget, full_schedule),
            "searcher": {"stopped_as": space.search.stopped_as}}


def _study(space: Space, storage, name: str, sampler, join: bool, where: str):
    """The run's Optuna study in its RDB storage, and whether this search created it (joined:
    another driver's, or this run's on --resume)."""
    directions = ["maximize", *("minimize" for _ in space.objectives.metrics[1:])]
    return study_store.open_study(storage, name, directions, sampler, join, where)


def _reference_points(space: Space) -> list[dict[str, Any]]:
    """Reference points as Optuna params (a grid enumerates them anyway)."""
    if space.search.sampler == "grid":
        return []
    names = {d.name for d in searched(space)}
    return [{k: v for k, v in params if k in names} for _, params in space.references]


def _trial_device(budget: Budget) -> str:
    """Where the trials train: a GPU share means CUDA."""
    return "cuda" if budget.gpus_per_trial > 0 else "cpu"


def trial_settings(space: Space, budget: Budget) -> TrialSettings:
    """What every trial shares: the space, the training budget, reference keys."""
    threads = max(1, int(budget.cpus_per_trial))
    train = dataclasses.replace(space.train, epochs=budget.epochs, seed=budget.seed,
                                device=_trial_device(budget), cpu_threads=threads,
                                precision=budget.precision,
                                warmup_epochs=min(space.train.warmup_epochs, budget.epochs))
    refs = tuple((genotype(space, dict(params)).key(), name) for name, params in space.references)
    memory = memory_share(budget.concurrency) if train.device == "cpu" else None
    return TrialSettings(space=space, train=train, repeats=space.search.repeats, references=refs,
                         memory=memory)


def check_fits(space: Space, settings: TrialSettings) -> None:
    """Refuse a space whose smallest point cannot train in a trial's share of memory (every
    other point is larger: none could train)."""
    arch = genotype(space, smallest_params(space))
    train = dataclasses.replace(settings.train, precision=resolve_precision(
        settings.train.precision, settings.train.device))
    reason = over_memory(arch, train, settings.memory, settings.repeats)
    if reason:
        raise SearchError(f"{space.path}: no point of the space fits in memory: the smallest"
                          f" {reason}; lower --concurrency, [train].batch_size or the widths")


def trial_precision(budget: Budget) -> str:
    """The precision the trials resolve to on this machine (each trial's row says its own)."""
    return resolve_precision(budget.precision, _trial_device(budget))


def _tuner(space: Space, budget: Budget, opts: SearchOptions, program: ProgramOptions,
           run_dir: Path, trainable, callbacks: list, store: str | None):
    """A new Tuner: our searcher over the Optuna study in an RDB, ASHA, checkpoints, callbacks."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from nas.search.relocate import RunSearchGenerator, RunStudyStorage
    from nas.search.samplers import build_sampler
    from nas.search.searcher import StudySearcher
    from nas.search.space.points import DefineByRun, PaperCheck

    settings = search_settings(space, budget, program.full_schedule)
    storage = (study_store.open_storage(opts.storage) if opts.storage
               else RunStudyStorage(run_dir))
    where = study_store.storage_label(opts.storage, run_dir)
    # joined on purpose (--study) or resumed: the study exists; only its creator enqueues
    study, created = _study(space, storage, opts.study or run_dir.name,
                            build_sampler(space, settings["sampler"]),
                            opts.resume or opts.study is not None, where)
    points = (list(program.points) or _reference_points(space)) if created else []
    # a sampler's proposals are screened on paper; a grid's and a program's points are each
    # wanted once, as they are (an infeasible one is recorded in the table)
    screen = not program.points and space.search.sampler != "grid"
    searcher = StudySearcher(study, DefineByRun(space), list(space.objectives.metrics),
                             budget.epochs, points, space.search.stopped_as, run=run_dir.name,
                             where=where, check=PaperCheck(space) if screen else None)
    # wrapped here rather than by Ray (max_concurrent_trials) so the generator is ours
    search_alg = RunSearchGenerator(ConcurrencyLimiter(searcher, budget.concurrency))
    asha = {k: v for k, v in settings["scheduler"].items() if k != "name"}
    scheduler = ASHAScheduler(**asha)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler,
                                    num_samples=len(program.points) or budget.trials,
                                    reuse_actors=True, trial_dirname_creator=_trial_folder),
        run_config=_run_config(run_dir, callbacks, program.compute_budget_s, store),
    )


def _run_config(run_dir: Path, callbacks: list, compute_budget_s: float | None = None,
                store: str | None = None):
    """Where Ray writes (the run folder, or the run's folder in --storage-path), what it keeps
    (the best checkpoint per trial), how failures count, when the whole search stops."""
    from ray import tune

    from nas.search.budget import ComputeBudget

    stop = ComputeBudget(compute_budget_s) if compute_budget_s else None
    filesystem, path = ray_storage(run_dir, store)
    return tune.RunConfig(
        name=EXPERIMENT, storage_path=path, storage_filesystem=filesystem, verbose=0,
        callbacks=callbacks, stop=stop,
        # one retry, from the trial's last checkpoint: what a lost node (or a killed worker)
        # costs; a trial that fails on its own fails again and is recorded failed
        failure_config=tune.FailureConfig(max_failures=RETRIES, fail_fast=False),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_acc",
                                                checkpoint_score_order="max"))


def ray_storage(run_dir: Path, store: str | None) -> tuple[Any, str]:
    """(pyarrow filesystem or None, path) where Ray keeps the experiment's parent: the run's
    folder in --storage-path, or the run folder itself."""
    return open_uri(store) if store else (None, str(run_dir.resolve()))


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

        splits = load_data(space, opts.data_dir)
        data = _data_meta(splits)  # what an exported model needs to be fed like the search
        if read_meta(run_dir).get("data") != data:  # only a real change rewrites meta.json
            update_meta(run_dir, {"data": data})
        return tune.with_parameters(run_trial, settings=settings, splits=splits)


def search(opts: SearchOptions, program: ProgramOptions = ProgramOptions(),
           source: TrialSource = Training()) -> Outcome:
    """Run (or resume) a search; the results folder is complete at every trial's end."""
    check_options(opts)
    check_storage(opts.storage)
    space = load_space(opts.space)
    if isinstance(source, Training) and not opts.resume:  # before a folder or Ray exists (a
        check_latency_objective(space)  # replay reads the latencies its bench measured)
    run_dir = opts.results_dir / (opts.name or default_name(space))
    store = run_uri(opts.storage_path, run_dir.name) if opts.storage_path else None
    if store and not opts.resume:
        prepare(store, resume=False)  # before a folder is made: a bad URI leaves nothing
    lock = open_run_dir(run_dir, opts.resume, program.prepared)  # before anything is written
    # A caller that runs many searches (benchmarks/search_strategies.py) starts Ray once;
    # Ray is not imported before start_ray has set the variables it reads at import.
    own_ray = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    training = False
    try:
        if opts.resume:
            space, budget = _resumed(run_dir, opts)
            store = _resumed_store(run_dir, store)
            name, url = study_store.resumed_study(read_meta(run_dir), opts.study, opts.storage)
            opts = dataclasses.replace(opts, study=name, storage=url)
            check_storage(url)  # recorded: is its server up?
        elif opts.storage and opts.study is None:
            study_store.refuse_existing(opts.storage, run_dir.name)
        if isinstance(source, Training) and opts.resume:  # the run's own space copy
            check_latency_objective(space)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        resources = (start_ray(opts.address) if own_ray
                     else sys.modules["ray"].cluster_resources())
        if not opts.resume:
            budget = resolve_budget(space, opts, int(resources.get("GPU", 0)))
        check_resources(budget.cpus_per_trial, budget.gpus_per_trial, resources)
        if store is None:
            check_shared(run_dir)
        settings = trial_settings(space, budget)
        if isinstance(source, Training):  # a replay reads measured curves: nothing trains
            check_fits(space, settings)
        if not opts.resume:  # no password in meta.json: it is copied and shared with results
            study = study_store.recorded(opts.study or run_dir.name, opts.storage)
            argv = study_store.hide_password(sys.argv, opts.storage)
            write_meta(run_dir, space.path, {"budget": dataclasses.asdict(budget),
                                             "precision": trial_precision(budget),
                                             **search_settings(space, budget,
                                                               program.full_schedule),
                                             STUDY_KEY: study, "space": space.name,
                                             "argv": argv, STORE_KEY: store,
                                             "started": datetime.now(UTC).isoformat()})
        trainable = source.trainable(space, settings, opts, run_dir)  # bad data fails here
        training = True
        return _fit(space, budget, opts, program, run_dir, trainable, lock, store)
    except BaseException:
        if not training:
            lock.discard()  # a failed start leaves no folder behind (only one it created)
        raise
    finally:
        if own_ray and "ray" in sys.modules:
            stop_ray()
        lock.release()


def _resumed(run_dir: Path, opts: SearchOptions) -> tuple[Space, Budget]:
    """The space copy and the budget of a run to resume, its Optuna study checked first."""
    read_meta(run_dir)  # a missing or damaged meta.json says so before the study does
    if opts.storage is None:
        problem = check_study_db(run_dir)
        if problem:
            raise RunFolderError(f"{problem}; cannot resume without the run's Optuna study")
    run = saved_run(run_dir)
    return run.space, run.budget


def _resumed_store(run_dir: Path, asked: str | None) -> str | None:
    """The run's recorded --storage-path folder (a resume cannot move it)."""
    recorded = read_meta(run_dir).get(STORE_KEY)
    if asked is not None and asked != recorded:
        raise SearchError(f"--storage-path: {run_dir} keeps its checkpoints at {recorded}; resume"
                          " it without --storage-path (or with that location)")
    if recorded:
        prepare(recorded, resume=True)
    return recorded


def _cause(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first error of type `kind` among `err` and those it was raised from (Ray wraps)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _data_meta(splits: Splits) -> dict[str, Any]:
    """What an exported model needs to be fed like the search fed it (as JSON reads it back),
    and how many held-out images score the full-budget trials (when any do)."""
    held = {} if splits.held_out is None else {HELD_OUT_IMAGES: len(splits.held_out)}
    return json.loads(json.dumps({"mean": list(splits.mean), "std": list(splits.std),
                                  "train_images": len(splits.train),
                                  "val_images": len(splits.val),
                                  "classes": list(splits.train.classes), **held}))


def load_data(space: Space, data_dir: Path | None) -> Splits:
    """The space's splits, with [verify].held_out's images when it asks for some; too few
    training images left for them is a one-line SearchError naming the field."""
    held_out = space.verify.held_out if space.verify is not None else 0
    try:
        return load_splits(data_spec(space, data_dir), data_dir, held_out=held_out)
    except HeldOutError as err:  # its message starts with the field
        raise SearchError(f"{space.path}: [verify].{err}") from None


def _record_time(run_dir: Path, seconds: float, lock: RunLock) -> None:
    """Add this search's wall time, and any a killed earlier one left uncounted, to search_s."""
    add_search_time(run_dir, seconds + lock.carried_s)
    lock.time_recorded()


def data_spec(space: Space, data_dir: Path | None) -> DataSpec:
    """The space's data; --data-dir names the ImageFolder root for image-folder spaces."""
    if data_dir is not None and space.data.dataset == "imagefolder":
        return dataclasses.replace(space.data, root=Path(data_dir))
    return space.data


def _fit(space: Space, budget: Budget, opts: SearchOptions, program: ProgramOptions,
         run_dir: Path, trainable: Any, lock: RunLock, store: str | None) -> Outcome:
    """Run the Tuner (new, or restored from the run folder); its time, interrupted or not,
    and any a killed earlier search left uncounted, goes into meta.json's search_s."""
    from ray import tune

    from nas.search.monitor import SearchMonitor

    trainable = tune.with_resources(trainable, {"cpu": budget.cpus_per_trial,
                                                "gpu": budget.gpus_per_trial})
    start = time.monotonic()
    experiment = run_dir / EXPERIMENT
    filesystem, path = ray_storage(run_dir, store)
    where = f"{path}/{EXPERIMENT}"
    try:
        if opts.resume and program.restore and tune.Tuner.can_restore(
                where, storage_filesystem=filesystem):
            # Ray re-roots the trials at the path given here; the monitor and the study's
            # storage find this folder through the lock (nas.results.lock.held_run_dir).
            # failed trials run again from their last checkpoint: what failed them (a dead
            # node, a full disk) may be gone, and Ray can fail a trial whose node died twice
            tuner = tune.Tuner.restore(where, trainable=trainable, resume_unfinished=True,
                                       resume_errored=True, restart_errored=False,
                                       storage_filesystem=filesystem)  # the monitor returns too
        else:
            monitor = SearchMonitor(budget.trials, budget.epochs)
            tuner = _tuner(space, budget, opts, program, run_dir, trainable, [monitor], store)
        tuner.fit()
    except BaseException as err:
        with contextlib.suppress(OSError):  # the error on its way (a full disk?) says more
            _record_time(run_dir, time.monotonic() - start, lock)
        lost = _cause(err, study_store.StudyError)  # the study's database stopped answering
        if lost is not None:
            raise lost from None
        if isinstance(err, Exception) and disk_full(err):
            raise RunFolderError(f"{run_dir}: no space left on the device; the finished trials"
                                 " are kept: free some space, then continue with --resume"
                                 ) from None
        raise
    finally:
        for trial_dir in experiment.glob("trial_*"):  # what a full disk cut short
            prune_incomplete_checkpoints(trial_dir)
    seconds = time.monotonic() - start
    _record_time(run_dir, seconds, lock)
    table = read_table(run_dir)
    return Outcome(run_dir, table, len(table) < budget.trials, seconds)
