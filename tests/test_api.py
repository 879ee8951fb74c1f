"""The notebook API: a search returns a Run; a Run reads, exports (with Optuna artifacts) and
charts its folder exactly as the actions do."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas import api
from nas.results.names import ARTIFACTS, OPTUNA_DB
from nas.results.ranking import best_trial
from nas.results.table import read_table
from tests.searchkit import ROOT, TINY, write_space

NOTEBOOK = """
import json, sys
from nas import api
run = api.search(sys.argv[1], trials=2, max_epochs=1, data_dir=sys.argv[2], name="nb",
                 results_dir=sys.argv[3])
print(json.dumps({"path": str(run.path), "rows": len(run.trials),
                  "best": run.best.trial_id, "text": str(run.best), "answer": run.answer}))
"""


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, symlinks=True)
    return copy


def test_a_search_from_python_returns_its_run(tmp_path, cifar_dir):
    space = write_space(tmp_path, TINY)
    done = subprocess.run([sys.executable, "-c", NOTEBOOK, str(space), str(cifar_dir),
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["path"] == str(tmp_path / "nb") and got["rows"] == 2
    table = read_table(tmp_path / "nb")
    assert got["best"] == best_trial(table)["trial_id"]
    assert got["text"].startswith(f"trial {got['best']} (") and "s1: spectrum" in got["text"]
    # no [verify] in TINY: the answer rests on the front end's one seed a point
    assert got["answer"]["pick"] in set(table["arch_key"])
    assert got["answer"] == json.loads((tmp_path / "nb" / "answer.json").read_text())


def test_a_raced_runs_answer_reads_back(raced_run):
    run = api.open_run(raced_run)
    assert run.answer == json.loads((raced_run / "answer.json").read_text())
    assert run.answer["tier"][0]["key"] == run.answer["leader"]


def test_a_run_reads_its_table_and_best_as_the_views_do(run_copy):
    run = api.open_run(run_copy)
    table = read_table(run_copy)
    assert run.trials.equals(table)
    best = run.best
    row = best_trial(table)
    assert best.trial_id == row["trial_id"] and best.val_acc == row["best_val_acc"]
    assert best.genotype.key() == row["arch_key"] and best.params == row["params"]
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        api.open_run(run_copy / "ray")


def test_export_attaches_the_files_to_the_optuna_study_and_dashboard_writes(run_copy, tmp_path):
    run = api.open_run(run_copy)
    done = run.export(tmp_path / "out")
    assert done.trial.trial_id == run.best.trial_id and len(done.artifacts) == len(done.files)
    storage = f"sqlite:///{run_copy / OPTUNA_DB}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    metas = optuna.artifacts.get_all_artifact_meta(study)
    assert {m.artifact_id for m in metas} == set(done.artifacts)
    assert {m.filename for m in metas} == {f"{run.best.trial_id}-{f.name}" for f in done.files}
    for meta in metas:  # the stored bytes are the exported files'
        stored = run_copy / ARTIFACTS / meta.artifact_id
        original = tmp_path / "out" / meta.filename.removeprefix(f"{run.best.trial_id}-")
        assert stored.read_bytes() == original.read_bytes()
    page = run.dashboard(tmp_path / "d.html")
    assert page.stat().st_size > 10_000
