// The dashboard page: one render() for the first paint and every refresh, so a live page and a
// saved file behave the same; sort and filter state live outside the table, so they survive a
// refresh.
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
