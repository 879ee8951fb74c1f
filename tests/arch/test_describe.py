"""One-line texts of stages and architectures, written out by hand from the zoo's genotypes."""

import dataclasses

import pytest

from nas.arch.describe import describe_arch, describe_stage, millions
from nas.arch.zoo import preset, xception_genotype


@pytest.mark.parametrize(("name", "first"), [
    # depthwise: groups = width, position log(32)/log(32); the spectrum's order and mid act
    ("separable", "spectrum  w32   d2 k3 groups 32/32 (pos 1.00) dw_pw mid=none"
                  " residual=identity pre-act"),
    # one segment: position 0; a conv names no order or mid act
    ("regular", "conv      w32   d2 k3 groups 1/32 (pos 0.00) residual=identity post-act"),
    # 4 segments of 32 channels: log(4)/log(32) = 2/5
    ("inception_like", "spectrum  w32   d2 k3 groups 4/32 (pos 0.40) pw_dw mid=relu"
                       " residual=identity post-act"),
    # inception: no groups, its 4 branches: log(4)/log(32)
    ("inception", "inception w32   d2 k3 (pos 0.40) residual=identity post-act"),
    # resnext: groups = width // 4 = 8 of the 32-wide (bottleneck 1.0) conv: log(8)/log(32)
    ("resnext", "resnext   w32   d2 k3 groups 8/32 (pos 0.60) residual=identity post-act"),
])
def test_a_presets_first_stage(name, first):
    assert describe_stage(preset(name).stages[0]) == first


def test_the_position_follows_the_width():
    # resnext at 64 and 128: groups 16 and 32, log(16)/log(64) = 4/6, log(32)/log(128) = 5/7
    stages = preset("resnext").stages
    assert describe_stage(stages[1]) == (
        "resnext   w64   d2 k3 groups 16/64 (pos 0.67) residual=identity post-act")
    assert describe_stage(stages[2]) == (
        "resnext   w128  d2 k3 groups 32/128 (pos 0.71) residual=identity post-act")
    # a half bottleneck: 8 groups of a 16-channel conv, log(8)/log(16) = 3/4
    half = dataclasses.replace(stages[0], bottleneck=0.5, kernel=5)
    assert describe_stage(half) == (
        "resnext   w32   d2 k5 groups 8/16 (pos 0.75) residual=identity post-act")


def test_describe_arch_numbers_every_stage():
    assert describe_arch(preset("inception")) == (
        "  s1: inception w32   d2 k3 (pos 0.40) residual=identity post-act\n"
        "  s2: inception w64   d2 k3 (pos 0.33) residual=identity post-act\n"
        "  s3: inception w128  d2 k3 (pos 0.29) residual=identity post-act")
    lines = describe_arch(preset("regular", width=16), indent="").splitlines()
    assert lines == ["s1: conv      w16   d2 k3 groups 1/16 (pos 0.00) residual=identity post-act",
                     "s2: conv      w32   d2 k3 groups 1/32 (pos 0.00) residual=identity post-act",
                     "s3: conv      w64   d2 k3 groups 1/64 (pos 0.00) residual=identity post-act"]


def test_describe_xception_and_its_variants():
    lines = describe_arch(xception_genotype(), indent="").splitlines()
    assert len(lines) == 7  # entry flow x3, middle flow, exit block, two separable convs
    assert lines[3] == ("s4: spectrum  w728  d8 k3 groups 728/728 (pos 1.00) dw_pw mid=none"
                        " residual=identity pre-act")
    # wider than the padding: the width runs into the depth's one space
    assert lines[6] == ("s7: spectrum  w2048 d1 k3 groups 2048/2048 (pos 1.00) dw_pw mid=none"
                        " residual=none post-act")
    variant = xception_genotype(mid_act="relu", residual=False)
    assert describe_stage(variant.stages[0]) == (
        "spectrum  w128  d1 k3 groups 128/128 (pos 1.00) dw_pw mid=relu residual=none pre-act")


@pytest.mark.parametrize(("n", "text"), [
    (12_345_678, "12.35M"), (25_200_000, "25.20M"), (63_482, "0.06M"), (0, "0.00M"),
    (1_500_000_000, "1500.00M"), (2.5e6, "2.50M")])
def test_millions(n, text):
    assert millions(n) == text
