"""Scoring: BN recalibrated per sub-network, whole or Optuna-sampled spaces, ranked tables."""

from __future__ import annotations

import json

import pytest
import torch

from nas.arch.cost import cost
from nas.data import ImageSet
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.supernet.model import SuperNet
from nas.supernet.paths import enumerate_points
from nas.supernet.score import evaluate, one_by_one, recalibrate, score_space
from nas.train.augment import DeviceBatches
from tests.searchkit import SUPERNET, TINY, write_space


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return load_space(write_space(tmp_path_factory.mktemp("sn"), SUPERNET))


def _images(n: int = 60) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (n,), generator=g), tuple("abcdefghij"))


def _batches(data: ImageSet) -> DeviceBatches:
    return DeviceBatches(data, (0.5,) * 3, (0.25,) * 3, batch_size=20, device="cpu",
                         train=False, channels_last=False)


def test_recalibration_sets_each_bn_to_its_sub_networks_statistics(space):
    torch.manual_seed(0)
    net = SuperNet(space)
    data = _batches(_images())
    points = enumerate_points(space)
    arch = genotype(space, points[0])
    net.set_path(arch)
    bn = net.stem.bn1
    before = bn.running_mean.clone()
    recalibrate(net, data)
    assert not net.training and bn.momentum == 0.1  # eval mode, momentum given back
    assert not torch.allclose(bn.running_mean, before)
    # a cumulative average of equal batches' means: the mean of the stem conv's outputs
    with torch.no_grad():
        conv = torch.cat([net.stem.conv1(x) for x, _ in data])
    assert torch.allclose(bn.running_mean, conv.mean((0, 2, 3)), atol=1e-5)
    # a later BN depends on the path: another group count gives other statistics
    late = net.stages.s2.b1.dw_pw.bn2
    recalibrated = late.running_var.clone()
    other = genotype(space, points[0] | {"s1_spectrum": 1.0, "s2_spectrum": 1.0})
    assert other.stages[0].groups != arch.stages[0].groups
    net.set_path(other)
    recalibrate(net, data)
    assert not torch.allclose(late.running_var, recalibrated)


def test_evaluate_counts_correct_predictions_and_averages_the_loss(space):
    data = _images(40)
    net = SuperNet(space)
    net.set_path(genotype(space, enumerate_points(space)[0]))
    batches = _batches(data)
    with torch.no_grad():
        net.eval()
        logits = torch.cat([net(x) for x, _ in batches])
    correct = int((logits.argmax(1) == data.labels).sum())
    acc, loss = evaluate(net, batches)
    assert 0 < correct < len(data) and acc == correct / len(data)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, data.labels)),
                                 rel=1e-5)


def test_an_enumerable_space_is_scored_whole_and_ranked(space):
    scorer = one_by_one(lambda a: {"score": -float(cost(a).macs), "extra": 1.0})
    table = score_space(space, scorer, "params", trials=1000, seed=0, batch=3)
    assert len(table) == 64 and list(table["rank"]) == list(range(1, 65))
    assert table["macs"].is_monotonic_increasing  # score = -MACs, best first
    assert table["arch_key"].is_unique
    for row in table.head(3).to_dict("records"):
        assert genotype(space, json.loads(row["point"])).key() == row["arch_key"]
    assert {"s1_groups", "s2_order", "params", "genotype", "extra"} <= set(table.columns)


@pytest.mark.parametrize("batch", [1, 4])
def test_a_larger_space_is_scored_by_optuna_trials(tmp_path, batch):
    big = load_space(write_space(tmp_path, TINY))  # 144 points
    calls, sizes = [], []

    def scorer(archs):
        sizes.append(len(archs))
        calls.extend(a.key() for a in archs)
        return [{"score": float(cost(a).params)} for a in archs]

    table = score_space(big, scorer, "params", trials=20, seed=0, batch=batch)
    assert 1 <= len(table) <= 20 and len(calls) == len(set(calls)) == len(table)
    assert table["score"].is_monotonic_decreasing and max(sizes) <= batch
    again = score_space(big, scorer, "params", trials=20, seed=0, batch=batch)
    assert list(again["arch_key"]) == list(table["arch_key"])  # seeded: the same points
