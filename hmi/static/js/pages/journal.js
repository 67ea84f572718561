// Journal: the hash-chained record, newest first, with filters and export (CSV / JSON lines).
import { get } from "../api.js";
import { store } from "../store.js";
import { fmtDate, h, toast } from "../ui.js";

let els = {};
let oldest = null;

function query(extra = {}) {
  const p = new URLSearchParams();
  const kinds = [...els.kinds.selectedOptions].map((o) => o.value).filter(Boolean);
  if (kinds.length) p.set("kinds", kinds.join(","));
  if (els.station.value) p.set("station", els.station.value);
  if (els.user.value.trim()) p.set("user", els.user.value.trim());
  if (els.text.value.trim()) p.set("text", els.text.value.trim());
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p;
}

function summary(payload) {
  return Object.entries(payload).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ");
}

async function load(more = false) {
  const p = query({ limit: 200 });
  if (more && oldest) p.set("before_seq", oldest);
  let data;
  try { data = await get(`/api/journal?${p}`); } catch (e) { toast(e.message, true); return; }
  const rows = data.records.map((r) => h("tr", { "data-seq": r.seq },
    h("td", { class: "mono" }, r.seq), h("td", { class: "mono" }, fmtDate(r.t_wall)), h("td", {}, r.kind),
    h("td", {}, r.station || "-"), h("td", {}, r.source || "-"), h("td", {}, r.user ? `${r.user}${r.address ? "@" + r.address : ""}` : "-"),
    h("td", { class: "mono", style: "font-size:12px" }, summary(r.payload))));
  if (more) els.body.append(...rows); else els.body.replaceChildren(...rows);
  if (data.records.length) oldest = data.records[data.records.length - 1].seq;
  els.more.disabled = data.records.length < 200;
  els.head.textContent = `head of the chain: record ${data.head}`;
  const ex = query();
  els.csv.href = `/api/journal/export?format=csv&${ex}`;
  els.jsonl.href = `/api/journal/export?format=jsonl&${ex}`;
}

export const page = {
  async mount(root) {
    const kinds = ["ALARM", "TRIP", "TRIP_RESET", "FIRST_OUT", "COMMAND", "COMMAND_VERIFIED", "COMMAND_FAILED", "BYPASS_ON", "BYPASS_OFF",
      "OVERRIDE_ON", "OVERRIDE_OFF", "FORCE", "OPERATOR_ACTION", "PROCEDURE_TRANSITION", "TASK", "LIMIT_CROSSING", "LINK_DOWN", "LINK_UP", "CONFIG_LOAD", "SYSTEM"];
    els.kinds = h("select", { multiple: true, size: 6, id: "journal-kinds" }, ...kinds.map((k) => h("option", { value: k }, k)));
    els.station = h("select", { id: "journal-station" }, h("option", { value: "" }, "all stations"),
      ...store.config.stations.map((s) => h("option", { value: s.name }, s.name)));
    els.user = h("input", { id: "journal-user", placeholder: "user", size: 10 });
    els.text = h("input", { id: "journal-text", placeholder: "text in payload", size: 18 });
    els.body = h("tbody", { id: "journal-rows" });
    els.more = h("button", { onclick: () => load(true) }, "Older...");
    els.head = h("span", { class: "muted" });
    els.csv = h("a", { id: "export-csv", href: "#" }, "Export CSV");
    els.jsonl = h("a", { id: "export-jsonl", href: "#" }, "Export JSON lines");
    const form = h("form", { class: "inline", id: "journal-filter" }, els.kinds, els.station, els.user, els.text,
      h("button", { class: "primary", type: "submit" }, "Filter"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); oldest = null; load(false); });
    root.append(h("h2", {}, "Journal"), form, h("div", { class: "row" }, els.csv, els.jsonl, els.head),
      h("table", {}, h("thead", {}, h("tr", {}, ...["seq", "time", "kind", "station", "source", "user", "details"].map((x) => h("th", {}, x)))), els.body),
      els.more);
    await load(false);
  },
  update() {},
  unmount() { els = {}; oldest = null; },
};
