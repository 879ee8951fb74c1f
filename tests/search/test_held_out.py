"""[verify].held_out: full-budget trials (front end and verification rounds) scored once on
training images neither train nor val uses, and the race and the answer's tier judged on them."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from nas.results.names import HELD_OUT_ACC, SEED_HELD_OUT_ACCS
from nas.results.table import round_dirs
from tests.conftest import _search
from tests.searchkit import RACED, run_cli, variant, write_space

# RACED (300 validation and 600 training images of the subset's 5,000) with 300 held out
HELD = variant(RACED, name="tiny_held_out", verify={"held_out": 300})


@pytest.fixture(scope="module")
def held_run(tmp_path_factory, cifar_dir) -> Path:
    return _search(tmp_path_factory, cifar_dir, HELD, "held")


def _scores(row) -> list[float]:
    return [float(v) for v in json.loads(row[SEED_HELD_OUT_ACCS])]


def test_every_full_budget_trial_is_scored_on_the_held_out_images(held_run):
    front = pd.read_csv(held_run / "trials.csv", dtype={"trial_id": str})
    rounds = round_dirs(held_run)
    assert rounds  # the race ran
    again = pd.concat([pd.read_csv(r / "trials.csv", dtype={"trial_id": str}) for r in rounds])
    for table in (front, again):
        done = table[table["status"] == "completed"]
        assert len(done)
        for _, row in done.iterrows():
            seeds = _scores(row)
            assert len(seeds) == 1 and 0 <= seeds[0] <= 1  # one seed a trial here
            assert row[HELD_OUT_ACC] == pytest.approx(sum(seeds) / len(seeds))
    stopped = front[front["status"] == "stopped"]
    assert stopped[HELD_OUT_ACC].isna().all()  # only the full budget is scored
    meta = json.loads((held_run / "meta.json").read_text())
    assert meta["data"]["held_out_images"] == 300
    assert (meta["data"]["train_images"], meta["data"]["val_images"]) == (600, 300)


def test_the_race_and_the_tier_are_judged_on_the_held_out_accuracies(held_run):
    rows = pd.concat([pd.read_csv(held_run / "trials.csv", dtype={"trial_id": str}),
                      *[pd.read_csv(r / "trials.csv", dtype={"trial_id": str})
                        for r in round_dirs(held_run)]])
    done = rows[rows["status"] == "completed"]
    per_point: dict[str, dict[int, float]] = {}
    for _, row in done.iterrows():
        per_point.setdefault(row["arch_key"], {}).setdefault(int(row["seed"]), _scores(row)[0])
    race = json.loads((held_run / "race.json").read_text())
    assert race["settings"]["held_out"] == 300
    for run in race["runs"]:
        assert run["acc"] == pytest.approx(per_point[run["key"]][run["seed"]])
    answer = json.loads((held_run / "answer.json").read_text())
    assert answer["tier"]
    for entry in answer["tier"]:
        seeds = per_point[entry["key"]]
        assert entry["seeds"] == len(seeds)
        assert entry["mean"]["estimate"] == pytest.approx(sum(seeds.values()) / len(seeds))
    assert "; tier judged on 300 held-out training images" in answer["source"]


def test_more_held_out_images_than_the_data_leaves_fail_before_anything_runs(tmp_path,
                                                                             cifar_dir):
    space = write_space(tmp_path, variant(HELD, verify={"held_out": 10_000}))
    done = run_cli("--space", str(space), "--name", "over", "--results-dir", str(tmp_path),
                   env={**os.environ, "NAS_DATA_DIR": str(cifar_dir)})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith(f"{space}: [verify].held_out: 10,000 images requested, only 4,100"
                         " training images are left after val_size and train_size"), last
    assert not (tmp_path / "over").exists()  # nothing trained, no folder left


def test_the_setting_is_checked_with_the_space_file(tmp_path):
    from nas.search.space.load import load_space
    from nas.search.space.types import SpaceError

    assert load_space(write_space(tmp_path, HELD)).verify.held_out == 300
    assert load_space(write_space(tmp_path, RACED, "raced.toml")).verify.held_out == 0
    bad = write_space(tmp_path, variant(HELD, verify={"held_out": -1}), "bad.toml")
    with pytest.raises(SpaceError, match=r"\[verify\]\.held_out: -1 must be >= 0"):
        load_space(bad)
