// The admin dashboard's charts: each <canvas data-chart="key"> is drawn by the vendored Chart.js from the
// figures in the data-charts attribute of #dashboard (the CSP forbids inline script). The same
// figures are in the table under each chart and in its CSV download. Also: the From/To dates switch the
// range selector to "Custom", since only a custom range reads them.
(function () {
  "use strict";

  // Colour-blind-safe palette (Okabe–Ito), dark enough to read on white.
  const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

  function draw(canvas, spec) {
    const datasets = spec.datasets.map((set, index) => ({
      label: set.label,
      data: set.data,
      borderColor: COLOURS[index % COLOURS.length],
      backgroundColor: COLOURS[index % COLOURS.length],
      spanGaps: true,
      tension: 0.2,
    }));
    return new window.Chart(canvas, {
      type: spec.kind === "bar" ? "bar" : "line",
      data: { labels: spec.labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true } },
        plugins: { legend: { display: datasets.length > 1 } },
      },
    });
  }

  function init() {
    const source = document.getElementById("dashboard");
    if (!source || !source.dataset.charts || !window.Chart) return;
    const charts = JSON.parse(source.dataset.charts);
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const spec = charts[canvas.dataset.chart];
      if (spec) {
        draw(canvas, spec);
        canvas.dataset.drawn = "true";
      }
    });
    const range = document.getElementById("range");
    ["start", "end"].forEach((id) => {
      const input = document.getElementById(id);
      if (input && range) input.addEventListener("change", () => { range.value = "custom"; });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
