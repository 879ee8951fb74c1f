"""The dashboard page: its sections as HTML plus figures, and the document around them."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
from plotly.utils import PlotlyJSONEncoder

from nas.dashboard import figures as figs
from nas.dashboard.answer import answer_section
from nas.dashboard.data import (
    Fidelity,
    Run,
    at_epoch,
    curve,
    default_epoch,
    default_latency,
    fidelities,
    full_budget_epoch,
    latency_columns,
    runtime_choice,
)
from nas.dashboard.importance import importances
from nas.dashboard.overview import overview, section
from nas.dashboard.table import SHOWN_SCORES, cell, scores_table, trials_table
from nas.results.atomic import atomic_write
from nas.results.names import ROUND_COLUMN, STUDY_CSV, SUPERNET_CSV, TABLE
from nas.results.values import text


def static(name: str) -> str:
    """One of the page's own files (static/page.css, static/page.js), shipped as package data."""
    return (files("nas.dashboard") / "static" / name).read_text(encoding="utf-8")


SECTIONS = (("answer", "Answer"), ("overview", "Overview"), ("study", "Study"),
            ("cost", "Accuracy vs cost"),
            ("spectrum", "Spectrum"), ("factors", "Factor effects"),
            ("importance", "Importance & curves"), ("supernet", "Supernet scores"),
            ("trials", "Trials"))


SLOTS = ("cost", "spectrum", "factors", "importance")  # the views drawn at one fidelity


def payload(run: Run) -> dict[str, Any]:
    """Everything the page script renders: section HTML, plotly figures, a version, and the
    comparison views at every epoch (the page's epoch control swaps them in)."""
    figures: dict[str, Any] = {}
    parts = [answer_section(run.answer)] if run.answer else []
    parts.append(overview(run))
    fidelity: dict[str, Any] = {"default": None, "views": {}}
    if run.scores is not None and not run.scores.empty:
        ranking = text(run.scores["ranking"].iloc[0]) if "ranking" in run.scores else "supernet"
        parts.append(section(
            "supernet", "Supernet scores", f"The best {min(SHOWN_SCORES, len(run.scores))} of"
            f" {len(run.scores)} points scored by {escape(ranking)} ({SUPERNET_CSV} has all);"
            " scores only pick candidates: results rank by the verified stand-alone accuracy.",
            scores_table(run.scores, run.table)))
    if run.table.empty:
        parts.append('<section id="trials"><p class="empty">No trials yet. Trials appear here'
                     " as they finish (a served dashboard refreshes by itself).</p></section>")
    else:
        if run.study is not None and not run.study.empty:
            parts.append(_study(run, figures))
        options = fidelities(run)
        views = {f.epoch: _view(run, f) for f in options}
        default = _opening_epoch(run, options)
        shown = views.get(default, {"html": dict.fromkeys(SLOTS, NO_ACCURACY), "figures": {}})
        fidelity = {"default": default, "views": {str(e): _json(v) for e, v in views.items()}}
        figures |= shown["figures"]
        parts += [_fidelity_bar(options, default, ROUND_COLUMN in run.table),
                  _cost(shown["html"]["cost"], _runtime_bar(run)),
                  _spectrum(shown["html"]["spectrum"]), _factors(shown["html"]["factors"]),
                  _importance(run, shown["html"]["importance"], figures),
                  section("trials", "Trials", "Every trial, every"
                          f" column of {TABLE}; failed trials carry their error.",
                          trials_table(run.table, run.retrain))]
    present = [(key, title) for key, title in SECTIONS if f'id="{key}"' in "".join(parts)]
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in present)
    return {"version": run.version, "nav": nav, "html": "".join(parts),
            "figures": {k: fig.to_plotly_json() for k, fig in figures.items()},
            "fidelity": fidelity}


def _opening_epoch(run: Run, options: list[Fidelity]) -> int | None:
    """Where the charts open: at the fidelity a raced answer rests on (the full budget, every
    verification seed), else the largest epoch every trial reached (an answer from the front
    end's one seed a point compares only the points ASHA let finish)."""
    raced = run.answer is not None and ROUND_COLUMN in run.table
    rests = run.answer.get("fidelity") if raced else None
    if rests in {f.epoch for f in options}:
        return rests
    return default_epoch(options)


def _json(view: dict[str, Any]) -> dict[str, Any]:
    return {"html": view["html"],
            "figures": {k: fig.to_plotly_json() for k, fig in view["figures"].items()}}


def _view(run: Run, fidelity: Fidelity) -> dict[str, Any]:
    """The comparison views' HTML and figures with every trial at one epoch's accuracy."""
    shown, figures = at_epoch(run.scored, fidelity.epoch), {}
    label = (f'<p class="fidelity-label">Compared at: <b>{escape(fidelity.label)}</b>.'
             " Change it with the epoch control above.</p>")
    stages = [i for i in run.stages if f"s{i}_groups" in run.table]
    spectrum = (_chart("fig-spectrum", figs.spectrum(shown, stages, fidelity), figures)
                if stages else NO_ACCURACY)
    ranked, note = importances(shown)
    chart = (_chart("fig-importance", figs.importance(ranked, fidelity), figures) if ranked
             else "")
    cost = figs.accuracy_vs_cost(shown, fidelity, latency_columns(run), default_latency(run))
    html = {"cost": label + _chart("fig-cost", cost, figures),
            "spectrum": label + spectrum,
            "factors": label + _factor_charts(run, shown, fidelity, figures),
            "importance": f'{label}<p class="note">{escape(note)}</p>{chart}'}
    return {"html": html, "figures": figures}


def _fidelity_bar(options: list[Fidelity], default: int | None, answered: bool = False) -> str:
    """The epoch control: every epoch some trial reached; the default (the answer's fidelity,
    else the largest epoch every trial reached) and the full budget named."""
    if not options:
        return ""
    full = full_budget_epoch(options)
    items = []
    for f in options:
        who = (f"all {f.trials} trials" if f.trials == f.scored
               else f"{f.trials} of {f.scored} trials")
        opening = (" — what the answer rests on" if answered
                   else " — the largest epoch every trial reached")
        name = (opening if f.epoch == default else
                " — full-budget trials only" if f.epoch == full else "")
        budget = ", the full budget" if f.epoch == full else ""
        selected = " selected" if f.epoch == default else ""
        items.append(f'<option value="{f.epoch}"{selected}>epoch {f.epoch}{budget}: {who}'
                     f"{name}</option>")
    return ('<div class="fidelity-bar" id="fidelity-bar"><label for="fidelity-epoch">Compare'
            f' trials at</label> <select id="fidelity-epoch">{"".join(items)}</select>'
            ' <span class="hint">Accuracy vs cost, the spectrum, factor effects and importance'
            " use each trial's validation accuracy at this one epoch (trials stopped before it"
            " are left out), so a 1-epoch and a full-budget accuracy never share a chart.</span>"
            "</div>")


def to_json(data: dict[str, Any]) -> str:
    """JSON for the endpoint and for embedding: NaN -> null, '<' escaped so no '</script>'."""
    return json.dumps(data, cls=PlotlyJSONEncoder).replace("<", "\\u003c")


def document(run: Run, data: dict[str, Any], live: bool, refresh: float,
             plotly_js: str) -> str:
    """The whole page; plotly_js is a <script> element (inline for files, a URL when served)."""
    config = {"live": live, "refresh": refresh,
              "built": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(run.name)} · spectrum-nas dashboard</title>
<link rel="icon" href="data:,">
<style>{static("page.css")}</style>
{plotly_js}
</head><body>
<header><h1>spectrum-nas · {escape(run.name)}</h1><nav id="nav">{data["nav"]}</nav>
<span id="live" class="live"></span></header>
<main id="content"></main>
<script type="application/json" id="dash-config">{to_json(config)}</script>
<script type="application/json" id="dash-payload">{to_json(data)}</script>
<script>{static("page.js")}</script>
</body></html>
"""


def _chart(key: str, fig, figures: dict[str, Any]) -> str:
    """A placeholder div of the figure's height (no jump on refresh) and the figure itself."""
    figures[key] = fig
    return f'<div class="chart" id="{key}" style="height:{fig.layout.height}px"></div>'


NO_ACCURACY = ('<p class="note">No trial has a validation accuracy yet (failed, diverged and'
               " infeasible trials have none), so there is nothing to plot here.</p>")


STUDY_COLUMNS = (("seeds", "seeds"), ("val_acc_mean", "val acc % mean"),
                 ("val_acc_std", "val acc % std"), ("delta_pp", "Δ vs baseline (pp)"),
                 ("delta_se_pp", "SE of Δ (pp)"), ("params", "params"), ("macs", "MACs"),
                 ("latency_ms", "latency ms"), ("stage_widths", "stage widths"),
                 ("excluded", "excluded trials"))
STUDY_ROUNDING = {"val_acc_mean": (100, 1), "val_acc_std": (100, 1), "delta_pp": (1, 1),
                  "delta_se_pp": (1, 1), "latency_ms": (1, 2)}  # column: (scale, decimals)


def _study(run: Run, figures: dict[str, Any]) -> str:
    study = run.study
    labels = list(run.study_labels)
    shown_values = study.copy()
    for column, (scale, decimals) in STUDY_ROUNDING.items():
        if column in shown_values:
            shown_values[column] = (pd.to_numeric(shown_values[column], errors="coerce")
                                    * scale).round(decimals)
    shown = [(c, name) for c, name in STUDY_COLUMNS if c in study]
    head = "".join(f"<th>{escape(name)}</th>" for name in [*labels, *(n for _, n in shown)])
    rows = "".join("<tr>" + "".join(cell(c, r[c]) for c in labels)
                   + "".join(cell(c, r[c]) for c, _ in shown) + "</tr>"
                   for _, r in shown_values.iterrows())
    table = (f'<div class="table-wrap"><table id="study-table"><thead><tr>{head}</tr></thead>'
             f"<tbody>{rows}</tbody></table></div>")
    return section("study", "Study", f"The run tabulated as a study ({STUDY_CSV}): each row"
                   " pools its seeds' final validation accuracies (small dots: one seed each);"
                   " Δ is the difference from the baseline row's mean.",
                   _chart("fig-study", figs.study_chart(study, labels), figures) + table)


def _slot(key: str, body: str) -> str:
    """The part of a section the epoch control redraws."""
    return f'<div class="fidelity-slot" id="slot-{key}">{body}</div>'


def _cost(body: str, runtimes: str = "") -> str:
    return section("cost", "Accuracy vs cost", "Which architectures are both accurate and"
                   " cheap? Colour: spectrum position of the whole network; open circles were"
                   " stopped early by ASHA (shown at the chosen epoch like the others); ringed:"
                   " the Pareto front over the plotted trials. Hover for the stages.",
                   runtimes + _slot("cost", body))


def _runtime_bar(run: Run) -> str:
    """The runtime control: which latency column the cost view's latency panel plots (only
    when the run recorded more than latency_ms)."""
    columns = latency_columns(run)
    if len(columns) < 2:
        return ""
    chosen = default_latency(run)
    items = []
    for column in columns:
        choice = runtime_choice(run.table, column)
        selected = " selected" if column == chosen else ""
        items.append(f'<option value="{escape(column)}"{selected}>{escape(column)}'
                     f"{escape(': ' + choice) if choice else ''}</option>")
    return ('<div class="runtime-bar"><label for="latency-runtime">Latency on</label>'
            f' <select id="latency-runtime">{"".join(items)}</select> <span class="hint">The'
            " latency panel and its Pareto front for one runtime and batch size (the space's"
            " [latency] section; each timed on the CPU, median of repeated runs).</span></div>")


def _spectrum(body: str) -> str:
    return section("spectrum", "The spectrum, stage by stage", "Where between regular"
                   " convolution (groups 1) and depthwise convolution (groups = C) should each"
                   " stage sit? (Xception's open question.) Points are spread a little"
                   " sideways so equal ones stay visible.", _slot("spectrum", body))


def _factor_charts(run: Run, shown: pd.DataFrame, fidelity: Fidelity,
                   figures: dict[str, Any]) -> str:
    charts, fixed = [], []
    for field, label in figs.FACTORS:
        fig = figs.factor_effects(shown, run.stages, field, label, fidelity)
        if fig is None:
            values = sorted({text(v) for i in run.stages
                             for v in shown.get(f"s{i}_{field}", pd.Series(dtype=str))})
            fixed.append(f"{label}: {', '.join(values) or '–'}")
        else:
            charts.append(_chart(f"fig-factor-{field}", fig, figures))
    note = (f'<p class="note">Not varied in these trials: {escape("; ".join(fixed))}.</p>'
            if fixed else "")
    return note + "".join(charts)


def _factors(body: str) -> str:
    return section("factors", "Factor effects", "Does op order, the activation between the"
                   " two ops, the residual or the block kind matter? Top: error EDFs"
                   " (Radosavovic et al. 2020): the fraction of trials with error ≤ x, one"
                   " curve per level; a curve further left and higher is better. Bottom: the"
                   " same accuracies as box plots. One panel per stage where the choice is"
                   " made per stage, one 'all stages' panel where every trial makes it once"
                   " for the whole network. Every trial is read at the same epoch (the control"
                   " above), so early stopping cannot pose as a factor's effect.",
                   _slot("factors", body))


def _importance(run: Run, body: str, figures: dict[str, Any]) -> str:
    best = run.best()
    curves = any(curve(c) for c in run.table.get("curve", []))
    curve_chart = (_chart("fig-curves", figs.learning_curves(
        run.table, None if best is None else str(best["trial_id"])), figures) if curves
        else '<p class="note">No learning curves yet.</p>')
    return section("importance", "Parameter importance and learning curves", "Which searched"
                   " parameters decide accuracy, and how did each trial learn?",
                   f"<h3>Parameter importance (Optuna)</h3>{_slot('importance', body)}"
                   f"<h3>Learning curves</h3>{curve_chart}")


def plotly_inline() -> str:
    """plotly.js as an inline <script>, so a saved file opens offline."""
    from plotly.offline import get_plotlyjs

    return f"<script>{get_plotlyjs()}</script>"


def write_html(run: Run, out: Path) -> None:
    """A self-contained snapshot file."""
    html = document(run, payload(run), False, 0, plotly_inline())
    atomic_write(out, lambda tmp: tmp.write_text(html, encoding="utf-8"))
