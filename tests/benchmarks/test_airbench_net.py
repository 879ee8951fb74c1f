"""airbench94's network as written here: its size, its Dirac start, its whitened stem."""

import torch
import torch.nn.functional as F

from benchmarks.airbench_net import WHITEN_EPS, Conv, airbench_net, patch_whitening, whiten


def test_the_network_has_airbench94s_size_and_output():
    net = airbench_net()
    stem = 3 * 24 * 2 * 2 + 24
    groups = sum(c_in * c_out * 9 + c_out * c_out * 9 + 4 * c_out  # 2 convs, 2 BNs
                 for c_in, c_out in ((24, 64), (64, 256), (256, 256)))
    assert sum(p.numel() for p in net.parameters()) == stem + groups + 256 * 10 == 1_972_792
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_conv_starts_as_the_identity_on_its_input_channels():
    conv = Conv(8, 16)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(conv(x)[:, :8], x)


def test_the_stem_whitens_the_patches_it_was_fitted_on():
    g = torch.Generator().manual_seed(0)
    # correlated channels and neighbours, like natural images: smoothed, mixed noise
    base = F.avg_pool2d(torch.randn(400, 3, 18, 18, generator=g), 3, 1)
    images = torch.einsum("ij,njhw->nihw", torch.tensor(
        [[1.0, 0.8, 0.6], [0.0, 0.6, 0.7], [0.0, 0.0, 0.4]]), base) * 3
    filters = patch_whitening(images)
    assert filters.shape == (24, 3, 2, 2) and torch.equal(filters[12:], -filters[:12])
    out = F.conv2d(images, filters[:12]).permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = torch.cov(out.T)
    values = torch.linalg.eigvalsh(torch.cov(images.unfold(2, 2, 1).unfold(3, 2, 1).permute(
        0, 2, 3, 1, 4, 5).reshape(-1, 12).double().T))
    # each output's variance is λ / (λ + eps): 1 where the patch variance dwarfs eps
    assert torch.allclose(torch.diag(cov).sort().values, (values / (values + WHITEN_EPS)),
                          atol=1e-3)
    assert (cov - torch.diag(torch.diag(cov))).abs().max() < 1e-3  # decorrelated
    net = airbench_net()
    whiten(net, images)
    assert torch.equal(net[0].weight, filters) and not net[0].weight.requires_grad
    assert net[0].bias.requires_grad
