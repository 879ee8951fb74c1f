"""answer.md and answer.json rendered for the hand-written trials table."""

import json
from dataclasses import replace

from nas.answer.answer import Answer, build_answer
from nas.answer.effects import effects_of
from nas.answer.render import render_markdown, to_json
from tests.answer.answerkit import EPOCHS, trials_table


def test_answer_md_names_the_pick_the_tier_the_factors_and_the_cost():
    answer = build_answer(trials_table(), EPOCHS, source="the answerkit table")
    # pooled sd .0079 on 7 df; g4-pw leads (.6133, 3 seeds); g1-pw is .0083 behind with a
    # half-width of 1.895 · .0079 · sqrt(1/3 + 1/2) = .0137: in the tier; the next, g4-dw,
    # is .041 behind: out. The faster of the two is g4-pw (2.2 ms against 3.2 ms).
    assert [e.key for e in answer.tier] == ["g4-pw", "g1-pw"]
    assert answer.leader == answer.pick == "g4-pw"
    assert build_answer(trials_table(), EPOCHS, pick_by="macs").pick == "g1-pw"
    text = render_markdown(answer)
    assert "**Practical pick: `g4-pw`** — the cheapest by latency_ms of the 2 point(s)" in text
    assert "(seed noise sd 0.79 pt (7 df, pooled); 6 points judged after 3 epochs)" in text
    assert "| `g4-pw` | 61.33 [" in text and "| 3 | leader |" in text
    assert "| `g1-pw` | 60.50 [" in text and "| 2 | +0.83 [" in text
    # each tier row says its architecture per stage
    assert "| s1: 4 groups, pw_dw; s2: 8 groups, pw_dw |" in text
    assert "| s1: 1 group, pw_dw; s2: 2 groups, pw_dw |" in text
    # stages 1 and 2 share their choices: one factor each for groups and op order
    assert "| op order | stages 1–2 (shared) | dw_pw | -3." in text
    assert "- op order, stages 1–2 (shared): pw_dw (+3." in text
    assert "- groups, stages 1–2 (shared): " in text
    assert "- data: the answerkit table" in text
    # 8 rows of 70 s and the failed one of 5 s, on one core each
    assert "- cost: 565 core-seconds (0.2 core-hours), 9 trials, 14 seeds trained" in text


def test_answer_json_is_strict_and_carries_the_same_answer():
    answer = build_answer(trials_table(), EPOCHS)
    data = json.loads(to_json(answer))
    assert data["pick"] == "g4-pw" and [t["key"] for t in data["tier"]] == ["g4-pw", "g1-pw"]
    assert data["tier"][0]["levels"]["s2_order"] == "pw_dw"
    assert not any(f["pooled"] for f in data["effects"]["factors"])
    assert data["tier"][0]["gap"] is None and data["tier"][1]["gap"]["estimate"] > 0
    assert [f["field"] for f in data["effects"]["factors"]] == ["groups", "order"]
    assert data["effects"]["factors"][1]["resolved"] is True
    assert data["words"] == list(answer.words) and data["noise"]["df"] == 7


def test_one_seed_a_point_renders_as_nothing_separable():
    single = trials_table()
    single = single[single["trial_id"] != "t-verify"].copy()
    single["seed_curves"] = single["seed_curves"].map(
        lambda raw: json.dumps(json.loads(raw)[:1]) if isinstance(raw, str) else raw)
    answer = build_answer(single, EPOCHS)
    assert len(answer.tier) == answer.points == 6  # no noise measured: nothing separable
    # ... so the tier's cheapest would be a guess: the pick is the leader, and it says why
    assert answer.pick == answer.leader == "g4-pw"
    text = render_markdown(answer)
    assert "— the leader: no point has two seeds, so none of the 6 can be told apart" in text
    assert "no seed noise measured yet" in text and "−∞" in text
    data = json.loads(to_json(answer))  # strict JSON: unbounded ends are null
    assert data["tier"][1]["gap"]["low"] is None


def test_an_answer_with_pooled_effects_says_what_pooling_assumes():
    from nas.answer.answer import Answer
    from tests.answer.test_effects import TOO_FEW

    answer = build_answer(trials_table(), EPOCHS)
    pooled = Answer(**{**answer.__dict__, "effects": effects_of(TOO_FEW)})
    text = render_markdown(pooled)
    assert "| op order | stages 1–2 (per stage, pooled) | dw_pw | -2.00 [" in text
    assert "Too few points for an effect per stage" in text
    assert json.loads(to_json(pooled))["effects"]["factors"][0]["pooled"] is True


def test_the_console_shows_the_picks_architecture_and_a_long_tier_cut_short():
    from nas.answer.render import CONSOLE_TIER, render_console

    answer = build_answer(trials_table(), EPOCHS)
    text = render_console(answer)
    assert "  the pick per stage: s1: 4 groups, pw_dw; s2: 8 groups, pw_dw" in text
    assert "more tied" not in text and "  g1-pw: 60.50 % [" in text
    tier = tuple(replace(e, key=f"{e.key}-{i}") for i in range(4) for e in answer.tier)
    lines = render_console(Answer(**{**answer.__dict__, "tier": tier,
                                     "pick": "g1-pw-3"})).splitlines()
    rows = [line.split(":")[0].strip() for line in lines if line.startswith("  g")]
    # the leader's closest rivals, then the pick, last of the eight
    assert rows == [e.key for e in tier[:CONSOLE_TIER]] + ["g1-pw-3"]
    assert f"  ... and {8 - CONSOLE_TIER - 1} more tied (answer.md)" in lines


def test_a_stage_of_another_block_kind_is_named_without_a_spectrum_blocks_choices():
    from nas.answer.words import architecture_words

    levels = {"s1_kind": "conv", "s1_groups": "4", "s1_order": "dw_pw", "s1_mid_act": "none",
              "s1_residual": "identity", "s2_kind": "spectrum", "s2_groups": "1",
              "s2_order": "pw_dw", "s2_mid_act": "relu", "s2_residual": "none"}
    assert architecture_words(levels) == ("s1: conv, 4 groups, residual identity; s2: 1 group,"
                                          " pw_dw, mid relu, residual none")
