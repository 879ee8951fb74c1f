"""Studies: rows pooled over seeds, the baseline difference, the written table and CSV."""

import json
import math
import shutil
import statistics

import pandas as pd
import pytest

from nas import study
from nas.results.atomic import write_json
from nas.search.space.load import load_space

SPACE = "search_spaces/xception_mid_act.toml"


def _row(trial_id, mid_act, accs, status="completed", reference="", params=63482):
    return {"trial_id": trial_id, "status": status, "reference": reference,
            "param_mid_act": mid_act, "seed_val_accs": json.dumps(accs),
            "final_val_acc": statistics.fmean(accs) if accs else None, "epochs": 12,
            "params": params, "macs": 25_200_000, "latency_ms": 1.5, "train_s": 30.0 * len(accs),
            "wall_s": 100.0, "s1_width": 32, "s2_width": 64, "s1_groups": 32, "s2_groups": 64}


@pytest.fixture
def table():
    return pd.DataFrame([
        _row("a", "relu", [0.50, 0.52, 0.54]),
        _row("b", "none", [0.60, 0.61, 0.62], reference="none"),
        _row("c", "elu", [0.40], status="diverged"),
    ])


def test_rows_follow_the_space_order_and_pool_the_seeds(table):
    frame = study.tabulate(table, load_space(SPACE))
    assert list(frame["mid_act"]) == ["none", "relu", "elu"]
    none, relu, elu = (frame.iloc[i] for i in range(3))
    assert none["seeds"] == 3 and math.isclose(none["val_acc_mean"], 0.61)
    assert math.isclose(none["val_acc_std"], 0.01)
    assert none["reference"] == "none" and none["is_baseline"]
    # difference of means in pp, and its standard error from both rows' spreads
    assert math.isclose(relu["delta_pp"], -9.0)
    assert math.isclose(relu["delta_se_pp"], 100 * math.sqrt(0.02**2 / 3 + 0.01**2 / 3))
    assert none["delta_pp"] == 0.0 and math.isnan(none["delta_se_pp"])
    # a trial that did not train the full budget is listed, not averaged
    assert elu["seeds"] == 0 and math.isnan(elu["val_acc_mean"]) and elu["excluded"] == "c diverged"
    assert relu["train_s_per_seed"] == 30.0 and relu["stage_widths"] == "32/64"


def test_single_seed_trials_fall_back_to_the_final_accuracy(table):
    table.loc[0, "seed_val_accs"] = "[]"
    frame = study.tabulate(table, load_space(SPACE))
    relu = frame[frame["mid_act"] == "relu"].iloc[0]
    assert relu["seeds"] == 1 and math.isclose(relu["val_acc_mean"], 0.52)
    assert math.isnan(relu["val_acc_std"])


def test_markdown_names_the_baseline_and_marks_missing_values(table):
    space = load_space(SPACE)
    text = study.markdown_table(study.tabulate(table, space), space)
    lines = text.splitlines()
    assert lines[0].startswith("| mid_act | seeds | val acc % (mean ± std) | Δ vs none (pp ± SE)")
    assert len(lines) == 2 + 3
    assert "| none | 3 | 61.0 ± 1.0 | baseline | 63,482 | 25.20M | 1.50 | 30 |" in text
    assert "| relu | 3 | 52.0 ± 2.0 | -9.0 ± 1.3 |" in text
    assert "| elu | 0 | - | - |" in text


def _run_folder(tmp_path, table):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(SPACE, run / "xception_mid_act.toml")
    table.to_csv(run / "trials.csv", index=False)
    write_json(run / "meta.json", {
        "space_file": "xception_mid_act.toml", "argv": ["run_search.py", "study", SPACE],
        "budget": {"epochs": 12, "concurrency": 2, "cpus_per_trial": 1.0}, "search_s": 600.0,
        "hardware": {"cpu_count": 2, "cpu_model": "Some CPU"}, "git_sha": "abc",
        "versions": {"torch": "2.13.0"}})
    return run


def test_write_study_from_a_run_folder(tmp_path, table):
    run = _run_folder(tmp_path, table)
    text = study.write_study(run)
    assert text == (run / "study.md").read_text().rstrip("\n")
    assert f"Command: `python run_search.py study {SPACE}`" in text
    assert "3 trials, <= 12 epochs, 2 at a time" in text and "search wall time 10.0 min" in text
    assert "trial time 5.0 min (5.0 core-min)" in text and "2 cores (Some CPU), no GPU" in text
    back = pd.read_csv(run / "study.csv")
    assert list(back["mid_act"]) == ["none", "relu", "elu"]
    assert json.loads(back.loc[1, "seed_val_accs"]) == [0.5, 0.52, 0.54]


def test_the_dashboard_shows_the_study(tmp_path, table):
    from nas.dashboard.data import load_run
    from nas.dashboard.page import payload

    run = _run_folder(tmp_path, table)
    before = load_run(run)
    assert before.study is None and 'id="study"' not in payload(before)["html"]
    study.write_study(run)
    after = load_run(run)
    assert after.version != before.version  # a served dashboard picks the table up
    data = payload(after)
    assert 'id="study-table"' in data["html"] and data["html"].count("<tr>") >= 4
    traces = data["figures"]["fig-study"]["data"]
    seeds = [y for t in traces[:-1] for y in t["y"]]
    assert sorted(seeds) == pytest.approx([50, 52, 54, 60, 61, 62])  # the diverged one has none
    assert list(traces[-1]["y"]) == pytest.approx([61.0, 52.0, float("nan")], nan_ok=True)


def test_a_folder_without_a_run_is_refused(tmp_path):
    with pytest.raises(study.StudyError, match="not a run folder"):
        study.write_study(tmp_path)


def test_study_command_runs_the_grid_with_seeds_and_tabulates_it(tmp_path, cifar_dir):
    import os

    from tests.searchkit import STUDY, run_cli, write_space

    space = write_space(tmp_path, STUDY)
    env = dict(os.environ, NAS_DATA_DIR=str(cifar_dir))
    done = run_cli("study", str(space), "--name", "s", "--results-dir", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Study.stop" not in done.stderr  # the grid's end is not an error (nas.search.samplers)
    run = tmp_path / "s"
    trials = pd.read_csv(run / "trials.csv")
    assert sorted(trials["status"]) == ["completed", "completed"]
    for _, row in trials.iterrows():  # the trial's mean is the mean of its seeds
        accs = json.loads(row["seed_val_accs"])
        assert len(accs) == 2 and math.isclose(statistics.fmean(accs), row["final_val_acc"])
    frame = pd.read_csv(run / "study.csv")
    assert list(frame["groups"].astype(str)) == ["1", "depthwise"]
    assert list(frame["seeds"]) == [2, 2] and frame["params"].between(3000, 5000).all()
    assert frame["stage_widths"].nunique() == 2  # matched: the regular network is narrower
    markdown = (run / "study.md").read_text()
    assert "## Tiny study" in markdown and "| depthwise |" in markdown and "baseline" in markdown
    assert "| groups | stage widths | stage groups | seeds |" in markdown
    assert markdown.strip() in done.stdout
    # tabulating the finished folder again gives the same table
    again = run_cli("study", str(run), env=env)
    assert again.returncode == 0, again.stderr
    assert (run / "study.md").read_text() == markdown
    assert json.loads((run / "meta.json").read_text())["search_s"] > 0


def test_study_of_a_missing_target_is_one_line(tmp_path):
    from tests.searchkit import run_cli

    done = run_cli("study", str(tmp_path / "nope.toml"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "nope.toml" in done.stderr


def test_study_json_names_the_label_columns_wherever_they_stand(tmp_path, table):
    from nas.dashboard.data import load_run

    run = _run_folder(tmp_path, table)
    study.write_study(run)
    assert json.loads((run / "study.json").read_text())["labels"] == ["mid_act"]
    # the labels are read from study.json, not from their place in study.csv
    frame = pd.read_csv(run / "study.csv")
    frame[[*frame.columns[1:], "mid_act"]].to_csv(run / "study.csv", index=False)
    assert load_run(run).study_labels == ("mid_act",)
    write_json(run / "study.json", {"labels": ["nope"]})
    with pytest.raises(FileNotFoundError, match=r"study.json: labels \['nope'\] are not columns"):
        load_run(run)
