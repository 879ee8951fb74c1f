"""The per-layer profile: costs match the analytic MACs, backward time lands on its layer."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks import roofline, step_profile
from benchmarks.conv_levers import LEVERS, micro_batched
from benchmarks.layer_cost import recording_costs
from benchmarks.roofline import Roof
from nas.arch.cost import cost
from nas.arch.genotype import Genotype, Stage
from nas.arch.model import build
from nas.data import ImageSet, Splits
from nas.train.config import TrainConfig
from nas.train.trainer import Trainer

ARCH = Genotype(stages=(Stage(kind="spectrum", width=16, groups=4, units=2),
                        Stage(kind="spectrum", width=32, groups=32, stride=2)), resolution=16)
ROOF = Roof(threads=1, dtype="float32", gflops=50.0, dram_gbs=10.0, cache_gbs=30.0,
            cache_bytes=32 * 2**20)


def tiny_splits(n: int = 16) -> Splits:
    """Random uint8 images: the profile needs shapes, not CIFAR."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    train = ImageSet(images, torch.arange(n) % 10, tuple(str(i) for i in range(10)))
    empty = ImageSet(images[:0], train.labels[:0], train.classes)
    return Splits(train=train, val=empty, test=None, mean=(0.5,) * 3, std=(0.25,) * 3)


def tiny_trainer() -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=8, warmup_epochs=0, device="cpu", precision="fp32",
                      cpu_threads=1)
    return Trainer(build(ARCH), tiny_splits(), cfg)


def test_layer_costs_add_up_to_the_analytic_macs():
    model = build(ARCH).train()
    x = torch.randn(4, 3, 16, 16)
    with recording_costs(model) as costs:
        model(x)
    convs = {name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    # 2 FLOPs per MAC forward, twice that backward; the stem's input needs no gradient
    macs = sum(c.flops / (4 if name == "stem.conv1" else 6)
               for name, c in costs.items() if name in convs)
    assert macs == 4 * cost(ARCH).macs
    assert all(c.bytes > 0 for c in costs.values())
    assert costs["s1.b1.conv_dw1"].op.startswith("conv 3x3 32->32 g4")  # stem width 32


def test_profile_attributes_backward_time_to_the_layers():
    layers, step_s = step_profile.profile_trainer(tiny_trainer(), steps=2, warmup=1)
    rows = {r.cost.name: r for r in layers}
    assert step_s > 0
    convs = [r for name, r in rows.items() if ".conv" in name]
    assert convs and all(r.forward_s > 0 and r.backward_s > 0 for r in convs)
    # everything the backward ran was matched to a forward op's layer
    other = rows.get(step_profile.OTHER)
    assert other is None or other.backward_s < 0.5 * sum(r.backward_s for r in convs)
    assert rows["optimizer"].forward_s > 0


def test_report_prints_the_columns_and_the_roofline_verdict():
    layers, step_s = step_profile.profile_trainer(tiny_trainer(), steps=1, warmup=1)
    text = step_profile.report(layers, ROOF, step_s)
    for column in ("fwd ms", "bwd ms", "MFLOP", "MB", "FLOP/B", "GFLOP/s", "GB/s", "roof ms",
                   "roof %", "bound"):
        assert column in text.splitlines()[0]
    assert "s1.b1.conv_dw1" in text and "within 20 % of their roofline bound" in text


def test_roof_bound_uses_cache_bandwidth_for_small_working_sets():
    assert ROOF.bound_seconds(0, 30e9, working_set=1e6) == 1.0
    assert ROOF.bound_seconds(0, 10e9, working_set=1e9) == 1.0
    assert ROOF.bound_by(100e9, 1e9, 1e9) == "compute"
    assert "GFLOP/s" in ROOF.line()


def test_machine_peaks_are_measured_positive():
    assert roofline.gemm_gflops(torch.float32, side=64, repeats=1) > 0
    assert roofline.triad_gbs(2**20, repeats=1) > 0
    assert roofline.last_level_cache_bytes() > 0


def test_levers_keep_the_counted_work():
    def conv_flops(model: nn.Module) -> float:
        with recording_costs(model.train()) as costs:
            model(torch.randn(6, 3, 16, 16))
        return sum(c.flops for c in costs.values() if c.kind.startswith("conv"))

    torch.manual_seed(0)
    base = conv_flops(build(ARCH))
    for lever in ("micro-batch-32", "pointwise-matmul", "grouped-nchw"):
        torch.manual_seed(0)
        assert conv_flops(LEVERS[lever](build(ARCH))) == base
    torch.manual_seed(0)
    assert conv_flops(micro_batched(build(ARCH), 4)) == base  # slices 4 + 2 add up
