"""A plan cut into the pieces the latency table times: stem, each block, head, and the network's
own call overhead; each keyed by its layers and input shape, so equal pieces share a row."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nas.arch.cost import Shape, seq_cost
from nas.arch.genotype import Genotype
from nas.arch.model import Network, SpectrumBlock, make_sequential
from nas.arch.plan import Block, Chain, Concat, Plan, Seq, plan

OVERHEAD = "overhead"  # the kind of the row every network has once
CONTEXT = "context"  # the kind of a reference row: what a piece is timed after, then less


@dataclass(frozen=True)
class Piece:
    """One timed unit of a network: its table key, where it sits, and how to build it."""

    # stable JSON of the kind, the input shape and the layers (names left out); the runtime, batch
    # and machine are the table's own (one file each), so they are not repeated in every key
    key: str
    kind: str  # "stem", "block", "head", OVERHEAD, or CONTEXT (a reference, in no network)
    where: str  # "stem", "s2.b1", "head", OVERHEAD: for reports only, not part of the key
    input_shape: Shape  # one image's (C, H, W)
    make: Callable[[], nn.Module]


def layer_json(layer) -> list:
    """A planned layer as ['conv', {fields}] (Chain and Concat nest their parts); the names a
    plan gives its layers are left out: they do not change what runs."""
    kind = type(layer).__name__.lower()
    if isinstance(layer, Chain):
        return [kind, seq_json(layer.layers)]
    if isinstance(layer, Concat):
        return [kind, [seq_json(chain.layers) for _, chain in layer.branches]]
    return [kind, {f.name: _plain(getattr(layer, f.name)) for f in dataclasses.fields(layer)}]


def seq_json(layers: Seq) -> list:
    """Named layers in order, as a list of layer_json."""
    return [layer_json(layer) for _, layer in layers]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def piece_key(kind: str, input_shape: Shape, body: dict | None = None) -> str:
    """The row key: compact JSON with sorted keys, the same in every process and version."""
    return json.dumps({"piece": kind, "input": list(input_shape), **(body or {})},
                      sort_keys=True, separators=(",", ":"))


def block_body(block: Block) -> dict:
    """What a block computes: branch, shortcut (None: no residual, []: identity), after."""
    return {"branch": seq_json(block.branch),
            "shortcut": None if block.shortcut is None else seq_json(block.shortcut),
            "after": seq_json(block.after)}


def as_plan(net: Genotype | Plan) -> Plan:
    """A plan from a genotype (validated) or a plan as given."""
    return net if isinstance(net, Plan) else plan(net)


def pieces(net: Genotype | Plan) -> list[Piece]:
    """The network's overhead, stem, blocks in order and head (empty stem or head left out)."""
    net = as_plan(net)
    shape: Shape = (net.in_channels, net.resolution, net.resolution)
    found = [overhead_piece(shape)]
    if net.stem:
        found.append(_seq_piece("stem", "stem", net.stem, shape))
        shape = seq_cost(net.stem, shape)[1]
    for stage, blocks in net.stages:
        for name, block in blocks:
            found.append(Piece(piece_key("block", shape, block_body(block)), "block",
                               f"{stage}.{name}", shape,
                               lambda block=block: SpectrumBlock(block)))
            shape = seq_cost(block.branch, shape)[1]  # `after` is elementwise
    if net.head:
        found.append(_seq_piece("head", "head", net.head, shape))
    return found


def overhead_piece(shape: Shape) -> Piece:
    """An empty network on an input of `shape`: what running any network costs beyond its
    layers (the runtime's call, the network's own forward), timed on its own."""
    empty = Plan((), (), (), shape[0], shape[-1])
    return Piece(piece_key(OVERHEAD, shape), OVERHEAD, OVERHEAD, shape, lambda: Network(empty))


def context_piece(shape: Shape) -> Piece:
    """A depthwise 3x3 conv from `shape` to itself: timed before a piece so that the piece
    takes its input from a layer, in the layout and cache state a layer leaves it, as inside a
    network (ONNX Runtime keeps a run of convs in its blocked layout: a piece alone pays the
    reorders in and out that a network pays once)."""
    channels = shape[0]
    return Piece(piece_key(CONTEXT, shape), CONTEXT, CONTEXT, shape,
                 lambda: nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False))


def after_context(piece: Piece) -> nn.Module:
    """The context conv, then the piece: one module, timed as one."""
    return nn.Sequential(context_piece(piece.input_shape).make(), piece.make())


def _seq_piece(kind: str, where: str, layers: Seq, shape: Shape) -> Piece:
    return Piece(piece_key(kind, shape, {"layers": seq_json(layers)}), kind, where, shape,
                 lambda: make_sequential(layers))
