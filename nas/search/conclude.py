"""A run's answer: built from every trial of its folder (front end and verification rounds),
written as answer.md / answer.json, and told on the console."""

from __future__ import annotations

from pathlib import Path

from nas.answer.answer import Answer, build_answer, with_latency
from nas.answer.render import render_markdown, to_json
from nas.answer.settings import VerifySettings
from nas.answer.stats import Noise
from nas.results.atomic import atomic_write
from nas.results.names import (
    ANSWER_JSON,
    ANSWER_MD,
    HELD_OUT_IMAGES,
    SEED_HELD_OUT_ACCS,
    TIER_LATENCY_JSON,
)
from nas.results.table import all_trials, round_dirs
from nas.search.resume import saved_run
from nas.search.retime import kept_retime
from nas.search.retime import words as retime_words
from nas.search.verify import race_of


def answer_of(run_dir: Path, settings: VerifySettings | None = None) -> Answer:
    """The answer a run folder holds: its tier judged at the full budget with the race's noise
    (the [verify] prior included) and confidence, its effects from every trial at that
    fidelity; on the held-out images' scores when [verify].held_out asks for them. The tier's
    latency is timed again here, after the race, when nothing else trains."""
    run = saved_run(run_dir)
    settings = settings or run.space.verify or VerifySettings()
    noise: Noise | None = None
    if settings.noise == "prior" or settings.noise_prior_df > 0:
        noise = race_of(run_dir, settings, run.budget).noise()
    data = run.meta.get("data") or {}
    rounds = len(round_dirs(run_dir))
    source = (f"{run.space.data.dataset}: {data.get('train_images', '?')} training and"
              f" {data.get('val_images', '?')} validation images; the front end's"
              f" {run.budget.trials} trials (seed {run.budget.seed}, ASHA) and {rounds}"
              f" verification round(s)")
    scores = None
    if settings.held_out:  # full-budget results scored on images neither split uses
        scores = SEED_HELD_OUT_ACCS
        held = int(data.get(HELD_OUT_IMAGES, settings.held_out))
        source += f"; tier judged on {held:,} held-out training images"
    table = all_trials(run_dir)
    answer = build_answer(table, run.budget.epochs, confidence=settings.confidence, noise=noise,
                          source=source, cores_per_trial=run.budget.cpus_per_trial,
                          base_seed=run.budget.seed, scores=scores)
    if len(answer.tier) < 2 or not answer.noise.known:  # nothing to choose between
        return answer
    threads = max(1, round(run.budget.cpus_per_trial))
    fresh = kept_retime(run_dir / TIER_LATENCY_JSON, table, [e.key for e in answer.tier],
                        threads)
    if not fresh:  # no genotype, or timed on a GPU: the trials' figures stand
        return answer
    return with_latency(answer, fresh, f"{source}; {retime_words(threads)}")


def write_answer(run_dir: Path, answer: Answer) -> None:
    """answer.md and answer.json in the run folder (each replaced whole, never half-written)."""
    atomic_write(run_dir / ANSWER_MD, lambda tmp: tmp.write_text(render_markdown(answer)))
    atomic_write(run_dir / ANSWER_JSON, lambda tmp: tmp.write_text(to_json(answer)))


def conclude(run_dir: Path, *, race: bool = True, address: str | None = None,
             data_dir: Path | None = None, log=print) -> tuple[Answer | None, bool]:
    """After a search: race its front end when its space has [verify] (and `race`), then write
    the answer; (the answer or None when no trial has a full-budget result, interrupted)."""
    from nas.search.verify import VerifyError, verify

    settings = saved_run(run_dir).space.verify
    if settings is not None and race:
        try:
            if verify(run_dir, settings, address=address, data_dir=data_dir, log=log).interrupted:
                return None, True
        except VerifyError as err:
            log(f"No verification: {err}", flush=True)
    try:
        answer = answer_of(run_dir, settings)
    except ValueError as err:  # no trial reached the full budget: there is no tier to state
        log(f"No answer: {err}", flush=True)
        return None, False
    write_answer(run_dir, answer)
    return answer, False
