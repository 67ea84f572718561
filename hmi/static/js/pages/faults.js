// Fault injection (engineers only): the simulator's fault catalogue, proxied by the HMI.
import { get, post } from "../api.js";
import { act, confirmDialog, h, toast } from "../ui.js";

let els = {};
let catalogue = [];

function paramInput(p) {
  if (p.choices) return h("select", { name: p.name }, ...p.choices.map((c) => h("option", { value: c, selected: c === p.default }, c)));
  return h("input", { name: p.name, size: 8, value: p.default ?? "", placeholder: p.type, required: p.required });
}

function renderForm() {
  const [station, fault] = (els.fault.value || "|").split("|");
  const spec = catalogue.find((f) => f.station === station && f.fault === fault);
  if (!spec) { els.params.replaceChildren(); return; }
  els.params.replaceChildren(h("p", { class: "muted" }, spec.help, spec.scenarios.length ? ` (scenarios ${spec.scenarios.join(", ")})` : ""),
    ...spec.params.map((p) => h("label", { title: p.help }, `${p.name} `, paramInput(p))));
}

async function loadActive() {
  let active = [];
  try { active = await get("/api/faults/active"); } catch (e) { toast(e.message, true); return; }
  els.active.replaceChildren(...(active.length ? active.map((a) => {
    const { station, fault, ...params } = a;
    return h("tr", { "data-active-fault": `${station}:${fault}` }, h("td", {}, station), h("td", {}, fault), h("td", { class: "mono" }, JSON.stringify(params)),
      h("td", { class: "cmd" }, h("button", { "data-cmd": "1", onclick: async () => { await act(post("/api/faults/clear", { station, fault }), `cleared ${fault}`); loadActive(); } }, "Clear")));
  }) : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No fault injected"))]));
}

export const page = {
  async mount(root) {
    root.append(h("h2", {}, "Fault injection (simulator)"), h("p", { class: "muted" }, "Engineers only. Faults go to the simulator's HTTP API and are journaled."));
    try { catalogue = await get("/api/faults/catalogue"); } catch (e) { root.append(h("p", {}, e.message)); return; }
    els.fault = h("select", { id: "fault-select" }, ...catalogue.map((f) => h("option", { value: `${f.station}|${f.fault}` }, `${f.station}: ${f.fault}`)));
    els.params = h("div", { id: "fault-params", class: "row" });
    els.active = h("tbody", { id: "fault-active" });
    const form = h("form", { class: "cmd card", id: "fault-form" }, h("div", { class: "row" }, els.fault), els.params,
      h("button", { class: "primary", type: "submit", id: "fault-inject" }, "Inject"));
    els.fault.addEventListener("change", renderForm);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const [station, fault] = els.fault.value.split("|");
      const params = {};
      for (const el of els.params.querySelectorAll("[name]")) if (el.value !== "") params[el.name] = el.value;
      if (!(await confirmDialog({ title: `Inject ${fault} into ${station}?`, body: h("span", { class: "mono" }, JSON.stringify(params)), confirmLabel: "Inject" }))) return;
      await act(post("/api/faults/inject", { station, fault, params }), `${fault} injected`);
      loadActive();
    });
    root.append(form, h("h3", {}, "Active faults"),
      h("button", { "data-cmd": "1", onclick: async () => { await act(post("/api/faults/clear", {}), "all faults cleared"); loadActive(); } }, "Clear all"),
      h("table", {}, h("thead", {}, h("tr", {}, ...["station", "fault", "parameters", ""].map((x) => h("th", {}, x)))), els.active));
    renderForm();
    await loadActive();
  },
  update() {},
  unmount() { els = {}; },
};
