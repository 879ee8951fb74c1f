"""--storage-path on its own: URIs, one-line faults, copying checkpoints from the storage."""

from __future__ import annotations

import json

import pytest
from pyarrow import fs

from nas.results.errors import RunFolderError
from nas.results.names import CHECKPOINT_METRICS, MODEL_FILE
from nas.results.store import (
    StoreError,
    fetch_checkpoint,
    find_checkpoint,
    mirror_best,
    open_uri,
    prepare,
    run_uri,
)


def test_the_run_folder_goes_before_the_query():
    assert run_uri("s3://b/pre/?endpoint_override=h:9000&scheme=http", "r1") == (
        "s3://b/pre/r1?endpoint_override=h:9000&scheme=http")
    assert run_uri("gs://bucket", "r1") == "gs://bucket/r1"


def test_a_plain_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_uri("shared", "r1") == str(tmp_path / "shared" / "r1")


def test_credentials_in_the_uri_are_refused_without_being_shown():
    with pytest.raises(StoreError) as err:
        run_uri("s3://KEY:hunter2@bucket/p", "r")
    assert "hunter2" not in str(err.value) and "AWS_ACCESS_KEY_ID" in str(err.value)


def test_an_unknown_scheme_is_one_line():
    with pytest.raises(StoreError) as err:
        open_uri("foo://x/y")
    assert "pyarrow cannot open it" in str(err.value) and "\n" not in str(err.value)


def test_prepare_refuses_another_runs_experiment(tmp_path):
    uri = str(tmp_path / "store" / "r")
    prepare(uri, resume=False)
    (tmp_path / "store" / "r" / "ray").mkdir()
    with pytest.raises(StoreError, match="already holds a run"):
        prepare(uri, resume=False)
    prepare(uri, resume=True)  # its own run, resumed


def checkpoint(folder, acc: float, complete: bool = True):
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"weights")
    size = 7 if complete else 99  # a manifest that does not match: cut short
    (folder / CHECKPOINT_METRICS).write_text(json.dumps({"val_acc": acc,
                                                         "files": {MODEL_FILE: size}}))


def test_only_complete_checkpoints_are_copied(tmp_path):
    remote = tmp_path / "store" / "ray" / "trial_a"
    checkpoint(remote / "checkpoint_000002", 0.5)
    checkpoint(remote / "checkpoint_000003", 0.6, complete=False)
    local = tmp_path / "run" / "ray" / "trial_a"
    mirror_best(fs.LocalFileSystem(), str(remote), local)
    assert sorted(p.name for p in local.iterdir()) == ["checkpoint_000002"]
    assert (local / "checkpoint_000002" / MODEL_FILE).read_bytes() == b"weights"


def test_a_missing_checkpoint_is_fetched_from_the_storage(tmp_path):
    run, store = tmp_path / "run", tmp_path / "store"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"storage_path": str(store)}))
    checkpoint(store / "ray" / "trial_a" / "checkpoint_000001", 0.5)
    row = {"trial_id": "a", "checkpoint": "ray/trial_a/checkpoint_000001"}
    found = find_checkpoint(run, row)
    assert found == run / "ray" / "trial_a" / "checkpoint_000001"
    assert (found / MODEL_FILE).read_bytes() == b"weights"
    assert find_checkpoint(run, {"trial_id": "b", "checkpoint": "ray/trial_b/checkpoint_1"}
                           ) is None  # not in the storage either
    assert find_checkpoint(run, {"trial_id": "../x", "checkpoint": "../../etc"}) is None


def test_an_unreadable_storage_is_one_line(tmp_path):
    with pytest.raises(RunFolderError, match="could not be read from"):
        fetch_checkpoint(tmp_path, "foo://nowhere", "a", "checkpoint_000001")
