"""Layer plan: group adaptation at transitions, unit widths, shortcuts."""

from nas.arch.genotype import Genotype, Stage, Stem
from nas.arch.plan import Conv, adapt_groups, plan


def test_adapt_groups_keeps_segments_and_spectrum_ends():
    assert adapt_groups(4, 64, 32) == 4  # segment count kept where it divides
    assert adapt_groups(728, 728, 256) == 256  # depthwise stays depthwise (Xception entry)
    assert adapt_groups(1, 728, 256) == 1  # regular stays regular
    assert adapt_groups(4, 64, 18) == 3  # 4 does not divide 18: nearest divisor to 18 ** (1/3)


def _convs(seq):
    return {name: layer for name, layer in seq if isinstance(layer, Conv)}


def test_separable_transition_runs_depthwise_on_the_input_channels():
    g = Genotype(stem=Stem(widths=(16,), strides=(1,)),
                 stages=(Stage(kind="spectrum", width=48, groups=48, units=2),))
    block = plan(g).stages[0][1][0][1]
    convs = _convs(block.branch)
    assert convs["conv_dw1"] == Conv(16, 16, (3, 3), (1, 1), (1, 1), 16)
    assert convs["conv_pw1"].cin == 16 and convs["conv_pw1"].cout == 48
    assert convs["conv_dw2"].groups == 48


def test_transition_last_changes_width_in_the_last_unit():
    g = Genotype(stem=Stem(widths=(16,), strides=(1,)),
                 stages=(Stage(kind="spectrum", width=32, groups=32, units=3, transition="last"),))
    convs = _convs(plan(g).stages[0][1][0][1].branch)
    assert [convs[f"conv_pw{i}"].cout for i in (1, 2, 3)] == [16, 16, 32]


def test_identity_residual_projects_only_where_the_shape_changes():
    g = Genotype(stem=Stem(widths=(16,), strides=(1,)),
                 stages=(Stage(width=16, depth=2), Stage(width=32, depth=2, stride=2)))
    stages = plan(g).stages
    assert stages[0][1][0][1].shortcut == ()
    assert [n for n, _ in stages[1][1][0][1].shortcut] == ["conv", "bn"]
    assert stages[1][1][1][1].shortcut == ()


def test_maxpool_downsampling_ends_the_branch_and_keeps_convs_unstrided():
    g = Genotype(stages=(Stage(width=32, stride=2, downsample="maxpool"),))
    branch = plan(g).stages[0][1][0][1].branch
    assert branch[-1][0] == "pool"
    assert all(layer.stride == (1, 1) for layer in _convs(branch).values())


def test_pre_activation_puts_one_act_before_each_unit():
    g = Genotype(stages=(Stage(width=32, units=3, act_order="pre"),))
    block = plan(g).stages[0][1][0][1]
    names = [n for n, _ in block.branch]
    assert names[0] == "act1" and "act2" in names and "act3" in names
    assert block.after == ()
