// Users (admin): add, roles, password, disable/enable, unlock after login lockout.
import { get, post } from "../api.js";
import { store } from "../store.js";
import { act, h, showDialog, toast } from "../ui.js";

let els = {};

async function load() {
  let data;
  try { data = await get("/api/users"); } catch (e) { toast(e.message, true); return; }
  const roles = store.config.roles;
  els.body.replaceChildren(...data.users.map((u) => {
    const boxes = roles.map((r) => h("label", {}, h("input", { type: "checkbox", value: r, checked: u.roles.includes(r) }), r));
    return h("tr", { "data-user": u.name },
      h("td", {}, h("strong", {}, u.name), data.locked[u.name] ? h("div", { class: "badge held" }, `locked ${data.locked[u.name]} s`) : null),
      h("td", { class: "cmd" }, ...boxes, h("button", { "data-cmd": "1", onclick: async () => {
        const sel = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        await act(post(`/api/users/${encodeURIComponent(u.name)}/roles`, { roles: sel }), `roles of ${u.name} saved`); load();
      } }, "Save roles")),
      h("td", {}, u.disabled ? h("strong", {}, "disabled") : "enabled"),
      h("td", { class: "muted" }, u.changed || u.created || ""),
      h("td", { class: "cmd" },
        h("button", { "data-cmd": "1", onclick: async () => { await act(post(`/api/users/${encodeURIComponent(u.name)}/disabled`, { disabled: !u.disabled }), `${u.name} ${u.disabled ? "enabled" : "disabled"}`); load(); } }, u.disabled ? "Enable" : "Disable"),
        h("button", { "data-cmd": "1", onclick: () => passwordDialog(u.name) }, "Set password..."),
        data.locked[u.name] ? h("button", { "data-cmd": "1", onclick: async () => { await act(post(`/api/users/${encodeURIComponent(u.name)}/unlock`), "unlocked"); load(); } }, "Unlock") : null));
  }));
}

function passwordDialog(name) {
  const pw = h("input", { type: "password", id: "new-password", size: 24, autocomplete: "new-password", required: true });
  const form = h("form", { class: "cmd" }, h("h3", {}, `New password for ${name}`), h("p", {}, pw),
    h("p", { class: "muted" }, "At least 12 characters, not containing the user name. Their other sessions end."),
    h("div", { class: "row" }, h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Set")));
  form.addEventListener("submit", async (ev) => { ev.preventDefault(); dlg.close(); await act(post(`/api/users/${encodeURIComponent(name)}/password`, { password: pw.value }), "password set"); });
  const dlg = showDialog(form);
}

export const page = {
  async mount(root) {
    els.body = h("tbody", { id: "user-rows" });
    const name = h("input", { id: "add-name", size: 12, required: true, placeholder: "name" });
    const pw = h("input", { id: "add-password", type: "password", size: 18, required: true, placeholder: "password", autocomplete: "new-password" });
    const role = h("select", { id: "add-role" }, ...store.config.roles.map((r) => h("option", { value: r }, r)));
    const form = h("form", { class: "inline cmd", id: "add-user" }, name, pw, role, h("button", { class: "primary", type: "submit" }, "Add user"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = await act(post("/api/users", { name: name.value.trim(), roles: [role.value], password: pw.value }), `added ${name.value}`);
      if (out) { form.reset(); load(); }
    });
    root.append(h("h2", {}, "Users"), form,
      h("table", {}, h("thead", {}, h("tr", {}, ...["User", "Roles", "State", "Changed", ""].map((x) => h("th", {}, x)))), els.body));
    await load();
  },
  update() {},
  unmount() { els = {}; },
};
