"""The committed studies reproduce: same table, numbers within the stated spread (slow)."""

import math
import os

import pandas as pd
import pytest

from tests.searchkit import ROOT, run_cli

STUDIES = ("xception_mid_act", "xception_residual", "hybrid_hypothesis", "spectrum_matched")


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_a_committed_study_reproduces(study, tmp_path, cifar_dir):
    committed = ROOT / "results" / "studies" / study
    env = dict(os.environ, NAS_DATA_DIR=str(cifar_dir))
    done = run_cli("study", str(ROOT / "search_spaces" / f"{study}.toml"), "--results-dir",
                   str(tmp_path), "--name", study, env=env, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    old = pd.read_csv(committed / "study.csv")
    new = pd.read_csv(tmp_path / study / "study.csv")
    assert list(new.columns) == list(old.columns)
    labels = list(old.columns[:list(old.columns).index("reference")])
    assert new[labels].astype(str).values.tolist() == old[labels].astype(str).values.tolist()
    assert list(new["seeds"]) == list(old["seeds"]) and list(new["params"]) == list(old["params"])
    for (_, a), (_, b) in zip(old.iterrows(), new.iterrows(), strict=True):
        # "within the stated spread": the difference of the two means within 2 standard errors
        se = math.sqrt(a["val_acc_std"] ** 2 / a["seeds"] + b["val_acc_std"] ** 2 / b["seeds"])
        assert abs(a["val_acc_mean"] - b["val_acc_mean"]) <= 2 * se + 1e-9, (a, b)
    old_head = (committed / "study.md").read_text().splitlines()[2]
    assert (tmp_path / study / "study.md").read_text().splitlines()[2] == old_head
