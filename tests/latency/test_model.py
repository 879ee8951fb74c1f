"""The latency table: a prediction is the sum of its rows; keys share equal pieces and tell
different ones apart; the cache is JSON that survives a reload; a corrupt one is one line."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from nas.arch.genotype import Genotype, Head, Stage, Stem
from nas.arch.plan import Activation, Block, Conv, GlobalPool, Linear, Norm, Plan
from nas.latency.model import LatencyModel, Protocol, predict
from nas.latency.pieces import OVERHEAD, context_piece, overhead_piece, pieces
from nas.latency.settings import LatencyConfig, LatencyError
from nas.latency.table import TableError, default_table_dir

FAST = LatencyConfig(warmup=1, repeats=3, rounds=1)  # no timing is asserted: only what is summed


def hand_plan(groups: int = 2) -> Plan:
    """stem conv-BN-ReLU 3->4, one residual block of a grouped 3x3 and a 1x1, pooled head."""
    block = Block(branch=(("conv_dw", Conv(4, 4, (3, 3), (1, 1), (1, 1), groups)),
                          ("conv_pw", Conv(4, 4, (1, 1))), ("bn", Norm(4))),
                  shortcut=(), after=(("act", Activation("relu")),))
    return Plan(stem=(("conv1", Conv(3, 4, (3, 3), (1, 1), (1, 1))), ("bn1", Norm(4)),
                      ("act1", Activation("relu"))),
                stages=(("s1", (("b1", block),)),),
                head=(("pool", GlobalPool("avg")), ("fc", Linear(4, 10))),
                in_channels=3, resolution=8)


def tiny(groups: int = 2, order: str = "dw_pw", depth: int = 1, resolution: int = 8,
         last_groups: int = 2) -> Genotype:
    stage = Stage(width=8, depth=depth, groups=groups, order=order, units=1)
    return Genotype(stem=Stem(widths=(4,), strides=(1,)),
                    stages=(stage, dataclasses.replace(stage, width=16, stride=2, depth=1,
                                                       groups=last_groups)),
                    head=Head(num_classes=10), resolution=resolution).validate()


def test_a_hand_built_plans_prediction_is_the_sum_of_its_table_rows(tmp_path):
    net = hand_plan()
    model = LatencyModel("torch", 1, FAST, tmp_path)
    predicted = model.predict(net)
    rows = json.loads(model.table.path.read_text())["rows"]
    keys = [p.key for p in pieces(net)]
    assert [p.kind for p in pieces(net)] == [OVERHEAD, "stem", "block", "head"]
    assert predicted == math.fsum(rows[k]["ms"] for k in keys)
    # each row is its piece's median after the context conv, less that conv's alone
    for piece in pieces(net)[1:]:
        reference = rows[context_piece(piece.input_shape).key]
        assert rows[piece.key]["reference_ms"] == reference["median_ms"]
        assert rows[piece.key]["ms"] == rows[piece.key]["median_ms"] - reference["median_ms"]
    assert rows[keys[0]]["ms"] == rows[keys[0]]["median_ms"]  # the overhead: an empty network
    assert predict(net, "torch", 1, config=FAST, folder=tmp_path) == predicted


def test_a_genotype_is_predicted_from_its_plan_and_repeated_blocks_count_each_time(tmp_path):
    net = tiny(depth=3)
    model = LatencyModel("torch", 1, FAST, tmp_path)
    rows = model.rows(net)
    wheres = [piece.where for piece, _ in rows]
    assert wheres == [OVERHEAD, "stem", "s1.b1", "s1.b2", "s1.b3", "s2.b1", "head"]
    assert model.predict(net) == math.fsum(ms for _, ms in rows)
    assert rows[3][0].key == rows[4][0].key  # b2 and b3: the same block, one row, twice


def test_keys_are_shared_by_equal_blocks_and_differ_with_groups_order_resolution():
    def block_keys(g: Genotype) -> list[str]:
        return [p.key for p in pieces(g) if p.kind == "block"]

    base = block_keys(tiny(last_groups=2))
    other_point = block_keys(tiny(last_groups=16))
    assert base[0] == other_point[0] and base[1] != other_point[1]  # stage 1 alike, stage 2 not
    assert block_keys(tiny(groups=4))[0] != base[0]
    assert block_keys(tiny(order="pw_dw"))[0] != base[0]
    assert block_keys(tiny(resolution=16))[0] != base[0]
    assert json.loads(base[0])["input"] == [4, 8, 8]


def test_the_table_is_json_reread_without_measuring_again(tmp_path):
    first = LatencyModel("torch", 1, FAST, tmp_path)
    predicted = first.predict(tiny())
    data = json.loads(first.table.path.read_text())  # plain JSON: never a pickle
    assert data["runtime"] == "torch" and data["batch"] == 1 and data["build_s"] > 0
    assert data["fingerprint"]["threads"] == 1 and "torch" in data["fingerprint"]
    again = LatencyModel("torch", 1, FAST, tmp_path)
    assert again.missing([tiny()]) == [] and again.ensure([tiny()]) == 0
    assert again.predict(tiny()) == predicted
    assert LatencyModel("torch", 2, FAST, tmp_path).table.path != first.table.path


def test_a_corrupt_table_is_a_one_line_error_naming_the_file(tmp_path):
    model = LatencyModel("torch", 1, FAST, tmp_path)
    model.predict(hand_plan())
    for broken in ("{not json", json.dumps({"format": 1, "rows": {"x": {"ms": "fast"}}})):
        model.table.path.write_text(broken)
        with pytest.raises(TableError) as err:
            LatencyModel("torch", 1, FAST, tmp_path)
        message = str(err.value)
        assert str(model.table.path) in message and "\n" not in message and "delete" in message


def test_the_cache_lives_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_table_dir() == tmp_path / "spectrum-nas" / "latency"
    model = LatencyModel("torch", 1, FAST)
    assert model.table.path.parent == tmp_path / "spectrum-nas" / "latency"


def test_unknown_runtimes_and_batches_are_refused(tmp_path):
    with pytest.raises(LatencyError, match="unknown runtime"):
        LatencyModel("tensorrt", 1, FAST, tmp_path)
    with pytest.raises(LatencyError, match="batch 0"):
        LatencyModel("torch", 0, FAST, tmp_path)


def test_onnxruntime_rows_sum_to_its_prediction(tmp_path):
    pytest.importorskip("onnxruntime")
    model = LatencyModel("onnxruntime", 1, FAST, tmp_path)
    rows = model.rows(hand_plan())
    assert model.predict(hand_plan()) == math.fsum(ms for _, ms in rows)
    assert "onnxruntime" in model.table.fingerprint and "onnxruntime" in model.table.choice


def test_the_alone_protocol_takes_an_empty_networks_time_out_and_has_its_own_table(tmp_path):
    alone = Protocol.parse("none:warm")
    model = LatencyModel("torch", 1, FAST, tmp_path, protocol=alone)
    net = hand_plan()
    predicted = model.predict(net)
    rows = model.table.rows
    for piece in pieces(net)[1:]:
        reference = rows[overhead_piece(piece.input_shape).key]
        assert rows[piece.key]["ms"] == rows[piece.key]["median_ms"] - reference["median_ms"]
    assert predicted == math.fsum(rows[p.key]["ms"] for p in pieces(net))
    assert model.table.path != LatencyModel("torch", 1, FAST, tmp_path).table.path
    with pytest.raises(LatencyError, match="CONTEXT:CACHE"):
        Protocol.parse("conv:hot")


def test_rows_timed_with_other_rounds_or_runs_go_to_another_table(tmp_path):
    model = LatencyModel("torch", 1, FAST, tmp_path)
    model.predict(hand_plan())
    more = LatencyModel("torch", 1, dataclasses.replace(FAST, rounds=2), tmp_path)
    assert more.table.path != model.table.path and not more.table.rows
    again = LatencyModel("torch", 1, FAST, tmp_path)
    assert again.table.rows == json.loads(model.table.path.read_text())["rows"]
