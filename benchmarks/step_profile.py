"""Per-layer profile of one training step against the machine's roofline (torch.profiler).

Every module's forward runs inside a `record_function` range named after it; each backward
function the autograd engine runs is attributed to the layer whose forward op created it (the
profiler's sequence numbers link the two). A layer's time is the fastest of the profiled steps
(the least disturbed on a shared machine); its FLOPs and compulsory bytes come from
`layer_cost`, its bound from `roofline`: `roof %` = bound / measured time, so 100 % is a layer
running at the roof and 20 % one five times slower than the roof allows.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

from benchmarks.layer_cost import LayerCost, optimizer_cost, recording_costs
from benchmarks.roofline import Roof, measure_roof
from nas.data import Splits
from nas.train.config import TrainConfig
from nas.train.device import cpu_threads
from nas.train.trainer import Trainer

LAYER = "layer::"
STEP = "step::"
BACKWARD = "autograd::engine::evaluate_function: "
OPTIMIZER = "Optimizer."  # torch.optim's own record_function ranges
OTHER = "loss and other"
ACCUMULATE = "autograd: gradient accumulation"


@dataclass(frozen=True)
class LayerTime:
    """One profile row: the layer's cost and its fastest forward and backward seconds."""

    cost: LayerCost
    forward_s: float
    backward_s: float

    @property
    def seconds(self) -> float:
        """Forward plus backward."""
        return self.forward_s + self.backward_s


@contextlib.contextmanager
def annotated(model: nn.Module) -> Iterator[None]:
    """Run every module's forward inside record_function('layer::<name>')."""
    open_ranges: list = []  # a stack: modules nest

    def enter(module, args, name):
        rf = record_function(LAYER + (name or "model"))
        rf.__enter__()
        open_ranges.append(rf)

    def leave(module, args, output):
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda m, a, name=name: enter(m, a, name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _ancestor(event, prefix: str):
    """The nearest enclosing event whose name starts with `prefix` (or None)."""
    while event is not None and not event.name.startswith(prefix):
        event = event.cpu_parent
    return event


def _duration(event) -> float:
    """Seconds an event lasted."""
    return (event.time_range.end - event.time_range.start) / 1e6


def attribute(events) -> dict[int, dict[tuple[str, str], float]]:
    """Step index -> (layer, 'forward' | 'backward') -> seconds, self time of each layer."""
    creator: dict[int, str] = {}  # sequence number -> layer of the forward op that took it
    for e in sorted(events, key=lambda e: e.time_range.start):
        if e.sequence_nr >= 0 and _ancestor(e, BACKWARD) is None:
            owner = _ancestor(e.cpu_parent, LAYER)
            # several ops peek the same number; the last one is the one that created the node
            creator[e.sequence_nr] = owner.name.removeprefix(LAYER) if owner else OTHER
    per_step: dict[int, dict[tuple[str, str], float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        parent = e.cpu_parent
        step = _ancestor(parent, STEP)
        if step is None:
            continue
        times = per_step[int(step.name.removeprefix(STEP))]
        if e.name.startswith(LAYER):
            seconds = _duration(e) - sum(_duration(c) for c in e.cpu_children
                                         if c.name.startswith(LAYER))
            times[(e.name.removeprefix(LAYER), "forward")] += seconds
        elif e.name.startswith(BACKWARD) and parent is step:
            layer = creator.get(e.sequence_nr, ACCUMULATE if e.sequence_nr < 0 else OTHER)
            times[(layer, "backward")] += _duration(e)
        elif e.name.startswith(OPTIMIZER) and parent is step:
            times[("optimizer", "forward")] += _duration(e)
        elif parent is step and not e.name.startswith(LAYER):
            times[(OTHER, "forward")] += _duration(e)
    return per_step


def profile_trainer(trainer: Trainer, steps: int = 5, warmup: int = 3
                    ) -> tuple[list[LayerTime], float]:
    """Profile `steps` training steps on one batch; the layers' rows and the fastest step's
    seconds timed without the profiler."""
    x, y = next(iter(trainer.train_batches))
    model = trainer.model
    with recording_costs(model) as costs:
        trainer.train_step(x, y)
    costs = dict(costs)
    costs["optimizer"] = optimizer_cost(model)
    for _ in range(warmup):
        trainer.train_step(x, y)
    plain = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step(x, y)
        plain = min(plain, time.perf_counter() - start)
    with annotated(model), profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            with record_function(f"{STEP}{i}"):
                trainer.train_step(x, y)
    per_step = attribute(prof.events())
    return rows(per_step, costs), plain


def rows(per_step: dict[int, dict[tuple[str, str], float]],
         costs: dict[str, LayerCost]) -> list[LayerTime]:
    """One row per layer in network order, each phase the fastest over the steps."""
    names = list(costs) + sorted({layer for t in per_step.values() for layer, _ in t}
                                 - set(costs))
    out = []
    for name in names:
        fwd = min(t.get((name, "forward"), 0.0) for t in per_step.values())
        bwd = min(t.get((name, "backward"), 0.0) for t in per_step.values())
        if fwd == bwd == 0.0:
            continue
        cost = costs.get(name) or LayerCost(name, "", "other", 0.0, 0.0, 0.0)
        out.append(LayerTime(cost, fwd, bwd))
    return out


def report(layers: list[LayerTime], roof: Roof, step_s: float, top: float = 0.8) -> str:
    """The profile table, its total against the step, and the slow layers against the roof."""
    total = sum(r.seconds for r in layers)
    head = (f"{'layer':24s} {'op':34s} {'fwd ms':>7s} {'bwd ms':>7s} {'share':>6s}"
            f" {'MFLOP':>8s} {'MB':>7s} {'FLOP/B':>6s} {'GFLOP/s':>7s} {'GB/s':>6s}"
            f" {'roof ms':>7s} {'roof %':>6s} bound")
    lines = [head]
    for r in layers:
        c = r.cost
        bound = roof.bound_seconds(c.flops, c.bytes, c.working_set)
        lines.append(
            f"{c.name[:24]:24s} {c.op[:34]:34s} {r.forward_s * 1e3:7.2f} {r.backward_s * 1e3:7.2f}"
            f" {r.seconds / total:6.1%} {c.flops / 1e6:8.1f} {c.bytes / 1e6:7.1f}"
            f" {c.flops / c.bytes if c.bytes else 0:6.1f} {c.flops / r.seconds / 1e9:7.2f}"
            f" {c.bytes / r.seconds / 1e9:6.2f} {bound * 1e3:7.2f}"
            f" {bound / r.seconds if c.bytes else 0:6.0%}"
            f" {roof.bound_by(c.flops, c.bytes, c.working_set) if c.bytes else '-'}")
    lines.append(f"sum of rows {total * 1e3:.1f} ms; one step without the profiler"
                 f" {step_s * 1e3:.1f} ms (the rows are each layer's fastest step)")
    lines += by_kind(layers, roof)
    lines += slow_layers(layers, roof, top)
    return "\n".join(lines)


def by_kind(layers: list[LayerTime], roof: Roof) -> list[str]:
    """Share of the step and roofline efficiency per kind of layer, largest share first."""
    total = sum(r.seconds for r in layers)
    kinds: dict[str, list[LayerTime]] = defaultdict(list)
    for r in layers:
        kinds[r.cost.kind].append(r)
    lines = [f"{'kind':22s} {'share':>6s} {'ms':>8s} {'roof ms':>8s} {'roof %':>6s}"]
    for kind, rs in sorted(kinds.items(), key=lambda kv: -sum(r.seconds for r in kv[1])):
        seconds = sum(r.seconds for r in rs)
        bound = sum(roof.bound_seconds(r.cost.flops, r.cost.bytes, r.cost.working_set)
                    for r in rs)
        lines.append(f"{kind:22s} {seconds / total:6.1%} {seconds * 1e3:8.1f} {bound * 1e3:8.2f}"
                     f" {bound / seconds if seconds else 0:6.0%}")
    return lines


def slow_layers(layers: list[LayerTime], roof: Roof, top: float) -> list[str]:
    """The fewest layers covering `top` of the time, each against its roof (target: >= 80 %)."""
    total = sum(r.seconds for r in layers)
    covered, picked = 0.0, []
    for r in sorted(layers, key=lambda r: -r.seconds):
        if covered >= top * total:
            break
        picked.append(r)
        covered += r.seconds
    within = [r for r in picked if r.cost.bytes and roof.bound_seconds(
        r.cost.flops, r.cost.bytes, r.cost.working_set) >= 0.8 * r.seconds]
    return [f"the {len(picked)} slowest layers take {covered / total:.0%} of the step; "
            f"{len(within)} of them run within 20 % of their roofline bound: "
            + (", ".join(r.cost.name for r in within) or "none")]



def main(model: nn.Module, splits: Splits, cfg: TrainConfig, steps: int) -> str:
    """Measure the roofline, profile `model`'s training step under `cfg`; both as text."""
    trainer = Trainer(model, splits, cfg)
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    with cpu_threads(cfg.cpu_threads):
        roof = measure_roof(dtype)
        layers, step_s = profile_trainer(trainer, steps)
    return roof.line() + "\n" + report(layers, roof, step_s)
