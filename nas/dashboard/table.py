"""The trials table as HTML: every column of trials.csv, raw values kept for sort and filter."""

from __future__ import annotations

import math
import numbers
from html import escape

import numpy as np
import pandas as pd

from nas.dashboard.data import curve, final_tests
from nas.results.values import text

LONG = 40  # characters shown of long cells (genotype JSON, curves, paths); the rest on hover
COUNTS = {"params", "macs"}  # shown with thousands separators


def cell(column: str, value) -> str:
    """One <td>; data-v holds the raw value whenever the shown text differs from it."""
    if isinstance(value, bool | np.bool_):
        return f"<td>{bool(value)}</td>"
    if isinstance(value, numbers.Real):
        if math.isnan(value):
            return "<td></td>"
        shown = (f"{value:,.0f}" if column in COUNTS or abs(value) >= 1000
                 else f"{value:.4g}" if isinstance(value, float | np.floating) else str(value))
        return f'<td class="num" data-v="{float(value)!r}">{escape(shown)}</td>'
    raw = text(value)
    if column == "curve" and raw.startswith("["):
        shown = ", ".join(f"{v:.3f}" if v is not None else "nan" for v in curve(raw))
        return f'<td class="long" data-v="{escape(raw)}" title="{escape(shown)}">{shown}</td>'
    if column == "error" and raw.strip():
        last = raw.strip().splitlines()[-1]  # a traceback ends with the exception line
        return (f'<td class="error" data-v="{escape(raw)}"><details><summary>'
                f"{escape(last[:LONG * 3])}</summary><pre>{escape(raw)}</pre></details></td>")
    if len(raw) > LONG:
        return (f'<td class="long" data-v="{escape(raw)}" title="{escape(raw)}">'
                f"{escape(raw[:LONG])}…</td>")
    return f"<td>{escape(raw)}</td>"


def trials_table(table: pd.DataFrame, retrain: pd.DataFrame | None) -> str:
    """A sortable, filterable table (the page script adds both) with one row per trial."""
    frame = table.copy()
    if retrain is not None and not retrain.empty:
        tests = final_tests(retrain)
        ids = frame["trial_id"].astype(str)
        frame.insert(frame.columns.get_loc("best_val_acc") + 1, "test_acc_mean",
                     ids.map(tests["test_mean"]))
        frame.insert(frame.columns.get_loc("test_acc_mean") + 1, "test_acc_std",
                     ids.map(tests["test_std"]))
    head = "".join(f'<th data-col="{escape(str(c).lower())}" title="sort by {escape(str(c))}">'
                   f"{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.to_dict("records"):
        status = escape(text(record.get("status")))
        cells = "".join(cell(str(c), record[c]) for c in frame.columns)
        rows.append(f'<tr data-status="{status}">{cells}</tr>')
    return (
        '<div class="table-tools"><input id="trial-filter" type="search" size="48"'
        ' placeholder="filter, e.g. completed   s1_order:pw_dw   best_val_acc>0.5">'
        ' <span id="trial-count"></span><div class="hint">Click a header to sort (again to'
        " reverse). Terms must all match: plain words match any cell; <code>col:text</code>"
        " contains, <code>col=value</code> equals, <code>col&gt;x</code>, <code>col&lt;x</code>"
        " compare numbers.</div></div>"
        f'<div class="table-wrap"><table id="trials-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>")


SHOWN_SCORES = 20  # the scored-points table shows the best this many; the file has them all
SCORE_FIELDS = ("groups", "kernel", "order", "mid_act", "residual")


def scores_table(scores: pd.DataFrame, trials: pd.DataFrame) -> str:
    """The best scored points, with the verified stand-alone accuracy where one was trained."""
    frame = scores.head(SHOWN_SCORES)
    stages = sorted({c.split("_")[0] for c in frame.columns if c.endswith("_groups")})
    columns = ["rank", "score", *(["val_loss"] if "val_loss" in frame else []), "params",
               "macs"] + [
        f"{s}_{f}" for s in stages for f in SCORE_FIELDS if f"{s}_{f}" in frame.columns]
    frame = frame[columns].copy()
    if not trials.empty and "arch_key" in trials:
        done = trials[trials["status"] == "completed"].set_index("arch_key")["best_val_acc"]
        frame.insert(2, "verified val acc", scores.head(SHOWN_SCORES)["arch_key"].map(
            done[~done.index.duplicated()]))
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(cell(str(c), r[c]) for c in frame.columns) + "</tr>"
                   for r in frame.to_dict("records"))
    return (f'<div class="table-wrap"><table id="scores-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")
