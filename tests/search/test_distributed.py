"""A Ray cluster of two nodes that share no disk: trials write checkpoints to an S3 store
(moto), the driver reads them through it; a node killed mid-search."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest

from tests.clusterkit import RAY_ENV, S3_ENV, Cluster, raylet_of, s3_store
from tests.searchkit import ROOT, TINY, run_cli, variant, write_space

# CI runs as root; elsewhere a worker node cannot be kept from the driver's disk
blind_nodes = pytest.mark.skipif(
    os.environ.get("CI") != "true" and (shutil.which("unshare") is None or os.geteuid() != 0),
    reason="a worker node without the driver's disk needs `unshare --mount` as root")

TWO = variant(TINY, train={"epochs": 2}, search={"trials": 4, "concurrency": 2})


@pytest.fixture
def cluster(tmp_path):
    """A head node and a worker node that cannot see tmp_path/results; the S3 store's URI."""
    results = tmp_path / "results"
    results.mkdir()
    env = dict(os.environ, **RAY_ENV, **S3_ENV)
    with s3_store() as uri:
        nodes = Cluster(env)
        try:
            worker = nodes.add_blind_worker(results)
            nodes.wait_for_nodes(2)
            yield nodes, worker, uri, results, env
        finally:
            nodes.stop()


@pytest.mark.slow  # ~1.5 min; .ci/run runs this file's slow tests after the default suite
@blind_nodes
def test_two_nodes_without_a_shared_disk(cluster, tmp_path):
    nodes, _, uri, results, env = cluster
    space = write_space(tmp_path, TWO)
    common = ("--space", str(space), "--results-dir", str(results), "--address", nodes.address,
              "--cpus-per-trial", "1")
    refused = run_cli(*common, "--name", "unshared", env=env)
    assert refused.returncode != 0
    line = refused.stderr.strip().splitlines()[-1]
    assert "cannot see the run folder" in line and "--storage-path" in line, refused.stderr[-2000:]
    assert not (results / "unshared").exists()

    done = run_cli(*common, "--name", "s3", "--storage-path", uri, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run = results / "s3"
    table = pd.read_csv(run / "trials.csv")
    assert len(table) == 4 and set(table["status"]) <= {"completed", "stopped"}
    print(table[["trial_id", "status", "node_id", "checkpoint"]].to_string())  # shown by -s
    assert table["node_id"].nunique() == 2  # the trials ran on both nodes
    meta = json.loads((run / "meta.json").read_text())
    assert meta["storage_path"].startswith("s3://runs/nas/s3?")
    for recorded in table["checkpoint"]:  # every best checkpoint reached the driver
        assert (run / recorded / "model.pt").is_file()

    shutil.rmtree(run / "ray")  # gone from the run folder: read through the storage again
    exported = run_cli("export", str(run), "--best", "--out", str(tmp_path / "out"), env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert list((tmp_path / "out").glob("*.py"))
    retrained = run_cli("retrain", str(run), "--top", "1", "--epochs", "1", "--seeds", "1",
                        env=env)
    assert retrained.returncode == 0, retrained.stderr[-3000:]
    page = tmp_path / "page.html"
    assert run_cli("dashboard", str(run), "--out", str(page), env=env).returncode == 0
    assert page.stat().st_size > 0


@pytest.mark.slow  # ~1.5 min
@blind_nodes
def test_a_node_killed_mid_search(cluster, tmp_path):
    nodes, worker, uri, results, env = cluster
    space = write_space(tmp_path, variant(TWO, train={"epochs": 3}, search={"trials": 8}))
    common = ["--space", str(space), "--results-dir", str(results), "--address", nodes.address,
              "--cpus-per-trial", "1", "--name", "k"]
    driver = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), *common,
                               "--storage-path", uri], env=dict(env, PYTHONUNBUFFERED="1"),
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              cwd=ROOT)
    lines = []
    for line in driver.stdout:
        lines.append(line)
        if " done," in line and len(lines) == 1:  # a trial ended: both nodes are training
            os.kill(raylet_of(worker), signal.SIGKILL)
        if "retrying it from its last checkpoint" in line:
            driver.send_signal(signal.SIGINT)  # then the driver is stopped too
            break
    rest, _ = driver.communicate(timeout=300)
    text = "".join(lines)
    assert "retrying" in text, text
    lost = text.split("retrying")[0].rsplit("] ", 1)[1].split()[0]  # the trial that lost it
    assert driver.returncode == 130, text  # interrupted: --resume continues it
    assert "actor" in text.split(lost + " failed:")[1].splitlines()[0]  # Ray's own error

    resumed = run_cli(*common, "--resume", env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = results / "k"
    table = pd.read_csv(run / "trials.csv").astype({"trial_id": str})
    shown = table[["trial_id", "status", "node_id", "error"]].to_string()
    story = f"{text}{rest}--- resumed:\n{resumed.stdout}{shown}"  # what CI prints on a failure
    assert len(table) == 8 and table["trial_id"].is_unique, story
    assert set(table["status"]) <= {"completed", "stopped"}, story  # nothing lost to the node
    assert lost in set(table["trial_id"])
    for recorded in table["checkpoint"]:
        assert (run / recorded / "model.pt").is_file()


def test_a_storage_path_on_a_shared_mount(tmp_path):
    mount = tmp_path / "mount"  # what every node of a cluster would mount at one path
    space = write_space(tmp_path, variant(TWO, search={"trials": 3}))
    common = ("--space", str(space), "--results-dir", str(tmp_path), "--name", "m")
    done = run_cli(*common, "--storage-path", str(mount))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "m" / "trials.csv")
    assert len(table) == 3
    for recorded in table["checkpoint"]:  # written there, copied here
        assert (mount / "m" / recorded / "model.pt").is_file()
        assert (tmp_path / "m" / recorded / "model.pt").is_file()
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["storage_path"] == str(
        mount.resolve() / "m")
    again = run_cli(*common, "--storage-path", str(mount))  # the name is the storage's key
    assert again.returncode != 0 and "already holds a run" in again.stderr.strip()
    moved = run_cli(*common, "--resume", "--storage-path", str(tmp_path / "elsewhere"))
    assert moved.returncode != 0
    assert "keeps its checkpoints at" in moved.stderr.strip().splitlines()[-1]

    shutil.rmtree(tmp_path / "m" / "ray")
    exported = run_cli("export", str(tmp_path / "m"), "--best", "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "m" / table.sort_values("best_val_acc")["checkpoint"].iloc[-1]).is_dir()
