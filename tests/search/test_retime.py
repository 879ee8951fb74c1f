"""The tier's latency timed again after the race: which points are timed, and that the
practical pick follows the new figures."""

import math

import pandas as pd

from nas.answer.answer import build_answer, with_latency
from nas.arch.genotype import Genotype, Stage
from nas.machine import native_bf16_cpu
from nas.search.retime import kept_retime, retime, words
from tests.answer.answerkit import EPOCHS, trials_table


def genotype(groups: int) -> str:
    return Genotype(stages=(Stage(width=16, groups=groups),), resolution=16).to_json()


def test_each_cpu_point_with_a_genotype_is_timed_and_the_rest_keep_their_figures():
    table = pd.DataFrame([
        {"arch_key": "dense", "genotype": genotype(1), "device": "cpu", "precision": "fp32"},
        {"arch_key": "dw", "genotype": genotype(16), "device": "cpu", "precision": "fp32"},
        {"arch_key": "on-gpu", "genotype": genotype(4), "device": "cuda", "precision": "fp32"},
        {"arch_key": "no-genotype", "genotype": None, "device": "cpu", "precision": "fp32"}])
    timed = retime(table, ["dense", "dw", "on-gpu", "no-genotype", "absent"])
    assert set(timed) == {"dense", "dw"}
    assert all(math.isfinite(v) and v > 0 for v in timed.values())
    assert retime(table.drop(columns="genotype"), ["dense"]) == {}
    # a bf16 trial is timed in bf16 where the CPU has it native, else left out (emulated bf16
    # times nothing a deployment runs)
    bf16 = pd.DataFrame([{"arch_key": "b", "genotype": genotype(4), "device": "cpu",
                          "precision": "bf16"}])
    assert set(retime(bf16, ["b"])) == ({"b"} if native_bf16_cpu() else set())
    assert words(2) == ("the tier's latency re-timed together after the race (batch 1,"
                        " 2 threads, 7 interleaved rounds)")


def test_the_pick_follows_the_latency_timed_again():
    # the answerkit's tier is g4-pw (2.2 ms in its trials) and g1-pw (3.2 ms): g4-pw is picked
    answer = build_answer(trials_table(), EPOCHS)
    assert answer.pick == "g4-pw"
    again = with_latency(answer, {"g4-pw": 4.0, "g1-pw": 1.5}, "re-timed")
    assert again.pick == "g1-pw"
    assert {e.key: e.latency_ms for e in again.tier} == {"g4-pw": 4.0, "g1-pw": 1.5}
    # a point not timed again keeps its trials' figure
    kept = with_latency(answer, {"g1-pw": 1.5}, "re-timed")
    assert {e.key: e.latency_ms for e in kept.tier} == {"g4-pw": 2.2, "g1-pw": 1.5}


def test_a_run_folder_keeps_its_timings_so_a_later_answer_is_the_same(tmp_path):
    table = pd.DataFrame([
        {"arch_key": "dense", "genotype": genotype(1), "device": "cpu", "precision": "fp32"},
        {"arch_key": "dw", "genotype": genotype(16), "device": "cpu", "precision": "fp32"}])
    path = tmp_path / "tier_latency.json"
    first = kept_retime(path, table, ["dense"])
    assert set(first) == {"dense"} and path.exists()
    # dense is read back, not timed again; dw is timed and added
    both = kept_retime(path, table, ["dense", "dw"])
    assert both["dense"] == first["dense"] and set(both) == {"dense", "dw"}
    assert kept_retime(path, table.iloc[:0], ["dense", "dw"]) == both  # nothing to build
    path.write_text("not json")
    assert set(kept_retime(path, table, ["dw"])) == {"dw"}  # unreadable: timed again
