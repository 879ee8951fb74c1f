"""nas.supernet.run in-process: the request's checks, the training settings, resuming a scored
run (the recorded settings win, the top k picked from the scores), nothing trained."""

import json

import pandas as pd
import pytest

from nas.data.core import DataError
from nas.machine import FAKE_CPU_ENV
from nas.results.names import META, SUPERNET_CSV, SUPERNET_JSON, TABLE
from nas.search.engine import SearchError, SearchOptions
from nas.search.space.load import load_space
from nas.supernet.paths import SupernetError
from nas.supernet.run import (
    SupernetRequest,
    _progress,
    check_request,
    run_supernet,
    train_config,
)
from nas.train.device import resolve_device, resolve_precision
from tests.searchkit import SUPERNET, TINY, variant, write_space


@pytest.fixture
def space_file(tmp_path):
    return write_space(tmp_path, SUPERNET)


def _request(space_file, **fields):
    options = fields.pop("options", {})
    return SupernetRequest(space_file, SearchOptions(space=space_file, **options), **fields)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "--epochs: 0 must be >= 1"),
    ("top_k", -1, "--top-k: -1 must be >= 0"),
    ("uniform_paths", 0, "--uniform-paths: 0 must be >= 1"),
    ("calibration_images", 0, "--calibration-images: 0 must be >= 1"),
    ("score_trials", -5, "--score-trials: -5 must be >= 1"),
])
def test_settings_out_of_range_are_refused(space_file, field, value, message):
    with pytest.raises(SupernetError) as refused:
        check_request(_request(space_file, **{field: value}))
    assert str(refused.value) == message


def test_the_lowest_settings_in_range_pass(space_file):
    check_request(_request(space_file, epochs=1, top_k=0, uniform_paths=1, calibration_images=1,
                           score_trials=1))


def test_trials_are_set_by_top_k_not_by_the_flag(space_file):
    with pytest.raises(SupernetError, match=r"^--trials: the supernet scores the space; --top-k"):
        check_request(_request(space_file, options={"trials": 3}))


@pytest.mark.parametrize("setting", [{"sandwich": False}, {"uniform_paths": 2},
                                     {"score_by": "val_acc"}])
def test_a_proxy_ranking_takes_no_supernet_setting(space_file, setting):
    with pytest.raises(SupernetError, match=r"^--rank synflow: --sandwich, --uniform-paths"):
        check_request(_request(space_file, rank="synflow", **setting))
    check_request(_request(space_file, **setting))  # the supernet's own ranking takes them
    check_request(_request(space_file, rank="synflow"))


def test_the_verifications_flags_are_checked_before_anything_trains(space_file, tmp_path):
    request = _request(space_file, options={"concurrency": 0, "results_dir": tmp_path,
                                            "name": "x"})
    with pytest.raises(SearchError, match="--concurrency: 0 must be >= 1"):
        run_supernet(request)
    assert not (tmp_path / "x").exists()


def test_train_config_takes_the_runs_settings_over_the_space(space_file):
    space = load_space(space_file)  # [train] epochs 1, warmup 0.5
    cfg = train_config(space, {"epochs": 3, "seed": 7, "precision": "fp32"})
    assert (cfg.epochs, cfg.seed, cfg.precision) == (3, 7, "fp32")
    assert cfg.warmup_epochs == 0.5 and cfg.lr == space.train.lr == 0.1
    assert cfg.batch_size == space.train.batch_size == 100
    # warmup never outlasts the training
    long = variant(SUPERNET, train={"epochs": 4, "warmup_epochs": 3})
    short = train_config(load_space(write_space(space_file.parent, long, "long.toml")),
                         {"epochs": 2, "seed": 0, "precision": "fp32"})
    assert short.warmup_epochs == 2


@pytest.mark.parametrize("cpu", ["bf16", "avx2"])
def test_train_config_resolves_auto_once_for_the_device(space_file, monkeypatch, cpu):
    monkeypatch.setenv(FAKE_CPU_ENV, cpu)
    space = load_space(space_file)
    cfg = train_config(space, {"epochs": 1, "seed": 0, "precision": "auto"})
    if resolve_device(space.train.device).type != "cpu":
        pytest.skip("a GPU resolves auto by its own bf16 support")
    assert cfg.precision == ("bf16" if cpu == "bf16" else "fp32")
    # a run recorded without a precision (older) takes the space's
    older = train_config(space, {"epochs": 1, "seed": 0}).precision
    assert older == resolve_precision(space.train.precision, "cpu")


def test_an_unshareable_space_is_refused_before_a_folder_is_made(tmp_path):
    space = write_space(tmp_path, variant(TINY, blocks={"kind": ["resnext"]}))
    with pytest.raises(SupernetError, match=r"'resnext'.*stand-alone"):
        run_supernet(_request(space, options={"results_dir": tmp_path, "name": "x"}))
    assert not (tmp_path / "x").exists()


def test_missing_data_leaves_no_run_folder_behind(space_file, tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    request = _request(space_file, options={"results_dir": tmp_path, "name": "x",
                                            "data_dir": empty})
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        run_supernet(request)
    assert not (tmp_path / "x").exists()  # so the same command can simply be run again


def _scored_run(tmp_path, space_file, top_k, scores=(0.9, 0.8, 0.7)):
    """A run folder whose supernet already scored three points (best first), as an
    interrupted run leaves it before its verification."""
    run = tmp_path / "sn"
    run.mkdir()
    (run / META).write_text(json.dumps({"space_file": space_file.name}))
    (run / SUPERNET_JSON).write_text(json.dumps({"settings": {"rank": "supernet",
                                                              "top_k": top_k}}))
    keys = [f"k{i}" for i in range(len(scores))]
    pd.DataFrame({"arch_key": keys, "point": [json.dumps({"p": k}) for k in keys],
                  "score": scores, "ranking": "supernet"}).to_csv(run / SUPERNET_CSV,
                                                                  index=False)
    return run


def _resume(space_file, tmp_path, **fields):
    return run_supernet(_request(space_file, options={"results_dir": tmp_path, "name": "sn",
                                                      "resume": True}, **fields))


def test_a_resumed_scored_run_keeps_its_scores_and_its_top_k(space_file, tmp_path, capsys):
    run = _scored_run(tmp_path, space_file, top_k=0)
    before = (run / SUPERNET_CSV).read_bytes()
    assert _resume(space_file, tmp_path, top_k=5) == 0  # the run's top_k 0: nothing verified
    out = capsys.readouterr().out
    assert f"Scored 3 points by supernet; top 3: 0.9000, 0.8000, 0.7000 ({run / SUPERNET_CSV})" \
        in out
    assert (run / SUPERNET_CSV).read_bytes() == before  # not scored again
    assert not (run / TABLE).exists() and "Verifying" not in out


def test_the_top_k_verified_already_start_no_search(space_file, tmp_path, capsys):
    run = _scored_run(tmp_path, space_file, top_k=2)
    # the two best points completed; the third, not in the top 2, never trained
    pd.DataFrame({"trial_id": ["00000001", "00000002"], "arch_key": ["k1", "k0"],
                  "status": ["completed", "completed"]}).to_csv(run / TABLE, index=False)
    assert _resume(space_file, tmp_path) == 0
    assert f"All 2 top points are verified ({run / TABLE})." in capsys.readouterr().out


def test_progress_prints_every_fifty_points_and_the_end(capsys):
    log = _progress()
    for done in range(1, 121):
        log(done, 120)
    assert capsys.readouterr().out.splitlines() == ["scored 50/120", "scored 100/120",
                                                    "scored 120/120"]
