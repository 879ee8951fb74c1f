"""Training memory estimated on paper from the layer plan: weights, gradients, optimizer state,
and the activations a training step keeps for backward.

    bytes = P * (4 weights + 4 gradients + 4 * state) * models     (fp32 master copies)
          + P * 2                                                  (bf16: autocast's weight cast)
          + B * (A + 2 * L) * v                                    (activations, one step)

P: trainable parameters; state: 1 (SGD's momentum) or 2 (AdamW's moments); models: the seeds a
trial trains side by side; B: the batch size; A: values per image of the tensors autograd keeps
for backward, each counted once (a conv, BatchNorm, linear, max-pool, SiLU or GELU keeps its
input, a ReLU or ELU its output, a max-pool its int64 indices as 2 values, dropout a byte mask);
L: the largest tensor the forward pass creates (its gradient and the one flowing beside it while
backward runs); v: 4 bytes (fp32) or 2 (bf16 autocast). B * A * v matches the bytes torch's
saved-tensor hooks see to within 1% (tests/arch/test_memory.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch.cost import Shape, cost, layer_cost
from nas.arch.genotype import Genotype
from nas.arch.plan import (
    Activation,
    Chain,
    Concat,
    Conv,
    Dropout,
    GlobalPool,
    Linear,
    Norm,
    Pool,
    Seq,
    plan,
)

STATE_COPIES = {"sgd": 1, "adamw": 2}  # optimizer tensors per parameter
VALUE_BYTES = {"fp32": 4, "bf16": 2}


def _size(shape: Shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


@dataclass
class _Tally:
    """Values per image kept for backward so far, and the largest tensor seen."""

    kept: int = 0
    largest: int = 0


def _saves_input(layer) -> bool:
    """Whether backward needs the layer's input (ReLU and ELU keep their output instead)."""
    match layer:
        case Conv() | Norm() | Linear() | Pool():
            return True
        case Activation():
            return layer.kind not in ("relu", "elu")
        case GlobalPool():
            return layer.kind == "max"
    return False


def _layer(layer, shape: Shape, kept: bool, tally: _Tally) -> tuple[Shape, bool, bool]:
    """Walk one layer on an input of `shape` (`kept`: already counted); return the output shape,
    whether the output is counted, whether the input is now counted."""
    match layer:
        case Chain():
            return _seq(layer.layers, shape, kept, tally)
        case Concat():
            outs = []
            for _, chain in layer.branches:
                out, _, kept = _seq(chain.layers, shape, kept, tally)
                outs.append(out)
            out = (sum(o[0] for o in outs), *outs[0][1:])
            tally.largest = max(tally.largest, _size(out))
            return out, False, kept
    _, out = layer_cost(layer, shape)
    if _saves_input(layer) and not kept:
        tally.kept += _size(shape)
        kept = True
    if isinstance(layer, Pool):
        tally.kept += 2 * _size(out)  # int64 indices
    elif isinstance(layer, Dropout):
        tally.kept += _size(out) // 4  # a byte mask
    tally.largest = max(tally.largest, _size(out))
    saves_output = isinstance(layer, Activation) and not _saves_input(layer)
    if saves_output:
        tally.kept += _size(out)
    return out, saves_output, kept


def _seq(layers: Seq, shape: Shape, kept: bool, tally: _Tally) -> tuple[Shape, bool, bool]:
    """Walk named layers in order: (output shape, output counted, input counted)."""
    input_kept, first = kept, True
    for _, layer in layers:
        shape, out_kept, in_kept = _layer(layer, shape, kept, tally)
        if first:
            input_kept, first = in_kept, False
        kept = out_kept
    return shape, kept, input_kept if not first else kept


def activation_values(genotype: Genotype) -> tuple[int, int]:
    """(A, L) per image: values of the tensors a forward pass keeps for backward, each counted
    once, and the largest tensor it creates."""
    net = plan(genotype)
    tally = _Tally()
    shape: Shape = (net.in_channels, net.resolution, net.resolution)
    shape, kept, _ = _seq(net.stem, shape, False, tally)
    for _, blocks in net.stages:
        for _, block in blocks:
            out, _, x_kept = _seq(block.branch, shape, kept, tally)
            if block.shortcut:
                _seq(block.shortcut, shape, x_kept, tally)
            shape, kept, _ = _seq(block.after, out, False, tally)  # the sum is a new tensor
            tally.largest = max(tally.largest, _size(shape))
    _seq(net.head, shape, kept, tally)
    return tally.kept, tally.largest


def training_bytes(genotype: Genotype, batch_size: int, precision: str = "fp32",
                   optimizer: str = "sgd", models: int = 1) -> int:
    """Estimated peak memory of training the network one step at a time (formula above)."""
    params = cost(genotype).params
    value = VALUE_BYTES[precision]
    states = params * 4 * (2 + STATE_COPIES[optimizer]) * models
    cast = params * 2 if precision == "bf16" else 0
    kept, largest = activation_values(genotype)
    return states + cast + batch_size * (kept + 2 * largest) * value
