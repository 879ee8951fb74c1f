"""The supernet: sliced kernels are real grouped convs, every path is its stand-alone network."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from nas.arch.cost import cost
from nas.arch.genotype import divisors
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.supernet.model import SuperNet
from nas.supernet.ops import block_diagonal, centre_crop
from nas.supernet.paths import PathSampler, SupernetError, check_supported, enumerate_points
from nas.train.device import resolve_device, resolve_precision
from tests.searchkit import SUPERNET, TINY, variant, write_space


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return load_space(write_space(tmp_path_factory.mktemp("sn"), SUPERNET))


def resolved_precision(space) -> str:
    """The space's precision as a job on this machine resolves it (the trainer takes no 'auto')."""
    return resolve_precision(space.train.precision, resolve_device(space.train.device))


def _randomise(net: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine terms, so a wrongly shared BN would show."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()


@pytest.mark.parametrize("cin,cout", [(12, 12), (8, 24)])
def test_block_diagonal_is_the_grouped_conv_of_the_masked_dense_kernel(cin, cout):
    torch.manual_seed(0)
    dense = torch.randn(cout, cin, 3, 3)
    x = torch.randn(2, cin, 7, 7)
    for g in [d for d in divisors(cin) if cout % d == 0]:
        sliced = block_diagonal(dense, g)
        assert sliced.shape == (cout, cin // g, 3, 3)
        for j in range(g):  # segment j's rows keep exactly segment j's columns
            rows = slice(j * cout // g, (j + 1) * cout // g)
            cols = slice(j * cin // g, (j + 1) * cin // g)
            assert torch.equal(sliced[rows], dense[rows, cols])
        mask = torch.zeros_like(dense)
        for j in range(g):
            mask[j * cout // g:(j + 1) * cout // g, j * cin // g:(j + 1) * cin // g] = 1
        grouped = F.conv2d(x, sliced, padding=1, groups=g)
        assert (grouped - F.conv2d(x, dense * mask, padding=1)).abs().max() <= 1e-5


def test_centre_crop_is_the_superkernel_with_its_ring_zeroed():
    torch.manual_seed(0)
    big = torch.randn(4, 4, 5, 5)
    x = torch.randn(1, 4, 9, 9)
    ring = torch.zeros_like(big)
    ring[..., 1:4, 1:4] = 1
    small = centre_crop(big, 3)
    assert torch.equal(small, big[..., 1:4, 1:4])
    assert (F.conv2d(x, small, padding=1) - F.conv2d(x, big * ring, padding=2)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="centre"):
        centre_crop(big, 7)


def test_every_path_equals_its_standalone_network_with_the_sliced_weights(space):
    torch.manual_seed(0)
    net = SuperNet(space)
    _randomise(net)
    net.eval()
    x = torch.randn(3, 3, 32, 32)
    points = enumerate_points(space)
    assert len(points) == 64
    for params in points:
        arch = genotype(space, params)
        net.set_path(arch)
        standalone = net.extract(arch).eval()
        with torch.no_grad():
            assert (net(x) - standalone(x)).abs().max() <= 1e-5, params


class CostCounter(TorchFunctionMode):
    """Counts the weights each conv / linear / BN call really uses, and its multiply-adds."""

    def __init__(self):
        super().__init__()
        self.params = self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.conv2d:
            weight = args[1]
            self.params += weight.numel()
            self.macs += weight.numel() * out.shape[-2] * out.shape[-1]
        elif func is F.linear:
            self.params += args[1].numel() + args[2].numel()
            self.macs += args[1].numel()
        elif func is F.batch_norm:
            self.params += kwargs["weight"].numel() + kwargs["bias"].numel() \
                if "weight" in kwargs else args[3].numel() + args[4].numel()
        return out


def test_every_path_computes_exactly_the_analytic_cost(space):
    net = SuperNet(space).eval()
    x = torch.randn(1, 3, 32, 32)
    costs = set()
    for params in enumerate_points(space):
        arch = genotype(space, params)
        net.set_path(arch)
        with torch.no_grad(), CostCounter() as counted:
            net(x)
        expected = cost(arch)
        assert (counted.params, counted.macs) == (expected.params, expected.macs), params
        costs.add(expected.macs)
    assert len(costs) > 8  # the paths really differ (groups, kernels, orders)


def test_the_supernet_holds_one_kernel_per_layer_and_order(space):
    net = SuperNet(space)
    names = {n for n, _ in net.named_parameters()}
    # both op orders have their own weights; the dense kernel has the largest kernel size
    assert "stages.s1.b1.dw_pw.conv_dw1.weight" in names
    assert "stages.s1.b1.pw_dw.conv_dw1.weight" in names
    assert net.stages.s1.b1.dw_pw.conv_dw1.weight.shape == (8, 8, 5, 5)
    # s2's first block changes the width: one projection shortcut, shared by both orders
    assert net.stages.s2.b1.shortcut.conv.weight.shape == (16, 8, 1, 1)
    assert not any(".shortcut." in n for n in names if n.startswith("stages.s1."))


def test_sandwich_steps_train_the_smallest_and_largest_and_uniform_points(space):
    sampler = PathSampler(space, seed=0)
    macs = [cost(genotype(space, p)).macs for p in enumerate_points(space)]
    assert cost(sampler.largest).macs == max(macs)
    assert cost(sampler.smallest).macs == min(macs)
    step = sampler.step()
    assert step[:2] == [sampler.largest, sampler.smallest] and len(step) == 3
    assert len(PathSampler(space, seed=0, sandwich=False, uniform=2).step()) == 2
    orders = [sampler.sample().stages[0].order for _ in range(400)]
    assert 150 < orders.count("pw_dw") < 250  # uniform over the choices


def test_unshareable_spaces_are_one_line_errors(tmp_path):
    inception = variant(TINY, blocks={"kind": ["spectrum", "inception"]}, references=None)
    with pytest.raises(SupernetError, match=r"'inception'.*stand-alone"):
        check_supported(load_space(write_space(tmp_path, inception, "a.toml")))
    widths = variant(TINY, macro={"widths": [[8, 16], 16]})
    with pytest.raises(SupernetError, match=r"\[macro\] s1_width is searched"):
        check_supported(load_space(write_space(tmp_path, widths, "b.toml")))


class Interrupt(Exception):
    """Stands for Ctrl-C after an epoch's checkpoint."""


def test_a_step_updates_only_the_weights_its_paths_use(space, cifar_dir):
    """Uniform paths without the sandwich: a weight first used on a later step trains then
    (torch's fused SGD alone fails there), and an unused one does not move."""
    import dataclasses

    from nas.data import load_splits
    from nas.supernet.train import SupernetTrainer

    splits = load_splits(dataclasses.replace(space.data, train_size=100, val_size=50), cifar_dir)
    cfg = dataclasses.replace(space.train, epochs=1, batch_size=50, cpu_threads=1,
                              precision=resolved_precision(space))
    points = enumerate_points(space)
    first = genotype(space, points[0])
    other = next(genotype(space, p) for p in points
                 if genotype(space, p).stages[0].order != first.stages[0].order)
    torch.manual_seed(0)
    net = SuperNet(space)
    trainer = SupernetTrainer(net, space, splits, cfg, sandwich=False)
    weight = {o: net.stages.s1.b1[o].conv_pw1.weight for o in ("dw_pw", "pw_dw")}
    used, unused = first.stages[0].order, other.stages[0].order
    x, y = next(iter(trainer.train_batches))
    for arch, moved, still in ((first, used, unused), (other, unused, used)):
        trainer.sampler.step = lambda arch=arch: [arch]
        before = {o: w.detach().clone() for o, w in weight.items()}
        trainer.train_step(x, y)
        assert not torch.equal(weight[moved], before[moved])
        assert torch.equal(weight[still], before[still])


def _interrupt(report):
    raise Interrupt


@pytest.mark.slow
def test_sandwich_training_is_resumable_exactly(space, cifar_dir, tmp_path):
    import dataclasses

    from nas.data import load_splits
    from nas.supernet.train import train_supernet

    splits = load_splits(dataclasses.replace(space.data, train_size=200, val_size=100), cifar_dir)
    cfg = dataclasses.replace(space.train, epochs=2, batch_size=50, cpu_threads=1,
                              precision=resolved_precision(space))
    torch.manual_seed(0)
    straight = SuperNet(space)
    history = train_supernet(straight, space, splits, cfg, tmp_path / "a")
    torch.manual_seed(0)
    with pytest.raises(Interrupt):
        train_supernet(SuperNet(space), space, splits, cfg, tmp_path / "b", log=_interrupt)
    state = torch.load(tmp_path / "b" / "trainer.pt", weights_only=True)
    assert len(state["history"]) == 1
    torch.manual_seed(5)  # a different init: the checkpoint must override it
    resumed = SuperNet(space)
    again = train_supernet(resumed, space, splits, cfg, tmp_path / "b")
    assert [r.train_loss for r in again] == [r.train_loss for r in history]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert all(math.isfinite(r.train_loss) for r in history)
