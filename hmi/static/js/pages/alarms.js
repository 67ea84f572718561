// Alarms: active list by priority then time, acknowledge, shelve (duration + reason),
// shelved list, and the first-out of each trip group.
import { may, post } from "../api.js";
import { act, confirmDialog, fmtWall, h, plantToWall, prioMark, showDialog } from "../ui.js";

let els = {};

function shelveDialog(a, maxS) {
  const dur = h("select", { id: "shelve-duration" },
    ...[[900, "15 min"], [1800, "30 min"], [3600, "1 h"], [4 * 3600, "4 h"], [8 * 3600, "8 h"]]
      .filter(([v]) => v <= maxS).map(([v, t]) => h("option", { value: v }, t)));
  const reason = h("input", { id: "shelve-reason", size: 40, placeholder: "why (required)", required: true });
  const form = h("form", { class: "cmd" },
    h("h3", {}, `Shelve ${a.id}`), h("p", {}, a.message),
    h("p", {}, h("label", {}, "for ", dur), h("label", {}, " reason ", reason)),
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
      h("button", { class: "primary", type: "submit", id: "shelve-ok" }, "Shelve")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    dlg.close();
    await act(post("/api/alarms/shelve", { id: a.id, duration_s: Number(dur.value), reason: reason.value }), `shelved ${a.id}`);
  });
  const dlg = showDialog(form);
}

function row(a, shelved, maxS) {
  const unack = a.state === "unacknowledged" || a.state === "returned unacknowledged";
  const tr = h("tr", { class: unack ? "alarm-unack" : a.state === "returned unacknowledged" ? "alarm-rtn" : "", "data-alarm": a.id },
    h("td", {}, prioMark(a.priority, { unack })),
    h("td", { class: "mono" }, fmtWall(plantToWall(a.raised_at))),
    h("td", {}, a.station || "-"),
    h("td", { class: "msg" }, a.message),
    h("td", {}, a.state + (a.acked_by ? ` (${a.acked_by})` : "")),
    h("td", { class: "cmd" },
      shelved ? h("span", {}, `shelved by ${a.shelf.user}: ${a.shelf.reason}; until ${fmtWall(a.shelf.until_wall)} `,
        may("shelve") ? h("button", { "data-cmd": "1", onclick: () => act(post("/api/alarms/unshelve", { id: a.id }), "unshelved") }, "Unshelve") : null)
        : [
          unack && may("ack") ? h("button", { "data-cmd": "1", "data-ack": a.id, onclick: () => act(post("/api/alarms/ack", { id: a.id }), `acknowledged ${a.id}`) }, "Acknowledge") : null,
          a.priority > 1 && may("shelve") ? h("button", { "data-cmd": "1", onclick: () => shelveDialog(a, maxS) }, "Shelve...") : null,
        ]));
  return tr;
}

export const page = {
  async mount(root) {
    els.active = h("tbody", { id: "alarm-rows" });
    els.shelved = h("tbody", { id: "shelved-rows" });
    els.firstOut = h("tbody", { id: "firstout-rows" });
    els.ackAll = h("button", { "data-cmd": "1", id: "ack-page", onclick: async () => {
      const ids = [...els.active.querySelectorAll("button[data-ack]")].map((b) => b.dataset.ack);
      if (!ids.length) return;
      if (!(await confirmDialog({ title: `Acknowledge ${ids.length} alarm(s) on this page?`, body: "Each acknowledgement is journaled with your name." }))) return;
      for (const id of ids) await act(post("/api/alarms/ack", { id }), `acknowledged ${id}`);
    } }, "Acknowledge all shown");
    const head = () => h("thead", {}, h("tr", {}, h("th", {}, "Priority"), h("th", {}, "Raised"), h("th", {}, "Station"), h("th", {}, "Message"), h("th", {}, "State"), h("th", {}, "")));
    root.append(
      h("div", { class: "row" }, h("h2", {}, "Alarms"), may("ack") ? els.ackAll : null),
      h("table", { id: "alarm-table" }, head(), els.active),
      h("h3", {}, "First-out (which cause tripped first, per trip group)"),
      h("table", { id: "firstout-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Trip group"), h("th", {}, "First cause"), h("th", {}, "First member"), h("th", {}, "Tripped at"))), els.firstOut),
      h("h3", {}, "Shelved alarms"),
      h("table", { id: "shelved-table" }, head(), els.shelved));
  },
  update(st, diff) {
    const full = !diff || diff.type === "snapshot" || diff.type === "offline";
    if (!full && !diff.alarms && !diff.shelved && !diff.interlocks) return; // never rebuild under the pointer
    const maxS = 8 * 3600;
    const alarms = [...(st.alarms || [])].sort((a, b) => a.priority - b.priority || b.raised_at - a.raised_at);
    els.active.replaceChildren(...(alarms.length ? alarms.map((a) => row(a, false, maxS)) : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No active alarms"))]));
    els.shelved.replaceChildren(...(st.shelved || []).map((a) => row(a, true, maxS)));
    const fo = (st.interlocks && st.interlocks.first_out) || [];
    els.firstOut.replaceChildren(...(fo.length ? fo.map((f) => h("tr", { "data-firstout": f.group },
      h("td", {}, f.group), h("td", {}, h("strong", {}, f.interlock)), h("td", {}, f.first_member || "-"),
      h("td", { class: "mono" }, f.tripped_at !== null && f.tripped_at !== undefined ? fmtWall(plantToWall(f.tripped_at)) : "-")))
      : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No trip since the last reset"))]));
  },
  unmount() { els = {}; },
};
