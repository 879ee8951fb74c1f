"""The run folder's trials table: CSV and Parquet, mixed-type choice columns, the ranking."""

import pandas as pd

from nas.results import PARQUET, best_trial, ranked, read_table, write_table


def test_mixed_choice_columns_survive_both_formats(tmp_path):
    rows = [{"trial_id": "b", "param_groups": "depthwise", "val": 0.5},
            {"trial_id": "a", "param_groups": 4, "val": 0.25}]
    frame = write_table(tmp_path, rows)
    assert list(frame["trial_id"]) == ["a", "b"]
    parquet = pd.read_parquet(tmp_path / PARQUET)
    assert list(parquet["param_groups"]) == ["4", "depthwise"]
    assert list(read_table(tmp_path)["param_groups"].astype(str)) == ["4", "depthwise"]


def test_ranking_scores_only_real_results_and_breaks_ties_by_cost_then_id():
    table = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d", "e", "f"],
        "status": ["completed", "stopped", "completed", "diverged", "failed", "completed"],
        "best_val_acc": [0.5, 0.6, 0.6, 0.9, float("nan"), 0.6],
        "macs": [10, 30, 20, 1, float("nan"), 20]})
    assert list(ranked(table)["trial_id"]) == ["c", "f", "b", "a"]
    assert best_trial(table)["trial_id"] == "c"
    assert best_trial(table[table["status"] == "failed"]) is None
