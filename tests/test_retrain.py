"""Retrain: top architectures from scratch on train+val, tested on the test batch, resumable."""

import json
import math
import re
import shutil
import statistics

import pandas as pd
import pytest
import torch

from nas import api
from nas import retrain as retrain_module
from nas.cli import retrain as retrain_cli
from nas.data import ImageSet, Splits
from nas.data.batches import BIN_DIRNAME, find_batches_dir
from nas.results.meta import read_meta
from nas.results.table import read_trials
from nas.retrain import RetrainError, RetrainRequest, final_splits, retrain, top_trials
from nas.search.resume import space_copy
from nas.train.device import resolve_precision
from tests.cifarkit import write_small_cifar
from tests.searchkit import run_cli


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """The tiny run's table, meta and space (no checkpoints: retraining starts from scratch)."""
    copy = tmp_path / "run"
    copy.mkdir()
    for path in tiny_run.iterdir():
        if path.is_file() and path.suffix in (".json", ".csv", ".toml"):
            shutil.copy(path, copy / path.name)
    return copy


def test_top_trials_are_the_best_distinct_completed_or_stopped(tiny_run):
    rows = read_trials(tiny_run)
    top = top_trials(rows, 3)
    # full-budget (completed) trials first, then those ASHA stopped early
    ranked = sorted((r for r in rows if r["status"] in ("completed", "stopped")),
                    key=lambda r: (r["status"] != "completed", -r["best_val_acc"]))
    assert [c.val_acc for c in top] == [r["best_val_acc"] for r in ranked[:3]]
    assert len({c.genotype.key() for c in top}) == 3
    assert len(top_trials(rows, 100)) == len({r["arch_key"] for r in ranked})


def test_best_reference_joins_the_top_trials_once(tiny_run):
    rows = read_trials(tiny_run)
    refs = sorted((r for r in rows if r["status"] in ("completed", "stopped")
                   and isinstance(r["reference"], str) and r["reference"]),
                  key=lambda r: (r["status"] != "completed", -r["best_val_acc"]))
    assert refs, "the tiny search trains its reference points"
    top = top_trials(rows, 1, best_reference=True)
    if top[0].genotype.key() == refs[0]["arch_key"]:  # the best trial is the reference
        assert len(top) == 1
    else:
        assert len(top) == 2 and top[1].genotype.key() == refs[0]["arch_key"]
        assert top[1].reference == refs[0]["reference"]
    no_refs = [r | {"reference": ""} for r in rows]
    with pytest.raises(RetrainError, match="--best-reference: no reference point"):
        top_trials(no_refs, 1, best_reference=True)


@pytest.mark.precision
def test_retrain_writes_results_and_a_second_call_trains_nothing(run_copy, cifar_dir):
    done = run_cli("retrain", str(run_copy), "--top", "2", "--epochs", "1", "--seeds", "2",
                   "--cpus", "1", "--data-dir", str(cifar_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 runs to train" in done.stdout and "test acc (mean ± std)" in done.stdout
    table = pd.read_csv(run_copy / "retrain.csv", dtype={"trial_id": str})
    top = top_trials(read_trials(run_copy), 2)
    assert sorted(zip(table["trial_id"], table["seed"], strict=True)) == sorted(
        (c.trial_id, s) for c in top for s in (0, 1))
    assert (table["epochs"] == 1).all() and (table["status"] == "completed").all()
    assert (table["precision"] == resolve_precision("auto", "cpu")).all()  # the search's
    assert table["test_acc"].between(0, 1).all() and (table["train_s"] > 0).all()
    # trained on the search's train + validation splits, tested on the official test batch
    assert (table["train_images"] == 600 + 300).all() and (table["test_images"] == 1000).all()
    summary = json.loads((run_copy / "retrain.json").read_text())
    assert summary["settings"]["epochs"] == 1 and summary["settings"]["seeds"] == [0, 1]
    for trial in summary["trials"]:
        accs = table.loc[table["trial_id"] == trial["trial_id"], "test_acc"].tolist()
        assert trial["runs"] == 2
        assert math.isclose(trial["test_acc_mean"], statistics.fmean(accs))
        assert math.isclose(trial["test_acc_std"], statistics.stdev(accs))
    before = (run_copy / "retrain.csv").read_text()
    lines = []
    retrain(RetrainRequest(run_copy, top=2, epochs=1, seeds=2, data_dir=cifar_dir, cpus=1),
            log=lines.append)
    assert "0 runs to train" in lines[0] and len(lines) == 1  # no data loaded, nothing trained
    assert (run_copy / "retrain.csv").read_text() == before


def test_retrain_refuses_to_mix_precisions_in_one_epoch_budget(run_copy, cifar_dir):
    done = run_cli("retrain", str(run_copy), "--top", "1", "--epochs", "1", "--seeds", "1",
                   "--cpus", "1", "--data-dir", str(cifar_dir), "--precision", "bf16")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (pd.read_csv(run_copy / "retrain.csv")["precision"] == "bf16").all()
    with pytest.raises(RetrainError, match="holds 1-epoch runs in bf16 and this retrain would"
                       " train in fp32"):
        retrain(RetrainRequest(run_copy, top=1, epochs=1, seeds=2, data_dir=cifar_dir, cpus=1,
                               precision="fp32"))


def test_an_interrupted_retrain_continues_with_the_missing_runs(run_copy, cifar_dir, monkeypatch):
    calls = []
    real = retrain_module.train_once

    def train_once(candidate, splits, cfg, log=None, latency=None):
        calls.append((candidate.trial_id, cfg.seed))
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped during the second run
        return real(candidate, splits, cfg, log, latency)

    monkeypatch.setattr(retrain_module, "train_once", train_once)
    with pytest.raises(KeyboardInterrupt):
        retrain(RetrainRequest(run_copy, top=1, epochs=1, seeds=2, data_dir=cifar_dir, cpus=1))
    assert len(pd.read_csv(run_copy / "retrain.csv")) == 1  # the first run was kept
    calls.clear()
    monkeypatch.setattr(retrain_module, "train_once", real)
    summary = retrain(RetrainRequest(run_copy, top=1, epochs=1, seeds=2, data_dir=cifar_dir,
                                     cpus=1))
    table = pd.read_csv(run_copy / "retrain.csv")
    assert sorted(table["seed"]) == [0, 1] and summary[0]["runs"] == 2


def test_merged_training_data_and_no_test_set_refused(run_copy, cifar_dir, monkeypatch):
    space = space_copy(run_copy, read_meta(run_copy))
    splits = final_splits(space, cifar_dir)
    assert len(splits.train) == 900 and len(splits.val) == 0 and len(splits.test) == 1000

    def no_test(spec, data_dir=None):
        images = ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
                          torch.zeros(4, dtype=torch.int64), ("a",))
        return Splits(images, images, None, (0.5,) * 3, (0.25,) * 3)

    monkeypatch.setattr(retrain_module, "load_splits", no_test)
    with pytest.raises(RetrainError, match="no held-out test set"):
        final_splits(space, cifar_dir)


@pytest.fixture
def small_cifar(tmp_path, cifar_dir):
    """A complete official-layout copy: 5 x 200 training records and a 200-record test batch."""
    found = find_batches_dir(cifar_dir)
    assert found is not None
    return write_small_cifar(tmp_path / "small", found.path, 200)


def test_retrain_on_all_training_images_prints_each_epoch(run_copy, small_cifar, capsys):
    assert retrain_cli.main([str(run_copy), "--top", "1", "--epochs", "2", "--seeds", "1",
                             "--cpus", "1", "--data-dir", str(small_cifar),
                             "--train-size", "all"]) == 0
    out = capsys.readouterr().out
    assert "training on 1,000 images (all training images of the data), testing on 200" in out
    progress = [line for line in out.splitlines() if " epoch " in line]
    line_re = (r"    trial \S+ seed 0 epoch (\d)/2: train loss \d+\.\d{4},"
               r" \d+\.\d s \([\d,]+ images/s\)")
    assert [re.fullmatch(line_re, line)[1] for line in progress] == ["1", "2"]
    table = pd.read_csv(run_copy / "retrain.csv", dtype={"train_data": str})
    # every training record of the copy, its whole test batch, and where they came from
    assert table[["train_images", "test_images", "train_data"]].values.tolist() == [
        [1000, 200, "all"]]
    assert table["data"].tolist() == [str(small_cifar / BIN_DIRNAME)]
    settings = json.loads((run_copy / "retrain.json").read_text())["settings"]
    assert (settings["train_data"], settings["train_images"], settings["test_images"]) == (
        "all", 1000, 200)
    assert settings["data_dir"] == str(small_cifar / BIN_DIRNAME)


def test_retrain_on_a_count_of_training_images_is_its_own_result(run_copy, small_cifar):
    first = api.open_run(run_copy).retrain(top=1, epochs=1, seeds=1, data_dir=small_cifar, cpus=1,
                                           train_size=400)
    assert first["runs"].tolist() == [1]
    space = space_copy(run_copy, read_meta(run_copy))
    splits = final_splits(space, small_cifar, 400)
    every = torch.bincount(final_splits(space, small_cifar, "all").train.labels)
    # stratified: each class in proportion to its share of all 1,000
    assert len(splits.train) == 400
    assert (torch.bincount(splits.train.labels) - every * 0.4).abs().max() < 1
    # the search's splits are another training set: trained beside the 400, not skipped
    lines = []
    retrain(RetrainRequest(run_copy, top=1, epochs=1, seeds=1, data_dir=small_cifar, cpus=1),
            log=lines.append)
    assert "1 runs to train" in lines[0]
    table = pd.read_csv(run_copy / "retrain.csv", dtype={"train_data": str})
    assert sorted(table[["train_data", "train_images"]].values.tolist()) == [
        ["400", 400], ["search", 900]]
    with pytest.raises(RetrainError, match=r"^--train-size 1001: the data holds 1,000 training"
                       r" images \(.*\)$"):
        retrain(RetrainRequest(run_copy, top=1, epochs=1, seeds=1, data_dir=small_cifar,
                               train_size=1001))


def test_each_retrain_row_records_the_spaces_latencies(latency_run, tmp_path, small_cifar):
    copy = tmp_path / "run"
    copy.mkdir()
    for path in latency_run.iterdir():  # no checkpoints: retraining starts from scratch
        if path.is_file() and path.suffix in (".json", ".csv", ".toml"):
            shutil.copy(path, copy / path.name)
    retrain(RetrainRequest(copy, top=1, epochs=1, seeds=1, data_dir=small_cifar, cpus=1),
            log=lambda line: None)
    row = pd.read_csv(copy / "retrain.csv").iloc[0]
    for runtime in ("torch", "torch_cl", "onnxruntime"):
        for batch in (1, 2):
            median, p90 = (row[f"{kind}@{runtime}:b{batch}"]
                           for kind in ("latency_ms", "latency_p90_ms"))
            assert math.isfinite(p90) and 0 < median <= p90
    assert set(json.loads(row["latency_runtimes"])) == {"torch", "torch_cl", "onnxruntime"}


def test_flags_are_checked(run_copy, capsys):
    with pytest.raises(RetrainError, match="--seeds 0"):
        retrain_cli.main([str(run_copy), "--seeds", "0"])
    with pytest.raises(RetrainError, match="--train-size 0: expected 'all' or a count >= 1"):
        retrain_cli.main([str(run_copy), "--train-size", "0"])
    with pytest.raises(SystemExit):
        retrain_cli.main([str(run_copy), "--train-size", "most"])
    assert "expected 'all' or a count, got 'most'" in capsys.readouterr().err


def test_ctrl_c_says_how_to_continue(run_copy, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(retrain_cli, "retrain", interrupted)
    assert retrain_cli.main([str(run_copy)]) == 130
    assert "the same command continues" in capsys.readouterr().err
