"""`run_search.py supernet SPACE.toml`: train a supernet, score every point, verify the top k.

The verified stand-alone trials land in the run folder's trials table through the ordinary Ray
Tune pipeline, so the summary, the dashboard and `export --best` rank them; the supernet's
scores stay in their own table and never rank a result.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from nas.data import load_splits
from nas.latency.model import check_runtime
from nas.latency.settings import parse
from nas.results.atomic import atomic_write, write_json
from nas.results.lock import open_run_dir
from nas.results.meta import read_meta, update_meta, write_meta
from nas.results.names import META, SUPERNET_CSV, SUPERNET_DIR, SUPERNET_JSON, TABLE
from nas.results.table import read_csv, read_table
from nas.results.values import text
from nas.search.cluster import start_ray, stop_ray
from nas.search.engine import (
    ProgramOptions,
    SearchOptions,
    check_options,
    data_spec,
    default_name,
    resolve_budget,
    search,
)
from nas.search.space.load import load_space
from nas.search.space.types import Space
from nas.supernet.latency import with_latency
from nas.supernet.model import SuperNet
from nas.supernet.paths import SupernetError, check_supported
from nas.supernet.score import (
    SCORE_BY,
    batches,
    proxy_scorer,
    score_space,
    train_subset,
)
from nas.supernet.train import train_supernet
from nas.supernet.workers import ScoringJob, WorkerPool, local_scorer, scoring_job
from nas.train.config import TrainConfig
from nas.train.device import resolve_device, resolve_precision

# Measured on the spectrum bench (results/rank_fidelity_gamma1.md): uniform paths without the
# sandwich rule rank the points better than the sandwich at the same paths per step, and
# accuracy ranks them better than the loss on average over 1, 3 and 10 epochs.
SANDWICH = False
UNIFORM_PATHS = 3
TOP_K = 5  # points verified stand-alone
CALIBRATION_IMAGES = 1024  # training images that re-estimate a sub-network's BN statistics
SCORE_TRIALS = 1000  # a larger space is scored by this many Optuna trials instead of whole


@dataclass(frozen=True)
class SupernetRequest:
    """A supernet run as asked: the space, the search's options (resources, run folder, the
    verification's budget) and the supernet's own settings (None: the defaults above)."""

    space: Path
    options: SearchOptions
    epochs: int | None = None  # None: the space's [train] epochs
    top_k: int = TOP_K
    rank: str = "supernet"
    sandwich: bool | None = None
    uniform_paths: int | None = None
    score_by: str | None = None
    calibration_images: int = CALIBRATION_IMAGES
    score_trials: int = SCORE_TRIALS
    latency: str | None = None  # 'latency_ms@onnxruntime:b1': add each point's predicted latency
    pareto: bool = False  # rank by accuracy/predicted-latency fronts, then score


def check_request(request: SupernetRequest) -> None:
    """One-line errors for settings out of range."""
    for flag, value, low in (("--epochs", request.epochs, 1), ("--top-k", request.top_k, 0),
                             ("--uniform-paths", request.uniform_paths, 1),
                             ("--calibration-images", request.calibration_images, 1),
                             ("--score-trials", request.score_trials, 1)):
        if value is not None and value < low:
            raise SupernetError(f"{flag}: {value} must be >= {low}")
    if request.options.trials is not None:
        raise SupernetError("--trials: the supernet scores the space; --top-k sets how many"
                            " points are trained stand-alone")
    if request.rank != "supernet" and (request.sandwich, request.uniform_paths,
                                       request.score_by) != (None, None, None):
        raise SupernetError(f"--rank {request.rank}: --sandwich, --uniform-paths and --score-by"
                            " set how a supernet trains and scores; a proxy trains nothing")
    if request.latency is not None:
        parse(request.latency)  # a one-line LatencyError naming the allowed runtimes
    elif request.pareto:
        raise SupernetError("--pareto ranks by accuracy against predicted latency: give"
                            " --latency too, e.g. --latency latency_ms@onnxruntime:b1")
    check_options(request.options)  # the verification's flags, before anything trains


def run_supernet(request: SupernetRequest) -> int:
    """Score the space, verify the top k: exit 0 when done, 130 when the verification was
    interrupted."""
    check_request(request)
    if request.latency is not None:  # before the supernet trains, not after
        check_runtime(parse(request.latency).runtime)
    opts = request.options
    space = load_space(request.space)
    if request.rank == "supernet":
        check_supported(space)
    run_dir = opts.results_dir / (opts.name or default_name(space))
    lock = open_run_dir(run_dir, opts.resume)  # handed back before the verification takes it
    try:  # one Ray cluster (when scoring or verifying needs one) serves both
        try:
            table = _prepare_and_score(space, request, run_dir)
        except BaseException:
            if not (run_dir / SUPERNET_DIR).exists():
                lock.discard()  # nothing trained yet (bad data, say): the command can rerun
            raise
        finally:
            lock.release()
        print(f"Scored {len(table)} points by {table['ranking'].iloc[0]}; top"
              f" {min(5, len(table))}: {', '.join(f'{s:.4f}' for s in table['score'][:5])}"
              f" ({run_dir / SUPERNET_CSV})", flush=True)
        top_k = json.loads((run_dir / SUPERNET_JSON).read_text())["settings"]["top_k"]
        if top_k == 0:
            return 0
        return _verify(space, request, table.head(top_k), run_dir)
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            stop_ray()


def _prepare_and_score(space: Space, request: SupernetRequest, run_dir: Path):
    """The run's settings (a resumed run keeps its own), then the scored points table."""
    opts = request.options
    settings = {"rank": request.rank, "epochs": request.epochs or space.train.epochs,
                "sandwich": SANDWICH if request.sandwich is None else request.sandwich,
                "uniform_paths": request.uniform_paths or UNIFORM_PATHS,
                "score_by": request.score_by or SCORE_BY[0],
                "calibration_images": request.calibration_images,
                "score_trials": request.score_trials, "top_k": request.top_k,
                "latency": request.latency, "pareto": request.pareto,
                "seed": space.search.seed if opts.seed is None else opts.seed,
                "precision": opts.precision or space.train.precision}
    if opts.resume:
        # a run from before --score-by scored by accuracy; one from before --latency had none
        settings = {"score_by": "val_acc", "latency": None, "pareto": False} | json.loads(
            (run_dir / SUPERNET_JSON).read_text())["settings"]
    else:
        write_meta(run_dir, space.path, {"space": space.name, "argv": sys.argv,
                                         "started": datetime.now(UTC).isoformat()})
        write_json(run_dir / SUPERNET_JSON, {"settings": settings})
    table = read_csv(run_dir / SUPERNET_CSV)
    return _score(space, opts, settings, run_dir) if table.empty else table


def train_config(space: Space, settings: dict[str, Any]) -> TrainConfig:
    """The supernet's training settings: the space's [train] with the run's own settings, the
    precision resolved for the device once (training and scoring both use it)."""
    epochs = settings["epochs"]
    asked = settings.get("precision", space.train.precision)
    return dataclasses.replace(space.train, epochs=epochs, seed=settings["seed"],
                               precision=resolve_precision(asked,
                                                           resolve_device(space.train.device)),
                               warmup_epochs=min(space.train.warmup_epochs, epochs))


def _score(space: Space, opts: SearchOptions, settings: dict[str, Any], run_dir: Path):
    """Train the supernet (continuing its checkpoint) and score the space into SUPERNET_CSV."""
    splits = load_splits(data_spec(space, opts.data_dir), opts.data_dir)
    update_meta(run_dir, {"data": {"mean": list(splits.mean), "std": list(splits.std),
                                   "train_images": len(splits.train),
                                   "val_images": len(splits.val), "classes": splits.train.classes}})
    cfg = train_config(space, settings)
    device = resolve_device(cfg.device)
    record = json.loads((run_dir / SUPERNET_JSON).read_text())
    start = time.monotonic()
    calibration = train_subset(splits, settings["calibration_images"], cfg.seed)
    pool = None
    if settings["rank"] == "supernet":
        torch.manual_seed(cfg.seed)
        supernet = SuperNet(space)
        record["train_threads"] = torch.get_num_threads()
        history = train_supernet(
            supernet, space, splits, cfg, run_dir / SUPERNET_DIR,
            sandwich=settings["sandwich"], uniform=settings["uniform_paths"],
            log=lambda r: print(f"supernet epoch {r.epoch}/{cfg.epochs}: loss {r.train_loss:.3f},"
                                f" largest path val_acc {r.val_acc:.4f} ({r.epoch_seconds:.0f}s)",
                                flush=True))
        record["train_s"] = round(sum(r.epoch_seconds for r in history), 1)
        record["history"] = [dataclasses.asdict(r) for r in history]
        record["precision"] = cfg.precision
        job = scoring_job(supernet, space, splits, calibration, cfg, cfg.precision,
                          settings["score_by"])
        pool, workers, cores = _workers(space, opts, job)
        scorer = pool or local_scorer(job, device)
    else:
        x, y = next(iter(batches(train_subset(splits, 64, cfg.seed), splits, cfg, device, 64)))
        scorer, workers, cores = proxy_scorer(settings["rank"], x, y, cfg.seed), 1, 1
    scoring = time.monotonic()
    try:
        table = score_space(space, scorer, settings["rank"], settings["score_trials"], cfg.seed,
                            log=_progress(), batch=workers)
    finally:
        if pool is not None:
            pool.close()
    record["score_s"] = round(time.monotonic() - scoring, 1)
    if settings.get("latency"):  # the table's missing rows are measured here, in this process
        table, model = with_latency(table, settings["latency"], settings.get("pareto", False))
        record["latency_table"] = {"path": str(model.table.path), "rows": len(model.table.rows),
                                   "build_s": round(model.table.build_s, 1)}
    record |= {"score_workers": workers, "score_cores": cores,
               "wall_s": round(time.monotonic() - start, 1), "points": len(table),
               "device": device.type}
    atomic_write(run_dir / SUPERNET_CSV, lambda tmp: table.to_csv(tmp, index=False))
    write_json(run_dir / SUPERNET_JSON, record)
    return read_csv(run_dir / SUPERNET_CSV)


def _workers(space: Space, opts: SearchOptions, job: ScoringJob
             ) -> tuple[WorkerPool | None, int, float]:
    """Ray scoring workers as the search would run trials (--concurrency, --cpus-per-trial,
    --gpus-per-trial, --address), or none for a concurrency of 1; with the cores they hold."""
    if opts.concurrency == 1 or (opts.concurrency is None and space.search.concurrency == 1
                                 and not torch.cuda.is_available()):
        return None, 1, float(torch.get_num_threads())
    resources = start_ray(opts.address)
    budget = resolve_budget(space, opts, int(resources.get("GPU", 0)))
    workers = budget.concurrency
    if budget.gpus_per_trial == 0:
        workers = min(workers, max(1, int(resources.get("CPU", 1) // budget.cpus_per_trial)))
    if workers == 1:
        return None, 1, float(torch.get_num_threads())
    pool = WorkerPool(job, workers, budget.cpus_per_trial, budget.gpus_per_trial)
    return pool, workers, workers * budget.cpus_per_trial


def _progress():
    """A progress log: a line at every 50 points passed and at the end."""
    printed = [0]

    def log(done: int, total: int) -> None:
        if done == total or done // 50 > printed[0] // 50:
            printed[0] = done
            print(f"scored {done}/{total}", flush=True)
    return log


def _verify(space: Space, request: SupernetRequest, top, run_dir: Path) -> int:
    """Train the top points stand-alone through Ray Tune into this run folder (the ones without
    a completed row, on resume); print the usual summary of the verified trials."""
    from nas.search.report import summarize

    done = set()
    trials = read_table(run_dir)
    if not trials.empty:
        done = {text(k) for k in trials[trials["status"] == "completed"]["arch_key"]}
    points = tuple(json.loads(p) for k, p in zip(top["arch_key"], top["point"], strict=True)
                   if text(k) not in done)
    if not points:
        print(f"All {len(top)} top points are verified ({run_dir / TABLE}).")
        return 0
    started = "budget" in read_meta(run_dir)  # a verification began before an interruption
    opts = dataclasses.replace(request.options, trials=len(points), name=run_dir.name,
                               results_dir=run_dir.parent, resume=started)
    program = ProgramOptions(points=points, prepared=True, full_schedule=True, restore=False)
    print(f"Verifying the top {len(points)} points stand-alone ({run_dir / META}'s budget)",
          flush=True)
    outcome = search(opts, program)
    print(summarize(outcome, f"supernet {request.space}"))
    update_meta(run_dir, {"supernet": json.loads((run_dir / SUPERNET_JSON).read_text())
                          | {"history": None}})
    return 130 if outcome.interrupted else 0
