/* Draws the funnel report's charts as inline SVG from the JSON in #funnel-data (no library, no CDN). */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function funnelChart(container, steps) {
    var width = 640, rowHeight = 36, labelWidth = 120, height = steps.length * rowHeight + 10;
    var max = Math.max.apply(null, steps.map(function (s) { return s.count; }).concat([1]));
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, class: "funnel" });
    steps.forEach(function (step, i) {
      var y = i * rowHeight + 5, barWidth = Math.round((width - labelWidth - 80) * step.count / max);
      var g = el("g", { class: "step", "data-label": step.label, "data-count": String(step.count) });
      g.appendChild(el("text", { x: 0, y: y + 20 }, step.label));
      g.appendChild(el("rect", { class: "bar", x: labelWidth, y: y, width: barWidth, height: rowHeight - 8 }));
      g.appendChild(el("text", { class: "count", x: labelWidth + barWidth + 6, y: y + 20 }, String(step.count)));
      svg.appendChild(g);
    });
    container.appendChild(svg);
  }

  function cohortChart(container, cohorts, series) {
    if (!cohorts.length) { container.textContent = "-"; return; }
    var height = 220, bottom = 40, groupWidth = Math.max(60, 24 * series.length + 20);
    var width = Math.max(320, cohorts.length * groupWidth + 40), barWidth = (groupWidth - 20) / series.length;
    var max = 1;
    cohorts.forEach(function (c) { c.counts.forEach(function (n) { max = Math.max(max, n); }); });
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, class: "cohorts" });
    cohorts.forEach(function (cohort, i) {
      var x0 = 30 + i * groupWidth;
      var g = el("g", { class: "cohort", "data-week": cohort.label });
      cohort.counts.forEach(function (n, s) {
        var h = Math.round((height - bottom - 20) * n / max);
        var rect = el("rect", { class: "bar s" + s, x: x0 + s * barWidth, y: height - bottom - h, width: barWidth - 2,
          height: h, "data-series": series[s], "data-count": String(n) });
        rect.appendChild(el("title", {}, series[s] + ": " + n));
        g.appendChild(rect);
      });
      g.appendChild(el("text", { x: x0, y: height - bottom + 16 }, cohort.label));
      svg.appendChild(g);
    });
    container.appendChild(svg);
    var legend = document.createElement("div");
    legend.className = "funnel-legend";
    series.forEach(function (name, s) {
      var item = document.createElement("span");
      item.className = "s" + s;
      item.textContent = "\u25A0 " + name;
      legend.appendChild(item);
    });
    container.appendChild(legend);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("funnel-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    funnelChart(document.getElementById("funnel-chart"), data.steps);
    cohortChart(document.getElementById("cohort-chart"), data.cohorts, data.series);
  });
})();
