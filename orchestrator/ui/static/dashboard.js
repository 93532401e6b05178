// fto's dashboard: live fragments and charts (uPlot) over the server's JSON; no framework, no build step.
"use strict";
(function () {
  const root = document.body.dataset.root || "";
  const COLORS = ["#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#c2255c", "#5c940d"];
  const charts = {};  // element id -> {plot, key}
  window.ftoCharts = charts;  // for the browser tests and the curious

  async function getJSON(url) {
    const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  function width(el) { return Math.max(300, el.clientWidth || 900); }

  // Loss curves: one series per job and kind, aligned on a shared x by uPlot.join (gaps spanned).
  async function drawLoss(el) {
    const select = document.querySelector(`[data-x-for="${el.id}"]`);
    const x = select ? select.value : "step";
    const body = await getJSON(el.dataset.loss + "?x=" + encodeURIComponent(x));
    const series = body.series;
    const points = series.reduce((n, s) => n + s.x.length, 0);
    el.dataset.points = String(points);
    el.dataset.series = String(series.length);
    const key = x + "|" + series.map(s => s.label).join("|");
    if (!series.length) {
      el.textContent = "No training metrics yet.";
      if (charts[el.id]) { charts[el.id].plot.destroy(); delete charts[el.id]; }
      return;
    }
    const data = uPlot.join(series.map(s => [s.x, s.y]));
    const existing = charts[el.id];
    if (existing && existing.key === key) { existing.plot.setData(data); return; }
    if (existing) existing.plot.destroy();
    el.textContent = "";
    const jobs = [...new Set(series.map(s => s.job))];
    // RFT's rewards share the chart on an axis of their own, at the right
    const isReward = s => s.kind.endsWith("reward");
    const rewarded = series.some(isReward);
    const opts = {
      width: width(el), height: 300,
      scales: rewarded ? {x: {time: false}, reward: {auto: true}} : {x: {time: false}},
      axes: [{label: x}, {label: "loss"}].concat(
        rewarded ? [{label: "reward", scale: "reward", side: 1, grid: {show: false}}] : []),
      legend: {show: series.length <= 40},
      series: [{label: x}].concat(series.map(s => ({
        label: s.label, spanGaps: true, width: isReward(s) ? 2.5 : 1.5, scale: isReward(s) ? "reward" : "y",
        stroke: COLORS[jobs.indexOf(s.job) % COLORS.length],
        dash: s.kind.startsWith("validation") ? [6, 4] : undefined,
      }))),
    };
    charts[el.id] = {plot: new uPlot(opts, data, el), key: key};
  }

  // Bars of a histogram {edges, counts}.
  function drawHistogram(el, histogram) {
    if (!histogram) { el.textContent = "No examples."; return; }
    const centers = histogram.counts.map((_, i) => (histogram.edges[i] + histogram.edges[i + 1]) / 2);
    el.textContent = "";
    const opts = {
      width: width(el), height: 220, scales: {x: {time: false}},
      axes: [{label: "tokens per example"}, {label: "examples"}],
      series: [{label: "tokens"}, {label: "examples", fill: "#4263eb88", stroke: "#4263eb",
                                    paths: uPlot.paths.bars({size: [0.9, 60]})}],
    };
    charts[el.id] = {plot: new uPlot(opts, [centers, histogram.counts], el), key: "histogram"};
    el.dataset.points = String(centers.length);
  }

  async function drawJobHistogram(el) {
    const body = await getJSON(el.dataset.histogram);
    drawHistogram(el, body.histogram);
    const stats = document.getElementById("data-stats");
    if (stats && body.stats) {
      const s = body.stats;
      stats.textContent = `${s.examples} examples, ${s.billing_tokens} billing tokens (${s.tokenizer}` +
        `${s.tokens_exact ? "" : ", an estimate"}); tokens per example: median ${s.total_tokens_per_example.median},` +
        ` max ${s.total_tokens_per_example.max}`;
    }
  }

  // The sweep: score against each swept value, one point per job (the best larger).
  async function drawSweep(el) {
    const body = await getJSON(el.dataset.sweep);
    el.textContent = body.sweep.length ? "" : "No scores yet: the sweep plot appears after evaluation.";
    body.sweep.forEach((ranking, r) => ranking.parameters.forEach((parameter, p) => {
      const pts = ranking.points.filter(q => q.values[parameter] != null && q.score != null)
        .sort((a, b) => a.values[parameter] - b.values[parameter]);
      if (pts.length < 2) return;
      const box = document.createElement("div");
      box.id = `sweep-${r}-${p}`;
      el.appendChild(box);
      const xs = pts.map(q => q.values[parameter]);
      const log = Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 10;
      const opts = {
        width: width(el), height: 220, title: `${ranking.backend}: ${ranking.scorer} against ${parameter}`,
        scales: {x: {time: false, distr: log ? 3 : 1}},
        axes: [{label: parameter + (log ? " (log)" : "")}, {label: ranking.scorer}],
        series: [{label: parameter}, {label: ranking.scorer, stroke: "#1971c2", width: 0,
                                        points: {show: true, size: 9, fill: "#1971c2"}}],
      };
      charts[box.id] = {plot: new uPlot(opts, [xs, pts.map(q => q.score)], box), key: "sweep"};
    }));
  }

  async function refreshFragment(el) {
    const response = await fetch(el.dataset.refresh, {credentials: "same-origin"});
    if (response.ok) el.innerHTML = await response.text();
  }

  function refreshAll() {
    document.querySelectorAll("[data-refresh]").forEach(el => refreshFragment(el).catch(console.error));
    document.querySelectorAll("[data-loss][data-live]").forEach(el => drawLoss(el).catch(console.error));
  }

  // Server-sent events say when the store changed; at most one refresh a second follows.
  let pending = false, last = 0;
  function changed() {
    if (pending) return;
    const wait = Math.max(0, 1000 - (Date.now() - last));
    pending = true;
    setTimeout(() => { pending = false; last = Date.now(); refreshAll(); }, wait);
  }

  function listen() {
    const live = document.getElementById("live");
    const source = new EventSource(root + "/api/stream");
    source.addEventListener("open", () => { live.textContent = "live"; });
    source.addEventListener("changed", () => { live.textContent = "live · updated " + new Date().toLocaleTimeString(); changed(); });
    source.addEventListener("error", () => { live.textContent = "live: reconnecting…"; });
  }

  // Buttons act through the CLI's own code on the server; the custom header is what a page elsewhere cannot send.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    event.preventDefault();
    const result = document.getElementById("action-result");
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.action, {method: "POST", credentials: "same-origin",
                                                            headers: {"X-FTO-Action": "1"}});
      const body = await response.json();
      result.textContent = body.message || body.error;
      result.className = response.ok ? "ok" : "error";
    } finally {
      button.disabled = false;
      refreshAll();
    }
  });

  document.querySelectorAll("[data-x-for]").forEach(select => select.addEventListener("change", () => {
    drawLoss(document.getElementById(select.dataset.xFor)).catch(console.error);
  }));
  document.querySelectorAll("[data-submit-on-change]").forEach(select => select.addEventListener("change", () => {
    select.form.submit();  // no inline handlers: the Content-Security-Policy allows only this file's scripts
  }));
  document.querySelectorAll("[data-loss]").forEach(el => drawLoss(el).catch(console.error));
  document.querySelectorAll("[data-histogram]").forEach(el => drawJobHistogram(el).catch(console.error));
  document.querySelectorAll("[data-histogram-inline]").forEach(el => drawHistogram(el, JSON.parse(el.dataset.histogramInline)));
  document.querySelectorAll("[data-sweep]").forEach(el => drawSweep(el).catch(console.error));
  listen();
})();
