"""The run folder's trials table: CSV and Parquet, mixed-type choice columns included."""

import pandas as pd

from nas.results import PARQUET, read_table, write_table


def test_mixed_choice_columns_survive_both_formats(tmp_path):
    rows = [{"trial_id": "b", "param_groups": "depthwise", "val": 0.5},
            {"trial_id": "a", "param_groups": 4, "val": 0.25}]
    frame = write_table(tmp_path, rows)
    assert list(frame["trial_id"]) == ["a", "b"]
    parquet = pd.read_parquet(tmp_path / PARQUET)
    assert list(parquet["param_groups"]) == ["4", "depthwise"]
    assert list(read_table(tmp_path)["param_groups"].astype(str)) == ["4", "depthwise"]
