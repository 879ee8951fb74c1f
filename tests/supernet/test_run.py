"""`run_search.py supernet`: train, score, verify the top k through Ray into one run folder."""

from __future__ import annotations

import json
import os

import pytest

from nas.arch.genotype import Genotype
from nas.results.names import GENOTYPE_FILE, META, SUPERNET_CSV, SUPERNET_DIR, SUPERNET_JSON
from nas.results.ranking import best_trial
from nas.results.table import read_csv, read_table
from tests.searchkit import SUPERNET, TINY, run_cli, variant, write_space


def _env(cifar_dir):
    return dict(os.environ, NAS_DATA_DIR=str(cifar_dir))


def test_unshareable_block_kinds_are_a_one_line_error(tmp_path):
    space = write_space(tmp_path, variant(TINY, blocks={"kind": ["resnext"]}))
    done = run_cli("supernet", str(space), "--results-dir", str(tmp_path), timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'resnext'" in lines[0] and "stand-alone" in lines[0]
    assert not (tmp_path / "tiny").exists()


def test_supernet_settings_with_a_proxy_ranking_are_a_one_line_error(tmp_path):
    space = write_space(tmp_path, SUPERNET)
    done = run_cli("supernet", str(space), "--rank", "snip", "--score-by", "val_acc",
                   "--results-dir", str(tmp_path), timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--rank snip" in lines[0] and "--score-by" in lines[0]


def test_missing_data_leaves_no_run_folder_behind(tmp_path):
    space = write_space(tmp_path, SUPERNET)
    empty = tmp_path / "nodata"
    empty.mkdir()
    done = run_cli("supernet", str(space), "--name", "x", "--data-dir", str(empty),
                   "--results-dir", str(tmp_path), timeout=120)
    assert done.returncode != 0 and "CIFAR-10 not found" in done.stderr
    assert not (tmp_path / "x").exists()  # so the same command can simply be run again


def test_a_proxy_ranking_scores_the_space_without_training(tmp_path, cifar_dir):
    space = write_space(tmp_path, SUPERNET)
    done = run_cli("supernet", str(space), "--rank", "synflow", "--top-k", "0", "--name", "p",
                   "--results-dir", str(tmp_path), env=_env(cifar_dir), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = read_csv(tmp_path / "p" / SUPERNET_CSV)
    assert len(table) == 64 and set(table["ranking"]) == {"synflow"}
    assert table["score"].is_monotonic_decreasing and table["score"].nunique() > 8
    assert not (tmp_path / "p" / SUPERNET_DIR).exists()  # no supernet trained
    assert read_table(tmp_path / "p").empty  # --top-k 0: nothing verified


@pytest.mark.slow
def test_supernet_search_end_to_end_verifies_the_top_two_through_ray(tmp_path, cifar_dir):
    space = write_space(tmp_path, SUPERNET)
    run = tmp_path / "sn"
    done = run_cli("supernet", str(space), "--epochs", "1", "--top-k", "2", "--name", "sn",
                   "--calibration-images", "100", "--results-dir", str(tmp_path),
                   env=_env(cifar_dir), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    scores = read_csv(run / SUPERNET_CSV)
    assert len(scores) == 64 and scores["score"].between(0, 1).all()
    record = json.loads((run / SUPERNET_JSON).read_text())
    assert record["settings"]["epochs"] == 1 and len(record["history"]) == 1
    assert record["score_workers"] == 2 and record["score_cores"] == 2  # [search] concurrency
    settings = record["settings"]
    assert (settings["sandwich"], settings["uniform_paths"], settings["score_by"]) == (
        False, 3, "val_acc")  # the defaults the bench measured best
    assert scores["val_loss"].gt(0).all() and (scores["score"] == scores["val_acc"]).all()
    assert (run / SUPERNET_DIR / "model.pt").is_file()
    trials = read_table(run)
    assert sorted(trials["arch_key"]) == sorted(scores["arch_key"][:2])
    assert set(trials["status"]) == {"completed"} and (trials["epochs"] == 1).all()
    assert "supernet" in json.loads((run / META).read_text())
    # the summary ranks the verified trials; the dashboard shows the scored points
    assert "Search finished" in done.stdout and "2 completed" in done.stdout
    page = tmp_path / "page.html"
    assert run_cli("dashboard", str(run), "--out", str(page)).returncode == 0
    assert "scores-table" in page.read_text() and "verified val acc" in page.read_text()
    assert "th>val_loss" in page.read_text()  # a column of the scores table
    out = tmp_path / "export"
    exported = run_cli("export", str(run), "--best", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    best = best_trial(trials)  # export --best takes the best verified trial
    assert Genotype.from_json((out / GENOTYPE_FILE).read_text()).key() == best["arch_key"]


@pytest.mark.slow
def test_ray_workers_score_as_this_process_does(tmp_path, cifar_dir):
    space = write_space(tmp_path, SUPERNET)
    tables = {}
    for name, flags in (("local", ["--concurrency", "1"]), ("ray", [])):
        done = run_cli("supernet", str(space), "--epochs", "1", "--top-k", "0", "--name", name,
                       "--calibration-images", "100", *flags, "--results-dir", str(tmp_path),
                       env=_env(cifar_dir), timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        record = json.loads((tmp_path / name / SUPERNET_JSON).read_text())
        assert record["score_workers"] == (1 if name == "local" else 2)
        tables[name] = read_csv(tmp_path / name / SUPERNET_CSV).set_index("arch_key")
    local, ray = tables["local"], tables["ray"]
    assert len(local) == 64 and sorted(local.index) == sorted(ray.index)
    assert (ray.loc[local.index, "val_acc"] == local["val_acc"]).all()
    assert ray.loc[local.index, "score"].to_numpy() == pytest.approx(
        local["score"].to_numpy(), rel=1e-4)
