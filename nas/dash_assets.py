"""The page's own style sheet and script (plotly.js itself comes from the plotly package)."""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #222; background: #f6f7f9; }
header { position: sticky; top: 0; z-index: 10; background: #1f2a3a; color: #fff;
         padding: 8px 20px; display: flex; align-items: baseline; gap: 18px; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header nav a { color: #cfe0ff; margin-right: 12px; text-decoration: none; }
.live { margin-left: auto; font-size: 12px; color: #b9c4d4; }
.live.down { color: #ffb3b3; }
main { padding: 4px 20px 40px; max-width: 1600px; margin: 0 auto; }
section { background: #fff; border: 1px solid #e2e5ea; border-radius: 6px; margin: 16px 0;
          padding: 6px 18px 14px; }
h2 { font-size: 17px; margin: 10px 0 2px; }
h2 + .question { color: #5b6472; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 14px 0 4px; }
.note { color: #5b6472; font-style: italic; }
.empty { font-size: 18px; padding: 30px 0; text-align: center; color: #5b6472; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.card { border: 1px solid #e2e5ea; border-radius: 6px; padding: 6px 12px; min-width: 140px; }
.card .k { font-size: 12px; color: #5b6472; } .card .v { font-size: 17px; font-weight: 600; }
.card .s { font-size: 12px; color: #5b6472; }
.pill { display: inline-block; border-radius: 10px; padding: 1px 9px; margin: 2px 4px 2px 0;
        font-size: 13px; background: #eef1f5; }
.pill.completed { background: #dbeafe; } .pill.stopped { background: #ffe8cc; }
.pill.diverged, .pill.failed { background: #fde0e0; } .pill.infeasible { background: #e6e6e6; }
.pill.zero { opacity: .45; }
pre { background: #f3f4f6; padding: 6px 10px; border-radius: 4px; overflow-x: auto; margin: 4px 0; }
code { background: #eef1f5; padding: 1px 5px; border-radius: 3px; user-select: all; }
table.kv td { padding: 1px 14px 1px 0; }
.small-table th, .small-table td { padding: 2px 10px; text-align: left; }
.table-tools { margin: 6px 0; } .hint { font-size: 12px; color: #5b6472; margin-top: 3px; }
.table-wrap { overflow: auto; max-height: 640px; border: 1px solid #e2e5ea; }
#trials-table { border-collapse: collapse; font-size: 12px; white-space: nowrap; }
#trials-table th { position: sticky; top: 0; background: #eef1f5; cursor: pointer;
                   padding: 4px 8px; border-bottom: 1px solid #cfd5dd; z-index: 1; }
#trials-table th[data-dir="1"]::after { content: " ▲"; }
#trials-table th[data-dir="-1"]::after { content: " ▼"; }
#trials-table td { padding: 2px 8px; border-bottom: 1px solid #f0f1f3; vertical-align: top; }
#trials-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
#trials-table tr[data-status="failed"], #trials-table tr[data-status="diverged"] {
  background: #fff4f4; }
#trials-table tr[data-status="stopped"] td { color: #555; }
td.error details { white-space: normal; min-width: 320px; }
td.error pre { white-space: pre-wrap; max-width: 900px; }
.chart { width: 100%; }
"""

# One render() for the first paint and every refresh, so a live page and a saved file behave
# the same; sort and filter state live outside the table, so they survive a refresh.
JS = """
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("dash-config").textContent);
  var state = { version: null, sort: null, filter: "" };
  var live = document.getElementById("live");

  function render(payload) {
    var main = document.getElementById("content");
    main.querySelectorAll(".js-plotly-plot").forEach(function (el) { Plotly.purge(el); });
    main.innerHTML = payload.html;
    document.getElementById("nav").innerHTML = payload.nav;
    Object.keys(payload.figures).forEach(function (id) {
      var el = document.getElementById(id), fig = payload.figures[id];
      if (el) Plotly.newPlot(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
    });
    state.version = payload.version;
    setupTable();
  }

  function value(td) { return td.dataset.v !== undefined ? td.dataset.v : td.textContent; }

  function setupTable() {
    var table = document.getElementById("trials-table");
    if (!table) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        var dir = state.sort && state.sort.col === i ? -state.sort.dir : 1;
        state.sort = { col: i, dir: dir };
        sortTable(table);
      });
    });
    var input = document.getElementById("trial-filter");
    input.value = state.filter;
    input.addEventListener("input", function () {
      state.filter = input.value;
      filterTable(table);
    });
    sortTable(table);
    filterTable(table);
  }

  function sortTable(table) {
    if (!state.sort) return;
    var col = state.sort.col, dir = state.sort.dir, body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keys = rows.map(function (r) { return value(r.cells[col]); });
    var numeric = keys.every(function (k) { return k === "" || !isNaN(Number(k)); });
    var order = rows.map(function (_, k) { return k; });
    order.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      if (x === "" || y === "") return (x === "") - (y === "");  // blanks last either way
      return dir * (numeric ? Number(x) - Number(y) : x.localeCompare(y));
    });
    order.forEach(function (k) { body.appendChild(rows[k]); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === col) th.dataset.dir = dir; else delete th.dataset.dir;
    });
  }

  function parse(term) {
    var m = /^([a-z0-9_]+)(<=|>=|:|=|<|>)(.*)$/.exec(term);
    return m ? { col: m[1], op: m[2], arg: m[3] } : { text: term };
  }

  function matches(t, row, names) {
    if (t.text !== undefined) {
      if (row._text === undefined) {
        row._text = Array.prototype.map.call(row.cells, value).join(" ").toLowerCase();
      }
      return row._text.indexOf(t.text) >= 0;
    }
    var i = names.indexOf(t.col);
    if (i < 0) return false;
    var v = value(row.cells[i]).toLowerCase(), x = Number(v), y = Number(t.arg);
    switch (t.op) {
      case ":": return v.indexOf(t.arg) >= 0;
      case "=": return v === t.arg || (v !== "" && t.arg !== "" && x === y);
      case "<": return v !== "" && x < y;
      case ">": return v !== "" && x > y;
      case "<=": return v !== "" && x <= y;
      default: return v !== "" && x >= y;
    }
  }

  function filterTable(table) {
    var names = Array.prototype.map.call(table.tHead.rows[0].cells,
                                         function (th) { return th.dataset.col; });
    var terms = state.filter.trim().toLowerCase().split(/\\s+/).filter(Boolean).map(parse);
    var shown = 0, rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (row) {
      var ok = terms.every(function (t) { return matches(t, row, names); });
      row.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    document.getElementById("trial-count").textContent =
      shown + " of " + rows.length + " trials shown";
  }

  function poll() {
    fetch("version.json", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (v) {
        if (v.version === state.version) return null;
        return fetch("data.json", { cache: "no-store" })
          .then(function (r) { return r.json(); }).then(render);
      })
      .then(function () {
        live.className = "live";
        live.textContent = "live: checks every " + config.refresh + " s, last at " +
          new Date().toLocaleTimeString();
      })
      .catch(function () {
        live.className = "live down";
        live.textContent = "dashboard server not reachable; retrying";
      });
  }

  render(JSON.parse(document.getElementById("dash-payload").textContent));
  if (config.live) {
    live.textContent = "live: checks every " + config.refresh + " s";
    setInterval(poll, config.refresh * 1000);
  } else {
    live.textContent = "snapshot built " + config.built;
  }
})();
"""
