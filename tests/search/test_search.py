"""The search engine for real: Ray Tune + Optuna + ASHA on the shared CIFAR-10 subset."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch

from nas.arch.genotype import Genotype
from nas.arch.model import build
from nas.machine import cpu_info, native_bf16_cpu, relevant_cpu_flags
from nas.results.checkpoints import trial_checkpoint
from nas.results.errors import RunFolderError
from nas.results.lock import open_run_dir
from nas.search.engine import SearchOptions, grid_size, resolve_budget
from nas.search.resume import Budget
from nas.search.samplers import build_sampler, sampler_settings
from nas.search.space.load import load_space
from nas.search.space.points import searched
from nas.train.device import resolve_precision
from tests.searchkit import FOLDER, ROOT, TINY, image_folder, run_cli, variant, write_space

PRUNED, COMPLETE, FAIL = (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE,
                          optuna.trial.TrialState.FAIL)


def told(run_dir: Path, study: str | None = None) -> dict[str, optuna.trial.FrozenTrial]:
    """The run's Optuna trials by their Ray trial id, read back from optuna.db (the study is
    named after the folder the search started in)."""
    study = optuna.load_study(study_name=study or run_dir.name,
                              storage=f"sqlite:///{run_dir / 'optuna.db'}")
    return {t.user_attrs["trial_id"]: t for t in study.trials
            if "skipped" not in t.user_attrs}  # screened proposals were never Ray trials


def assert_optuna_follows_the_table(run_dir: Path, study: str | None = None) -> pd.DataFrame:
    """Every row's Optuna trial: stopped PRUNED and completed COMPLETE, both with the curve as
    intermediate values at epochs 1..n; infeasible PRUNED with its constraint and no value."""
    table = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    trials = told(run_dir, study)
    assert set(trials) == set(table["trial_id"])
    for _, row in table.iterrows():
        trial, curve = trials[row["trial_id"]], json.loads(row["curve"])
        assert trial.user_attrs["status"] == row["status"]
        if row["status"] in ("completed", "stopped"):
            assert trial.intermediate_values == dict(enumerate(curve, start=1))
            assert trial.value == pytest.approx(curve[-1])
        expected = {"completed": COMPLETE, "stopped": PRUNED, "infeasible": PRUNED,
                    "failed": FAIL}.get(row["status"])
        if row["status"] == "diverged":  # PRUNED with the epochs it finished, or FAIL
            assert (trial.state == PRUNED and curve) or (trial.state == FAIL and not curve)
            assert trial.intermediate_values == dict(enumerate(curve, start=1))
        else:
            assert trial.state == expected, (row["trial_id"], row["status"], trial.state)
        if row["status"] == "infeasible":
            assert trial.value is None and trial.intermediate_values == {}
            assert trial.constraints["max_params"] > 0
    return table


@pytest.fixture(autouse=True)
def _data(cifar_dir, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(cifar_dir))


@pytest.mark.precision
def test_a_real_search_fills_the_table(tmp_path):
    space = write_space(tmp_path, TINY)
    done = run_cli("--space", str(space), "--name", "t", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "t" / "trials.csv")
    assert len(table) == 8 and table["trial_id"].is_unique
    assert set(table["status"]) <= {"completed", "stopped"}
    assert (table["status"] == "stopped").any(), "ASHA stopped no trial"
    assert (table["status"] == "completed").any()
    stopped = table[table["status"] == "stopped"]
    assert (stopped["epochs"] < 4).all()
    assert {"regular", "separable"} <= set(table["reference"].dropna())
    for _, row in table.iterrows():
        curve = json.loads(row["curve"])
        assert len(curve) == row["epochs"] and max(curve) == pytest.approx(row["best_val_acc"])
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_ms"] > 0
    assert {"s1_groups", "s2_order", "s1_position", "param_s1_spectrum"} <= set(table.columns)
    for _, row in table.iterrows():  # the kept checkpoint is the trial's best epoch
        folder = trial_checkpoint(tmp_path / "t", row)
        assert not Path(row["checkpoint"]).is_absolute()  # relative: the folder can move
        saved = json.loads((folder / "metrics.json").read_text())
        assert saved["val_acc"] == pytest.approx(row["best_val_acc"])
        weights = torch.load(folder / "model.pt", weights_only=True)
        build(Genotype.from_json(row["genotype"])).load_state_dict(weights, strict=True)
    assert "val_acc" in done.stdout
    assert "8/8 done" in done.stdout
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["budget"]["trials"] == 8 and meta["versions"]["torch"]
    # "auto": what this machine's CPU does natively, recorded in meta.json and every row
    assert meta["budget"]["precision"] == "auto"
    assert meta["precision"] == resolve_precision("auto", "cpu")
    assert (table["precision"] == meta["precision"]).all()
    model, flags = cpu_info()
    assert meta["hardware"]["cpu_model"] == model
    assert meta["hardware"]["cpu_flags"] == relevant_cpu_flags(flags)
    assert meta["hardware"]["cpu_native_bf16"] == native_bf16_cpu()
    assert (tmp_path / "t" / "space.toml").exists()
    assert pd.read_parquet(tmp_path / "t" / "trials.parquet").shape == table.shape
    # Optuna learns what happened: ASHA-stopped trials PRUNED, with their curves
    assert_optuna_follows_the_table(tmp_path / "t")
    assert {t.state for t in told(tmp_path / "t").values()} == {PRUNED, COMPLETE}
    assert meta["sampler"] == {"name": "tpe", "seed": 0, "n_startup_trials": 8,
                               "multivariate": True, "group": False}
    assert meta["scheduler"] == {"name": "asha", "metric": "val_acc", "mode": "max",
                                 "time_attr": "training_iteration", "max_t": 4,
                                 "grace_period": 1, "reduction_factor": 2}
    assert meta["searcher"] == {"stopped_as": "pruned"}
    assert "Best (full budget, best of 4 epochs): trial" in done.stdout


def test_a_bf16_search_trains_in_bf16_end_to_end(tmp_path):
    space = write_space(tmp_path, variant(TINY, search={"trials": 2}))
    done = run_cli("--space", str(space), "--name", "bf", "--results-dir", str(tmp_path),
                   "--precision", "bf16", "--max-epochs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "bf" / "trials.csv")
    assert len(table) == 2 and (table["precision"] == "bf16").all()
    assert set(table["status"]) <= {"completed", "stopped"}
    assert (table["best_val_acc"] > 0).all() and (table["latency_ms"] > 0).all()
    meta = json.loads((tmp_path / "bf" / "meta.json").read_text())
    assert meta["budget"]["precision"] == "bf16" and meta["precision"] == "bf16"
    for _, row in table.iterrows():  # the kept weights are fp32, as autocast leaves them
        folder = trial_checkpoint(tmp_path / "bf", row.to_dict())  # recorded run-relative
        weights = torch.load(folder / "model.pt", weights_only=True)
        assert all(w.dtype != torch.bfloat16 for w in weights.values())


def test_failed_diverged_and_infeasible_trials_are_recorded_and_the_search_goes_on(broken_run):
    table = pd.read_csv(broken_run / "trials.csv").set_index(["param_s1_kind",
                                                               "param_s1_width"])
    assert len(table) == 6
    assert table.loc[("inception", 18), "status"] == "failed"
    assert "s1.width: 18 must be a multiple of 4" in table.loc[("inception", 18), "error"]
    infeasible = table.loc[("inception", 64)]
    assert infeasible["status"] == "infeasible"
    assert infeasible["reason"] == "6,706 params > max_params 4,000"
    # nothing trained, nothing invented: no accuracy, no curve, no checkpoint
    assert pd.isna(infeasible["best_val_acc"]) and infeasible["curve"] == "[]"
    assert pd.isna(infeasible["checkpoint"])
    others = table.drop([("inception", 18), ("inception", 64)])
    assert (others["status"] == "diverged").all()
    assert others["reason"].str.contains("non-finite").all()
    assert (others["curve"] == "[]").all() and others["best_val_acc"].isna().all()
    assert_optuna_follows_the_table(broken_run)
    trials = told(broken_run)
    assert trials[str(infeasible["trial_id"])].constraints == {
        "max_params": pytest.approx(6706 / 4000 - 1)}
    for trial_id in others["trial_id"].astype(str):  # diverged in epoch 1: nothing measured
        assert trials[trial_id].state == FAIL and trials[trial_id].value is None


def test_an_existing_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "trials.csv").write_text("trial_id\n1\n")
    with pytest.raises(RunFolderError, match="already holds a run"):
        open_run_dir(run, resume=False)
    with pytest.raises(RunFolderError, match="nothing to resume"):
        open_run_dir(tmp_path / "other", resume=True)
    assert (run / "trials.csv").read_text() == "trial_id\n1\n"
    assert not (tmp_path / "other").exists()


def test_budget_comes_from_the_space_and_grows_with_a_gpu(tmp_path):
    space = load_space("search_spaces/cifar_spectrum.toml")
    cpu = resolve_budget(space, SearchOptions(space=space.path), gpus_available=0)
    assert (cpu.trials, cpu.epochs, cpu.gpus_per_trial) == (20, 6, 0.0)
    gpu = resolve_budget(space, SearchOptions(space=space.path), gpus_available=1)
    assert (gpu.trials, gpu.epochs, gpu.gpus_per_trial, gpu.concurrency) == (96, 20, 0.25, 4)
    flags = resolve_budget(space, SearchOptions(space=space.path, trials=3, max_epochs=2,
                                                concurrency=1, seed=7), gpus_available=0)
    assert flags == Budget(3, 2, 1, 1.0, 0.0, 7, "auto")
    asked = resolve_budget(space, SearchOptions(space=space.path, precision="bf16"), 0)
    assert asked.precision == "bf16"
    grid = load_space("search_spaces/xception_ablation.toml")
    assert resolve_budget(grid, SearchOptions(space=grid.path, trials=100), 0).trials == 12


def _tell_whole_grid(sampler, space) -> optuna.Study:
    """Ask and tell every grid point outside study.optimize, as Ray Tune's OptunaSearch does."""
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = {d.name: optuna.distributions.CategoricalDistribution(list(d.choices))
             for d in searched(space)}
    for _ in range(grid_size(space)):
        study.tell(study.ask(dists), 0.5)
    return study


def test_grid_sampler_covers_the_grid_without_stop_errors():
    space = load_space("search_spaces/xception_ablation.toml")
    sampler = build_sampler(space, sampler_settings(space, seed=0))
    # Ray pickles the searcher, sampler included, into its experiment checkpoint
    study = _tell_whole_grid(pickle.loads(pickle.dumps(sampler)), space)
    points = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(points) == grid_size(space) == 12
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # why the subclass exists: optuna's own GridSampler raises after the last point here
    grid = {d.name: list(d.choices) for d in searched(space)}
    with pytest.raises(RuntimeError, match=r"Study\.stop"):
        _tell_whole_grid(optuna.samplers.GridSampler(grid, seed=0), space)


def test_cli_errors_are_one_line(tmp_path):
    bad = write_space(tmp_path, "[search]\ntrials = 'many'\n")
    done = run_cli("--space", str(bad), "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "[search].trials: expected int" in done.stderr


def test_interrupt_copy_and_resume_the_copy_into_itself(tmp_path):
    space = write_space(tmp_path, variant(TINY, search={"trials": 10}))
    args = ["--space", str(space), "--name", "r", "--results-dir", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    run_dir = tmp_path / "r"
    table = run_dir / "trials.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if table.exists() and len(pd.read_csv(table)) >= 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, output[-3000:]
    assert "Resume with:" in output
    before = pd.read_csv(table, dtype={"trial_id": str})
    assert 2 <= len(before) < 10
    # what Optuna was told about the finished trials before the interrupt
    earlier = {tid: (t.state, t.value, t.intermediate_values, t.user_attrs["status"])
               for tid, t in told(run_dir).items() if tid in set(before["trial_id"])}
    assert len(earlier) == len(before)

    # A copy of the interrupted folder resumes into itself: Ray pickled absolute paths
    original = tmp_path / "r"
    shutil.copytree(original, tmp_path / "copy", symlinks=True)
    untouched = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    done = run_cli("--space", str(space), "--name", "copy", "--results-dir", str(tmp_path),
                   "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == untouched
    after = pd.read_csv(tmp_path / "copy" / "trials.csv", dtype={"trial_id": str})
    assert len(after) == 10 and after["trial_id"].is_unique
    kept = after.set_index("trial_id").loc[before["trial_id"].astype(str)]
    cols = ["status", "best_val_acc", "curve", "arch_key"]
    pd.testing.assert_frame_equal(kept[cols].reset_index(drop=True), before[cols])
    for _, row in after.iterrows():  # every trial's checkpoint lies in the copy
        folder = trial_checkpoint(tmp_path / "copy", row.to_dict())
        assert folder is None or folder.is_relative_to(tmp_path / "copy")
    assert {f.name for f in (tmp_path / "copy" / "ray").glob("trial_*")} >= set(
        "trial_" + after["trial_id"])
    study = optuna.load_study(study_name="r",
                              storage=f"sqlite:///{tmp_path / 'copy' / 'optuna.db'}")
    finished = [t for t in study.trials if t.state.is_finished()
                and "skipped" not in t.user_attrs]  # screened proposals were never trials
    assert len(finished) == 10
    # the resumed search told the same states for the same trials, and the rest as they ended
    assert_optuna_follows_the_table(tmp_path / "copy", "r")
    again = told(tmp_path / "copy", "r")
    assert {tid: (again[tid].state, again[tid].value, again[tid].intermediate_values,
                  again[tid].user_attrs["status"]) for tid in earlier} == earlier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 90) -> None:
    """Until the head's GCS accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "ray start --head exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"no Ray head on 127.0.0.1:{port} after {timeout} s")


def test_search_joins_an_existing_ray_cluster(tmp_path):
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    # a one-machine cluster: loopback only, no auth token (as the local default does)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_AUTH_MODE="disabled")
    # `ray stop` would end every Ray process on the machine: run this head in its own session
    # and temp dir, blocking, and end it (and only it) by signal. The temp dir is short because
    # Ray's Unix sockets live there and socket paths are limited to ~107 bytes.
    short_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={short_tmp}", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_port(port, head)
        space = write_space(tmp_path, variant(TINY, search={"trials": 3}))
        done = run_cli("--space", str(space), "--name", "a", "--results-dir", str(tmp_path),
                       "--address", f"127.0.0.1:{port}", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(pd.read_csv(tmp_path / "a" / "trials.csv")) == 3
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:  # draining can stall; the group is ours alone
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=20)
        shutil.rmtree(short_tmp, ignore_errors=True)


def test_image_folder_search_with_accuracy_and_macs_objectives(tmp_path, cifar_dir):
    root = image_folder(tmp_path / "imagenet", cifar_dir)
    space = write_space(tmp_path, FOLDER)
    done = run_cli("--space", str(space), "--name", "f", "--results-dir", str(tmp_path),
                   "--data-dir", str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "f" / "trials.csv")
    assert len(table) == 4 and (table["resolution"] == 24).all()
    trials = told(tmp_path / "f")
    for _, row in table.astype({"trial_id": str}).iterrows():
        trial, curve = trials[row["trial_id"]], json.loads(row["curve"])
        if row["status"] == "completed":  # (val_acc at the full budget, macs)
            assert trial.state == COMPLETE
            assert trial.values == [pytest.approx(curve[-1]), row["macs"]]
        else:  # two objectives: Optuna keeps no intermediate values, so no value at all
            assert (row["status"], trial.state, trial.values) == ("stopped", PRUNED, None)
    assert any(t.state == COMPLETE for t in trials.values())
    # retrain reads the same --data-dir root, and tests on its val/ folder
    from nas.retrain import RetrainRequest, retrain

    for folder in (root / "train").iterdir():
        (root / "val" / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:5]:
            shutil.copy(image, root / "val" / folder.name / image.name)
    (row,) = retrain(RetrainRequest(tmp_path / "f", top=1, seeds=1, epochs=1, data_dir=root),
                     log=lambda *a, **k: None)
    saved = json.loads((tmp_path / "f" / "retrain.json").read_text())["settings"]
    assert saved["data_dir"] == str(root) and saved["test_images"] == 15
    assert 0.0 <= row["test_acc_mean"] <= 1.0


def test_shipped_imagenet_space_points_at_the_data_dir(tmp_path):
    from nas.search.engine import data_spec

    space = load_space("search_spaces/imagenet_subset.toml")
    assert data_spec(space, tmp_path).root == tmp_path
    assert data_spec(space, None).root == Path("data/imagenet")
