// Charts of the dashboard, drawn by Chart.js from the tables beside them: the figures a chart
// shows are the table's, which stays on the page as text (for screen readers, copying, print).
//
// <figure class="chart" data-type="line|bar" data-table="ID" [data-min] [data-max] [data-suffix]
//         [data-horizontal]>
//   <div class="canvas-box"><canvas></canvas></div> ... <table id="ID">
// Columns to draw: <th data-series [data-color="--css-var"] [data-colors="--a,--b"]>;
// rows: first cell is the label; each drawn cell carries data-value (a plain number or empty).
(function () {
  "use strict";
  if (typeof Chart === "undefined") return;
  var css = getComputedStyle(document.documentElement);
  function colour(name, fallback) {
    var value = name ? css.getPropertyValue(name).trim() : "";
    return value || fallback;
  }
  var palette = ["--accent", "--score-5", "--score-3", "--score-1", "--muted"];

  function readTable(table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var series = [];
    heads.forEach(function (th, index) {
      if (th.hasAttribute("data-series")) series.push({ index: index, th: th });
    });
    var labels = [];
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var values = series.map(function () { return []; });
    rows.forEach(function (row) {
      labels.push(row.cells[0].textContent.trim());
      series.forEach(function (s, n) {
        var cell = row.cells[s.index];
        var raw = cell ? cell.getAttribute("data-value") : "";
        values[n].push(raw === null || raw === "" ? null : parseFloat(raw));
      });
    });
    return { labels: labels, series: series, values: values };
  }

  function draw(figure) {
    var table = document.getElementById(figure.getAttribute("data-table"));
    var canvas = figure.querySelector("canvas");
    if (!table || !canvas || !table.tBodies.length) return;
    var data = readTable(table);
    var type = figure.getAttribute("data-type") || "line";
    var suffix = figure.getAttribute("data-suffix") || "";
    var datasets = data.series.map(function (s, n) {
      var base = colour(s.th.getAttribute("data-color") || palette[n % palette.length], "#2f5aa8");
      var each = s.th.getAttribute("data-colors");
      var colours = each ? each.split(",").map(function (c) { return colour(c.trim(), base); }) : base;
      return {
        label: s.th.textContent.trim(),
        data: data.values[n],
        borderColor: colours,
        backgroundColor: colours,
        spanGaps: true,
        tension: 0.25,
        pointRadius: 3,
      };
    });
    var valueAxis = { beginAtZero: true, ticks: { callback: function (v) { return v + suffix; } } };
    if (figure.hasAttribute("data-min")) valueAxis.min = parseFloat(figure.getAttribute("data-min"));
    if (figure.hasAttribute("data-max")) valueAxis.max = parseFloat(figure.getAttribute("data-max"));
    var horizontal = figure.hasAttribute("data-horizontal");
    new Chart(canvas, {
      type: type,
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + ": " + item.formattedValue + suffix;
              },
            },
          },
        },
        scales: horizontal ? { x: valueAxis } : { y: valueAxis },
      },
    });
    figure.setAttribute("data-drawn", "true");
  }

  document.querySelectorAll("figure.chart").forEach(draw);
})();
