"""Plotly figures of a run: accuracy vs cost, the spectrum, factor effects, curves, importance."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from nas.arch.describe import describe_arch
from nas.arch.genotype import Genotype
from nas.dashboard.data import ACC_AT, LATENCY, Fidelity, curve, pareto_mask
from nas.latency.settings import PREFIX, latency_names
from nas.results.names import SCORED
from nas.results.values import text

TEMPLATE = "plotly_white"
ACC = ACC_AT  # every comparison chart reads the accuracy at its one fidelity (epoch)
COSTS = (("macs", "MACs"), ("params", "parameters"), (LATENCY, "latency (ms)"))
SYMBOL = {"completed": "circle", "stopped": "circle-open"}
STATUS_LABEL = {"completed": "completed (full budget)", "stopped": "stopped early by ASHA"}
CURVE_STYLE = {  # status -> (colour, dash): early-stopped and broken trials stand apart
    "completed": ("#1f77b4", "solid"), "stopped": ("#ff7f0e", "dash"),
    "diverged": ("#d62728", "dot"), "infeasible": ("#7f7f7f", "dot"),
    "failed": ("#7f7f7f", "dot")}
# Stage fields whose levels are compared; spectrum-only ones read the canonical default on
# other block kinds. Only those that vary among the scored trials are drawn.
FACTORS = (("order", "op order"), ("mid_act", "intermediate activation"),
           ("residual", "residual"), ("kind", "block kind"), ("kernel", "kernel"),
           ("act_order", "activation order"), ("mid_norm", "intermediate BN"))
SPECTRUM_COLOURS = dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(
    title=dict(text="spectrum position", side="right"), tickvals=[0, 0.5, 1],
    ticktext=["0 regular", "0.5", "1 depthwise"]))


def hover_text(row: pd.Series, epoch: int) -> str:
    """Trial, accuracy at the chart's epoch, cost and one line per stage, for hover labels."""
    head = f"trial {row['trial_id']}"
    if text(row.get("reference")):
        head += f" (reference '{row['reference']}')"
    lines = [head, f"val acc {row[ACC]:.4f} at epoch {epoch}; {row['status']} after"
             f" {int(row['epochs'])} epochs",
             f"{_count(row.get('params'))} params, {_count(row.get('macs'))} MACs,"
             f" {_num(row.get(LATENCY), 3)} ms"]
    runtimes = [f"{name.removeprefix(PREFIX)} {_num(row.get(name), 3)}"
                for name in latency_names(row.index)]
    if runtimes:
        lines.append(f"ms per runtime: {', '.join(runtimes)}")
    with contextlib.suppress(KeyError, TypeError, ValueError):  # no genotype: numbers only
        lines += describe_arch(Genotype.from_json(row["genotype"]), indent="").splitlines()
    return "<br>".join(lines)


def _count(value) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) and math.isfinite(value) else "?"


def _num(value, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and math.isfinite(value) else "?"


def _layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    settings = dict(template=TEMPLATE, height=height, margin=dict(l=60, r=30, t=80, b=50),
                    legend=dict(orientation="h", y=-0.18, x=0), hoverlabel=dict(align="left"))
    fig.update_layout(**(settings | extra))
    return fig


def _title(text_: str) -> dict:
    """A chart title naming its fidelity (every comparison chart prints it)."""
    return dict(text=text_, x=0.01, xanchor="left", font=dict(size=14))


def _axis(fidelity: Fidelity) -> str:
    return f"validation accuracy at epoch {fidelity.epoch}"


def latency_title(column: str) -> str:
    """The latency panel's axis title for one latency column."""
    if column == LATENCY:
        return "latency (ms, training precision on the trial's device; log)"
    return f"latency (ms, {column.removeprefix(PREFIX)}; log)"


def accuracy_vs_cost(scored: pd.DataFrame, fidelity: Fidelity,
                     latencies: Sequence[str] = (LATENCY,), shown: str = LATENCY) -> go.Figure:
    """Accuracy against MACs, params and latency; the Pareto front (max acc, min cost) ringed.
    The latency panel holds every column of `latencies` (each trace's `meta` names its
    column), `shown` visible; layout.meta.latency tells the page's runtime control which."""
    fig = make_subplots(rows=1, cols=len(COSTS), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[label for _, label in COSTS])
    hover = (scored.apply(hover_text, axis=1, epoch=fidelity.epoch) if not scored.empty
             else pd.Series(dtype=str))
    present = [c for c in latencies if c in scored]
    shown = shown if shown in present else next(iter(present), shown)
    for col, (cost, label) in enumerate(COSTS, start=1):
        for column in present if cost == LATENCY else [cost]:
            if column in scored:
                _cost_panel(fig, scored, hover, column, col, cost != LATENCY or column == shown)
        fig.update_xaxes(type="log", title_text=f"{label} (log)", row=1, col=col)
    meta = {}
    if len(present) > 1:  # the page's runtime control picks the column the panel shows
        titles = {c: latency_title(c) for c in present}
        fig.update_xaxes(title_text=titles[shown], row=1, col=len(COSTS))
        meta = {"latency": {"axis": fig.get_subplot(1, len(COSTS)).xaxis.plotly_name,
                            "titles": titles, "default": shown}}
    fig.update_yaxes(title_text=_axis(fidelity), row=1, col=1)
    return _layout(fig, 500, coloraxis=SPECTRUM_COLOURS, title=_title(fidelity.label),
                   meta=meta)


def _cost_panel(fig: go.Figure, scored: pd.DataFrame, hover: pd.Series, cost: str, col: int,
                visible: bool) -> None:
    """One cost's trial markers, Pareto front and reference labels in panel `col`."""
    costs = pd.to_numeric(scored[cost], errors="coerce")
    sub = scored[np.isfinite(costs) & (costs > 0)]
    first = col == 1
    for status in SCORED:
        part = sub[sub["status"] == status]
        fig.add_trace(go.Scatter(
            x=part[cost].tolist(), y=part[ACC].tolist(), mode="markers",
            name=STATUS_LABEL[status], legendgroup=status, showlegend=first, meta=cost,
            visible=visible, text=hover[part.index].tolist(),
            hovertemplate="%{text}<extra></extra>", cliponaxis=False,
            marker=dict(size=10, symbol=SYMBOL[status], coloraxis="coloraxis",
                        color=part["spectrum_position"].tolist(),
                        line=dict(width=1.5, color="#444") if status == "completed"
                        else dict(width=2))), row=1, col=col)
    if sub.empty:
        return
    front = sub[pareto_mask(sub[cost], sub[ACC])].sort_values(cost)
    fig.add_trace(go.Scatter(
        x=front[cost].tolist(), y=front[ACC].tolist(), mode="lines+markers",
        name="Pareto front (max accuracy, min cost)", legendgroup="front", meta=cost,
        visible=visible, showlegend=first, hoverinfo="skip",
        line=dict(shape="hv", color="crimson"), cliponaxis=False,
        marker=dict(symbol="circle-open", size=18, color="crimson", line=dict(width=2))),
        row=1, col=col)
    refs = sub[sub["reference"].map(text) != ""] if "reference" in sub else sub.iloc[:0]
    # Invisible markers as big as the front's rings push the labels clear of them.
    fig.add_trace(go.Scatter(
        x=refs[cost].tolist(), y=refs[ACC].tolist(), mode="markers+text", meta=cost,
        visible=visible, text=refs["reference"].tolist(), textposition="top center",
        showlegend=False, hoverinfo="skip", marker=dict(size=20, opacity=0), cliponaxis=False,
        textfont=dict(size=11, color="#555")), row=1, col=col)


def _jitter(trial_id: str) -> float:
    """A stable sideways offset per trial, so points do not move between refreshes."""
    return (int(hashlib.sha1(str(trial_id).encode()).hexdigest()[:4], 16) / 0xFFFF - 0.5) * 0.3


def spectrum(scored: pd.DataFrame, stages: list[int], fidelity: Fidelity) -> go.Figure:
    """Accuracy against groups per stage, 1 (regular conv) to C (depthwise), log2 scale."""
    titles = []
    for i in stages:
        widths = sorted(scored[f"s{i}_width"].dropna().astype(int).unique())
        titles.append(f"stage s{i}: width C = {'/'.join(map(str, widths))}")
    fig = make_subplots(rows=1, cols=len(stages), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=titles)
    hover = scored.apply(hover_text, axis=1, epoch=fidelity.epoch)
    shifts = np.exp2(scored["trial_id"].map(_jitter).to_numpy(dtype=float))
    for col, i in enumerate(stages, start=1):
        groups = scored[f"s{i}_groups"].astype(float)
        for status in SCORED:
            part = scored["status"] == status
            x = groups[part] * shifts[part.to_numpy()]
            fig.add_trace(go.Scatter(
                x=x.tolist(), y=scored.loc[part, ACC].tolist(),
                mode="markers", name=STATUS_LABEL[status], legendgroup=status,
                showlegend=col == 1, text=hover[part].tolist(),
                hovertemplate="%{text}<extra></extra>",
                marker=dict(size=9, symbol=SYMBOL[status], color=CURVE_STYLE[status][0],
                            line=dict(width=1.5))), row=1, col=col)
        per = scored.groupby(groups)[ACC]
        for stat, dash, name in (("max", "solid", "best at each groups value"),
                                 ("median", "dash", "median at each groups value")):
            values = per.agg(stat)
            fig.add_trace(go.Scatter(
                x=values.index.tolist(), y=values.tolist(), mode="lines", name=name,
                legendgroup=stat, showlegend=col == 1, line=dict(color="#333", dash=dash),
                hovertemplate=f"groups %{{x}}: {stat} %{{y:.4f}}<extra></extra>"),
                row=1, col=col)
        ticks = sorted(groups.unique())
        depthwise = {g for g in ticks if (scored.loc[groups == g, f"s{i}_width"] == g).all()}
        labels = [f"{g:g}" + ("<br>regular" if g == 1 else "") +
                  ("<br>depthwise" if g in depthwise and g != 1 else "") for g in ticks]
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=labels, title_text="groups (log)",
                         row=1, col=col)
    fig.update_yaxes(title_text=_axis(fidelity), row=1, col=1)
    return _layout(fig, 460, title=_title(fidelity.label))


def factor_columns(scored: pd.DataFrame, stages: list[int], field: str) -> dict[str, pd.Series]:
    """Panel label -> each trial's level: one panel per stage where the field varies, or a
    single 'all stages' panel when every trial uses one value throughout (a shared choice)."""
    present = [i for i in stages if f"s{i}_{field}" in scored]
    levels = {f"s{i}": scored[f"s{i}_{field}"].map(text) for i in present}
    varying = {k: v for k, v in levels.items() if v.nunique() > 1}
    if not varying:
        return {}
    frame = pd.DataFrame(levels)
    if len(levels) > 1 and (frame.nunique(axis=1) == 1).all():
        return {"all stages": frame.iloc[:, 0]}
    return varying


def factor_effects(scored: pd.DataFrame, stages: list[int], field: str, label: str,
                   fidelity: Fidelity) -> go.Figure | None:
    """Error EDFs (top) and accuracy box plots (bottom), one curve / box per level."""
    panels = factor_columns(scored, stages, field)
    if not panels:
        return None
    all_levels = sorted({v for s in panels.values() for v in s.unique()})
    colour = {lv: qualitative.Plotly[k % 10] for k, lv in enumerate(all_levels)}
    fig = make_subplots(rows=2, cols=len(panels), subplot_titles=list(panels),
                        vertical_spacing=0.16, horizontal_spacing=0.04)
    at = f"epoch {fidelity.epoch}"
    shown: set[str] = set()
    for col, series in enumerate(panels.values(), start=1):
        for level in sorted(series.unique()):
            acc = scored.loc[series == level, ACC]
            err = np.sort(1 - acc.to_numpy())
            fig.add_trace(go.Scatter(
                x=[err[0], *err], y=[0, *(np.arange(1, len(err) + 1) / len(err))],
                mode="lines+markers", line=dict(shape="hv", color=colour[level]),
                marker=dict(size=5), name=f"{label} = {level}", legendgroup=level,
                showlegend=level not in shown,
                hovertemplate=f"{level}: %{{y:.0%}} of trials have error ≤ %{{x:.4f}}"
                              f" (n={len(err)})<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Box(
                x=[level] * len(acc), y=acc.tolist(), name=level, legendgroup=level,
                showlegend=False, marker_color=colour[level], boxpoints="all", jitter=0.4,
                pointpos=0, hovertemplate=f"{level}: %{{y:.4f}}<extra></extra>"),
                row=2, col=col)
            shown.add(level)
        fig.update_xaxes(title_text=f"error = 1 − val acc at {at}", row=1, col=col)
    # Equal ranges across panels so they compare at a glance (plotly's axis matching
    # misplaces box-plot ranges: set them outright instead).
    low, high = scored[ACC].min(), scored[ACC].max()
    pad = max(0.01, (high - low) * 0.08)
    fig.update_xaxes(range=[1 - high - pad, 1 - low + pad], row=1)
    fig.update_yaxes(range=[0, 1.02], row=1)
    fig.update_yaxes(range=[low - pad, high + pad], row=2)
    fig.update_yaxes(title_text="cumulative fraction", row=1, col=1)
    fig.update_yaxes(title_text=f"val acc at {at}", row=2, col=1)
    return _layout(fig, 580, title=_title(f"{label} · {fidelity.label}"), boxmode="overlay",
                   legend=dict(orientation="h", y=-0.12, x=0))


def learning_curves(table: pd.DataFrame, best_id: str | None) -> go.Figure:
    """Validation accuracy per epoch of every trial; early-stopped and broken ones dashed."""
    fig = go.Figure()
    counts = table["status"].value_counts()
    shown: set[str] = set()
    for _, row in table.iterrows():
        points = curve(row.get("curve"))
        if not points:
            continue
        status = row["status"]
        colour, dash = CURVE_STYLE.get(status, ("#7f7f7f", "dot"))
        best = str(row["trial_id"]) == best_id
        fig.add_trace(go.Scatter(
            x=list(range(1, len(points) + 1)), y=points, mode="lines+markers",
            name=f"best: trial {best_id}" if best else f"{status} ({counts[status]})",
            legendgroup="best" if best else status, showlegend=best or status not in shown,
            line=dict(color="#111" if best else colour, dash=dash, width=3 if best else 1.5),
            marker=dict(size=5), opacity=1 if best else 0.75,
            hovertemplate=f"trial {row['trial_id']} ({status})<br>epoch %{{x}}:"
                          " %{y:.4f}<extra></extra>"))
        shown.add("best" if best else status)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="validation accuracy")
    return _layout(fig, 420)


def importance(ranked: dict[str, float], fidelity: Fidelity) -> go.Figure:
    """Horizontal bars, most important on top."""
    names = list(ranked)[::-1]
    values = [ranked[n] for n in names]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color="#4c78a8",
                           text=[f"{v:.2f}" for v in values], textposition="auto",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="importance (share, sums to 1)")
    return _layout(fig, max(280, 80 + 28 * len(names)), showlegend=False,
                   title=_title(f"importance for {fidelity.label}"))


def study_chart(study: pd.DataFrame, labels: Sequence[str]) -> go.Figure:
    """Per study row: every seed's accuracy, the mean ± std, the baseline's mean as a line."""
    names = [" / ".join(text(r[c]) for c in labels) for _, r in study.iterrows()]
    fig = go.Figure()
    for name, (_, row) in zip(names, study.iterrows(), strict=True):
        seeds = [100 * v for v in json.loads(text(row.get("seed_val_accs")) or "[]")]
        # a box with no box: plotly's jittered strip, so equal seeds stay visible
        fig.add_trace(go.Box(
            x=[name] * len(seeds), y=seeds, boxpoints="all", jitter=0.5, pointpos=0,
            fillcolor="rgba(0,0,0,0)", line=dict(width=0), showlegend=False,
            marker=dict(size=7, color="#6baed6"), hovertemplate="seed: %{y:.1f}%<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=names, y=(100 * study["val_acc_mean"]).tolist(), mode="markers",
        name="mean ± std over seeds",
        marker=dict(size=13, symbol="diamond", color="#1f77b4"),
        error_y=dict(type="data", array=(100 * study["val_acc_std"]).fillna(0).tolist()),
        hovertemplate="%{x}: %{y:.1f}%<extra></extra>"))
    base = study[study.get("is_baseline", pd.Series(False, index=study.index)).astype(bool)]
    if not base.empty:
        fig.add_hline(y=100 * float(base["val_acc_mean"].iloc[0]), line_dash="dot",
                      annotation_text="baseline mean", line_color="#7f7f7f")
    return _layout(fig, 380, xaxis_title=" / ".join(labels),
                   yaxis_title="validation accuracy (%)", legend=dict(orientation="h", y=1.12))
