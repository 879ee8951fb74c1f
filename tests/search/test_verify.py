"""Racing verification through the search pipeline: rounds of fixed points with their own seeds
after the front end, the race's state read back from the run folder, the answer written."""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nas.answer.settings import VerifySettings
from nas.results.table import round_dirs
from nas.search.resume import saved_run
from nas.search.space.points import genotype
from nas.search.verify import point_params, race_of
from tests.conftest import SEARCH_OUT
from tests.searchkit import RACED, TINY, run_cli, variant, write_space


@pytest.fixture(scope="module")
def raced(raced_run) -> tuple[Path, str]:
    """The session's raced run folder and what its search printed."""
    return raced_run, (raced_run.parent / SEARCH_OUT).read_text()


def test_the_front_ends_points_are_trained_again_with_fresh_seeds(raced):
    run_dir, stdout = raced
    front = pd.read_csv(run_dir / "trials.csv")
    assert set(front["seed"]) == {0}  # every row says the seed it trained
    rounds = round_dirs(run_dir)
    assert rounds and rounds[0].name == "round-01"
    again = pd.concat([pd.read_csv(r / "trials.csv") for r in rounds])
    first = pd.read_csv(rounds[0] / "trials.csv")
    # round 1: every point with a full-budget result, a fresh seed each (the prior noise
    # leaves none separated); stopped ones join once the epoch-1 noise is measured
    assert set(first["arch_key"]) >= set(front.loc[front["status"] == "completed", "arch_key"])
    assert set(first["seed"]) == {1}
    assert set(again["arch_key"]) <= set(front["arch_key"])
    assert set(again["status"]) == {"completed"} and (again["epochs"] == 2).all()  # no ASHA
    assert not again.duplicated(["arch_key", "seed"]).any() and (again["seed"] >= 1).all()
    assert "param_seed" not in again  # the seed is the row's, not a searched parameter
    # [verify].held_out = 0: no held-out images, no columns for them
    assert not {"held_out_acc", "seed_held_out_accs"} & (set(front) | set(again))
    assert "held_out_images" not in json.loads((run_dir / "meta.json").read_text())["data"]
    for _, row in again.iterrows():  # the front end's architecture, another seed
        twin = front[front["arch_key"] == row["arch_key"]].iloc[0]
        assert row["genotype"] == twin["genotype"]
    state = json.loads((run_dir / "race.json").read_text())
    assert state["standing"]["stop"] in ("cap", "resolved")
    assert state["standing"]["runs"] == len(again)
    assert "Verification round-01" in stdout


def test_the_answer_is_written_and_printed_last(raced):
    run_dir, stdout = raced
    answer = json.loads((run_dir / "answer.json").read_text())
    md = (run_dir / "answer.md").read_text()
    assert f"**Practical pick: `{answer['pick']}`**" in md
    assert answer["pick"] in {e["key"] for e in answer["tier"]}
    assert all(e["seeds"] == 2 for e in answer["tier"])  # front end + its verification seed
    assert answer["noise"]["source"] == "pooled + prior"
    assert f"{len(round_dirs(run_dir))} verification round(s)" in answer["source"]
    assert "held-out" not in answer["source"]
    last = stdout.strip().splitlines()
    assert last[-1].startswith("Answer: ") and any(line.startswith("Answer (") for line in last)


def test_a_resumed_finished_race_trains_nothing_and_answers_the_same(raced, tmp_path, cifar_dir):
    run_dir = tmp_path / "r"
    shutil.copytree(raced[0], run_dir)
    before = (run_dir / "answer.json").read_text()
    (run_dir / "answer.json").unlink()
    done = run_cli("--name", "r", "--results-dir", str(tmp_path), "--resume",
                   env={**os.environ, "NAS_DATA_DIR": str(cifar_dir)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(round_dirs(run_dir)) == len(round_dirs(raced[0]))
    assert "Verification round" not in done.stdout
    assert (run_dir / "answer.json").read_text() == before


def test_a_failed_verification_run_freezes_its_point(raced, tmp_path):
    """A seed that diverged or failed would again: its point races no further."""
    rows = pd.read_csv(raced[0] / "verify" / "round-01" / "trials.csv", dtype={"trial_id": str})
    for i, lost in enumerate(rows["arch_key"]):  # points that completed or ASHA stopped before
        run_dir = tmp_path / f"r{i}"
        shutil.copytree(raced[0], run_dir)
        table = run_dir / "verify" / "round-01" / "trials.csv"
        broken = rows.copy()
        broken.loc[i, "status"] = "diverged"
        broken.to_csv(table, index=False)
        race = race_of(run_dir, VerifySettings(max_seeds_per_point=4), saved_run(run_dir).budget)
        lost_point = race.candidates[lost]
        done = pd.concat([pd.read_csv(f / "trials.csv") for f in round_dirs(run_dir)])
        kept = ((done["arch_key"] == lost) & (done["status"] == "completed")).sum()
        # what it has: its front-end result, if it completed there, and its verification runs
        # that did not fail (none left for a point ASHA stopped and round 1 lost)
        assert lost_point.max_seeds == len(lost_point.accs) + kept
        asked = {r.key for r in race.next_requests()}
        assert lost not in asked
        assert all(r.seed >= 2 for r in race.next_requests())


def test_a_rows_parameters_give_back_its_architecture(raced):
    run_dir, _ = raced
    space = saved_run(run_dir).space
    for row in pd.read_csv(run_dir / "trials.csv").to_dict("records"):
        assert genotype(space, point_params(row)).key() == row["arch_key"]


def test_the_space_files_verify_section_is_read_and_checked(tmp_path):
    from nas.search.space.load import load_space
    from nas.search.space.types import SpaceError

    space = load_space(write_space(tmp_path, RACED))
    assert space.verify == VerifySettings(max_seeds_per_point=2, noise_prior_sd=0.02,
                                          noise_prior_df=8.0)
    assert load_space(write_space(tmp_path, TINY, "plain.toml")).verify is None
    bad = write_space(tmp_path, variant(RACED, verify={"max_seeds_per_point": 1}), "bad.toml")
    with pytest.raises(SpaceError) as err:
        load_space(bad)
    assert str(err.value).startswith(f"{bad}: [verify].max_seeds_per_point: 1 must be >= 2")
    assert "\n" not in str(err.value)
    typo = write_space(tmp_path, variant(RACED, verify={"seeds": 3}), "typo.toml")
    with pytest.raises(SpaceError, match=r"\[verify\]\.seeds: unknown setting \(allowed: "):
        load_space(typo)
