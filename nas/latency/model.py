"""A latency model in the nn-Meter / FBNet lookup-table style: each piece of a network (stem,
block, head) timed once per device, runtime and batch into a table in the user's cache; a
network's latency predicted, without building it, as the sum of its pieces' rows plus one row
of call overhead.

How a piece becomes a row is the table's protocol. By default (`conv:cold`) the piece is timed
after a depthwise conv that makes its input, and that conv's own time is taken out: the piece
meets its input in the layout and cache state a layer leaves it, and the runtime's per-call cost
cancels (a network pays it once: the overhead row, an empty network's time). Before every timed
run the CPU's private caches are overwritten, as a network's other layers overwrite them between
two runs of one piece. Rows are timed in interleaved rounds (nas.latency.measure.time_runs),
every piece of a build in turn, the lowest round median kept. So a prediction is exactly the
sum of its table rows. A block is timed whole, so what a runtime fuses inside it is in its row;
what it fuses across blocks is not (benchmarks/latency_model.py measures that residual, and
compares the protocols).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.arch.genotype import Genotype
from nas.arch.plan import Plan
from nas.latency.measure import time_runs
from nas.latency.pieces import (
    CONTEXT,
    OVERHEAD,
    Piece,
    after_context,
    context_piece,
    overhead_piece,
    pieces,
)
from nas.latency.runtimes import Unavailable, runner
from nas.latency.settings import RUNTIMES, LatencyConfig, LatencyError
from nas.latency.table import Table, default_table_dir, fingerprint, open_table
from nas.train.device import cpu_threads

# Pieces timed together, interleaved: a batch's runners are held at once, and an interrupted
# build loses at most one batch (a few seconds on a CPU).
CHUNK = 256
# Overwritten before a cold run: above the private L2 of current x86 server cores (0.5-2 MiB;
# 512 KiB on the AMD EPYC this was measured on), well below their shared L3.
FLUSH_BYTES = 4 * 2**20
# Rows and networks are short (0.05-5 ms): many short rounds over every piece of a build spread
# each over the seconds-long bursts of interference a shared machine has, and the lowest round
# median keeps a quiet one (on a 2-core VM round speeds varied 1.0-1.8x; of 5, 10, 20 and 40
# rounds, 40 of 3 runs repeated best).
DEFAULT_CONFIG = LatencyConfig(repeats=3, rounds=40)
Progress = Callable[[int, int], None]  # (rows measured, rows to measure)


@dataclass(frozen=True)
class Protocol:
    """How a piece is timed into its row: after a context conv ("conv") or alone ("none"), the
    reference (that conv, or an empty network) taken out; caches "cold" or "warm"."""

    context: str = "conv"
    cache: str = "cold"

    @property
    def name(self) -> str:
        """'conv:cold'."""
        return f"{self.context}:{self.cache}"

    @classmethod
    def parse(cls, text: str) -> Protocol:
        """'conv:cold' -> Protocol('conv', 'cold'); a one-line LatencyError otherwise."""
        context, _, cache = text.partition(":")
        if context not in ("conv", "none") or cache not in ("cold", "warm"):
            raise LatencyError(f"{text!r}: a protocol is CONTEXT:CACHE, context conv or none,"
                               " cache cold or warm (e.g. conv:cold)")
        return cls(context, cache)


DEFAULT_PROTOCOL = Protocol()


class LatencyModel:
    """The table of one runtime and batch on this device, measured lazily: the rows a network
    lacks when it is predicted are timed then and saved (an interrupted build resumes)."""

    def __init__(self, runtime: str, batch: int = 1, config: LatencyConfig = DEFAULT_CONFIG,
                 folder: Path | None = None, device: torch.device | str = "cpu",
                 protocol: Protocol = DEFAULT_PROTOCOL):
        if runtime not in RUNTIMES:
            raise LatencyError(f"unknown runtime {runtime!r} (allowed: {', '.join(RUNTIMES)})")
        if batch < 1:
            raise LatencyError(f"batch {batch}: must be >= 1")
        Protocol.parse(protocol.name)  # the same check for a Protocol built by hand
        self.runtime, self.batch, self.config, self.protocol = runtime, batch, config, protocol
        self.device = torch.device(device)
        # how rows were timed is part of the table: other settings build another file
        identity = fingerprint(runtime, config.threads, self.device) | {
            "protocol": protocol.name,
            "timing": f"{config.rounds} rounds x {config.repeats} runs, {config.warmup} warm-up"}
        self.table: Table = open_table(Path(folder) if folder else default_table_dir(), runtime,
                                       batch, identity)
        self._flush = np.zeros(FLUSH_BYTES // 8) if protocol.cache == "cold" else None

    def rows(self, net: Genotype | Plan) -> list[tuple[Piece, float]]:
        """Each piece of the network with its row's milliseconds, measuring missing rows."""
        found = pieces(net)
        self.ensure([net])
        return [(piece, self.table.ms(piece.key)) for piece in found]

    def predict(self, net: Genotype | Plan) -> float:
        """Predicted milliseconds of one forward pass of a batch: the sum of the rows."""
        return math.fsum(ms for _, ms in self.rows(net))

    def missing(self, nets: Iterable[Genotype | Plan]) -> list[Piece]:
        """The pieces of these networks without a row, each once, in network order."""
        todo: dict[str, Piece] = {}
        for net in nets:
            for piece in pieces(net):
                if piece.key not in self.table.rows:
                    todo.setdefault(piece.key, piece)
        return list(todo.values())

    def ensure(self, nets: Iterable[Genotype | Plan], log: Progress | None = None) -> int:
        """Measure every missing row of these networks; the number measured. Rows are timed in
        batches of CHUNK pieces, interleaved (see time_runs), and saved after each batch and on
        the way out (Ctrl-C included): a rerun measures only the rest."""
        todo = self.missing(nets)
        if not todo:
            return 0
        since = time.monotonic()
        try:
            with cpu_threads(self.config.threads):
                for done in range(0, len(todo), CHUNK):
                    self._measure(todo[done:done + CHUNK])
                    since = self._save(since)
                    if log is not None:
                        log(min(done + CHUNK, len(todo)), len(todo))
        finally:
            self._save(since)
        return len(todo)

    def _save(self, since: float) -> float:
        """Add the time since `since` to the table's build time and write it; now."""
        now = time.monotonic()
        self.table.build_s += now - since
        self.table.save()
        return now

    def _reference(self, piece: Piece) -> Piece | None:
        """What a piece is timed after and less (a context conv or an empty network), or None
        for a reference and the overhead row, which are timed alone."""
        if piece.kind in (OVERHEAD, CONTEXT):
            return None
        use = self.protocol.context == "conv"
        return (context_piece if use else overhead_piece)(piece.input_shape)

    def _measure(self, todo: list[Piece]) -> None:
        """Time these pieces into their rows in one interleaved run, each less its reference's
        row (a reference not yet in the table is timed alongside, alone)."""
        alone = {r.key: r for p in todo if (r := self._reference(p)) is not None
                 and r.key not in self.table.rows}
        timed = {piece.key: piece for piece in [*alone.values(), *todo]}
        references = {key: self._reference(piece) for key, piece in timed.items()}
        after = self.protocol.context == "conv"
        modules = {key: (after_context(piece) if references[key] is not None and after
                         else piece.make()) for key, piece in timed.items()}
        timings = self._time(modules, {key: piece.input_shape for key, piece in timed.items()})
        when = datetime.now(UTC).isoformat(timespec="seconds")
        # references first: a piece's row takes its reference's out
        for key in sorted(timed, key=lambda k: references[k] is not None):
            piece, timing, reference = timed[key], timings[key], references[key]
            reference_ms = 0.0 if reference is None else self.table.rows[reference.key][
                "median_ms"]
            self.table.rows[key] = {
                "ms": timing.median_ms - reference_ms,
                "median_ms": timing.median_ms, "p90_ms": timing.p90_ms,
                "reference_ms": reference_ms, "runs": timing.runs, "kind": piece.kind,
                "measured": when}

    def _time(self, modules: dict[str, nn.Module], shapes: dict[str, tuple[int, ...]]):
        """The runtime's timings of these modules (eval mode) at this batch, interleaved."""
        runs = {}
        for key, module in modules.items():
            try:
                prepared = runner(self.runtime, module.eval(), shapes[key], self.config.threads,
                                  self.device)
            except Unavailable as why:
                raise LatencyError(f"latency table for {self.runtime}: {why}") from None
            self.table.choice = prepared.choice
            runs[key] = prepared.make(self.batch)
        flush = self._flush
        return time_runs(runs, max(self.config.warmup, 1), self.config.repeats,
                         self.config.rounds,
                         before=None if flush is None else lambda: np.add(flush, 1.0, out=flush))


def check_runtime(runtime: str, config: LatencyConfig = DEFAULT_CONFIG,
                  device: torch.device | str = "cpu") -> None:
    """A one-line LatencyError when this machine cannot run `runtime` (bf16 without native
    support, ONNX Runtime not installed, ...): said before a long job, not after it."""
    try:
        runner(runtime, nn.Conv2d(1, 1, 1).eval(), (1, 4, 4), config.threads, torch.device(device))
    except Unavailable as why:
        raise LatencyError(f"latency table for {runtime}: {why}") from None


def predict(net: Genotype | Plan, runtime: str = "torch", batch: int = 1, *,
            config: LatencyConfig = DEFAULT_CONFIG, folder: Path | None = None,
            device: torch.device | str = "cpu", protocol: Protocol = DEFAULT_PROTOCOL) -> float:
    """Predicted milliseconds of one forward pass of `batch` images of the genotype or plan on
    `runtime` here, from the cached table (rows it lacks are measured first)."""
    return LatencyModel(runtime, batch, config, folder, device, protocol).predict(net)
