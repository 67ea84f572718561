// The live state: one WebSocket, a snapshot then diffs. Tracks whether the view is live.
// When the socket drops, every value is shown stale (greyed, hatched, with its age) and
// command forms are made inert; on reconnect a fresh snapshot replaces everything and
// command forms are cleared, so nothing entered while offline can be sent afterwards.
const listeners = new Set();

export const store = {
  state: null,          // the last full state (server-side view)
  conn: null,           // id of the live connection (sent with every command)
  connected: false,
  lostAt: null,         // performance.now() when the connection dropped
  lastMsgAt: 0,         // performance.now() of the last message
  seq: 0,
  ws: null,
  retry: 0,
  config: null,
};

export function subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function emit(diff) {
  for (const fn of listeners) { try { fn(store.state, diff); } catch (e) { console.error(e); } }
  // elements a page just (re)built must be inert too while the view is not live
  if (!store.connected) for (const el of document.querySelectorAll(".cmd")) el.inert = true;
}

function apply(msg) {
  if (msg.type === "snapshot" || !store.state) {
    const { type, seq, ...rest } = msg;
    store.state = rest;
  } else {
    for (const [k, v] of Object.entries(msg)) {
      if (k === "type" || k === "seq") continue;
      if (k === "values") Object.assign(store.state.values, v);
      else store.state[k] = v;
    }
  }
  store.seq = msg.seq;
  store.lastMsgAt = performance.now();
}

// seconds since the server took the state we show
export function sinceLastMsg() { return store.lastMsgAt ? (performance.now() - store.lastMsgAt) / 1000 : 0; }

export function reading(key) {
  const s = store.state;
  if (!s || !s.values[key]) return null;
  const [v, q, t, reason] = s.values[key];
  const age = Math.max(0, s.now - t) + sinceLastMsg();
  const station = key.split(":")[0];
  const link = s.links && s.links[station];
  const ctrlStopped = s.controller && s.controller.running === false;
  const stale = !store.connected || q !== 2 || ctrlStopped || (link && !link.up);
  return { v, q, t, reason: reason || "", age, stale };
}

export function setOffline(off) {
  document.body.classList.toggle("offline", off);
  for (const el of document.querySelectorAll(".cmd")) el.inert = off;
}

export function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  store.ws = ws;
  let alive = true;
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") { store.conn = msg.conn; return; }
    if (msg.type === "pong") return;
    const wasOffline = !store.connected;
    apply(msg);
    if (msg.type === "snapshot") {
      store.connected = true;
      store.retry = 0;
      if (wasOffline) {
        // drop whatever was typed into command forms while the view was not live
        for (const f of document.querySelectorAll("form.cmd")) f.reset();
        setOffline(false);
      }
      store.lostAt = null;
    }
    emit(msg);
  };
  ws.onclose = (ev) => {
    if (!alive) return;
    alive = false;
    store.connected = false;
    store.conn = null;
    if (store.lostAt === null) store.lostAt = performance.now();
    setOffline(true);
    emit({ type: "offline" });
    if (ev.code === 4401) { window.location.href = "/login"; return; }
    const delay = Math.min(5000, 250 * 2 ** store.retry++);
    setTimeout(connect, delay);
  };
  ws.onerror = () => { /* onclose follows */ };
}

// a local tick so ages, countdowns and the offline timer move between messages
setInterval(() => emit({ type: "tick" }), 1000);
