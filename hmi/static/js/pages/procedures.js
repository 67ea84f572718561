// Procedures: running ones with their current step, the written plan's step list with the
// current step highlighted, open tasks (checklist, owner role, deadline countdown, answers),
// Hold / Resume / Abort (abort needs a second person), and the state diagram as Mermaid text.
import { getText, may, post } from "../api.js";
import { store } from "../store.js";
import { act, confirmDialog, fmtDur, fmtWall, h, nowPlant, plantToWall } from "../ui.js";

let els = {};
let selected = null;
let keys = {};

function runsOf(st) { return st.procedures || []; }

function pickRun(st) {
  const runs = runsOf(st);
  if (selected && runs.find((r) => r.run === selected)) return runs.find((r) => r.run === selected);
  const active = runs.find((r) => !r.finished);
  selected = active ? active.run : runs.length ? runs[runs.length - 1].run : null;
  return runs.find((r) => r.run === selected) || null;
}

function defOf(id) { return (store.config.procedures || []).find((d) => d.id === id); }

function renderList(st) {
  const runs = runsOf(st);
  els.runs.replaceChildren(...(runs.length ? runs.map((r) => h("li", { class: r.run === selected ? "current" : "", "data-run": r.run },
    h("a", { href: "#/procedures", onclick: (ev) => { ev.preventDefault(); selected = r.run; keys = {}; page.update(store.state, { type: "snapshot" }); } },
      `${r.run}`), " ", r.title, " ",
    h("span", { class: "badge" + (r.held ? " held" : "") }, r.finished ? r.state : r.held ? "HELD" : r.state)))
    : [h("li", { class: "muted" }, "No procedure has run since the controller started")]));
}

function renderDefs() {
  const defs = store.config.procedures || [];
  els.defs.replaceChildren(...defs.map((d) => h("li", {},
    h("strong", {}, d.id), ` ${d.title} (${d.station}) `,
    may("procedure") ? h("button", { "data-cmd": "1", "data-start": d.id, onclick: async () => {
      if (!(await confirmDialog({ title: `Start ${d.id}?`, body: `${d.title}. Its steps will command equipment.` }))) return;
      await act(post("/api/procedures/start", { procedure: d.id }), `${d.id} started`);
    } }, "Start") : null)));
}

function taskCard(run, t) {
  const inputs = {};
  const form = h("form", { class: "cmd task" + (t.overdue ? " overdue" : ""), "data-task": t.key },
    h("div", { class: "row" }, h("strong", {}, t.title),
      h("span", { class: "badge" }, `role: ${t.role}`),
      h("span", { class: "badge", "data-due": t.due }, ""),
      t.overdue ? h("span", { class: "badge held" }, "OVERDUE") : null),
    t.checklist.length ? h("ul", {}, ...t.checklist.map((c) => h("li", {}, h("label", {}, h("input", { type: "checkbox" }), " ", c)))) : null,
    ...t.fields.map((f) => { inputs[f] = h("input", { name: f, required: true, size: 10 }); return h("label", {}, `${f} `, inputs[f]); }),
    h("div", { class: "row", style: "margin-top:6px" }, ...t.answers.map((a, i) => h("button", {
      type: "button", class: i === 0 ? "primary" : "", "data-answer": a, "data-cmd": "1",
      onclick: async () => {
        const values = {};
        for (const [k, el] of Object.entries(inputs)) if (el.value !== "") values[k] = isNaN(Number(el.value)) ? el.value : Number(el.value);
        if (!(await confirmDialog({ title: `Answer "${a}"?`, body: `${t.title} (${run.run}). Journaled with your name.` }))) return;
        await act(post(`/api/procedures/${encodeURIComponent(run.run)}/answer`, { key: t.key, answer: a, values }), `${t.key}: ${a}`);
      } }, a))));
  return form;
}

function renderRun(run) {
  if (!run) { els.detail.replaceChildren(h("p", { class: "muted" }, "Select a procedure.")); return; }
  const defn = defOf(run.procedure);
  const visited = new Set((run.history || []).map((x) => x.from));
  const steps = defn ? defn.steps : [];
  const controls = run.finished ? [] : [
    may("procedure") && !run.held ? h("button", { "data-cmd": "1", id: "proc-hold", onclick: async () => {
      if (await confirmDialog({ title: `Hold ${run.run}?`, body: "Its commands freeze; protection stays active." })) await act(post(`/api/procedures/${encodeURIComponent(run.run)}/hold`), "held");
    } }, "Hold") : null,
    may("procedure") && run.held ? h("button", { "data-cmd": "1", id: "proc-resume", onclick: async () => {
      if (await confirmDialog({ title: `Resume ${run.run}?`, body: `It continues at ${run.state}.` })) await act(post(`/api/procedures/${encodeURIComponent(run.run)}/resume`), "resumed");
    } }, "Resume") : null,
    may("procedure") ? h("button", { "data-cmd": "1", class: "danger", id: "proc-abort", onclick: async () => {
      if (await confirmDialog({ title: `Abort ${run.run}?`, body: "A second operator must confirm within 2 minutes. The procedure stops where it is.", danger: true, confirmLabel: "Request abort" })) await act(post(`/api/procedures/${encodeURIComponent(run.run)}/abort`), "abort requested");
    } }, "Abort...") : null,
    may("procedure") ? h("button", { "data-cmd": "1", onclick: async () => {
      if (await confirmDialog({ title: "Confirm the current step locally?", body: "Use only when a field check proves what the instruments cannot." })) await act(post(`/api/procedures/${encodeURIComponent(run.run)}/confirm-local`), "confirmed locally");
    } }, "Confirmed locally") : null,
  ];
  els.detail.replaceChildren(
    h("h3", {}, `${run.run}: ${run.title}`),
    h("div", { class: "row" },
      h("span", {}, `station ${run.station}`), h("span", {}, `started ${fmtWall(run.started_wall)}`),
      h("span", {}, `reason: ${run.reason}`),
      run.held ? h("span", { class: "badge held", id: "proc-held" }, `HELD: ${run.hold_reason}`) : null,
      h("span", { class: "badge", id: "proc-state" }, run.finished ? `ended: ${run.state}` : `step ${run.state}`)),
    h("div", { class: "card", id: "proc-current" },
      h("div", {}, h("strong", {}, run.finished ? "Ended" : `Current step ${run.state}: `), run.step_text),
      run.deadline !== null && run.deadline !== undefined && !run.finished ? h("div", { "data-deadline": run.deadline, class: "mono" }, "") : null),
    h("div", { class: "row cmd" }, ...controls),
    h("div", { id: "proc-tasks" }),
    h("h3", {}, "Steps (the written plan)"),
    h("ol", { class: "steps", id: "proc-steps" }, ...steps.map((s) => h("li", {
      class: s.id === run.state ? "current" : visited.has(s.id) ? "done" : "", "data-step": s.id },
      h("span", { class: "sid" }, s.id), h("span", { class: "badge" }, `${s.tag} ${s.actor} ${s.kind}`), " ", s.text,
      s.confirm ? h("div", { class: "muted" }, `confirm: ${s.confirm}${s.timeout_s ? `, within ${fmtDur(s.timeout_s)}` : ""}`) : null))),
    h("h3", {}, "Transitions"),
    h("table", {}, h("tbody", {}, ...(run.history || []).slice().reverse().map((x) => h("tr", {},
      h("td", { class: "mono" }, fmtWall(plantToWall(x.t))), h("td", {}, `${x.from || "(start)"} -> ${x.to}`), h("td", {}, x.trigger))))),
    h("details", { id: "proc-diagram" }, h("summary", {}, "State diagram (Mermaid text)"), els.mermaid = h("pre", { class: "mermaid-text" }, "loading...")));
  getText(`/api/procedures/${encodeURIComponent(run.procedure)}/mermaid?current=${encodeURIComponent(run.finished ? "" : run.state)}`)
    .then((t) => { if (els.mermaid) els.mermaid.textContent = t; }).catch((e) => { if (els.mermaid) els.mermaid.textContent = String(e); });
}

function renderTasks(run) {
  const box = document.getElementById("proc-tasks");
  if (!box) return;
  const tasks = run && !run.finished ? run.tasks : [];
  box.replaceChildren(...(tasks.length ? [h("h3", {}, "Open tasks"), ...tasks.map((t) => taskCard(run, t))] : []));
}

function tickCountdowns() {
  const now = nowPlant();
  for (const el of document.querySelectorAll("[data-deadline]")) {
    const left = Number(el.dataset.deadline) - now;
    el.textContent = left >= 0 ? `deadline in ${fmtDur(left)}` : `deadline passed ${fmtDur(-left)} ago`;
  }
  for (const el of document.querySelectorAll("[data-due]")) {
    const left = Number(el.dataset.due) - now;
    el.textContent = left >= 0 ? `due in ${fmtDur(left)}` : `late by ${fmtDur(-left)}`;
  }
}

export const page = {
  async mount(root) {
    els = { runs: h("ul", { class: "steps", id: "proc-runs" }), defs: h("ul", { id: "proc-defs" }), detail: h("div", { id: "proc-detail" }) };
    keys = {};
    root.append(h("h2", {}, "Procedures"),
      h("div", { class: "grid2" },
        h("div", {}, h("h3", {}, "Runs"), els.runs, h("h3", {}, "Procedures of this site"), els.defs),
        els.detail));
    renderDefs();
  },
  update(st, diff) {
    const full = !diff || diff.type === "snapshot" || diff.type === "offline";
    if (full || diff.procedures) {
      const run = pickRun(st);
      const listKey = JSON.stringify(runsOf(st).map((r) => [r.run, r.state, r.held, r.finished, selected]));
      if (full || listKey !== keys.list) { keys.list = listKey; renderList(st); }
      const runKey = run ? JSON.stringify([run.run, run.state, run.held, run.finished, run.step_text, run.deadline, (run.history || []).length]) : "";
      if (full || runKey !== keys.run) { keys.run = runKey; keys.tasks = null; renderRun(run); }
      const taskKey = run ? JSON.stringify(run.tasks.map((t) => [t.key, t.due, t.overdue])) : "";
      if (taskKey !== keys.tasks) { keys.tasks = taskKey; renderTasks(run); }
    }
    tickCountdowns();
  },
  unmount() { els = {}; keys = {}; },
};
