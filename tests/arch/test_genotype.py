"""Genotype: JSON round trip, strict parsing, validation messages, keys, spectrum position."""

import dataclasses
import json
import math
import random
import subprocess
import sys

import pytest

from nas.arch.genotype import Genotype, GenotypeError, Head, Stage, Stem, divisors
from nas.arch.zoo import PRESETS, preset, xception_genotype
from tests.sampling import random_genotype


def _all_references():
    return [preset(name) for name in PRESETS] + [xception_genotype()]


def test_json_round_trip_keeps_every_field():
    genotypes = _all_references() + [random_genotype(random.Random(i)) for i in range(50)]
    for g in genotypes:
        back = Genotype.from_json(g.to_json())
        assert back == g
        assert back.key() == g.key()


def test_key_is_stable_across_processes():
    g = preset("separable")
    code = "from nas.arch.zoo import preset; print(preset('separable').key())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == g.key()


def test_key_ignores_fields_a_block_kind_does_not_use():
    conv = Genotype(stages=(Stage(kind="conv", groups=2),))
    same = Genotype(stages=(Stage(kind="conv", groups=2, order="pw_dw", mid_act="elu"),))
    other = Genotype(stages=(Stage(kind="conv", groups=4),))
    assert conv.key() == same.key()
    assert conv.key() != other.key()
    assert conv != same  # the dataclasses still differ; only the identity is canonical


@pytest.mark.parametrize(
    ("genotype", "expected"),
    [
        (Genotype(stages=(Stage(), Stage(width=64, groups=3))),
         "stage s2.groups: 3 does not divide"),
        (Genotype(stages=(Stage(kind="bogus"),)), "stage s1.kind: 'bogus' is not one of"),
        (Genotype(stages=(Stage(depth=0),)), "stage s1.depth: 0 must be >= 1"),
        (Genotype(stages=(Stage(stride=3),)), "stage s1.stride: 3 is not 1 or 2"),
        (Genotype(stages=(Stage(kernel=4),)), "stage s1.kernel: 4 must be an odd kernel"),
        (Genotype(stages=(Stage(kind="inception", width=30),)), "stage s1.width: 30 must be"),
        (Genotype(stages=(Stage(kind="resnext", width=64, bottleneck=0.5, groups=64),)),
         "stage s1.groups: 64 does not divide the 32 channels"),
        (Genotype(stages=()), "genotype.stages: needs at least one stage"),
        (Genotype(stages=(Stage(),), head=Head(pooling=None)), "head.pooling: must be"),
        (Genotype(stages=(Stage(),), stem=Stem(widths=(8,), strides=(1, 2))), "stem.strides"),
        (Genotype(stages=(Stage(),), resolution=3,
                  stem=Stem(widths=(8, 8), strides=(2, 1), kernel=3, padding="valid")),
         "stem.widths[1]: input resolution 3 is too small"),
        (Genotype(stages=(Stage(depth=True),)), "stage s1.depth: expected int, got True"),
    ],
)
def test_invalid_genotypes_give_one_line_errors_naming_the_field(genotype, expected):
    with pytest.raises(GenotypeError) as err:
        genotype.validate()
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_groups_error_lists_the_allowed_divisors():
    with pytest.raises(GenotypeError, match=r"allowed: 1, 2, 4, 8, 16, 32, 64\)"):
        Genotype(stages=(Stage(width=64, groups=3),)).validate()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"stages": [{"kind": "conv", "evil": 1}]}, "stage s1: unknown field 'evil'"),
        ({"stages": [{"kind": "__import__('os').system('x')"}]}, "stage s1.kind: "),
        ({"stages": [{"width": "64"}]}, "stage s1.width: expected int, got '64'"),
        ({"stages": [{"mid_act": "sigmoid"}]}, "stage s1.mid_act: 'sigmoid' is not one of"),
        ({"stages": [{}], "head": {"dropout": float("nan")}}, "genotype.head.dropout: nan is not"),
        ({"stages": [{}], "head": []}, "genotype.head: expected a table/object"),
        ({"stages": "s1"}, "genotype.stages: expected a list"),
        ([], "genotype: expected a table/object"),
    ],
)
def test_from_dict_rejects_anything_but_plain_valid_data(data, expected):
    with pytest.raises(GenotypeError) as err:
        Genotype.from_dict(data)
    assert str(err.value).startswith(expected)


def test_from_json_reports_bad_json_with_its_source():
    with pytest.raises(GenotypeError, match=r"^arch.json: not valid JSON"):
        Genotype.from_json("{", where="arch.json")


def test_spectrum_position_spans_regular_to_depthwise():
    assert Stage(width=64, groups=1).spectrum_position() == 0.0
    assert Stage(width=64, groups=64).spectrum_position() == 1.0
    assert Stage(width=64, groups=8).spectrum_position() == pytest.approx(0.5)
    assert Stage(kind="inception", width=64).spectrum_position() == pytest.approx(
        math.log(4) / math.log(64))
    net = Genotype(stages=(Stage(width=64, groups=1, depth=1), Stage(width=64, groups=64, depth=3)))
    assert net.spectrum_position() == pytest.approx(0.75)
    for g in _all_references():
        assert 0.0 <= g.spectrum_position() <= 1.0


def test_frozen():
    g = preset("regular")
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.resolution = 64  # type: ignore[misc]


def test_divisors():
    assert divisors(1) == [1]
    assert divisors(12) == [1, 2, 3, 4, 6, 12]
    assert divisors(728) == [d for d in range(1, 729) if 728 % d == 0]


def test_to_dict_is_plain_json():
    text = json.dumps(xception_genotype().to_dict())
    assert '"stages"' in text and "(" not in text
