// Trends: any signals, a chosen window, live follow. Data from GET /api/trends (the HMI's
// ring buffer of recent values today; the historian later). Charts by plotly.js, served
// by the app itself (no CDN: control rooms are air-gapped).
import { get } from "../api.js";
import { store } from "../store.js";
import { h, toast } from "../ui.js";

let els = {};
let timer = null;
let plotlyReady = null;

function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyReady) {
    plotlyReady = new Promise((resolve, reject) => {
      const sc = document.createElement("script");
      sc.src = "/static/vendor/plotly.min.js";
      sc.onload = () => resolve(window.Plotly);
      sc.onerror = () => reject(new Error("plotly.js is not available on this server"));
      document.head.append(sc);
    });
  }
  return plotlyReady;
}

function numericKeys() {
  const out = [];
  for (const st of store.config.stations) for (const sig of st.signals) {
    if (sig.kind === "analog_in") out.push({ key: `${st.name}:${sig.tag}`, label: `${sig.tag} ${sig.units} (${st.name})`, units: sig.units });
  }
  return out;
}

async function draw() {
  const keys = [...els.pick.selectedOptions].map((o) => o.value);
  if (!keys.length) { els.chart.replaceChildren(h("p", { class: "muted" }, "Choose one or more signals.")); return; }
  let data;
  try {
    data = await get(`/api/trends?keys=${encodeURIComponent(keys.join(","))}&window_s=${els.window.value}`);
  } catch (e) { toast(e.message, true); return; }
  let Plotly;
  try { Plotly = await loadPlotly(); } catch (e) { els.chart.textContent = e.message; return; }
  const traces = keys.map((k) => {
    const pts = data.series[k] || [];
    return { x: pts.map((p) => new Date(p[0] * 1000)), y: pts.map((p) => p[1]), name: k.split(":")[1], mode: "lines", line: { width: 1.5 } };
  });
  const layout = {
    paper_bgcolor: "#e4e4e4", plot_bgcolor: "#f4f4f4", margin: { l: 50, r: 20, t: 10, b: 40 }, height: 420,
    xaxis: { range: [new Date(data.start * 1000), new Date(data.end * 1000)], gridcolor: "#cfcfcf" },
    yaxis: { gridcolor: "#cfcfcf" }, legend: { orientation: "h" }, font: { family: "DejaVu Sans", size: 12 },
    colorway: ["#1e1e1e", "#3a6ea5", "#7a5fa0", "#5a8a5a", "#8a6a3a", "#555555"],
  };
  els.chart.dataset.points = String(traces.reduce((n, t) => n + t.x.length, 0));
  Plotly.react(els.chart, traces, layout, { displaylogo: false, responsive: true });
}

function schedule() {
  if (timer) clearInterval(timer);
  timer = els.follow.checked ? setInterval(draw, 2000) : null;
}

export const page = {
  async mount(root) {
    const opts = numericKeys();
    const preset = ["gas_station:GD-401A", "gas_station:GD-401B", "gas_station:GD-401C"];
    els.pick = h("select", { multiple: true, size: 12, id: "trend-signals" },
      ...opts.map((o) => h("option", { value: o.key, selected: preset.includes(o.key) }, o.label)));
    els.window = h("select", { id: "trend-window" }, ...[[60, "1 min"], [300, "5 min"], [900, "15 min"], [3600, "1 h"]]
      .map(([v, t]) => h("option", { value: v, selected: v === 300 }, t)));
    els.follow = h("input", { type: "checkbox", id: "trend-follow", checked: true });
    els.chart = h("div", { id: "trend-chart", style: "min-height:420px;background:#e4e4e4" });
    for (const el of [els.pick, els.window]) el.addEventListener("change", draw);
    els.follow.addEventListener("change", schedule);
    root.append(h("h2", {}, "Trends"),
      h("div", { class: "grid2" },
        h("div", {}, h("p", { class: "muted" }, "Ctrl-click to choose several signals."), els.pick,
          h("p", {}, h("label", {}, "window ", els.window), h("label", {}, els.follow, " live follow"))),
        els.chart));
    await draw();
    schedule();
  },
  update() {},
  unmount() { if (timer) clearInterval(timer); timer = null; els = {}; },
};
