"""The run folder's trials table: CSV and Parquet, mixed-type choice columns, the ranking."""

import pandas as pd

from nas.results.names import PARQUET
from nas.results.ranking import best_trial, fidelity_text, ranked
from nas.results.records import trial_status
from nas.results.table import read_table, write_table


def test_mixed_choice_columns_survive_both_formats(tmp_path):
    rows = [{"trial_id": "b", "param_groups": "depthwise", "val": 0.5},
            {"trial_id": "a", "param_groups": 4, "val": 0.25}]
    frame = write_table(tmp_path, rows)
    assert list(frame["trial_id"]) == ["a", "b"]
    parquet = pd.read_parquet(tmp_path / PARQUET)
    assert list(parquet["param_groups"]) == ["4", "depthwise"]
    assert list(read_table(tmp_path)["param_groups"].astype(str)) == ["4", "depthwise"]


def test_ranking_puts_full_budget_first_scores_only_real_results_breaks_ties_by_cost_then_id():
    table = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d", "e", "f", "g"],
        "status": ["completed", "stopped", "completed", "diverged", "failed", "completed",
                   "stopped"],
        "best_val_acc": [0.5, 0.6, 0.6, 0.9, float("nan"), 0.6, 0.7],
        "macs": [10, 30, 20, 1, float("nan"), 20, 5]})
    # a 1-epoch 0.7 never outranks a full-budget 0.5
    assert list(ranked(table)["trial_id"]) == ["c", "f", "a", "g", "b"]
    assert best_trial(table)["trial_id"] == "c"
    assert best_trial(table[table["status"] == "stopped"])["trial_id"] == "g"
    assert best_trial(table[table["status"] == "failed"]) is None


def test_status_rule_shared_by_the_table_and_the_study():
    assert trial_status({"training_iteration": 4, "curve": [0.1] * 4}, 4, False) == "completed"
    assert trial_status({"training_iteration": 1, "curve": [0.1]}, 4, False) == "stopped"
    assert trial_status({"training_iteration": 1, "status": "infeasible"}, 4, False) \
        == "infeasible"
    assert trial_status({"training_iteration": 2, "status": "diverged"}, 4, False) == "diverged"
    assert trial_status({"training_iteration": 2, "curve": [0.1]}, 4, True) == "failed"
    assert trial_status({}, 4, False) == "failed"  # never reported anything
    best = {"status": "completed", "epochs": 6}
    assert fidelity_text(best, 6) == "full budget, best of 6 epochs"
    assert "no trial has finished the full budget of 6" in fidelity_text(
        {"status": "stopped", "epochs": 1}, 6)
