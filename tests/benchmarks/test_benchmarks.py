"""Benchmark helpers that decide what a measurement means: the handwritten search stands
alone, the layout probe computes the same network, the parity study's statistics."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from benchmarks import cifar_quality, trainer_throughput
from benchmarks.airbench_net import airbench_net
from benchmarks.common import machine
from benchmarks.conv_levers import NCHWConv
from nas.arch.model import build
from nas.arch.zoo import preset
from nas.data import DataSpec, ImageSet, Splits, load_splits
from nas.data.batches import BIN_DIRNAME, CIFAR_TEST_BATCH
from nas.train.config import TrainConfig
from nas.train.trainer import fit
from tests.cifarkit import write_small_cifar
from tests.searchkit import ROOT

STANDALONE = textwrap.dedent("""
    import sys
    sys.modules["nas"] = None  # importing anything of this project now fails
    sys.path.insert(0, "benchmarks")
    import torch
    import handwritten_search as h
    for position in (0.0, 0.4, 1.0):
        for order in ("dw_pw", "pw_dw"):
            cfg = {f"s{s}_{k}": v for s in (1, 2, 3) for k, v in (
                ("spectrum", position), ("order", order), ("mid_act", "elu"),
                ("residual", "identity"), ("kernel", 5))}
            assert h.network(cfg)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert sorted(h.param_space()) == sorted(
        f"s{s}_{k}" for s in (1, 2, 3)
        for k in ("spectrum", "order", "mid_act", "residual", "kernel"))
    print("ok")
""")


def test_handwritten_search_needs_nothing_of_this_project():
    done = subprocess.run([sys.executable, "-c", STANDALONE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_depthwise_nchw_probe_computes_the_same_network():
    torch.manual_seed(0)
    model = build(preset("separable", width=8, depth=1, units=1)).eval()
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    expected = model.to(memory_format=torch.channels_last)(x)
    probed = trainer_throughput.depthwise_in_nchw(model)
    wrapped = [m for m in probed.modules() if isinstance(m, NCHWConv)]
    assert wrapped and all(m.conv.groups == m.conv.in_channels for m in wrapped)
    torch.testing.assert_close(probed(x), expected)


def test_parity_statistics_are_mean_std_and_the_se_of_the_difference(capsys):
    def runs(accs):
        return [{"test_acc": a, "test_acc_tta": a + 0.01, "test_acc_tta2": a + 0.02,
                 "train_seconds": 10.0} for a in accs]

    fp32 = cifar_quality.aggregate(runs([0.60, 0.62, 0.64]))
    bf16 = cifar_quality.aggregate(runs([0.61, 0.63, 0.65]))
    assert fp32["test_acc"]["mean"] == pytest.approx(0.62)
    assert fp32["test_acc"]["std"] == pytest.approx(0.02)
    assert fp32["test_acc"]["se"] == pytest.approx(0.02 / math.sqrt(3))
    diff = cifar_quality.print_comparison({"fp32": fp32, "bf16": bf16})["test_acc"]
    assert diff["difference"] == pytest.approx(0.01)
    assert diff["se"] == pytest.approx(math.sqrt(2) * 0.02 / math.sqrt(3))
    assert diff["within_2_se"]
    assert "bf16 - fp32 (no TTA): +1.00 points" in capsys.readouterr().out


def test_machine_line_names_model_flags_and_bf16():
    line = machine()
    assert line.startswith("CPU: ") and "bf16" in line and "torch CPU capability" in line


@pytest.mark.slow
def test_supernet_vs_search_compares_the_best_verified_accuracies(tmp_path, cifar_dir):
    from benchmarks import supernet_vs_search
    from nas.results.ranking import best_trial
    from nas.results.table import read_table
    from tests.searchkit import TINY, write_space

    space = write_space(tmp_path, TINY)
    out = tmp_path / "cmp.md"
    supernet_vs_search.main(["--space", str(space), "--trials", "2", "--max-epochs", "1",
                             "--supernet-epochs", "1", "--score-trials", "3", "--top-k", "1",
                             "--data-dir", str(cifar_dir), "--keep", str(tmp_path / "runs"),
                             "--out", str(out)])
    text = out.read_text()
    for name in ("search", "supernet"):
        best = best_trial(read_table(tmp_path / "runs" / name))
        assert f"| {best['best_val_acc']:.4f} | {best['trial_id']}, completed after 1 of 1" in text
    assert len(read_table(tmp_path / "runs" / "supernet")) == 1  # only the top 1 verified


def test_cifar_quality_records_an_airbench_run_and_tabulates_it(tmp_path, cifar_dir, capsys):
    # 600 training images (100 held out), 120 test images, one epoch: the run and its record
    small = write_small_cifar(tmp_path / "small", cifar_dir / BIN_DIRNAME, 120)
    summary = cifar_quality.main([
        "--preset", "airbench", "--whiten", "--epochs", "1", "--batch-size", "250",
        "--val-size", "100", "--precision", "fp32", "--threads", "1", "--data-dir",
        str(small), "--record", str(tmp_path / "run.json"), "--alternate-flip",
        "--schedule", "linear", "--lr-start", "0.2", "--lr-end", "0.07",
        "--whiten-bias-epochs", "1",
        "--paired-test", str(small)])  # the same images: both copies score as the test
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["params"] == 1_972_792 and record["whiten"] and record["train_images"] == 500
    assert record["test_images"] == 120
    config = record["runs"]["fp32"][0]["config"]
    assert config["batch_size"] == 250 and config["alternate_flip"] and config["lr_end"] == 0.07
    assert record["git_sha"] and record["machine"].startswith("CPU: ")
    run = summary["runs"]["fp32"][0]
    keys = ("test_acc", "test_acc_tta", "test_acc_tta2")
    assert all(0 <= run[key] <= 1 for key in keys)
    paired = run["paired_test"]
    assert paired["images"] == 120 and paired["this"] == paired["other"]
    assert paired["this"] == {key: run[key] for key in keys}
    cifar_quality.main(["--table", str(tmp_path)])
    row = (tmp_path / "table.md").read_text().splitlines()[2]
    assert row.startswith("| airbench (whitened) | 1 | 250 |") and "| run.json |" in row
    assert "| lr 0.2→1→0.07, alternating flip, stem bias 1 ep |" in row
    with pytest.raises(SystemExit):
        cifar_quality.parse_args(["--whiten"])  # only airbench has the 2x2 stem to whiten
    assert "--whiten: only with --preset airbench" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cifar_quality.parse_args(["--preset", "airbench", "--whiten-bias-epochs", "3"])
    assert "--whiten-bias-epochs: only with --whiten" in capsys.readouterr().err


def test_the_stem_bias_trains_its_epochs_then_stays():
    images = ImageSet(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8),
                      torch.randint(0, 10, (32,)), tuple("abcdefghij"))
    data = Splits(train=images, val=images, test=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    torch.manual_seed(0)
    net = airbench_net()
    biases = [net[0].bias.detach().clone()]
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.5, warmup_epochs=0, device="cpu",
                      precision="fp32", cpu_threads=1, bias_lr_scale=64)
    freeze = cifar_quality.freeze_stem_bias(net, 1, cfg.epochs)

    def report(r):
        """Freeze as the benchmark does, then note the bias the epoch left."""
        freeze(r)
        biases.append(net[0].bias.detach().clone())

    fit(net, data, cfg, report=report)
    assert not torch.equal(biases[0], biases[1])  # trained in epoch 1
    assert torch.equal(biases[1], biases[2])  # then not


def test_a_paired_test_set_must_hold_copies_of_the_same_records(tmp_path, cifar_dir):
    splits = load_splits(DataSpec(), cifar_dir)
    mine, other = cifar_quality.paired_sets(cifar_dir, splits)  # the subset paired with itself
    assert len(mine) == len(other) == 1000 and torch.equal(mine.images, other.images)
    small = write_small_cifar(tmp_path / "small", cifar_dir / BIN_DIRNAME, 50)
    assert len(cifar_quality.paired_sets(small, splits)[0]) == 50  # the first 50 of 1,000
    test_batch = small / BIN_DIRNAME / f"{CIFAR_TEST_BATCH}.bin"
    records = bytearray(test_batch.read_bytes())
    records[0] = (records[0] + 1) % 10  # one label changed
    test_batch.write_bytes(bytes(records))
    with pytest.raises(SystemExit, match="50 test labels differ from the first 50 of --data-dir's"):
        cifar_quality.paired_sets(small, splits)
