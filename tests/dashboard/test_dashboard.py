"""The dashboard: HTML of real runs (finished, broken, empty, retrained), the server's routes."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from nas.cli.main import main as cli_main
from nas.dashboard.data import ACC_AT, at_epoch, load_run, pareto_mask
from nas.dashboard.importance import importances
from nas.dashboard.server import Dashboard, DashServer
from nas.results.ranking import best_trial
from tests.searchkit import ROOT

PAYLOAD = re.compile(r'<script type="application/json" id="dash-payload">(.*?)</script>', re.S)
KEPT = ("meta.json", "trials.csv", "optuna.db")  # what a copied run needs (no Ray folder)


def build(run_dir: Path, tmp_path: Path) -> tuple[str, dict]:
    """`run_search.py dashboard RUN --out FILE` in-process; the HTML and its embedded data."""
    out = tmp_path / "dash.html"
    assert cli_main(["dashboard", str(run_dir), "--out", str(out)]) == 0
    html = out.read_text()
    return html, json.loads(PAYLOAD.search(html).group(1))


def copy_run(src: Path, dst: Path, files=KEPT) -> Path:
    """A copy of a real run folder (meta, space file, chosen results) to change safely."""
    dst.mkdir(parents=True)
    meta = json.loads((src / "meta.json").read_text())
    for name in (*files, meta["space_file"]):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    return dst


def rows(html: str) -> int:
    return html.count("<tr data-status=")


def points(fig: dict) -> int:
    return sum(len(t.get("x") or []) + len(t.get("y") or []) for t in fig["data"])


def curves(table: pd.DataFrame) -> dict[str, list[float]]:
    """Each scored trial's validation curve, by trial id."""
    scored = table[table["status"].isin(("completed", "stopped"))]
    return {str(r["trial_id"]): json.loads(r["curve"]) for _, r in scored.iterrows()}


def marker_values(fig: dict) -> list[float]:
    """The accuracies a figure's trial markers show (visible status traces, not fronts or
    labels, nor the latency columns the runtime control hides)."""
    return sorted(v for t in fig["data"] if t.get("legendgroup") in ("completed", "stopped")
                  and t.get("visible", True) is True for v in t["y"])


def test_tiny_run_page_has_every_view(tiny_run, tmp_path):
    table = pd.read_csv(tiny_run / "trials.csv", dtype={"trial_id": str})
    html, data = build(tiny_run, tmp_path)
    # self-contained: plotly.js inline (its only URL is a geo-map default), no script src
    assert get_plotlyjs() in html and not re.search(r"<script[^>]+src=", html)
    assert "cdn.plot.ly" not in html.replace(get_plotlyjs(), "")
    figures = data["figures"]
    assert {"fig-cost", "fig-spectrum", "fig-curves", "fig-importance"} <= set(figures)
    assert any(k.startswith("fig-factor-") for k in figures)
    assert all(points(fig) > 0 for fig in figures.values()), "a chart without data"
    assert "NaN" not in PAYLOAD.search(html).group(1)  # JSON.parse would reject it
    best = best_trial(table)  # the best full-budget trial
    assert best["status"] == "completed"
    overview = data["html"]
    assert f"{best['best_val_acc']:.4f} (full budget, best of 4 epochs)" in overview
    assert f"Best architecture: trial {best['trial_id']}" in overview
    assert (f"python run_search.py export {tiny_run} --trial {best['trial_id']}"
            f" --out exported/{best['trial_id']}") in overview
    assert "s1: spectrum" in overview and "s2: spectrum" in overview
    for status, n in table["status"].value_counts().items():
        assert f"{status} {n}</span>" in overview
    assert rows(overview) == len(table)
    for column in table.columns:  # every column of trials.csv
        assert f'data-col="{column.lower()}"' in overview
    assert all(tid in overview for tid in table["trial_id"])
    # the spectrum: one panel per stage, x = groups on a log axis
    layout = figures["fig-spectrum"]["layout"]
    assert layout["xaxis"]["type"] == "log" and layout["xaxis2"]["type"] == "log"
    # curves: early-stopped ones dashed and in the legend
    curves = figures["fig-curves"]["data"]
    assert len(curves) == len(table)
    assert {t["line"]["dash"] for t in curves if t["name"].startswith("stopped")} == {"dash"}
    # hover shows the stages
    assert any("s1: spectrum" in " ".join(t.get("text") or []) for t in figures["fig-cost"]["data"])


def test_comparison_views_put_every_trial_at_one_epoch(tiny_run, tmp_path):
    _, data = build(tiny_run, tmp_path)
    table = pd.read_csv(tiny_run / "trials.csv", dtype={"trial_id": str})
    by_id = curves(table)
    fidelity = data["fidelity"]
    # default: the largest epoch every shown trial reached (ASHA's first rung here)
    assert fidelity["default"] == min(len(c) for c in by_id.values()) == 1
    assert set(fidelity["views"]) == {str(e) for e in range(1, 5)}
    assert 'id="fidelity-epoch"' in data["html"]
    n_full = int((table["status"] == "completed").sum())
    assert (f"epoch 4, the full budget: {n_full} of 8 trials — full-budget trials only"
            in data["html"])
    for epoch, view in fidelity["views"].items():
        e = int(epoch)
        reached = sorted(c[e - 1] for c in by_id.values() if len(c) >= e)
        for key in ("fig-cost", "fig-spectrum"):
            fig = view["figures"][key]
            assert f"val acc at epoch {e}" in fig["layout"]["title"]["text"]
            # three cost panels / one panel per stage: each shows every trial once
            panels = 3 if key == "fig-cost" else 2
            assert marker_values(fig) == pytest.approx(sorted(reached * panels))
        factors = [k for k in view["figures"] if k.startswith("fig-factor-")]
        for key in factors:
            assert f"val acc at epoch {e}" in view["figures"][key]["layout"]["title"]["text"]
        assert f"Compared at: <b>val acc at epoch {e}" in view["html"]["factors"]
    # the page's first paint is the default view
    assert data["figures"]["fig-cost"] == fidelity["views"]["1"]["figures"]["fig-cost"]
    full = fidelity["views"]["4"]["figures"]["fig-cost"]
    completed = table[table["status"] == "completed"]
    assert "the full budget" in full["layout"]["title"]["text"]
    assert len(marker_values(full)) == 3 * len(completed)


def test_pareto_front_is_the_non_dominated_trials(tiny_run, tmp_path):
    _, data = build(tiny_run, tmp_path)
    table = at_epoch(load_run(tiny_run).scored, data["fidelity"]["default"])
    front = next(t for t in data["figures"]["fig-cost"]["data"] if t["name"].startswith("Pareto"))
    for macs, acc in zip(front["x"], front["y"], strict=True):
        dominating = table[(table["macs"] <= macs) & (table[ACC_AT] > acc)]
        assert dominating.empty, f"front point ({macs}, {acc}) is dominated"
    cheapest = table.loc[table["macs"].idxmin()]
    assert cheapest["macs"] in front["x"]  # the cheapest trial is always on the front
    assert max(front["y"]) == table[ACC_AT].max()


def test_the_cost_view_has_a_runtime_control_over_the_runs_latency_columns(latency_run,
                                                                            tmp_path):
    _, data = build(latency_run, tmp_path)
    columns = ["latency_ms", *(f"latency_ms@{r}:b{b}" for r in ("torch", "torch_cl",
                                                               "onnxruntime") for b in (1, 2))]
    objective = "latency_ms@onnxruntime:b1"  # the search's second objective: shown first
    options = re.findall(r'<option value="(latency_ms[^"]*)"( selected)?>([^<]*)</option>',
                         data["html"])
    assert [value for value, _, _ in options] == columns
    assert [value for value, selected, _ in options if selected] == [objective]
    labels = {value: label for value, _, label in options}
    assert labels[objective].startswith(f"{objective}: onnxruntime ")
    assert "channels_last" in labels["latency_ms@torch_cl:b2"]
    fig = data["figures"]["fig-cost"]
    info = fig["layout"]["meta"]["latency"]
    assert list(info["titles"]) == columns and info["default"] == objective
    assert fig["layout"][info["axis"]]["title"]["text"] == info["titles"][objective]
    shown = at_epoch(load_run(latency_run).scored, data["fidelity"]["default"])
    for column in columns:  # every column's markers and front, only the objective's visible
        traces = [t for t in fig["data"] if t.get("meta") == column]
        assert traces and all(t["visible"] is (column == objective) for t in traces)
        front = next(t for t in traces if t["name"].startswith("Pareto"))
        on_front = shown.loc[pareto_mask(shown[column], shown[ACC_AT]), column]
        assert sorted(front["x"]) == pytest.approx(sorted(on_front))
    hover = " ".join(fig["data"][0]["text"])
    assert "ms per runtime: torch:b1 " in hover and "onnxruntime:b2 " in hover


def test_pareto_mask_keeps_ties_out():
    cost = pd.Series([1.0, 2.0, 2.0, 3.0, 4.0])
    acc = pd.Series([0.5, 0.7, 0.6, 0.7, 0.9])
    assert pareto_mask(cost, acc).tolist() == [True, True, False, False, True]


def test_broken_run_shows_failed_diverged_and_infeasible(broken_run, tmp_path):
    table = pd.read_csv(broken_run / "trials.csv")
    _, data = build(broken_run, tmp_path)
    overview = data["html"]
    assert "failed 1</span>" in overview and "diverged 4</span>" in overview
    assert "infeasible 1</span>" in overview and "6,706 params &gt; max_params 4,000" in overview
    assert rows(overview) == len(table) == 6
    assert "must be a multiple of 4" in overview  # the failed trial's error, in the table too
    assert overview.count("must be a multiple of 4") >= 2
    assert "non-finite training loss" in overview  # the diverged trial's reason
    assert "nothing to plot" in overview
    assert "fig-cost" not in data["figures"]  # no accuracies, no accuracy plots
    assert data["fidelity"]["views"] == {} and 'id="fidelity-epoch"' not in overview


def test_empty_run_says_no_trials_yet(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "fresh", files=("meta.json",))  # as a search starts
    _, data = build(run, tmp_path)
    assert "No trials yet" in data["html"] and data["figures"] == {}
    (run / "trials.csv").write_text("")  # a table being created
    _, data = build(run, tmp_path)
    assert "No trials yet" in data["html"]


def test_not_a_run_folder_is_a_one_line_error(tmp_path, capsys):
    assert cli_main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no meta.json" in err and "Traceback" not in err


def test_retrain_results_show_mean_and_std(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    table = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    best = table.loc[table["best_val_acc"].idxmax(), "trial_id"]
    other = table.loc[table["best_val_acc"].idxmin(), "trial_id"]
    # as nas.retrain writes it: a row per (trial, seed, epochs); a diverged run has no test_acc
    pd.DataFrame({"trial_id": [best, best, best, best, other, other],
                  "seed": [0, 1, 2, 0, 0, 1], "epochs": [2, 2, 2, 1, 2, 2],
                  "status": ["completed"] * 5 + ["diverged"],
                  "test_acc": [0.30, 0.32, 0.34, 0.1, 0.2, float("nan")]}
                 ).to_csv(run / "retrain.csv", index=False)
    _, data = build(run, tmp_path)
    html = data["html"]
    assert "Retrained: final test accuracy" in html
    # the best trial at its largest budget: mean and sample std over 3 seeds
    assert "0.3200 ± 0.0200 over 3 seed(s), 2 epochs" in html
    assert "0.2000 over 1 seed(s), 2 epochs; 1 run(s) without accuracy" in html
    assert "0.1000 over 1 seed(s), 1 epochs" in html  # the other budget is listed apart
    assert 'data-col="test_acc_mean"' in html and 'data-v="0.32' in html
    (run / "retrain.csv").write_text("trial_id,seed\n")  # not yet a usable file: a note
    assert "holds no rows" in build(run, tmp_path)[1]["html"]


def test_importance_is_computed_at_one_epoch_with_notes_instead_of_errors(tiny_run):
    scored = load_run(tiny_run).scored
    ranked, note = importances(at_epoch(scored, 1))
    assert ranked and abs(sum(ranked.values()) - 1) < 1e-6 and "PED-ANOVA over 8 trials" in note
    assert "at least 4 trials at this epoch; there are 3" in importances(
        at_epoch(scored, 1).head(3))[1]

    def trials(vary: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame([{
            "param_s1_spectrum": [0.0, 0.5, 1.0][i % 3] if "a" in vary else 0.0,
            "param_s1_order": ["dw_pw", "pw_dw"][i % 2] if "b" in vary else "dw_pw",
            ACC_AT: 0.1 * i + ([0.0, 0.5, 1.0][i % 3] if "a" in vary else 0.0)}
            for i in range(8)])

    ranked, _ = importances(trials(("a", "b")))
    assert set(ranked) == {"s1_spectrum", "s1_order"}
    assert ranked["s1_spectrum"] > ranked["s1_order"]  # the accuracy follows the spectrum
    ranked, note = importances(trials(("a",)))
    assert ranked == {} and "only s1_spectrum varies" in note


def test_served_routes_and_404s(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    server = DashServer(0, Dashboard(run, refresh=1))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"

    def get(path: str, headers: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", path, headers=headers or {})  # sent as is, no normalising
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
        return reply.status, body

    try:
        status, page = get("/")
        assert status == 200 and b'<script src="plotly.min.js">' in page
        assert get("/index.html")[0] == 200
        status, js = get("/plotly.min.js")
        assert status == 200 and len(js) > 3_000_000
        status, body = get("/data.json")
        data = json.loads(body)
        assert status == 200 and "fig-cost" in data["figures"]
        before = json.loads(get("/version.json")[1])["version"]
        assert before == data["version"]
        # trials.csv is deliberately not served: the page and /data.json carry the table
        for path in ("/../meta.json", "/%2e%2e/%2e%2e/etc/passwd", "/trials.csv",
                     "/nonexistent", "/meta.json", "/%2E%2E%2Fmeta.json", "//etc/passwd",
                     "/data.json/../meta.json", "/./data.json", "/optuna.db", "/tiny.toml"):
            assert get(path)[0] == 404, path
        assert get("/", {"Host": "evil.example:80"})[0] == 403  # DNS rebinding
        # a search finishing a trial rewrites trials.csv: the version and data follow
        table = pd.read_csv(run / "trials.csv")
        table.iloc[:-1].to_csv(run / "trials.csv", index=False)
        after = json.loads(get("/version.json")[1])["version"]
        assert after != before
        assert json.loads(get("/data.json")[1])["html"].count("<tr data-status=") == len(table) - 1
    finally:
        server.shutdown()
        server.server_close()


def test_cli_port_zero_prints_the_url(tiny_run):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), "dashboard",
                             str(tiny_run), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not url:
            proc.terminate()
            pytest.fail(f"no URL printed: {line!r} {proc.communicate(timeout=30)[1][-2000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=30)
        conn.request("GET", "/version.json")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_load_run_keeps_hex_trial_ids_as_text(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "tiny")
    table = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    table.loc[0, "trial_id"], table.loc[1, "trial_id"] = "00012345", "1e234567"
    table.to_csv(run / "trials.csv", index=False)
    ids = load_run(run).table["trial_id"].tolist()
    assert "00012345" in ids and "1e234567" in ids


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--refresh", "0"]])
def test_bad_flags(tiny_run, argv, capsys):
    assert cli_main(["dashboard", str(tiny_run), *argv]) == 2
    assert "--port must be" in capsys.readouterr().err


def test_a_raced_runs_overview_counts_the_front_end_against_its_budget(raced_run):
    from nas.dashboard.overview import overview
    from nas.results.table import read_table, round_dirs

    run = load_run(raced_run)
    front = len(read_table(raced_run))
    verification = sum(len(read_table(f)) for f in round_dirs(raced_run))
    card = re.search(r'trials finished</div><div class="v">(.*?)</div><div class="s">(.*?)</div>',
                     overview(run)).groups()
    assert verification > 0 and card[0] == f"{front} / {run.meta['budget']['trials']}"
    assert card[1].startswith(f"+ {verification} verification runs in {len(round_dirs(raced_run))}")
