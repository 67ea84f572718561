// Small DOM helpers, formatting, priority marks, dialogs and toasts.
import { reading, store } from "./store.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVGNS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function pad(n) { return String(Math.floor(n)).padStart(2, "0"); }
export function fmtDur(sec) {
  if (sec === null || sec === undefined || !isFinite(sec)) return "-";
  const neg = sec < 0; sec = Math.abs(sec);
  const hh = Math.floor(sec / 3600), mm = Math.floor((sec % 3600) / 60), ss = Math.floor(sec % 60);
  return (neg ? "-" : "") + (hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${pad(mm)}:${pad(ss)}`);
}
export function fmtAge(sec) {
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)} s`;
  return fmtDur(sec);
}
export function fmtWall(epoch) {
  if (!epoch) return "-";
  const d = new Date(epoch * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
export function fmtDate(epoch) {
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtWall(epoch)}`;
}
// plant time -> wall clock, using the last state
export function plantToWall(t) {
  const st = store.state; if (!st) return 0;
  return st.wall - (st.now - t);
}
export function nowPlant() {
  const st = store.state; if (!st) return 0;
  return st.now + (store.connected ? (performance.now() - store.lastMsgAt) / 1000 : 0);
}

export const PRIO_NAMES = { 1: "CRITICAL", 2: "HIGH", 3: "MEDIUM", 4: "LOW" };
export function prioMark(p, { unack = false, text = true } = {}) {
  return h("span", { class: "prio" + (unack ? " unack" : ""), title: `priority ${p} ${PRIO_NAMES[p]}` },
    h("span", { class: `shape p${p}` }, h("span", {}, String(p))),
    text ? PRIO_NAMES[p] : null);
}

export function signal(key) {
  const [st, tag] = key.split(":");
  const cfg = store.config; if (!cfg) return null;
  const station = cfg.stations.find((x) => x.name === st);
  return station ? station.signals.find((x) => x.tag === tag) : null;
}

// alarm band of an analog value against the I/O list's limits (HH/LL: priority 2; H/L: priority 3)
export function band(v, alarms) {
  if (typeof v !== "number" || !alarms) return "";
  if (alarms.LL !== undefined && v <= alarms.LL) return "LL";
  if (alarms.HH !== undefined && v >= alarms.HH) return "HH";
  if (alarms.L !== undefined && v <= alarms.L) return "L";
  if (alarms.H !== undefined && v >= alarms.H) return "H";
  return "";
}
export function bandPrio(b) { return b === "HH" || b === "LL" ? 2 : b ? 3 : 0; }

export function fmtValue(key) {
  const r = reading(key); const sig = signal(key);
  if (!r) return { text: "---", stale: true, r: null, sig, band: "" };
  let text;
  if (sig && sig.states && typeof r.v === "number") text = sig.states[r.v] ?? String(r.v);
  else if (typeof r.v === "boolean") text = r.v ? "1" : "0";
  else if (typeof r.v === "number") {
    const span = sig && sig.range ? sig.range[1] - sig.range[0] : 100;
    const dec = span <= 2 ? 3 : span <= 20 ? 2 : span <= 500 ? 1 : 0;
    text = r.v.toFixed(dec);
  } else text = String(r.v);
  const b = sig && sig.kind === "analog_in" ? band(r.v, sig.alarms) : "";
  return { text, stale: r.stale, r, sig, band: b };
}

let toastBox = null;
export function toast(msg, error = false) {
  toastBox = toastBox || document.getElementById("toasts");
  const el = h("div", { class: "toast" + (error ? " error" : ""), role: "status" }, msg);
  toastBox.append(el);
  setTimeout(() => el.remove(), error ? 9000 : 5000);
}

// The confirm step before any command: a modal that names what will happen.
export function confirmDialog({ title, body, confirmLabel = "Confirm", danger = false }) {
  const dlg = document.getElementById("dialog");
  dlg.replaceChildren(
    h("h3", {}, title),
    h("div", {}, body),
    h("div", { class: "row", style: "margin-top:12px;justify-content:flex-end" },
      h("button", { id: "dlg-cancel", onclick: () => dlg.close("cancel") }, "Cancel"),
      h("button", { id: "dlg-ok", class: danger ? "danger primary" : "primary", onclick: () => dlg.close("ok") }, confirmLabel)));
  return new Promise((resolve) => {
    dlg.onclose = () => resolve(dlg.returnValue === "ok");
    dlg.returnValue = "";
    dlg.showModal();
  });
}

export function showDialog(...content) {
  const dlg = document.getElementById("dialog");
  dlg.replaceChildren(...content);
  dlg.onclose = null;
  dlg.showModal();
  return dlg;
}

// Run an action and report: accepted, pending a second person, or refused.
export async function act(promise, okText) {
  try {
    const out = await promise;
    if (out && out._status === 202 && out.pending) {
      toast(`Waiting for a second person to confirm: ${out.pending.summary}`);
    } else {
      toast(okText || (out && out.message) || "done");
    }
    return out;
  } catch (e) {
    toast(e.message || String(e), true);
    return null;
  }
}
