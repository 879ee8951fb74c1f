"""Builder: role names, features/head split, channels_last, every genotype builds and runs."""

import random

import pytest
import torch
from torch import nn

from nas.arch import model as model_module
from nas.arch.genotype import Genotype, GenotypeError, Head, Stage
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset
from tests.sampling import random_genotype


def test_submodules_are_named_by_role():
    g = Genotype(stages=(Stage(kind="spectrum", width=32, groups=32, depth=2),
                         Stage(kind="spectrum", width=64, groups=64, stride=2)))
    names = dict(build(g).named_modules())
    for name in ("stem.conv1", "s1.b1.conv_dw", "s1.b1.conv_pw", "s1.b1.bn", "s1.b1.act",
                 "s1.b1.shortcut", "s1.b2.conv_dw", "s2.b1.shortcut.conv", "head.pool", "head.fc"):
        assert name in names, name
    dw = names["s2.b1.conv_dw"]
    assert isinstance(dw, nn.Conv2d) and dw.groups == dw.in_channels == 32  # depthwise


def test_resnext_and_inception_role_names():
    names = dict(build(preset("resnext", depth=1)).named_modules())
    assert {"s1.b1.conv_reduce", "s1.b1.conv_group", "s1.b1.conv_expand"} <= set(names)
    names = dict(build(preset("inception", depth=1)).named_modules())
    assert {f"s1.b1.mix.branch{i}" for i in (1, 2, 3, 4)} <= set(names)


def test_forward_features_and_head():
    g = preset("separable")
    net = build(g).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = net.forward_features(x)
    assert feats.shape == (2, 128, 8, 8)
    assert net.forward_head(feats, pre_logits=True).shape == (2, 128)
    assert torch.equal(net.forward_head(feats), net(x))


def test_channels_last_gives_the_same_outputs():
    g = preset("inception_like")
    net = build(g).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
        net = net.to(memory_format=torch.channels_last)
        got = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_trains_one_step_with_finite_values(name):
    torch.manual_seed(0)
    net = build(preset(name, depth=1))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_random_genotypes_build_and_give_the_declared_output_shape():
    torch.set_num_threads(1)
    for seed in range(40):
        g = random_genotype(random.Random(1000 + seed))
        with torch.no_grad():
            out = build(g).eval()(torch.randn(2, g.in_channels, g.resolution, g.resolution))
        assert torch.isfinite(out).all()
        if g.head.num_classes:
            assert out.shape == (2, g.head.num_classes)
        elif g.head.pooling:
            assert out.shape == (2, g.head.fc[-1] if g.head.fc else g.stages[-1].width)
        else:
            assert out.ndim == 4 and out.shape[1] == g.stages[-1].width


def test_invalid_genotype_never_reaches_torch(monkeypatch):
    def explode(layer):
        raise AssertionError("torch module built for an invalid genotype")

    monkeypatch.setattr(model_module, "make_layer", explode)
    with pytest.raises(GenotypeError, match=r"^stage s1.groups"):
        build(Genotype(stages=(Stage(width=64, groups=5),)))


def test_residual_blocks_start_as_identity_on_their_branch():
    net = build(preset("regular", depth=1))
    assert torch.count_nonzero(net.s1.b1.bn2.weight) == 0  # last BN of the branch, zero gamma
    assert torch.count_nonzero(net.s1.b1.bn1.weight) > 0
    plain = build(preset("regular", depth=1), zero_init_residual=False)
    assert torch.equal(plain.s1.b1.bn2.weight, torch.ones_like(plain.s1.b1.bn2.weight))


def test_max_pooling_head_and_features_only_head():
    g = Genotype(stages=(Stage(width=16),), head=Head(pooling="max", fc=(8,), num_classes=3))
    assert build(g)(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    g = Genotype(stages=(Stage(width=16),), head=Head(pooling=None, num_classes=0))
    assert build(g)(torch.randn(1, 3, 32, 32)).shape == (1, 16, 32, 32)
