"""The overview section: what ran, how far it got, what failed, the best architecture."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pandas as pd

from nas.arch.describe import describe_arch
from nas.arch.genotype import Genotype
from nas.dashboard.data import Run, describe_test, final_tests
from nas.results.names import RETRAIN_CSV, ROUND_COLUMN, STATUSES, TABLE
from nas.results.ranking import fidelity_text
from nas.results.table import round_dirs
from nas.results.values import measured_on, text


def section(key: str, title: str, question: str, body: str) -> str:
    """A titled section with its question under the title."""
    return (f'<section id="{key}"><h2>{escape(title)}</h2><p class="question">{question}</p>'
            f"{body}</section>")


def display_path(path: Path) -> str:
    """The run folder as the user would type it: relative to the working folder if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _elapsed(run: Run) -> str:
    try:
        started = datetime.fromisoformat(run.meta["started"])
    except (KeyError, TypeError, ValueError):
        return "?"
    # a raced run's last result is in its last verification round's table, not the front end's
    tables = [f / TABLE for f in [run.run_dir, *round_dirs(run.run_dir)] if (f / TABLE).exists()]
    if run.table.empty or not tables:
        seconds = (datetime.now(UTC) - started).total_seconds()
        return f"{_duration(seconds)} since start"
    last = datetime.fromtimestamp(max(t.stat().st_mtime for t in tables), UTC)
    return f"{_duration((last - started).total_seconds())} to the last result"


def _duration(seconds: float) -> str:
    minutes, sec = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def _card(key: str, value: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="k">{escape(key)}</div><div class="v">{escape(value)}'
            f'</div><div class="s">{escape(sub)}</div></div>')


def _trials_card(table: pd.DataFrame, budget: dict) -> str:
    """The front end's trials against its budget; verification runs (uncapped by it) apart."""
    raced = (table[ROUND_COLUMN] > 0 if ROUND_COLUMN in table
             else pd.Series(False, index=table.index))
    sub = (f"≤ {budget.get('epochs', '?')} epochs, {budget.get('concurrency', '?')} at once")
    if raced.any():
        rounds = table.loc[raced, ROUND_COLUMN].nunique()
        sub = f"+ {int(raced.sum())} verification runs in {rounds} round(s); " + sub
    return _card("trials finished", f"{int((~raced).sum())} / {budget.get('trials', '?')}", sub)


def overview(run: Run) -> str:
    """Cards (space, data, progress, time), status counts, best architecture, problems."""
    meta, table = run.meta, run.table
    budget = meta.get("budget", {})
    data = run.space.get("data", {})
    counts = table["status"].value_counts() if "status" in table else pd.Series(dtype=int)
    pills = "".join(f'<span class="pill {s}{"" if counts.get(s, 0) else " zero"}">{s}'
                    f" {counts.get(s, 0)}</span>" for s in STATUSES)
    best = run.best()
    cards = [_card("space", str(meta.get("space", "?")), str(meta.get("space_file", ""))),
             _card("data set", str(data.get("dataset", "?")),
                   f"validation {data['val_size']}" if "val_size" in data else ""),
             _trials_card(table, budget),
             _card("elapsed", _elapsed(run).split(" ", 1)[0], _elapsed(run).split(" ", 1)[-1]),
             _card("started (UTC)", str(meta.get("started", "?"))[:19].replace("T", " "),
                   f"git {str(meta.get('git_sha') or '?')[:12]}")]
    if best is not None:
        cards.append(_card("best val acc", f"{best['best_val_acc']:.4f}",
                           f"trial {best['trial_id']}, {best['status']}"))
    body = f'<div class="cards">{"".join(cards)}</div><div>{pills}</div>'
    body += _best(run, best) + _problems(table) + _retrained(run)
    return section("overview", f"Run {run.name}", "What ran, how far it got, and the best"
                   " architecture so far.", body)


def _best(run: Run, best: pd.Series | None) -> str:
    if best is None:
        return ('<p class="note">No architecture to recommend yet: no trial has a validation'
                " accuracy.</p>")
    tid = str(best["trial_id"])
    ref = f" (reference point '{escape(best['reference'])}')" if text(best.get("reference")) else ""
    rows = [("validation accuracy", f"{best['best_val_acc']:.4f}"
             f" ({fidelity_text(best, run.max_epochs)})"),
            ("parameters", f"{best['params']:,.0f}"), ("MACs", f"{best['macs']:,.0f}"),
            ("latency", f"{best['latency_ms']:.3f} ms ({measured_on(best)})"),
            ("spectrum position", f"{best['spectrum_position']:.2f} (0 regular … 1 depthwise)")]
    test = _test_of(run, tid)
    if test:
        rows.append(("test accuracy (retrained)", test))
    try:
        stages = describe_arch(Genotype.from_json(best["genotype"]))
    except (KeyError, TypeError, ValueError):
        stages = "(no genotype recorded)"
    command = (f"python run_search.py export {shlex.quote(display_path(run.run_dir))}"
               f" --trial {shlex.quote(tid)} --out {shlex.quote(f'exported/{tid}')}")
    kv = "".join(f"<tr><td>{escape(k)}</td><td><b>{escape(v)}</b></td></tr>" for k, v in rows)
    return (f"<h3>Best architecture: trial {escape(tid)}{ref}</h3>"
            f'<table class="kv">{kv}</table><pre>{escape(stages)}</pre>'
            f"<p>Export it: <code>{escape(command)}</code></p>")


def _test_of(run: Run, tid: str) -> str:
    tests = final_tests(run.retrain)
    return describe_test(tests.loc[tid]) if tid in tests.index else ""


def _problems(table: pd.DataFrame) -> str:
    if "status" not in table:
        return ""
    bad = table[table["status"].isin(("failed", "diverged", "infeasible"))]
    if bad.empty:
        return ""
    items = []
    for _, row in bad.iterrows():
        why = text(row.get("error")).strip().splitlines()[-1:] or [text(row.get("reason"))]
        items.append(f"<li><b>{escape(str(row['trial_id']))}</b> {escape(row['status'])}:"
                     f" {escape(why[0] or 'no reason recorded')}</li>")
    return (f"<h3>Trials without an accuracy ({len(bad)})</h3><ul>{''.join(items)}</ul>"
            '<p class="note">They are counted above and listed in the trials table; the'
            " accuracy plots leave them out.</p>")


def _retrained(run: Run) -> str:
    if run.retrain is None:
        return ""
    if run.retrain.empty:
        return (f'<h3>Retrained</h3><p class="note">{RETRAIN_CSV} holds no rows with trial_id'
                " and test_acc yet.</p>")
    val = (run.table.set_index(run.table["trial_id"].astype(str))["best_val_acc"]
           if "trial_id" in run.table else pd.Series(dtype=float))
    ordered = run.retrain.sort_values(["test_mean", "epochs"], ascending=False)
    rows = "".join(f"<tr><td>{escape(str(r['trial_id']))}</td><td>{escape(describe_test(r))}</td>"
                   f"<td>{_fmt(val.get(str(r['trial_id'])))}</td></tr>"
                   for _, r in ordered.iterrows())
    return ("<h3>Retrained: final test accuracy</h3><p class=\"question\">Trained from scratch"
            " on all training data with several seeds, tested once on the held-out test set"
            " (mean ± sample std over seeds).</p><table class=\"small-table\"><tr><th>trial"
            "</th><th>test accuracy</th><th>search val acc</th></tr>"
            f"{rows}</table>")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) and value == value else "–"
