// Bootstrap: session, configuration, live connection, router, and the parts of the screen
// that every page shares (alarm banner, PLC links, pending confirmations, stale overlay).
import { get, loadSession, may, post, session } from "./api.js";
import { connect, store, subscribe } from "./store.js";
import { act, fmtAge, fmtDur, fmtWall, h, plantToWall, prioMark, toast } from "./ui.js";

const pages = {
  overview: () => import("./pages/overview.js"),
  alarms: () => import("./pages/alarms.js"),
  procedures: () => import("./pages/procedures.js"),
  trends: () => import("./pages/trends.js"),
  journal: () => import("./pages/journal.js"),
  bypasses: () => import("./pages/bypasses.js"),
  faults: () => import("./pages/faults.js"),
  users: () => import("./pages/users.js"),
};

let current = null;
const root = document.getElementById("page");

async function route() {
  const name = (location.hash.replace(/^#\//, "").split("/")[0]) || "overview";
  const load = pages[name] || pages.overview;
  if (current && current.unmount) current.unmount();
  root.replaceChildren();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  const mod = await load();
  current = mod.page;
  document.body.dataset.page = name;
  await current.mount(root);
  if (store.state) current.update(store.state, { type: "snapshot" });
}

function thresholdText(l) {
  if (l.next_threshold_s === null || l.next_threshold_s === undefined) return "past the 24 h manual-operation threshold";
  return `next manual-operation threshold ${fmtDur(l.next_threshold_s)} in ${fmtDur(l.next_threshold_s - l.down_s)}`;
}

function hmiNow() {
  const st = store.state; if (!st) return 0;
  return (st.hmi_wall || st.wall) + (store.connected ? (performance.now() - store.lastMsgAt) / 1000 : 0);
}

function renderBanner(st) {
  const alarms = st.alarms || [];
  const unack = alarms.filter((a) => a.state === "unacknowledged" || a.state === "returned unacknowledged");
  document.getElementById("alarm-count").textContent = alarms.length ? `(${unack.length}/${alarms.length})` : "";
  const banner = document.getElementById("banner");
  if (!alarms.length) {
    banner.className = "quiet"; banner.replaceChildren("No active alarms");
    return;
  }
  // the newest of the highest priority, unacknowledged ones first
  const pool = unack.length ? unack : alarms;
  const top = [...pool].sort((a, b) => a.priority - b.priority || b.raised_at - a.raised_at)[0];
  const isUnack = top.state !== "acknowledged";
  banner.className = "";
  banner.replaceChildren(...[
    prioMark(top.priority, { unack: isUnack }),
    h("span", { class: "mono" }, fmtWall(plantToWall(top.raised_at))),
    h("span", { id: "banner-text", style: isUnack ? "font-weight:700" : "" }, top.message),
    h("span", { class: "muted" }, top.state),
    isUnack && may("ack") ? h("button", { "data-cmd": "1", id: "banner-ack",
      onclick: () => act(post("/api/alarms/ack", { id: top.id }), `acknowledged ${top.id}`) }, "Acknowledge") : null,
    h("a", { href: "#/alarms" }, `all alarms (${alarms.length})`)].filter(Boolean));
}

function renderPending(st) {
  const pend = st.pending || [];
  const box = document.getElementById("pending");
  box.className = pend.length ? "has" : "";
  box.replaceChildren(...pend.map((p) => {
    const mine = p.requested_by === session.user;
    const canConfirm = !mine && p.confirm_roles.some((r) => session.roles.includes(r));
    return h("div", { class: "item", "data-pending": p.id },
      h("strong", {}, "Needs a second person:"), h("span", { class: "summary" }, p.summary),
      h("span", { class: "muted" }, `asked by ${p.requested_by}`),
      h("span", { class: "muted", "data-expires": p.expires_wall }, ""),
      canConfirm ? h("button", { class: "primary", "data-cmd": "1", "data-confirm": p.id,
        onclick: () => act(post(`/api/confirmations/${p.id}/confirm`), `confirmed: ${p.summary}`) }, "Confirm") :
        h("span", { class: "muted" }, mine ? "(waiting for another user)" : `(needs ${p.confirm_roles.join("/")})`),
      h("button", { "data-cmd": "1", onclick: () => act(post(`/api/confirmations/${p.id}/cancel`), "cancelled") },
        mine ? "Withdraw" : "Decline"));
  }));
}

function renderShared(st, diff) {
  // links
  const links = document.getElementById("links");
  links.replaceChildren(...Object.entries(st.links || {}).map(([name, l]) => {
    const extra = store.connected ? (performance.now() - store.lastMsgAt) / 1000 : 0;
    return h("span", { class: "linkstat" + (l.up ? "" : " down"), id: `link-${name}`,
      title: l.up ? "PLC link up" : thresholdText(l) },
      `${name.replace("_station", "")}: ${l.up ? "link up" : `LINK DOWN ${fmtDur((l.down_s || 0) + extra)}`}`);
  }));
  // controller
  const c = st.controller || {};
  document.getElementById("ctrl-status").textContent = c.running === false ? "controller STOPPED" :
    (c.scan_p99_ms !== null && c.scan_p99_ms !== undefined ? `scan p99 ${c.scan_p99_ms} ms` : "");
  document.getElementById("clock").textContent = fmtWall(st.wall + (store.connected ? (performance.now() - store.lastMsgAt) / 1000 : 0));
  const full = !diff || diff.type === "snapshot" || diff.type === "offline";
  // alarm counts and banner: newest of the highest priority (rebuilt only when alarms change,
  // so a button is never replaced under the operator's pointer)
  if (full || diff.alarms) renderBanner(st);
  if (full || diff.pending) renderPending(st);
  for (const el of document.querySelectorAll("#pending [data-expires]")) {
    const left = Number(el.dataset.expires) - hmiNow();
    el.textContent = `${Math.max(0, Math.round(left))} s left`;
  }
  // stale overlay
  const overlay = document.getElementById("overlay");
  const stopped = c.running === false;
  document.body.classList.toggle("ctrl-stopped", stopped && store.connected);
  if (!store.connected) {
    const lost = store.lostAt ? (performance.now() - store.lostAt) / 1000 : 0;
    overlay.textContent = `LIVE CONNECTION LOST ${fmtAge(lost)} ago: every value is stale. Commands are blocked and nothing typed now will be sent.`;
  } else if (stopped) {
    overlay.textContent = `CONTROLLER NOT SCANNING for ${fmtAge((c.stopped_for_s || 0))}: values are stale; automatic protection by plantctl is not running (the PLC trips still are).`;
  } else {
    overlay.textContent = "";
  }
}

async function main() {
  await loadSession();
  store.config = await get("/api/config");
  document.getElementById("site-title").textContent = store.config.title;
  document.getElementById("whoami").textContent = `${session.user} (${session.roles.join(", ")})`;
  for (const a of document.querySelectorAll("#nav a[data-perm]")) if (!may(a.dataset.perm)) a.style.display = "none";
  document.getElementById("logout").onclick = async () => {
    try { await fetch("/api/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf } }); } catch (e) { /* ignore */ }
    location.href = "/login";
  };
  subscribe((st, diff) => {
    if (st) renderShared(st, diff);
    if (current && st) current.update(st, diff);
  });
  window.addEventListener("hashchange", route);
  connect();
  await route();
}

main().catch((e) => { if (String(e).includes("not logged in")) return; console.error(e); toast(String(e), true); });
