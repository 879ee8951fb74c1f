"""Every file and folder name of a run folder, the trials table's column names and statuses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# The run folder's files and folders.
TABLE = "trials.csv"  # one row per finished trial (TrialReport + the genotype's columns)
PARQUET = "trials.parquet"  # the same table, typed
META = "meta.json"  # versions, git SHA, hardware, settings, budget, search wall time
OPTUNA_DB = "optuna.db"  # the Optuna study (SQLite) unless --storage names another
ARTIFACTS = "artifacts"  # optuna.artifacts' file store: exported files, for optuna-dashboard
EXPERIMENT = "ray"  # the Ray experiment folder, one trial_<id>/ folder per trial
LOCK = ".search.lock"  # flock'ed by the one search using the folder; records its PID and start
RETRAIN_CSV = "retrain.csv"  # one row per retrained (trial, seed, epochs)
RETRAIN_JSON = "retrain.json"  # retrain settings and per-trial mean/std
STUDY_CSV = "study.csv"  # one row per level of a study, seeds pooled
STUDY_MD = "study.md"  # the same table in Markdown, with the compute used
STUDY_JSON = "study.json"  # study.csv's own metadata: which columns label its rows
BENCH_MD = "bench.md"  # what a bench says: tables by choice, rank agreement, the front
BENCH_HTML = "bench.html"  # its figure: accuracy along the spectrum
BENCH_PNG = "bench.png"  # the same figure as an image, where headless Chromium is installed
SUPERNET_CSV = "supernet.csv"  # one row per point scored by the supernet (or a proxy), best first
SUPERNET_JSON = "supernet.json"  # the supernet's settings, training curve and compute
SUPERNET_DIR = "supernet"  # the supernet's checkpoint (MODEL_FILE, STATE_FILE)
# A checkpoint folder (Ray's checkpoint_<n>/ inside trial_<id>/).
MODEL_FILE = "model.pt"  # the state dict alone: loadable with torch.load(weights_only=True)
STATE_FILE = "trainer.pt"  # optimizer, schedule and RNG state, to resume an interrupted trial
GENOTYPE_FILE = "genotype.json"
CHECKPOINT_METRICS = "metrics.json"  # epoch, val_acc and the other files' sizes (a manifest)
# The trials table: its per-stage columns (s<stage>_<field>) and how a trial ended.
STAGE_COLUMN = re.compile(r"^s(\d+)_(\w+)$")
STATUSES = ("completed", "stopped", "diverged", "infeasible", "failed")
SCORED = ("completed", "stopped")  # statuses whose accuracy is a real measurement
FULL_BUDGET = "completed"  # trained every epoch of the budget: the results ranked first
# In optuna.db: each Optuna trial's user attributes name its Ray trial and its table status.
OPTUNA_TRIAL_ATTR = "trial_id"
OPTUNA_STATUS_ATTR = "status"
OPTUNA_SKIPPED_ATTR = "skipped"  # a proposal told without training: why (never a table row)
OPTUNA_RUN_ATTR = "run"  # the run folder (driver) that ran it: a shared study splits by it
# In meta.json: the study's name and its storage's URL, password hidden (None: optuna.db).
STUDY_KEY = "optuna_study"
# A point's seed: a program point (a verification run) carries it into the trial's config,
# and every trial's row records the first seed it trained with.
SEED = "seed"
# [verify].held_out: a full-budget trial scored on the held-out images, mean and per seed
HELD_OUT_ACC = "held_out_acc"
SEED_HELD_OUT_ACCS = "seed_held_out_accs"  # JSON list, one per seed
HELD_OUT_IMAGES = "held_out_images"  # in meta.json's data: how many held-out images
# Racing verification in a run folder: one sub-run per round, and the race's state in words.
VERIFY_DIR = "verify"  # verify/round-01/, round-02/, ...: each a run folder of its own
ROUND = "round-{:02d}"
ROUND_COLUMN = "verify_round"  # in every trial of a run read whole: 0 front end, n round n
RACE_JSON = "race.json"  # the race's candidates, runs, standing and why it stopped
ANSWER_MD = "answer.md"  # the answer: top tier, factor effects, recommendation, cost
ANSWER_JSON = "answer.json"  # the same for the dashboard and scripts
TIER_LATENCY_JSON = "tier_latency.json"  # the tier's latency timed after the race, kept


def stage_column(stage: int, field: str) -> str:
    """The trials table's per-stage column: stage_column(1, "groups") == "s1_groups"."""
    return f"s{stage}_{field}"


def stage_numbers(columns: Iterable[str]) -> list[int]:
    """The stage numbers a table has columns for (from its s<i>_kind columns)."""
    found = (STAGE_COLUMN.match(str(c)) for c in columns)
    return sorted({int(m.group(1)) for m in found if m and m.group(2) == "kind"})


def trial_dirname(trial_id: str) -> str:
    """The folder Ray writes a trial into, inside the experiment folder."""
    return f"trial_{trial_id}"


def checkpoint_path(trial_id: str, checkpoint: str) -> Path:
    """Where a trial's checkpoint folder is, relative to the run folder (what the table says)."""
    return Path(EXPERIMENT) / trial_dirname(trial_id) / checkpoint


def optuna_url(run_dir: Path) -> str:
    """The SQLAlchemy URL of the run folder's own Optuna study."""
    return f"sqlite:///{run_dir / OPTUNA_DB}"
