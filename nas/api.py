"""The Python API for notebooks: search, open a run, and read, export, retrain or chart it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nas.arch.describe import describe_arch
from nas.arch.genotype import Genotype
from nas.results.meta import read_meta
from nas.results.names import ANSWER_JSON, META
from nas.results.ranking import best_trial, fidelity_text
from nas.results.table import parse_genotype, read_table
from nas.results.values import number, text


@dataclass(frozen=True)
class Best:
    """A run's winning trial: its genotype and the figures the ranking rests on."""

    trial_id: str
    genotype: Genotype
    val_acc: float | None
    params: int | None
    macs: int | None
    latency_ms: float | None
    epochs: int | None
    fidelity: str  # e.g. 'full budget, best of 6 epochs'

    def __str__(self) -> str:
        figures = ", ".join(f"{name} {value:,}" if isinstance(value, int) else f"{name} {value:.4g}"
                            for name, value in (("val_acc", self.val_acc),
                                                ("params", self.params), ("MACs", self.macs),
                                                ("latency_ms", self.latency_ms))
                            if value is not None)
        return (f"trial {self.trial_id} ({self.fidelity}): {figures}\n"
                f"{describe_arch(self.genotype)}")


class Run:
    """A run folder: a search's trials, its best point, and the actions on it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta: dict[str, Any] = read_meta(self.path)  # RunFolderError names what is wrong

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def trials(self) -> pd.DataFrame:
        """trials.csv as a typed table, read afresh (a running search adds rows)."""
        return read_table(self.path)

    @property
    def answer(self) -> dict[str, Any] | None:
        """answer.json (the tier, the pick, the factor effects, the cost), or None before the
        run has answered; answer.md says the same for people."""
        path = self.path / ANSWER_JSON
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    @property
    def best(self) -> Best | None:
        """The winner by the one ranking every view uses; None before any trial is scored."""
        row = best_trial(self.trials)
        if row is None:
            return None
        as_int = lambda key: None if number(row.get(key)) is None else int(row[key])  # noqa: E731
        return Best(text(row["trial_id"]), parse_genotype(row["genotype"], f"{self.path} trial"),
                    number(row.get("best_val_acc")), as_int("params"), as_int("macs"),
                    number(row.get("latency_ms")), as_int("epochs"),
                    fidelity_text(row, self.meta.get("budget", {}).get("epochs", "?")))

    def export(self, out: str | Path, *, trial: str | None = None, objective: str | None = None,
               tolerance: float | None = None, force: bool = False, onnx: bool = False):
        """Standalone PyTorch code, weights and genotype of the best (or `trial`) in `out`."""
        from nas.export import TOLERANCE, ExportRequest, export

        return export(ExportRequest(self.path, Path(out), trial, objective,
                                    TOLERANCE if tolerance is None else tolerance, force, onnx))

    def retrain(self, *, top: int = 3, epochs: int | None = None, seeds: int = 3,
                best_reference: bool = False, data_dir: str | Path | None = None,
                cpus: int | None = None, precision: str | None = None,
                train_size: int | str | None = None) -> pd.DataFrame:
        """Retrain the top trials with fresh seeds, tested on held-out images; the summary.
        train_size: None (the search's train + validation), "all" or a count of the data's."""
        from nas.retrain import RetrainRequest, retrain

        rows = retrain(RetrainRequest(self.path, top, epochs, seeds, best_reference,
                                      None if data_dir is None else Path(data_dir), cpus,
                                      precision, train_size))
        return pd.DataFrame(rows)

    def dashboard(self, out: str | Path | None = None, *, port: int = 8050) -> Path | None:
        """Write the dashboard to `out` (one offline HTML file); with no `out`, serve it on
        127.0.0.1:`port` until interrupted."""
        from nas.dashboard import DashboardRequest, dashboard

        dashboard(DashboardRequest(self.path, None if out is None else Path(out), port))
        return None if out is None else Path(out)


def open_run(path: str | Path) -> Run:
    """An existing run folder (one with a meta.json)."""
    if not (Path(path) / META).is_file():
        raise FileNotFoundError(f"{path}: not a run folder (no {META})")
    return Run(path)


def search(space: str | Path = "cifar_spectrum", *, trials: int | None = None,
           max_epochs: int | None = None, data_dir: str | Path | None = None,
           name: str | None = None, results_dir: str | Path = "results",
           seed: int | None = None, precision: str | None = None,
           concurrency: int | None = None, cpus_per_trial: float = 1.0,
           gpus_per_trial: float | None = None, resume: bool = False,
           address: str | None = None, storage_path: str | None = None,
           storage: str | None = None, study: str | None = None, verify: bool = True) -> Run:
    """Run (or resume) a search of `space` (a TOML file or a bundled space's name), as
    `run_search.py` does with the same flags: the space's [verify] race after it (unless
    `verify` is False) and the answer written; the finished run."""
    from nas.search.engine import SearchOptions
    from nas.search.engine import search as run_search
    from nas.search.space.load import space_file

    opts = SearchOptions(
        space=space_file(space), trials=trials, max_epochs=max_epochs, concurrency=concurrency,
        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, precision=precision,
        data_dir=None if data_dir is None else Path(data_dir), name=name, seed=seed,
        resume=resume, address=address, storage_path=storage_path, storage=storage, study=study,
        results_dir=Path(results_dir))
    outcome = run_search(opts)
    if not outcome.interrupted:
        from nas.search.conclude import conclude

        conclude(outcome.run_dir, race=verify, address=address, data_dir=opts.data_dir)
    return Run(outcome.run_dir)
