"""Zero-cost proxies against their papers' definitions, on networks small enough to do by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.arch.model import build
from nas.arch.zoo import preset
from nas.supernet.proxies import grad_norm, naswot, proxy, snip, synflow


def _linear(rows, cin, bias=None) -> nn.Linear:
    layer = nn.Linear(cin, len(rows), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(rows, dtype=torch.float32))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def test_synflow_is_the_flow_of_the_absolute_network_per_layer():
    # |W1| = [[1, 2], [3, .5]], |W2| = [[2, 1]]: on ones, h = [3, 3.5], R = 2*3 + 3.5 = 9.5.
    # Layer 2: sum w * dR/dw = 2*3 + 1*3.5 = 9.5; layer 1: 2*(1+2) + 1*(3+.5) = 9.5.
    net = nn.Sequential(_linear([[1, -2], [3, 0.5]], 2), nn.ReLU(), _linear([[2, -1]], 2))
    assert synflow(net, torch.zeros(5, 2)) == pytest.approx(19.0)
    assert net[0].weight[0, 1].item() == -2.0  # signs restored
    assert net[0].weight.dtype == torch.float32


def test_naswot_is_the_log_determinant_of_the_code_agreement_kernel():
    # Codes: x1 = [1, 1] -> pre-acts [1, 1, .5] -> 111; x2 = [1, -1] -> [1, -1, -1.5] -> 100.
    # N_A = 3, Hamming 2: K = [[3, 1], [1, 3]], det 8.
    net = nn.Sequential(_linear([[1, 0], [0, 1], [1, 1]], 2, bias=[0, 0, -1.5]), nn.ReLU())
    assert naswot(net, torch.tensor([[1.0, 1.0], [1.0, -1.0]])) == pytest.approx(math.log(8))


def test_grad_norm_and_snip_from_the_softmax_gradient():
    # logits = W x = [1, 3]; dL/dlogits = p - e_0 = [-p1, p1], p1 = e^2 / (1 + e^2);
    # dL/dW = [[-p1, 0], [p1, 0]]: norm sqrt(2) p1, snip |1 * -p1| + |3 * p1| = 4 p1.
    p1 = math.exp(2) / (1 + math.exp(2))
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    net = _linear([[1, 2], [3, 4]], 2)
    assert grad_norm(net, x, y) == pytest.approx(math.sqrt(2) * p1, rel=1e-5)
    assert snip(net, x, y) == pytest.approx(4 * p1, rel=1e-5)


def test_proxies_run_on_a_spectrum_network_and_tell_points_apart():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    scores = {}
    for name in ("regular", "separable"):
        torch.manual_seed(0)
        net = build(preset(name, width=8, depth=1, units=1))
        scores[name] = [proxy(p, net, x, y) for p in ("synflow", "naswot", "grad_norm", "snip")]
    assert all(math.isfinite(v) for v in scores["regular"] + scores["separable"])
    assert scores["regular"][0] != scores["separable"][0]
