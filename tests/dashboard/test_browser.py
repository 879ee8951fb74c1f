"""End to end in headless Chromium: the served dashboard draws every chart without console
errors, its table sorts and filters, it follows a changing run folder, and the saved file
renders offline from file://."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from nas.dashboard.data import load_run
from nas.dashboard.page import write_html
from nas.dashboard.server import Dashboard, DashServer
from nas.results.atomic import atomic_write
from nas.results.ranking import best_trial
from nas.results.table import all_trials

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
         "--window-size=1400,2000")
WAIT_S = 60  # a busy 2-core CI machine can take seconds to draw; a pass returns at once
HAVE_BROWSER = CHROMIUM.exists() and DRIVER.exists() and importlib.util.find_spec("selenium")
# Skip before the session's real searches run when there is no browser here; in CI the
# fixture below fails instead (CI must run this test).
pytestmark = pytest.mark.skipif(not HAVE_BROWSER and not os.environ.get("CI"),
                                reason="needs /usr/bin/chromium, /usr/bin/chromedriver and"
                                " selenium (apt-get install chromium chromium-driver;"
                                " pip install selenium)")
# Per chart: is it a drawn plotly graph, how many x/y values its traces hold, how many marks
# (points, lines, boxes, bars) its SVG has.
CHARTS_JS = """
return Array.from(document.querySelectorAll('.chart')).map(function (el) {
  var values = (el.data || []).reduce(function (n, t) {
    return n + ((t.x && t.x.length) || 0) + ((t.y && t.y.length) || 0); }, 0);
  return { id: el.id, drawn: el.classList.contains('js-plotly-plot') && !!el._fullLayout,
           values: values, marks: el.querySelectorAll('g.trace path').length };
});
"""


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through the system chromedriver (selenium-manager downloads nothing)."""
    missing = [str(p) for p in (CHROMIUM, DRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = (f"needs {', '.join(missing)} (apt-get install chromium chromium-driver;"
               " pip install selenium)")
        if os.environ.get("CI"):
            pytest.fail(f"browser test {why}", pytrace=False)  # CI must run it
        pytest.skip(why)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture()
def served(tiny_run, tmp_path):
    """A copy of the tiny run (so the test can change it) served on a free port."""
    run = tmp_path / tiny_run.name
    run.mkdir()
    meta = json.loads((tiny_run / "meta.json").read_text())
    for name in ("meta.json", "trials.csv", "optuna.db", meta["space_file"]):
        shutil.copy2(tiny_run / name, run / name)
    server = DashServer(0, Dashboard(run, refresh=0.5))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield run, server.url
    server.shutdown()
    server.server_close()


def wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition, message)


def load(driver, url: str) -> None:
    """Open url with an empty console (a page left open before may still be polling)."""
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(url)


def charts_drawn(driver) -> list[dict]:
    """Wait until every chart placeholder is a drawn plotly graph; their summaries."""
    wait(driver, lambda d: d.execute_script(CHARTS_JS) and all(
        c["drawn"] for c in d.execute_script(CHARTS_JS)), "charts were not drawn")
    return driver.execute_script(CHARTS_JS)


def check_page(driver, table: pd.DataFrame) -> None:
    charts = charts_drawn(driver)
    ids = {c["id"] for c in charts}
    assert {"fig-cost", "fig-spectrum", "fig-importance", "fig-curves"} <= ids
    assert any(i.startswith("fig-factor-") for i in ids)
    for chart in charts:
        assert chart["values"] > 0 and chart["marks"] > 0, f"{chart['id']} shows no data"
    body_rows = driver.execute_script("return document.querySelectorAll("
                                      "'#trials-table tbody tr').length")
    assert body_rows == len(table)
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def text(driver, element_id: str) -> str:
    """An element's visible text, read in one script call: a live refresh replaces #content's
    elements, so a found element can go stale before its .text is fetched."""
    return driver.execute_script(
        "var e = document.getElementById(arguments[0]); return e ? e.innerText : '';", element_id)


def column(driver, name: str) -> list[str]:
    return driver.execute_script(
        "var t = document.getElementById('trials-table');"
        "var i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.dataset.col === arguments[0]);"
        "return Array.from(t.tBodies[0].rows).filter(r => !r.hidden)"
        ".map(r => r.cells[i].dataset.v ?? r.cells[i].textContent);", name)


def test_served_dashboard_in_chromium(browser, served):
    from selenium.webdriver.common.by import By

    run, url = served
    table = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    load(browser, url)
    check_page(browser, table)
    overview = text(browser, "overview")
    best = best_trial(table)["trial_id"]  # the best full-budget trial
    assert f"Best architecture: trial {best}" in overview and "run_search.py export" in overview

    # sorting: numbers ascending, then descending
    browser.find_element(By.CSS_SELECTOR, 'th[data-col="params"]').click()
    params = [float(v) for v in column(browser, "params")]
    assert params == sorted(params)
    browser.find_element(By.CSS_SELECTOR, 'th[data-col="params"]').click()
    assert [float(v) for v in column(browser, "params")] == sorted(params, reverse=True)
    # filtering: column terms and plain words
    box = browser.find_element(By.ID, "trial-filter")
    box.send_keys("status=stopped")
    stopped = int((table["status"] == "stopped").sum())
    assert column(browser, "status") == ["stopped"] * stopped
    assert f"{stopped} of {len(table)} trials shown" in text(browser, "trial-count")

    # the live page follows the run folder: a retrain step writes retrain.csv (atomically, as
    # nas.retrain does)
    frame = pd.DataFrame({"trial_id": [best, best], "seed": [0, 1], "test_acc": [0.3, 0.32]})
    atomic_write(run / "retrain.csv", lambda tmp: frame.to_csv(tmp, index=False))
    wait(browser, lambda d: "Retrained: final test accuracy" in text(d, "overview"),
         "the page did not refresh after retrain.csv appeared")
    assert "0.3100 ± 0.0141" in text(browser, "overview")
    check_page(browser, table)  # charts redrawn after the refresh
    assert column(browser, "status") == ["stopped"] * stopped  # the filter survived it
    assert "live" in text(browser, "live")


def test_saved_file_renders_offline(browser, tiny_run, tmp_path):
    out = tmp_path / "dashboard.html"
    write_html(load_run(tiny_run), out)
    load(browser, out.as_uri())
    check_page(browser, pd.read_csv(tiny_run / "trials.csv"))
    assert "snapshot built" in browser.execute_script(
        "return document.getElementById('live').textContent")


# Per factor-effects chart: its title and its box plots' accuracies grouped by panel (axis).
FACTOR_BOXES_JS = """
return Array.from(document.querySelectorAll('#slot-factors .chart')).map(function (el) {
  var panels = {};
  (el.data || []).forEach(function (t) {
    if (t.type !== 'box') return;
    var axis = t.xaxis || 'x';
    panels[axis] = (panels[axis] || []).concat(t.y);
  });
  return { id: el.id, title: el.layout.title.text, panels: Object.values(panels) };
});
"""


def reached(table: pd.DataFrame, epoch: int) -> list[float]:
    """The scored trials' accuracies at `epoch` (those that reached it), sorted."""
    scored = table[table["status"].isin(("completed", "stopped"))]
    return sorted(c[epoch - 1] for c in scored["curve"].map(json.loads) if len(c) >= epoch)


def factor_boxes(driver) -> list[dict]:
    charts_drawn(driver)
    return driver.execute_script(FACTOR_BOXES_JS)


def varied_at(table: pd.DataFrame, epoch: int) -> bool:
    """Whether the scored trials that reached `epoch` differ in any factor of a per-stage
    column (the real search's ASHA decides how many reach the full budget: once only 1 did)."""
    from nas.dashboard.figures import FACTORS

    scored = table[table["status"].isin(("completed", "stopped"))]
    there = scored[scored["curve"].map(lambda c: len(json.loads(c)) >= epoch)]
    return any(there[c].astype(str).nunique() > 1 for field, _ in FACTORS
               for c in there.columns if c.startswith("s") and c.endswith(f"_{field}")
               and c[1:-len(field) - 1].isdigit())


def assert_factors_at(driver, table: pd.DataFrame, epoch: int, label: str) -> None:
    """The factor section names the epoch, and every panel's boxes hold exactly the trials'
    accuracies at that epoch; where those trials vary in no factor, it says so, chartless."""
    assert f"Compared at: {label}" in text(driver, "factors")
    boxes = factor_boxes(driver)
    if not varied_at(table, epoch):
        assert not boxes and "Not varied in these trials" in text(driver, "factors")
        return
    assert boxes, "no factor-effects chart"
    for chart in boxes:
        assert label in chart["title"], chart["title"]
        for panel in chart["panels"]:
            assert sorted(panel) == pytest.approx(reached(table, epoch))


def test_epoch_control_redraws_from_that_epochs_accuracies(browser, served):
    from selenium.webdriver.support.ui import Select

    run, url = served
    table = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    last = int(json.loads((run / "meta.json").read_text())["budget"]["epochs"])
    full = int((table["status"] == "completed").sum())
    load(browser, url)
    check_page(browser, table)
    # default: epoch 1, which every trial reached
    assert_factors_at(browser, table, 1, f"val acc at epoch 1 (all {len(table)} trials reached"
                                         " it)")
    assert reached(table, 1) != reached(table, last)  # the two views really differ
    Select(browser.find_element("id", "fidelity-epoch")).select_by_value(str(last))
    wait(browser, lambda d: d.execute_script(
        "return document.getElementById('content').dataset.epoch") == str(last),
        "the epoch control did not redraw")
    label = (f"val acc at epoch {last}, the full budget (the {full} of {len(table)} trials that"
             " reached it)")
    assert_factors_at(browser, table, last, label)
    cost = driver_figure(browser, "fig-cost")
    assert label in cost["title"] and sorted(cost["y"]) == pytest.approx(
        sorted(reached(table, last) * 3))  # three panels: MACs, params, latency
    # the runtime control: the latency panel shows the chosen column, kept across epochs
    shown = "latency_ms@torch:b1"
    choose_runtime(browser, shown)
    assert latency_panel(browser)["x"] == pytest.approx(latencies(table, shown, last))
    Select(browser.find_element("id", "fidelity-epoch")).select_by_value("1")
    wait(browser, lambda d: d.execute_script(
        "return document.getElementById('content').dataset.epoch") == "1",
        "the epoch control did not redraw")
    panel = latency_panel(browser)
    assert panel["columns"] == [shown] and "torch:b1" in panel["title"]
    assert panel["x"] == pytest.approx(latencies(table, shown, 1))
    Select(browser.find_element("id", "fidelity-epoch")).select_by_value(str(last))
    wait(browser, lambda d: d.execute_script(
        "return document.getElementById('content').dataset.epoch") == str(last),
        "the epoch control did not redraw")
    # a live refresh keeps the chosen epoch
    frame = pd.DataFrame({"trial_id": [table["trial_id"].iloc[0]], "seed": [0], "test_acc": [0.3]})
    atomic_write(run / "retrain.csv", lambda tmp: frame.to_csv(tmp, index=False))
    wait(browser, lambda d: "Retrained: final test accuracy" in text(d, "overview"),
         "the page did not refresh after retrain.csv appeared")
    assert browser.execute_script("return document.getElementById('fidelity-epoch').value") \
        == str(last)
    assert_factors_at(browser, table, last, label)
    assert latency_panel(browser)["columns"] == [shown]  # and the chosen runtime
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


# The cost view's latency panel as drawn: the columns of its visible trial markers, their
# values, the panel's axis title, and the column the page says it shows.
LATENCY_PANEL_JS = """
var el = document.getElementById('fig-cost'), info = el.layout.meta.latency;
var shown = el.data.filter(t => t.visible !== false && info.titles[t.meta] !== undefined
                           && (t.legendgroup === 'completed' || t.legendgroup === 'stopped'));
return { columns: Array.from(new Set(shown.map(t => t.meta))),
         x: shown.flatMap(t => t.x).sort((a, b) => a - b),
         title: el.layout[info.axis].title.text,
         runtime: document.getElementById('content').dataset.runtime };
"""


def latency_panel(driver) -> dict:
    charts_drawn(driver)
    return driver.execute_script(LATENCY_PANEL_JS)


def latencies(table: pd.DataFrame, column: str, epoch: int) -> list[float]:
    """The column's values of the scored trials that reached `epoch`, sorted."""
    scored = table[table["status"].isin(("completed", "stopped"))]
    reached = scored[scored["curve"].map(lambda c: len(json.loads(c)) >= epoch)]
    return sorted(reached[column])


def choose_runtime(driver, column: str) -> None:
    """Pick a latency column with the runtime control; wait for the panel to show it."""
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "latency-runtime")).select_by_value(column)
    wait(driver, lambda d: d.execute_script(LATENCY_PANEL_JS)["columns"] == [column],
         f"the runtime control did not show {column}")
    assert latency_panel(driver)["runtime"] == column


def test_runtime_control_switches_the_latency_panel(browser, latency_run, tmp_path):
    out = tmp_path / "dashboard.html"
    write_html(load_run(latency_run), out)
    load(browser, out.as_uri())
    table = pd.read_csv(latency_run / "trials.csv")
    # three 1-epoch trials: too few for parameter importance, enough for the cost view
    assert "fig-cost" in {c["id"] for c in charts_drawn(browser)}
    objective = "latency_ms@onnxruntime:b1"  # the search's second objective: shown first
    panel = latency_panel(browser)
    assert panel["columns"] == [objective] and panel["runtime"] == objective
    assert panel["x"] == pytest.approx(latencies(table, objective, 1))
    for name in ("latency_ms@torch_cl:b2", "latency_ms"):
        choose_runtime(browser, name)
        panel = latency_panel(browser)
        assert panel["x"] == pytest.approx(latencies(table, name, 1))
        assert ("torch_cl:b2" if name != "latency_ms" else "training precision") in (
            panel["title"])
    # the table filters on a runtime's latency column like on any other
    threshold = sorted(table[objective])[1]
    browser.find_element("id", "trial-filter").send_keys(f"{objective}<={threshold!r}")
    assert len(column(browser, "trial_id")) == 2
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def driver_figure(driver, element_id: str) -> dict:
    """A drawn chart's title and the accuracies of its trial markers."""
    return driver.execute_script(
        "var el = document.getElementById(arguments[0]);"
        "var ys = (el.data || []).filter(t => (t.legendgroup === 'completed'"
        " || t.legendgroup === 'stopped') && t.visible !== false).flatMap(t => t.y);"
        "return { title: el.layout.title.text, y: ys };", element_id)


def test_the_answer_comes_first_and_the_charts_open_where_it_rests(browser, raced_run, tmp_path):
    out = tmp_path / "dashboard.html"
    write_html(load_run(raced_run), out)
    load(browser, out.as_uri())
    answer = json.loads((raced_run / "answer.json").read_text())
    first = browser.execute_script("return document.querySelector('#content section').id")
    assert first == "answer"
    said = text(browser, "answer")
    assert f"Practical pick: {answer['pick']}" in said
    rows = browser.execute_script(
        "return document.querySelectorAll('#answer table.answer-tier tbody tr').length")
    assert rows == len(answer["tier"])
    assert browser.execute_script("return document.getElementById('fidelity-epoch').value") \
        == str(answer["fidelity"])
    assert "what the answer rests on" in text(browser, "fidelity-bar")
    check_page(browser, all_trials(raced_run))  # the verification runs are trials too
