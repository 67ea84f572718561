// REST calls. Every state-changing call carries the CSRF token and the id of the live
// WebSocket connection it was composed on; nothing is queued or retried: while the live
// connection is down a command is refused here, and the server refuses one composed on a
// connection that has since dropped (so nothing typed during an outage is sent later).
import { store } from "./store.js";

export let session = { user: "", roles: [], csrf: "", may: {} };

export async function loadSession() {
  const r = await fetch("/api/session", { credentials: "same-origin" });
  if (r.status === 401) { window.location.href = "/login"; throw new Error("not logged in"); }
  session = await r.json();
  return session;
}

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function parse(r) {
  let body = null;
  const text = await r.text();
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (!r.ok) {
    if (r.status === 401) { window.location.href = "/login"; }
    throw new ApiError(r.status, (body && body.detail) || r.statusText);
  }
  return body;
}

export async function get(path) {
  return parse(await fetch(path, { credentials: "same-origin" }));
}

export async function getText(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (!r.ok) throw new ApiError(r.status, r.statusText);
  return r.text();
}

export async function post(path, body = {}) {
  if (!store.connected) {
    throw new ApiError(0, "Not sent: the live connection is down. Nothing is queued; redo it when the values are live again.");
  }
  const r = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf, "X-HMI-Conn": store.conn || "" },
    body: JSON.stringify(body),
  });
  const out = await parse(r);
  if (out && typeof out === "object") out._status = r.status;
  return out;
}

export function may(perm) { return !!(session.may && session.may[perm]); }
