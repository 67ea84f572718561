// Bypasses and overrides: every interlock with its vote, trip state, bypass and override;
// reset, bypass one member, startup override or force, and removal. Each of these needs a
// second person (the server keeps the request pending for two minutes).
import { may, post } from "../api.js";
import { store } from "../store.js";
import { act, confirmDialog, fmtDur, fmtWall, h, nowPlant, plantToWall, prioMark, showDialog } from "../ui.js";

let els = {};
let key = null;

function durationSelect(maxS, id) {
  return h("select", { id }, ...[[900, "15 min"], [1800, "30 min"], [3600, "1 h"], [4 * 3600, "4 h"], [8 * 3600, "8 h"]]
    .filter(([v]) => v <= maxS).map(([v, t]) => h("option", { value: v }, t)));
}

function bypassDialog(il) {
  const member = h("select", { id: "bypass-member" }, ...il.members.map((m) => h("option", { value: m }, m)));
  const dur = durationSelect(store.config.bypass_max_s, "bypass-duration");
  const reason = h("input", { id: "bypass-reason", size: 40, required: true, placeholder: "permit / reason (required)" });
  const form = h("form", { class: "cmd" }, h("h3", {}, `Bypass a member of ${il.id}`), h("p", {}, il.description),
    h("p", {}, h("label", {}, "member ", member), h("label", {}, " for ", dur)), h("p", {}, h("label", {}, "reason ", reason)),
    h("p", { class: "muted" }, "At most one member of a voting group may be bypassed. The bypass is alarmed while active and expires by itself. A second person must confirm within 2 minutes."),
    h("div", { class: "row" }, h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary", id: "bypass-ok" }, "Request bypass")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    dlg.close();
    await act(post("/api/interlocks/bypass", { interlock: il.id, tag: member.value, reason: reason.value, duration_s: Number(dur.value) }));
  });
  const dlg = showDialog(form);
}

function overrideDialog(il) {
  const modes = [];
  if (may("override")) modes.push(["startup", "startup override"]);
  if (may("force")) modes.push(["force_trip", "force trip"], ["force_normal", "force normal (protection OFF)"]);
  const mode = h("select", { id: "override-mode" }, ...modes.map(([v, t]) => h("option", { value: v }, t)));
  const dur = durationSelect(store.config.override_max_s, "override-duration");
  const reason = h("input", { id: "override-reason", size: 40, required: true, placeholder: "permit / reason (required)" });
  const form = h("form", { class: "cmd" }, h("h3", {}, `Override ${il.id}`), h("p", {}, il.description),
    h("p", {}, h("label", {}, "mode ", mode), h("label", {}, " for ", dur)), h("p", {}, h("label", {}, "reason ", reason)),
    h("div", { class: "row" }, h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary danger" }, "Request override")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    dlg.close();
    await act(post("/api/interlocks/override", { interlock: il.id, mode: mode.value, reason: reason.value, duration_s: Number(dur.value) }));
  });
  const dlg = showDialog(form);
}

function row(il, cfg) {
  const tripped = il.state === "tripped";
  const actions = [];
  if (tripped && may("reset")) actions.push(h("button", { "data-cmd": "1", "data-reset": il.id, onclick: async () => {
    if (await confirmDialog({ title: `Reset trip ${il.id}?`, body: "The cause must be clear. A second person must confirm within 2 minutes.", confirmLabel: "Request reset" }))
      await act(post("/api/interlocks/reset", { interlock: il.id }));
  } }, "Reset..."));
  if (may("bypass")) {
    if (il.bypass) actions.push(h("button", { "data-cmd": "1", onclick: async () => {
      if (await confirmDialog({ title: `Remove the bypass of ${il.bypass.tag}?`, body: "Protection returns to full voting." }))
        await act(post("/api/interlocks/bypass/remove", { interlock: il.id }));
    } }, "Remove bypass"));
    else actions.push(h("button", { "data-cmd": "1", "data-bypass": il.id, onclick: () => bypassDialog({ ...cfg, members: il.members || cfg.members.map((m) => m.tag) }) }, "Bypass..."));
  }
  if (may("override") || may("force")) {
    if (il.override) actions.push(h("button", { "data-cmd": "1", onclick: () => act(post("/api/interlocks/override/remove", { interlock: il.id })) }, "Remove override"));
    else actions.push(h("button", { "data-cmd": "1", onclick: () => overrideDialog(cfg) }, "Override..."));
  }
  return h("tr", { "data-interlock": il.id },
    h("td", {}, h("strong", {}, il.id), h("div", { class: "muted" }, il.station)),
    h("td", {}, il.description),
    h("td", {}, `${il.architecture} (${il.votes} vote${il.votes === 1 ? "" : "s"})`),
    h("td", {}, tripped ? h("span", { class: "badge tripped" }, prioMark(1, { text: false }), " TRIPPED") : il.state === "pending" ? h("span", { class: "badge held" }, "PENDING") : "normal",
      il.first_member ? h("div", { class: "muted" }, `first: ${il.first_member}`) : null),
    h("td", { "data-bypass-state": il.id }, il.bypass ? h("div", {}, h("strong", {}, il.bypass.tag), ` by ${il.bypass.user}`,
      h("div", { class: "muted" }, `${il.bypass.reason || ""}; until ${fmtWall(plantToWall(il.bypass.until))}`),
      h("div", { class: "mono", "data-until": il.bypass.until }, "")) : "-"),
    h("td", {}, il.override ? h("div", {}, h("strong", {}, il.override.mode), ` by ${il.override.user || ""}`,
      h("div", { class: "mono", "data-until": il.override.until }, "")) : "-"),
    h("td", { class: "cmd" }, ...actions));
}

export const page = {
  async mount(root) {
    els.body = h("tbody", { id: "interlock-rows" });
    key = null;
    root.append(h("h2", {}, "Bypasses and overrides"),
      h("p", { class: "muted" }, "Trip reset, bypass, startup override and force each need a second, different person with a permitted role to confirm within two minutes. Both names are journaled."),
      h("table", {}, h("thead", {}, h("tr", {}, ...["Interlock", "Cause", "Vote", "State", "Bypass", "Override", ""].map((x) => h("th", {}, x)))), els.body));
  },
  update(st) {
    const items = (st.interlocks && st.interlocks.items) || [];
    const k = JSON.stringify(items.map((i) => [i.id, i.state, i.votes, i.bypass, i.override, i.first_member]));
    if (k !== key) {
      key = k;
      const cfgs = Object.fromEntries((store.config.interlocks || []).map((c) => [c.id, c]));
      els.body.replaceChildren(...items.map((il) => row(il, cfgs[il.id] || { id: il.id, description: il.description, members: [] })));
    }
    const now = nowPlant();
    for (const el of document.querySelectorAll("[data-until]")) el.textContent = `${fmtDur(Number(el.dataset.until) - now)} left`;
  },
  unmount() { els = {}; key = null; },
};
