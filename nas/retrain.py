"""`run_search.py retrain`: the top trials' architectures, trained from scratch and tested.

The search ranks architectures on a validation split carved from the training data, so its
accuracies are optimistic (the split chose the winner). Here each of the top-K architectures
(by best_val_acc among completed and stopped trials, one per distinct architecture) is trained
from scratch on the whole training data the search saw (its train and validation splits
merged) with several seeds and tested once on the held-out test set (CIFAR-10's official test
batch; an image folder's val/): mean +- std over seeds is the honest final number. Asked for
(--train-size all, or a count), it trains on all the data's training images (or a stratified
count of them) instead: after a search on a subset, the complete data set's training batches.

Results go to the run folder: retrain.csv (one row per trial, seed and epoch budget, with each
latency of the space's [latency] section measured on the trained model) and retrain.json
(settings and per-trial mean/std), rewritten atomically after every training run.
A second call skips the (trial, seed, epochs) runs already in retrain.csv, so an interrupted
retrain continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nas.arch.cost import cost
from nas.arch.describe import millions
from nas.arch.genotype import Genotype
from nas.data import ImageSet, Splits, channel_stats, load_splits
from nas.data.cifar import locate_cifar10
from nas.data.core import is_int
from nas.data.splits import stratified_split
from nas.latency.measure import columns
from nas.latency.settings import LatencyConfig, is_latency_column
from nas.results.atomic import atomic_write, write_json
from nas.results.meta import read_meta
from nas.results.names import RETRAIN_CSV, RETRAIN_JSON
from nas.results.ranking import ranked
from nas.results.study_db import warn_study_db
from nas.results.table import parse_genotype, read_csv, read_trials
from nas.results.values import number, text
from nas.search.engine import data_spec
from nas.search.resume import space_copy
from nas.search.space.types import Space
from nas.search.trial import initial_model, runtime_latencies
from nas.train.config import TrainConfig
from nas.train.device import cpu_threads, resolve_device, resolve_precision
from nas.train.trainer import EpochReport, evaluate, fit

COLUMNS = ("trial_id", "seed", "epochs", "status", "test_acc", "train_loss", "train_s", "wall_s",
           "train_images", "test_images", "train_data", "data", "arch_key", "precision",
           "finished")
SEARCH_SPLITS = "search"  # train_data: the search's train + validation splits merged
ALL_IMAGES = "all"  # train_data / --train-size: every training image of the data


class RetrainError(ValueError):
    """A retrain that cannot run as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One architecture to retrain: the trial that found it and its search accuracy."""

    trial_id: str
    genotype: Genotype
    val_acc: float
    reference: str


def top_trials(rows: list[dict[str, Any]], k: int, best_reference: bool = False
               ) -> list[Candidate]:
    """The k best distinct architectures by best_val_acc among completed and stopped trials,
    plus (if asked and not among them) the best reference point, as the yardstick."""
    order = ranked(pd.DataFrame(rows)).to_dict("records")
    chosen: dict[str, Candidate] = {}
    for row in order:
        candidate = _candidate(row)
        # a reference point can be sampled again: train it once
        chosen.setdefault(candidate.genotype.key(), candidate)
        if len(chosen) == k:
            break
    if not chosen:
        raise RetrainError("no completed or stopped trial with a validation accuracy to retrain")
    if best_reference:
        references = [r for r in order if text(r.get("reference"))]
        if not references:
            raise RetrainError("--best-reference: no reference point finished with an accuracy")
        candidate = _candidate(references[0])
        chosen.setdefault(candidate.genotype.key(), candidate)
    return list(chosen.values())


def _candidate(row: dict[str, Any]) -> Candidate:
    """A trials-table row as a retrain candidate (its genotype parsed strictly)."""
    arch = parse_genotype(text(row.get("genotype")), f"trial {row['trial_id']} genotype")
    return Candidate(str(row["trial_id"]), arch, number(row["best_val_acc"]),
                     text(row.get("reference")))


def train_data(train_size: int | str | None) -> str:
    """The retrain.csv label of what is trained on: 'search', 'all' or a count."""
    return SEARCH_SPLITS if train_size is None else str(train_size)


def data_source(space: Space, data_dir: Path | None) -> str:
    """Where the images come from: the CIFAR-10 batches folder or the image folder's root."""
    if space.data.dataset == "cifar10":
        return str(locate_cifar10(data_dir).path)
    return str(space.data.root)


def final_splits(space: Space, data_dir: Path | None,
                 train_size: int | str | None = None) -> Splits:
    """The search's train and validation images merged for training (or, with `train_size`,
    all or a stratified count of the data's training images); the test set for testing."""
    # The search's classes and seed, but no validation split: nothing here selects a model.
    spec = (space.data if train_size is None
            else dataclasses.replace(space.data, val_size=0, train_size=None))
    splits = load_splits(spec, data_dir)
    if splits.test is None or len(splits.test) == 0:
        raise RetrainError(f"{space.data.root}: no held-out test set (an image folder needs a"
                           " val/ folder); refusing to report validation images as a test score")
    train = splits.train
    if len(splits.val):  # an empty one would only cost a copy of every image
        train = ImageSet(torch.cat([train.images, splits.val.images]),
                         torch.cat([train.labels, splits.val.labels]), train.classes)
    if is_int(train_size):
        if train_size > len(train):
            raise RetrainError(f"--train-size {train_size}: the data holds {len(train):,}"
                               f" training images ({data_source(space, data_dir)})")
        keep, _ = stratified_split(train.labels, val_size=0, train_size=train_size,
                                   seed=space.data.seed)
        rows = torch.from_numpy(keep)
        train = ImageSet(train.images[rows], train.labels[rows], train.classes)
    mean, std = channel_stats(train.images)  # the normalisation of what is trained on
    empty = ImageSet(train.images[:0], train.labels[:0], train.classes)
    return Splits(train=train, val=empty, test=splits.test, mean=mean, std=std)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Finished runs recorded in retrain.csv ([] before the first); train_data as text."""
    rows = read_csv(run_dir / RETRAIN_CSV).to_dict("records")
    # A table written before train_data was recorded trained on the search's splits.
    return [r | {"train_data": text(r.get("train_data")) or SEARCH_SPLITS} for r in rows]


def _progress(candidate: Candidate, cfg: TrainConfig, log) -> Any:
    """fit's per-epoch report: one progress line as each epoch ends."""
    def report(epoch: EpochReport) -> None:
        val = "" if math.isnan(epoch.val_acc) else f", val acc {epoch.val_acc:.4f}"
        log(f"    trial {candidate.trial_id} seed {cfg.seed} epoch {epoch.epoch}/{cfg.epochs}:"
            f" train loss {epoch.train_loss:.4f}{val}, {epoch.epoch_seconds:.1f} s"
            f" ({epoch.images_per_s:,.0f} images/s)")
    return report


def train_once(candidate: Candidate, splits: Splits, cfg: TrainConfig,
               log=None, latency: LatencyConfig | None = None, resume: dict | None = None,
               keep=None) -> dict[str, Any]:
    """Train one architecture from scratch with cfg.seed (cfg's precision resolved), a `log`
    line per epoch; test it, time it as `latency` asks; the retrain.csv row (train_data and
    data for the caller to fill). `resume` and `keep` as `fit`'s: a run kept after epoch k
    continues from epoch k + 1 (its wall_s then this call's alone)."""
    start = time.perf_counter()
    model = initial_model(candidate.genotype, cfg, cfg.seed)  # as a search trial starts it
    result = fit(model, splits, cfg, None if log is None else _progress(candidate, cfg, log),
                 resume=resume, keep=keep)
    test_acc = math.nan
    if result.status != "diverged":
        with cpu_threads(cfg.cpu_threads):  # tested at the precision it trained in
            test_acc = evaluate(model, splits.test, splits.mean, splits.std,
                                batch_size=cfg.eval_batch_size, device=resolve_device(cfg.device),
                                flip_tta=cfg.flip_tta, channels_last=cfg.channels_last,
                                precision=result.precision)
    timed: dict[str, Any] = {}
    if latency is not None:  # a diverged model's NaN weights time nothing a deployment runs
        timed = (columns(latency) if result.status == "diverged"
                 else runtime_latencies(model, candidate.genotype, latency))
    return {
        "trial_id": candidate.trial_id, "seed": cfg.seed, "epochs": cfg.epochs,
        "status": result.status, "test_acc": test_acc,
        "train_loss": result.history[-1].train_loss if result.history else math.nan,
        "train_s": round(result.train_seconds, 3), "wall_s": round(time.perf_counter() - start, 3),
        "train_images": len(splits.train), "test_images": len(splits.test),
        "arch_key": candidate.genotype.key(), "precision": result.precision,
        "finished": datetime.now(UTC).isoformat(), **timed,
    }


def summarize(candidates: list[Candidate], rows: list[dict[str, Any]], epochs: int,
              data: str = SEARCH_SPLITS) -> list[dict[str, Any]]:
    """Per architecture: test accuracy mean and sample std over its seeds at this budget and
    training data (train_data)."""
    out = []
    for rank, c in enumerate(candidates, start=1):
        mine = [r for r in rows if str(r["trial_id"]) == c.trial_id and int(r["epochs"]) == epochs
                and r["train_data"] == data]
        accs = [a for a in (number(r["test_acc"]) for r in mine) if a is not None]
        cst = cost(c.genotype)
        out.append({
            "rank": rank, "trial_id": c.trial_id, "reference": c.reference,
            "search_val_acc": c.val_acc,
            "test_acc_mean": statistics.fmean(accs) if accs else None,
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
            "runs": len(accs), "diverged": sum(r["status"] == "diverged" for r in mine),
            "seeds": sorted(int(r["seed"]) for r in mine),
            "params": cst.params, "macs": cst.macs, "arch_key": c.genotype.key(),
            "genotype": c.genotype.to_dict(),
        })
    return out


def write_results(run_dir: Path, rows: list[dict[str, Any]], settings: dict[str, Any],
                  summary: list[dict[str, Any]]) -> None:
    """retrain.csv and retrain.json, each replaced atomically."""
    # the [latency] columns after the fixed ones (a table from before them has none)
    timed = dict.fromkeys(k for row in rows for k in row if is_latency_column(str(k)))
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *timed])
    frame = frame.sort_values(["trial_id", "epochs", "seed"], kind="stable")
    atomic_write(run_dir / RETRAIN_CSV, lambda tmp: frame.to_csv(tmp, index=False))
    write_json(run_dir / RETRAIN_JSON, {"settings": settings, "trials": summary,
                                        "updated": datetime.now(UTC).isoformat()})


def _acc(value: float | None) -> str:
    return "   -  " if value is None else f"{value:.4f}"


def table(summary: list[dict[str, Any]]) -> str:
    """The printed result: one line per architecture."""
    lines = [f"{'rank':>4}  {'trial':<10} {'reference':<18} {'search val':>10}  "
             f"{'test acc (mean ± std)':<22} {'runs':>4}  {'params':>9}  {'MACs':>7}"]
    for s in summary:
        std = "" if s["test_acc_std"] is None else f" ± {s['test_acc_std']:.4f}"
        test = _acc(s["test_acc_mean"]) + std
        lines.append(f"{s['rank']:>4}  {s['trial_id']:<10} {s['reference'] or '-':<18} "
                     f"{s['search_val_acc']:>10.4f}  "
                     f"{test:<22} {s['runs']:>4}  {s['params']:>9,}  {millions(s['macs']):>7}")
    return "\n".join(lines)


def search_precision(run_dir: Path, space: Space) -> str:
    """The precision the search asked for (its --precision, else the space's)."""
    budget = read_meta(run_dir).get("budget", {})
    return str(budget.get("precision", space.train.precision))


def _check_precision(rows: list[dict[str, Any]], epochs: int, data: str, precision: str
                     ) -> None:
    """Seeds of one epoch budget and training data are averaged together: they must share one
    precision."""
    recorded = {text(r.get("precision")) for r in rows
                if int(r["epochs"]) == epochs and r["train_data"] == data} - {""}
    other = sorted(recorded - {precision})
    if other:
        raise RetrainError(f"--precision: {RETRAIN_CSV} holds {epochs}-epoch runs in {other[0]}"
                           f" and this retrain would train in {precision}; their mean would mix"
                           " the two (pass --precision to match, or use another --epochs)")


@dataclasses.dataclass(frozen=True)
class RetrainRequest:
    """A retrain as asked: the run, how many architectures, epochs and seeds, and where."""

    run_dir: Path
    top: int = 3
    epochs: int | None = None  # None: the space's [train] epochs
    seeds: int = 3
    best_reference: bool = False
    data_dir: Path | None = None
    cpus: int | None = None  # None: the space's cpu_threads, else every core
    precision: str | None = None  # None: the search's
    train_size: int | str | None = None  # None: the search's splits; "all" or a count


def _check_train_size(train_size: int | str | None) -> None:
    """None, 'all' or a count >= 1."""
    if train_size is None or train_size == ALL_IMAGES:
        return
    if not is_int(train_size) or train_size < 1:
        raise RetrainError(f"--train-size {train_size}: expected '{ALL_IMAGES}' or a count >= 1")


def _trained_on(train_size: int | str | None) -> str:
    """What retrain.json says was trained on."""
    if train_size is None:
        return "train + validation splits of the search"
    if train_size == ALL_IMAGES:
        return "all training images of the data"
    return f"a stratified {train_size} of the data's training images"


def check_request(request: RetrainRequest) -> None:
    """Counts >= 1 (a 0 is refused, never read as the default); a train size of 'all' or a
    count."""
    for flag, value in (("--top", request.top), ("--epochs", request.epochs),
                        ("--seeds", request.seeds), ("--cpus", request.cpus)):
        if value is not None and value < 1:
            raise RetrainError(f"{flag} {value}: must be >= 1")
    _check_train_size(request.train_size)


def retrain(request: RetrainRequest, log=print) -> list[dict[str, Any]]:
    """Train what is missing, keep retrain.csv / retrain.json current; return the summary."""
    check_request(request)
    run_dir, top, seeds = request.run_dir, request.top, request.seeds
    best_reference = request.best_reference
    warn_study_db(run_dir, "retrain")
    candidates = top_trials(read_trials(run_dir), top, best_reference)
    space = space_copy(run_dir, read_meta(run_dir))
    # --data-dir names an image folder's root, as it did for the search (its space copy
    # keeps the placeholder root)
    space = dataclasses.replace(space, data=data_spec(space, request.data_dir))
    epochs = request.epochs or space.train.epochs
    asked = request.precision or search_precision(run_dir, space)
    # resolved once for the whole retrain; retrain.json records what was asked
    cfg = dataclasses.replace(space.train, epochs=epochs,
                              warmup_epochs=min(space.train.warmup_epochs, epochs),
                              cpu_threads=(request.cpus or space.train.cpu_threads
                                           or os.cpu_count()),
                              precision=resolve_precision(asked,
                                                          resolve_device(space.train.device)))
    data = train_data(request.train_size)
    rows = read_rows(run_dir)
    _check_precision(rows, epochs, data, cfg.precision)
    done = {(str(r["trial_id"]), int(r["seed"]), int(r["epochs"]), r["train_data"])
            for r in rows}
    todo = [(c, s) for c in candidates for s in range(seeds)
            if (c.trial_id, s, epochs, data) not in done]
    settings = {"top": top, "best_reference": best_reference, "epochs": epochs,
                "seeds": list(range(seeds)),
                "cpu_threads": cfg.cpu_threads, "data": dataclasses.asdict(space.data),
                "train": dataclasses.asdict(cfg) | {"precision": asked, "seed": "per run"},
                "train_data": data, "trained_on": _trained_on(request.train_size),
                "tested_on": "held-out test set"}
    plural = "s" if epochs > 1 else ""
    what = (f"{len(candidates)} architectures (top {top} + the best reference point)"
            if best_reference and len(candidates) > top else f"top {len(candidates)} architectures")
    log(f"Retrain of {run_dir}: {what} x {seeds} seeds,"
        f" {epochs} epoch{plural}; {len(todo)} runs to train"
        + (f", {seeds * len(candidates) - len(todo)} already in {RETRAIN_CSV}" if done else ""))
    if todo:
        splits = final_splits(space, request.data_dir, request.train_size)
        source = data_source(space, request.data_dir)
        settings |= {"data_dir": source, "train_images": len(splits.train),
                     "test_images": len(splits.test)}
        log(f"  training on {len(splits.train):,} images ({settings['trained_on']}), testing on"
            f" {len(splits.test):,} held-out test images; data: {source}")
        for candidate, seed in todo:
            row = train_once(candidate, splits, dataclasses.replace(cfg, seed=seed), log,
                             latency=space.latency)
            rows.append(row | {"train_data": data, "data": source})
            write_results(run_dir, rows, settings, summarize(candidates, rows, epochs, data))
            log(f"  trial {candidate.trial_id} seed {seed}: {row['status']}, test_acc"
                f" {row['test_acc']:.4f} ({row['train_s']:.1f} s training)")
    mine = [r for r in rows if r["train_data"] == data]
    if mine and "train_images" not in settings:  # nothing new to train: as recorded
        settings |= {"data_dir": text(mine[-1].get("data")),
                     "train_images": int(mine[-1]["train_images"]),
                     "test_images": int(mine[-1]["test_images"])}
    summary = summarize(candidates, rows, epochs, data)
    write_results(run_dir, rows, settings, summary)
    return summary
