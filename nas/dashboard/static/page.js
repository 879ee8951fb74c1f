// The dashboard page: one render() for the first paint and every refresh, so a live page and a
// saved file behave the same; sort, filter, the chosen epoch and the chosen latency runtime
// live outside the page's elements, so they survive a refresh.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("dash-config").textContent);
  var state = { version: null, sort: null, filter: "", epoch: null, runtime: null };
  // Plotly redraws a new graph once more for its margins; purging a graph before that ends
  // breaks plotly, so every replacement waits for the graphs drawn last.
  var drawing = Promise.resolve();
  var live = document.getElementById("live");

  // Draw the figures whose placeholders are on the page; a promise of when they are done.
  function draw(figures) {
    return Promise.all(Object.keys(figures).map(function (id) {
      var el = document.getElementById(id), fig = figures[id];
      return el ? Plotly.newPlot(el, fig.data, fig.layout,
                                 { responsive: true, displaylogo: false }) : null;
    }));
  }

  // Run `step` (which returns its drawing's promise) once the graphs drawn so far are done.
  function after(step) {
    drawing = drawing.then(step).catch(function (err) { console.error(err); });
  }

  function purge(root) {
    root.querySelectorAll(".js-plotly-plot").forEach(function (el) { Plotly.purge(el); });
  }

  function render(payload) {
    after(function () { return paint(payload); });
  }

  function paint(payload) {
    var main = document.getElementById("content");
    purge(main);
    main.innerHTML = payload.html;
    document.getElementById("nav").innerHTML = payload.nav;
    var epoch = chosenEpoch(payload.fidelity), figures = payload.figures;
    if (epoch !== null && epoch !== String(payload.fidelity["default"])) {
      // a refresh keeps the chosen epoch: its views replace the default ones before drawing
      var view = payload.fidelity.views[epoch];
      fillSlots(view);
      figures = Object.assign({}, payload.figures, view.figures);
    }
    state.version = payload.version;
    setupFidelity(payload.fidelity, epoch);
    setupRuntime();
    setupTable();
    pickRuntime(figures["fig-cost"]);
    return draw(figures);
  }

  // The runtime control: the cost view's latency panel holds one set of traces per latency
  // column (each trace's meta names its column); only the chosen column's are visible.
  function latencyInfo(fig) {
    return fig && fig.layout && fig.layout.meta ? fig.layout.meta.latency : undefined;
  }

  function chosenRuntime(info) {
    return state.runtime !== null && info.titles[state.runtime] !== undefined ? state.runtime
      : info["default"];
  }

  // Before a draw: the figure's visible traces and axis title for the chosen runtime.
  function pickRuntime(fig) {
    var info = latencyInfo(fig);
    if (!info) return;
    var chosen = chosenRuntime(info);
    fig.data.forEach(function (t) {
      if (info.titles[t.meta] !== undefined) t.visible = t.meta === chosen;
    });
    fig.layout[info.axis].title.text = info.titles[chosen];
    var content = document.getElementById("content");
    if (content) content.dataset.runtime = chosen;
  }

  function setupRuntime() {
    var select = document.getElementById("latency-runtime");
    if (!select) return;
    if (state.runtime !== null) {
      select.value = state.runtime;
      if (select.value !== state.runtime) state.runtime = null;  // gone from the run
    }
    select.addEventListener("change", function () {
      state.runtime = select.value;
      after(showRuntime);
    });
  }

  // After a change: the drawn chart restyled in place (no redraw of the other charts).
  function showRuntime() {
    var el = document.getElementById("fig-cost"), info = el && latencyInfo(el);
    if (!info) return null;
    var chosen = chosenRuntime(info), update = {};
    update[info.axis + ".title.text"] = info.titles[chosen];
    var visible = el.data.map(function (t) {
      return info.titles[t.meta] !== undefined ? t.meta === chosen : t.visible;
    });
    document.getElementById("content").dataset.runtime = chosen;
    return Plotly.update(el, { visible: visible }, update);
  }

  // The epoch control: the comparison views at the chosen epoch replace the shown ones.
  function chosenEpoch(fidelity) {
    if (!fidelity || fidelity["default"] === null) return null;
    return state.epoch !== null && fidelity.views[state.epoch] ? state.epoch
      : String(fidelity["default"]);
  }

  function setupFidelity(fidelity, epoch) {
    var select = document.getElementById("fidelity-epoch");
    if (!select || epoch === null) return;
    select.value = epoch;
    document.getElementById("content").dataset.epoch = epoch;
    select.addEventListener("change", function () {
      var chosen = select.value;
      state.epoch = chosen;
      after(function () { return showEpoch(fidelity.views[chosen], chosen); });
    });
  }

  function fillSlots(view) {
    Object.keys(view.html).forEach(function (key) {
      var slot = document.getElementById("slot-" + key);
      if (!slot) return;
      purge(slot);
      slot.innerHTML = view.html[key];
    });
  }

  function showEpoch(view, epoch) {
    fillSlots(view);
    document.getElementById("content").dataset.epoch = epoch;
    pickRuntime(view.figures["fig-cost"]);
    return draw(view.figures);
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

  function parse(term) {  // a column may be a runtime's latency: latency_ms@onnxruntime:b1<2
    var m = /^([a-z0-9_]+(?:@[a-z0-9_]+:b[0-9]+)?)(<=|>=|:|=|<|>)(.*)$/.exec(term);
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
    var terms = state.filter.trim().toLowerCase().split(/\s+/).filter(Boolean).map(parse);
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
