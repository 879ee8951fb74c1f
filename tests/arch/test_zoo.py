"""Reference architectures: Xception's exact size and surface, the CIFAR seed points."""

import pytest
import torch
from torch import nn

from nas.arch.cost import cost
from nas.arch.genotype import GenotypeError
from nas.arch.zoo import PRESETS, preset, xception, xception_genotype


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_xception_has_the_papers_parameter_count():
    assert _params(xception()) == 22_855_952  # Table 3; Keras' trainable count


def test_xception_features_with_keras_like_pooling():
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        assert xception(include_top=False, pooling="avg").eval()(x).shape == (1, 2048)
        assert xception(include_top=False, pooling=None).eval()(x).shape == (1, 2048, 10, 10)


def test_xception_head_options():
    assert xception_genotype(include_top=False, pooling="max").head.pooling == "max"
    assert xception_genotype(num_classes=17).head.num_classes == 17
    no_top = xception_genotype(include_top=False, pooling="avg")
    assert cost(xception_genotype()).params - cost(no_top).params == 2048 * 1000 + 1000
    with pytest.raises(GenotypeError, match=r"xception\.pooling"):
        xception_genotype(include_top=False, pooling="mean")


def test_xception_ablation_variants():
    base = cost(xception_genotype()).params
    no_res = xception(residual=False)
    assert not any(name.endswith("shortcut") for name, _ in no_res.named_modules())
    projections = 64 * 128 + 128 * 256 + 256 * 728 + 728 * 1024 + 2 * (128 + 256 + 728 + 1024)
    assert _params(no_res) == base - projections
    for act, cls in (("relu", nn.ReLU), ("elu", nn.ELU)):
        net = xception(mid_act=act)
        mids = [m for n, m in net.named_modules() if n.split(".")[-1].startswith("act_mid")]
        assert len(mids) == 3 * 2 + 8 * 3 + 2 + 2 and all(isinstance(m, cls) for m in mids)
        assert _params(net) == base  # an activation adds no parameters


def test_presets_cover_the_spectrum_in_order():
    pos = {name: preset(name).spectrum_position() for name in PRESETS}
    assert pos["regular"] == pos["spatially_separable"] == 0.0
    assert 0.0 < pos["inception_like"] < pos["resnext"] < pos["extreme_inception"] == 1.0
    assert pos["separable"] == pos["separable_vgg"] == pos["hybrid"] == 1.0


def test_presets_differ_where_the_seeds_say():
    sep, vgg, hybrid = preset("separable"), preset("separable_vgg"), preset("hybrid")
    assert sep.stages[0].residual == "identity" and vgg.stages[0].residual == "none"
    assert sep.stages[0].mid_act == "none" and hybrid.stages[0].mid_act == "relu"
    assert preset("extreme_inception").stages[0].order == "pw_dw"
    assert len({preset(n).key() for n in PRESETS}) == len(PRESETS)


def test_preset_overrides_and_unknown_name():
    g = preset("regular", width=16, depth=3, units=1, num_classes=100)
    assert [s.width for s in g.stages] == [16, 32, 64] and g.stages[0].depth == 3
    assert g.head.num_classes == 100
    with pytest.raises(GenotypeError, match="unknown name 'vgg'"):
        preset("vgg")
