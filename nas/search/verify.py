"""Racing verification through the search pipeline: the leader and the points still within the
noise of it trained again at the full budget with fresh seeds, a round of Ray trials at a time,
until the race stops; the race's state is the run folder's tables, so it resumes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.answer.data import candidates, row_scores, seed_curves
from nas.answer.race import Race, Standing
from nas.answer.settings import VerifySettings
from nas.answer.stats import epoch_noise
from nas.results.atomic import write_json
from nas.results.meta import read_meta
from nas.results.names import META, RACE_JSON, ROUND, SEED, SEED_HELD_OUT_ACCS, VERIFY_DIR
from nas.results.store import META_KEY as STORE_KEY
from nas.results.table import read_table, round_dirs
from nas.results.values import number, text
from nas.search.resume import Budget, saved_run


class VerifyError(ValueError):
    """A race that cannot start; the message says why."""


@dataclass(frozen=True)
class Verified:
    """Where the race ended: its standing, rounds run, and whether it was interrupted."""

    race: Race
    standing: Standing
    rounds: int
    interrupted: bool


def point_params(row: dict[str, Any]) -> dict[str, Any]:
    """The searched parameters of a trials-table row (its param_ columns) as a point."""
    found = {}
    for column, value in row.items():
        name = str(column)
        if not name.startswith("param_") or text(value) == "":
            continue
        found[name.removeprefix("param_")] = _plain(value)
    return found


def _plain(value: Any) -> Any:
    """A table value as the search asked it: numpy scalars to Python, 16.0 to 16 (pandas
    reads an integer column with gaps as floats; a choice 16 == 16.0 either way)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def race_of(run_dir: Path, settings: VerifySettings, budget: Budget) -> Race:
    """The race as the run folder has it: candidates from the front end's table, every finished
    verification run recorded, the epoch-k noise from every seed curve measured so far.
    Full-budget results are scored on the held-out images when [verify].held_out asks for
    them (validation scores otherwise)."""
    scores = SEED_HELD_OUT_ACCS if settings.held_out else None
    front = read_table(run_dir)
    found = candidates(front, budget.epochs, budget.cpus_per_trial, base_seed=budget.seed,
                       scores=scores)
    if not any(c.accs for c in found):
        raise VerifyError(f"{run_dir}: no trial trained the full {budget.epochs} epochs;"
                          " nothing to verify")
    rows = [r for f in round_dirs(run_dir) for r in read_table(f).to_dict("records")]
    done = [r for r in rows if text(r.get("status")) == "completed"]
    failed = {text(r.get("arch_key")) for r in rows if text(r.get("status")) != "completed"
              or (scores and _full_score(r, budget.epochs, scores) is None)}
    counts = {c.key: len(c.accs) + sum(text(r.get("arch_key")) == c.key for r in done)
              for c in found}
    # a point whose verification run failed or diverged races no further (a seed that fails
    # would fail again): its cap is what it has — nothing, for a point ASHA had stopped
    found = [dataclasses.replace(c, max_seeds=counts[c.key]) if c.key in failed else c
             for c in found]
    curves: dict[str, list[list[float]]] = {}
    for row in [*front.to_dict("records"), *done]:
        if text(row.get("status")) in ("completed", "stopped"):
            curves.setdefault(text(row.get("arch_key")), []).extend(seed_curves(row))
    stopped = {len(c.curve) for c in found if c.stopped}
    race = Race(settings, found, {k: epoch_noise(curves, k) for k in stopped})
    for row in done:
        acc = _full_score(row, budget.epochs, scores)
        seconds = (number(row.get("wall_s")) or 0.0) * budget.cpus_per_trial
        if acc is not None:
            race.record(text(row.get("arch_key")), int(number(row.get(SEED))), acc, seconds)
    return race


def _full_score(row: dict[str, Any], epochs: int, scores: str | None) -> float | None:
    """A verification run's full-budget accuracy, mean over its seeds: its curve's after
    `epochs`, or its mean in the `scores` column (None when it has none)."""
    curve = json.loads(text(row.get("curve")) or "[]")
    if len(curve) < epochs:
        return None
    if scores is None:
        return float(curve[epochs - 1])
    held = [v for v in row_scores(row, scores, len(seed_curves(row))) if v is not None]
    return sum(held) / len(held) if held and all(math.isfinite(v) for v in held) else None


def verify(run_dir: Path, settings: VerifySettings, *, address: str | None = None,
           data_dir: Path | None = None, log=print) -> Verified:
    """Race the run's front end to a stop (or an interruption): each round trains the race's
    requests as one search of fixed points with their seeds, no early stopping, in
    verify/round-NN/; a round cut short is resumed first."""
    from nas.search.cluster import start_ray, stop_ray

    own_ray = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    if own_ray:
        start_ray(address)
    try:
        return _rounds(run_dir, settings, data_dir, log)
    finally:
        if own_ray:
            stop_ray()


def _rounds(run_dir: Path, settings: VerifySettings, data_dir: Path | None, log) -> Verified:
    run = saved_run(run_dir)
    rounds = round_dirs(run_dir)
    if rounds and _unfinished(rounds[-1]):
        log(f"Resuming verification {rounds[-1].name}", flush=True)
        if _run_round(run_dir, run.budget, rounds[-1], (), data_dir, resume=True):
            return _stopped(run_dir, settings, run.budget, len(rounds), True)
    while True:
        race = race_of(run_dir, settings, run.budget)
        requests = race.next_requests()
        _save(run_dir, race)
        if not requests:
            return _stopped(run_dir, settings, run.budget, len(round_dirs(run_dir)), False)
        front = {text(r.get("arch_key")): r for r in read_table(run_dir).to_dict("records")}
        points = tuple(point_params(front[r.key]) | {SEED: r.seed} for r in requests)
        folder = run_dir / VERIFY_DIR / ROUND.format(len(round_dirs(run_dir)) + 1)
        standing = race.standing()
        asked = ", ".join(f"{r.key} seed {r.seed}" for r in requests)
        log(f"Verification {folder.name}: {len(points)} run(s) at the full {run.budget.epochs}"
            f" epochs ({asked}); leader {standing.leader}, {len(standing.tier.unresolved)}"
            f" unresolved, {standing.spent_core_s:,.0f} core-s spent", flush=True)
        if _run_round(run_dir, run.budget, folder, points, data_dir, resume=False):
            return _stopped(run_dir, settings, run.budget, len(round_dirs(run_dir)), True)


def _run_round(run_dir: Path, budget: Budget, folder: Path, points: tuple[dict, ...],
               data_dir: Path | None, resume: bool) -> bool:
    """One round as a search of fixed points (the run's space copy and budget); True when it
    was interrupted."""
    from nas.search.engine import ProgramOptions, SearchOptions, search

    meta = read_meta(run_dir)
    store = meta.get(STORE_KEY)
    opts = SearchOptions(
        space=run_dir / meta["space_file"], trials=len(points) or None,
        max_epochs=budget.epochs, concurrency=budget.concurrency,
        cpus_per_trial=budget.cpus_per_trial, gpus_per_trial=budget.gpus_per_trial,
        precision=budget.precision, data_dir=data_dir, name=folder.name, seed=budget.seed,
        resume=resume, results_dir=folder.parent,
        # checkpoints beside the run's own when its nodes share no folder
        storage_path=f"{store}/{VERIFY_DIR}" if store and not resume else None)
    folder.parent.mkdir(exist_ok=True)
    outcome = search(opts, ProgramOptions(points=points, full_schedule=True))
    return outcome.interrupted


def _unfinished(folder: Path) -> bool:
    """A round whose search was cut short: fewer rows than the points it was given."""
    with contextlib.suppress(FileNotFoundError, KeyError, TypeError, ValueError):
        return len(read_table(folder)) < int(read_meta(folder)["budget"]["trials"])
    return (folder / META).is_file()


def _stopped(run_dir: Path, settings: VerifySettings, budget: Budget, rounds: int,
             interrupted: bool) -> Verified:
    race = race_of(run_dir, settings, budget)
    _save(run_dir, race)
    return Verified(race, race.standing(), rounds, interrupted)


def _save(run_dir: Path, race: Race) -> None:
    """race.json: the whole state (settings, candidates, runs) and where it stands."""
    standing = race.standing()
    state = json.loads(race.to_json())
    state["standing"] = {"leader": standing.leader, "members": list(standing.tier.members),
                         "unresolved": list(standing.tier.unresolved),
                         "eligible": list(standing.eligible), "runs": standing.runs,
                         "spent_core_s": standing.spent_core_s, "stop": standing.stop}
    write_json(run_dir / RACE_JSON, _finite(state))


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: such floats as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value

