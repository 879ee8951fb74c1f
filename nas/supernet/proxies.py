"""Zero-cost proxies: a score of an untrained network from one batch (baselines and a ranking).

Written here from the papers' definitions, each summed over the conv and linear weights as
Abdelfattah et al. 2021 ("Zero-Cost Proxies for Lightweight NAS") aggregate them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PROXIES = ("synflow", "naswot", "grad_norm", "snip")


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """The conv and linear weights: what the proxies score."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the cross-entropy of one batch w.r.t. the scored weights."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return [w.grad if w.grad is not None else torch.zeros_like(w) for w in _weights(model)]


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over layers of the L2 norm of the loss gradient (Abdelfattah et al. 2021)."""
    return float(sum(g.norm() for g in _loss_grads(model, x, y)))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Connection sensitivity |dL/dc * c| at c = 1, i.e. sum |w * dL/dw| (Lee et al. 2019)."""
    grads = _loss_grads(model, x, y)
    return float(sum((w.detach() * g).abs().sum()
                     for w, g in zip(_weights(model), grads, strict=True)))


@torch.no_grad()
def _abs_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Replace every parameter by its absolute value; return the originals."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.abs_()
    return saved


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """Synaptic flow sum of w * dR/dw, R = 1^T f_|w|(1): the network with absolute weights on an
    all-ones input, in double precision, BN at its running statistics (Tanaka et al. 2020)."""
    was_training = model.training
    saved = _abs_params(model)
    model.double().eval()
    try:
        model.zero_grad(set_to_none=True)
        model(torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)).sum().backward()
        flows = [(w.detach() * w.grad).sum() for w in _weights(model) if w.grad is not None]
        return float(sum(flows))
    finally:
        model.float().train(was_training)
        model.load_state_dict(saved)


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """log |det K| of the batch's binary ReLU codes, K_ij = N_A - Hamming(c_i, c_j)
    (Mellor et al. 2021, "Neural Architecture Search without Training")."""
    codes: list[torch.Tensor] = []

    def record(module, inputs, output):
        codes.append((inputs[0] > 0).flatten(1).double())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not codes:
        raise ValueError("naswot needs ReLU units: the network has none")
    c = torch.cat(codes, dim=1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T  # agreements = N_A - Hamming distance
    return float(torch.linalg.slogdet(kernel)[1])


FUNCTIONS = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm, "snip": snip}


def proxy(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One proxy by name on an untrained model (train mode for the gradient ones)."""
    model.train()
    return FUNCTIONS[name](model, x, y)
