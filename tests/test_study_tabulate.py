"""nas.study in-process on the committed studies: each re-tabulates byte-identically."""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nas import study
from nas.results.meta import read_meta
from nas.results.names import STUDY_CSV, STUDY_JSON, STUDY_MD
from nas.results.table import read_table
from nas.search.engine import SearchError, SearchOptions
from nas.search.resume import space_copy
from tests.searchkit import ROOT

STUDIES_DIR = Path("results") / "studies"  # as the committed tables were written (relative)
COMMITTED = sorted(p.parent.name for p in (ROOT / STUDIES_DIR).glob(f"*/{STUDY_CSV}"))
OUTPUTS = (STUDY_CSV, STUDY_MD, STUDY_JSON)


def test_the_committed_studies_are_found():
    assert {"xception_mid_act", "xception_residual", "hybrid_hypothesis",
            "spectrum_matched"} <= set(COMMITTED)


def _copy(name: str, tmp_path: Path, monkeypatch) -> Path:
    """The study's folder copied to tmp_path/results/studies/NAME without its outputs; the
    working directory is tmp_path, so the run folder's path reads as it did when committed
    (study.md names it in its dashboard command)."""
    run = tmp_path / STUDIES_DIR / name
    shutil.copytree(ROOT / STUDIES_DIR / name, run)
    for output in OUTPUTS:
        (run / output).unlink()
    monkeypatch.chdir(tmp_path)
    return STUDIES_DIR / name


@pytest.mark.parametrize("name", COMMITTED)
def test_a_committed_study_re_tabulates_byte_identically(name, tmp_path, monkeypatch, capsys):
    run = _copy(name, tmp_path, monkeypatch)
    code = study.study(study.StudyRequest(run, SearchOptions(space=run)))
    assert code == 0
    committed = ROOT / STUDIES_DIR / name
    for output in OUTPUTS:
        assert (run / output).read_bytes() == (committed / output).read_bytes(), output
    out = capsys.readouterr().out
    assert (committed / STUDY_MD).read_text().strip() in out
    assert f"Written: {run / STUDY_CSV}, {run / STUDY_MD}, {run / STUDY_JSON}" in out


@pytest.mark.parametrize("name", COMMITTED)
def test_the_helpers_give_the_committed_tables_parts(name, tmp_path, monkeypatch):
    run = _copy(name, tmp_path, monkeypatch)
    committed = ROOT / STUDIES_DIR / name
    meta, table = read_meta(run), read_table(run)
    space = space_copy(run, meta)
    assert study.row_labels(space) == json.loads((committed / STUDY_JSON).read_text())["labels"]
    frame = study.tabulate(table, space)
    old = pd.read_csv(committed / STUDY_CSV)
    assert list(frame.columns) == list(old.columns) and len(frame) == len(old)
    assert list(frame["seeds"]) == list(old["seeds"])
    assert frame["val_acc_mean"].tolist() == pytest.approx(old["val_acc_mean"].tolist(),
                                                           nan_ok=True)
    assert frame["is_baseline"].sum() == 1  # every committed study names a baseline
    markdown = (committed / STUDY_MD).read_text()
    assert study.markdown_table(frame, space) in markdown
    assert study.compute_note(table, meta) in markdown.split("\n\n")


def test_each_row_pools_its_seeds_from_the_trials(tmp_path, monkeypatch):
    run = _copy("xception_mid_act", tmp_path, monkeypatch)
    table, space = read_table(run), space_copy(run, read_meta(run))
    frame = study.tabulate(table, space)
    for _, row in frame.iterrows():
        mine = table[table["param_mid_act"].astype(str) == row["mid_act"]]
        done = mine[mine["status"] == "completed"]
        accs = [a for raw in done["seed_val_accs"] for a in json.loads(raw)]
        assert row["seeds"] == len(accs) and math.isclose(row["val_acc_mean"],
                                                          sum(accs) / len(accs))
        assert row["trial_ids"].split() == [str(t) for t in mine["trial_id"]]


def test_a_refused_option_writes_nothing(tmp_path, monkeypatch):
    run = _copy("xception_residual", tmp_path, monkeypatch)
    request = study.StudyRequest(run, SearchOptions(space=run, trials=0))
    with pytest.raises(SearchError, match="--trials: 0 must be >= 1"):
        study.study(request)
    assert not any((run / output).exists() for output in OUTPUTS)


def test_a_run_without_finished_trials_is_refused(tmp_path, monkeypatch):
    run = _copy("spectrum_matched", tmp_path, monkeypatch)
    (run / "trials.csv").write_text("")
    with pytest.raises(study.StudyError, match="no finished trial to tabulate yet"):
        study.write_study(run)
    assert not (run / STUDY_CSV).exists()
