"""A latency model in the nn-Meter / FBNet lookup-table style: each piece of a network (stem,
block, head) timed once per device, runtime and batch into a table in the user's cache; a
network's latency predicted, without building it, as the sum of its pieces' rows plus one row
of call overhead.

A row is the piece's median time minus that of an empty network on the same input (the
runtime's own call cost, which a whole network pays once, not once per piece); the overhead row
is the empty network's time on the network's input. So a prediction is exactly the sum of its
table rows. A block is timed whole, so what a runtime fuses inside it is in its row; what it
fuses across blocks is not (benchmarks/latency_model.py measures that residual).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import torch

from nas.arch.genotype import Genotype
from nas.arch.plan import Plan
from nas.latency.measure import time_run
from nas.latency.pieces import OVERHEAD, Piece, overhead_piece, pieces
from nas.latency.runtimes import Unavailable, runner
from nas.latency.settings import RUNTIMES, LatencyConfig, LatencyError
from nas.latency.table import Table, default_table_dir, fingerprint, open_table
from nas.train.device import cpu_threads

SAVE_EVERY_S = 5.0  # an interrupted build loses at most this much measuring
DEFAULT = LatencyConfig()  # frozen: one instance serves as every default
Progress = Callable[[int, int], None]  # (rows measured, rows to measure)


class LatencyModel:
    """The table of one runtime and batch on this device, measured lazily: the rows a network
    lacks when it is predicted are timed then and saved (an interrupted build resumes)."""

    def __init__(self, runtime: str, batch: int = 1, config: LatencyConfig = DEFAULT,
                 folder: Path | None = None, device: torch.device | str = "cpu"):
        if runtime not in RUNTIMES:
            raise LatencyError(f"unknown runtime {runtime!r} (allowed: {', '.join(RUNTIMES)})")
        if batch < 1:
            raise LatencyError(f"batch {batch}: must be >= 1")
        self.runtime, self.batch, self.config = runtime, batch, config
        self.device = torch.device(device)
        self.table: Table = open_table(Path(folder) if folder else default_table_dir(), runtime,
                                       batch, fingerprint(runtime, config.threads, self.device))

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
        """Measure every missing row of these networks; the number measured. Rows are saved
        every few seconds and on the way out (Ctrl-C included): a rerun measures only the rest."""
        todo = self.missing(nets)
        if not todo:
            return 0
        since = time.monotonic()
        try:
            with cpu_threads(self.config.threads):
                for done, piece in enumerate(todo, start=1):
                    if piece.key not in self.table.rows:  # an overhead row measured for a piece
                        self._measure(piece)
                    if time.monotonic() - since > SAVE_EVERY_S:
                        since = self._save(since)
                    if log is not None:
                        log(done, len(todo))
        finally:
            self._save(since)
        return len(todo)

    def _save(self, since: float) -> float:
        """Add the time since `since` to the table's build time and write it; now."""
        now = time.monotonic()
        self.table.build_s += now - since
        self.table.save()
        return now

    def _measure(self, piece: Piece) -> None:
        """Time one piece into its row, the call overhead at its input shape taken out."""
        call_ms = 0.0
        if piece.kind != OVERHEAD:
            call = overhead_piece(piece.input_shape)
            if call.key not in self.table.rows:
                self._measure(call)
            call_ms = self.table.ms(call.key)
        try:
            prepared = runner(self.runtime, piece.make().eval(), piece.input_shape,
                              self.config.threads, self.device)
        except Unavailable as why:
            raise LatencyError(f"latency table for {self.runtime}: {why}") from None
        timing = time_run(prepared.make(self.batch), max(self.config.warmup, 1),
                          self.config.repeats)
        self.table.choice = prepared.choice
        self.table.rows[piece.key] = {
            "ms": timing.median_ms - call_ms, "median_ms": timing.median_ms,
            "p90_ms": timing.p90_ms, "call_ms": call_ms, "runs": timing.runs,
            "kind": piece.kind, "measured": datetime.now(UTC).isoformat(timespec="seconds")}


def predict(net: Genotype | Plan, runtime: str = "torch", batch: int = 1, *,
            config: LatencyConfig = DEFAULT, folder: Path | None = None,
            device: torch.device | str = "cpu") -> float:
    """Predicted milliseconds of one forward pass of `batch` images of the genotype or plan on
    `runtime` here, from the cached table (rows it lacks are measured first)."""
    return LatencyModel(runtime, batch, config, folder, device).predict(net)
