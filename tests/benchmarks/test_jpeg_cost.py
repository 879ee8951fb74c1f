"""benchmarks/jpeg_cost: the cut of the JPEG copy, the 2x2 study and its table."""

from __future__ import annotations

import json

import pytest

from benchmarks import jpeg_cost
from nas.data.batches import BIN_DIRNAME, CIFAR_RECORD, CIFAR_TEST_BATCH, CIFAR_TRAIN_BATCHES
from tests.cifarkit import write_small_cifar


def test_the_cut_takes_as_many_records_as_the_real_subset_and_checks_their_labels(
        tmp_path, cifar_dir):
    jpeg = write_small_cifar(tmp_path / "jpeg", cifar_dir / BIN_DIRNAME, 80)  # the "full copy"
    real = write_small_cifar(tmp_path / "real", cifar_dir / BIN_DIRNAME, 30)
    out = jpeg_cost.cut(jpeg, real, tmp_path / "cut") / BIN_DIRNAME
    for name in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        assert (out / f"{name}.bin").read_bytes() == (real / BIN_DIRNAME / f"{name}.bin"
                                                      ).read_bytes()
    batch = jpeg / BIN_DIRNAME / "data_batch_3.bin"
    records = bytearray(batch.read_bytes())
    records[29 * CIFAR_RECORD] = (records[29 * CIFAR_RECORD] + 1) % 10  # the 30th record's label
    batch.write_bytes(bytes(records))
    with pytest.raises(SystemExit, match=r"data_batch_3\.bin: its first 30 labels differ"):
        jpeg_cost.cut(jpeg, real, tmp_path / "cut2")


def write_record(folder, copy, seed, this, other):
    """A cifar_quality record whose paired test scored `this` on its own copy, `other` on the
    other one (every TTA level alike)."""
    accs = {key: this for key, *_ in jpeg_cost.cifar_quality.ACCURACIES}
    run = {"paired_test": {"images": 1000, "this": accs,
                           "other": {key: other for key in accs}}}
    folder.mkdir(exist_ok=True)
    (folder / f"train-{copy}-s{seed}.json").write_text(json.dumps(
        {"runs": {"fp32": [run]}, "train_images": 5000, "test_images": 1000,
         "machine": "CPU: test", "git_sha": "abc"}))


def test_the_report_pairs_the_copies_seed_by_seed(tmp_path):
    out = tmp_path / "study"
    # seed 0: real->real .80, real->jpeg .78, jpeg->jpeg .77, jpeg->real .76; seed 1: 2 pt higher
    for seed, lift in ((0, 0.0), (1, 0.02)):
        write_record(out, "real", seed, 0.80 + lift, 0.78 + lift)
        write_record(out, "jpeg", seed, 0.77 + lift, 0.76 + lift)
    write_record(out, "real", 2, 0.5, 0.5)  # its JPEG run missing: left out
    text = jpeg_cost.main(["--report", "--out", str(out)])
    assert "| real → real | 81.00 | 81.00 | 81.00 |" in text
    assert "mean over 2 seeds" in text
    # identical differences on both seeds: zero-width intervals at the difference
    assert "| JPEG test images, network trained on real | -2.00 [-2.00, -2.00] |" in text
    assert "| the copy (JPEG train and test) vs real | -3.00 [-3.00, -3.00] |" in text
    assert (out / "jpeg_cost.md").read_text() == text


def test_the_study_trains_both_copies_per_seed_and_resumes(tmp_path, cifar_dir, capsys):
    jpeg = write_small_cifar(tmp_path / "jpeg", cifar_dir / BIN_DIRNAME, 60)
    real = write_small_cifar(tmp_path / "real", cifar_dir / BIN_DIRNAME, 40)
    args = ["--jpeg", str(jpeg), "--real", str(real), "--seeds", "2", "--epochs", "1",
            "--batch-size", "100", "--precision", "fp32", "--threads", "1", "--out",
            str(tmp_path / "study")]
    write_record(tmp_path / "study", "real", 1, 0.5, 0.4)  # already recorded: kept as it is
    text = jpeg_cost.main(args)
    assert sorted(p.name for p in (tmp_path / "study").glob("*.json")) == [
        "train-jpeg-s0.json", "train-jpeg-s1.json", "train-real-s0.json", "train-real-s1.json"]
    record = json.loads((tmp_path / "study" / "train-jpeg-s0.json").read_text())
    assert record["train_images"] == 200 and record["test_images"] == 40
    assert record["paired_test"] == str(real)
    config = record["runs"]["fp32"][0]["config"]
    assert config["lr"] == pytest.approx(1.5 * 100 / 1024) and config["alternate_flip"]
    assert "recorded, not trained again" in capsys.readouterr().out
    assert "mean over 2 seeds" in text
    with pytest.raises(SystemExit):
        jpeg_cost.parse_args(["--seeds", "2"])  # training needs the JPEG copy
