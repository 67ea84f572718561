// Overview: SVG mimics of both stations (ISA-101: grey, colour only when abnormal).
// Every element is bound to tags; update() refreshes the bindings from the live state.
// Clicking a valve, pump or command opens a faceplate; each command goes through a
// confirm step, and the server asks a second person for commands that restore gas.
import { may, post } from "../api.js";
import { reading, store } from "../store.js";
import { act, bandPrio, confirmDialog, fmtAge, fmtDur, fmtValue, h, s, showDialog, signal } from "../ui.js";

let bindings = [];
let linkBoxes = {};

function defs() {
  return s("defs", {},
    s("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
      s("rect", { width: 6, height: 6, fill: "#e6e6e6" }), s("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#a8a8a8", "stroke-width": 3 })),
    s("linearGradient", { id: "half" }, s("stop", { offset: "50%", "stop-color": "#2d2d2d" }), s("stop", { offset: "50%", "stop-color": "#f6f6f6" })));
}

// --- value boxes ---------------------------------------------------------------------------
function value(g, station, tag, x, y, { label = tag, w = 108 } = {}) {
  const key = `${station}:${tag}`;
  const grp = s("g", { class: "valgrp", "data-key": key, transform: `translate(${x},${y})` });
  const box = s("rect", { class: "vbox", x: 0, y: -13, width: w, height: 17, rx: 2 });
  const name = s("text", { class: "tagname", x: 0, y: -16, text: label });
  const txt = s("text", { class: "vtext", x: 4, y: 0, text: "---" });
  const mark = s("g", {});
  grp.append(name, box, txt, mark);
  g.append(grp);
  bindings.push(() => {
    const f = fmtValue(key);
    const units = f.sig && f.sig.units ? ` ${f.sig.units}` : "";
    let text = f.text + units;
    if (f.stale && f.r) text += `  ${fmtAge(f.r.age)}`;
    txt.textContent = text;
    grp.classList.toggle("stale", f.stale);
    grp.setAttribute("data-stale", f.stale ? "1" : "0");
    mark.replaceChildren();
    const p = bandPrio(f.band);
    if (p && !f.stale) {
      // priority by shape and text too: triangle = 2 (HH/LL), square = 3 (H/L)
      const shape = p === 2 ? s("polygon", { class: "almark a2", points: `${w + 4},4 ${w + 18},4 ${w + 11},-10` })
        : s("rect", { class: "almark a3", x: w + 4, y: -10, width: 13, height: 13 });
      mark.append(shape, s("text", { class: "label", x: w + 21, y: 2, text: f.band }));
    }
  });
  return grp;
}

// --- valves ---------------------------------------------------------------------------------
// position from the limit switches: open / closed / travel / fault (both made); BAD -> hatched
function valveState(station, zso, zsc) {
  const o = reading(`${station}:${zso}`), c = reading(`${station}:${zsc}`);
  if (!o || !c) return { cls: "bad", text: "?", stale: true };
  const stale = o.stale || c.stale;
  let cls, text;
  if (o.v && c.v) { cls = "fault"; text = "FAULT"; } else if (o.v) { cls = "open"; text = "OPEN"; }
  else if (c.v) { cls = "closed"; text = "CLOSED"; } else { cls = "travel"; text = "TRAVEL"; }
  return { cls: stale ? "bad" : cls, text: stale ? `${text}?` : text, stale };
}

function pendingFor(station, tag) {
  return ((store.state && store.state.commands) || []).find((c) => c.station === station && c.tag === tag);
}

function valve(g, station, id, x, y, { zso, zsc, cmd, vertical = false, labelDy = 26, values = null }) {
  const grp = s("g", { class: "clickable", "data-valve": id, transform: `translate(${x},${y})${vertical ? " rotate(90)" : ""}` });
  const body = s("polygon", { class: "valve hover", points: "-11,-8 11,8 11,-8 -11,8" });
  grp.append(s("rect", { x: -13, y: -11, width: 26, height: 22, fill: "transparent" }), body);
  // vertical valves carry their label to the right, horizontal ones below
  const lx = vertical ? x + 16 : x, ly = vertical ? y - 2 : y + labelDy, anchor = vertical ? "start" : "middle";
  const label = s("text", { class: "label", x: lx, y: ly, "text-anchor": anchor, text: id });
  const state = s("text", { class: "small", x: lx, y: ly + 12, "text-anchor": anchor, text: "" });
  g.append(grp, label, state);
  grp.addEventListener("click", () => valveFaceplate(station, id, { zso, zsc, cmd, values }));
  bindings.push(() => {
    const st = valveState(station, zso, zsc);
    body.setAttribute("class", `valve hover ${st.cls}`);
    const pend = cmd ? pendingFor(station, cmd) : null;
    let text = st.text;
    if (pend) {
      const sig = signal(`${station}:${cmd}`);
      const target = sig && sig.states ? sig.states[pend.value] : (pend.value ? "OPEN" : "CLOSE");
      text += ` -> ${target}`;
    }
    state.textContent = text;
    grp.setAttribute("data-state", st.text);
  });
}

function commandChoices(station, cmd) {
  const sig = signal(`${station}:${cmd}`);
  if (!sig) return [];
  if (sig.states) return sig.states.map((name) => ({ label: name, value: name }));
  if (sig.type === "bool") {
    const m = /energise = open|1 = open/.test(sig.description || "");
    if (m || /^XY-|^HS-1|^HS-3/.test(cmd)) return [{ label: "Open", value: true }, { label: "Close", value: false }];
    return [{ label: "On / run", value: true }, { label: "Off / stop", value: false }];
  }
  return [];
}

async function sendCommand(station, tag, value, what) {
  const sig = signal(`${station}:${tag}`);
  const fb = sig && sig.feedback ? sig.feedback : null;
  const key = typeof value === "boolean" ? String(value) : String(value);
  const expect = fb && fb[key] && typeof fb[key] === "object" ? `expects ${fb[key].tag} = ${fb[key].value} within ${fb.within_s} s` : "no feedback declared";
  const critical = (store.config.critical_commands || []).includes(`${station}:${tag}=${String(value).toLowerCase()}`);
  const ok = await confirmDialog({
    title: `${what}?`,
    body: h("div", {},
      h("p", {}, h("span", { class: "mono" }, `${station}:${tag} := ${value}`)),
      h("p", { class: "muted" }, `${sig ? sig.description : ""}; ${expect}.`),
      critical ? h("p", {}, h("strong", {}, "Restores gas supply: a second person must confirm within 2 minutes.")) : null),
    confirmLabel: what,
    danger: critical,
  });
  if (!ok) return;
  await act(post("/api/commands", { station, tag, value, confirm: true }), `${tag} := ${value} sent`);
}

function faceplate(title, rows, buttons) {
  const dlg = showDialog(
    h("h3", {}, title),
    h("table", {}, ...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, v)))),
    h("div", { class: "row cmd", style: "margin-top:10px" }, ...buttons,
      h("button", { onclick: () => dlg.close() }, "Close window")));
}

function valveFaceplate(station, id, { zso, zsc, cmd, values }) {
  const st = valveState(station, zso, zsc);
  const rows = [["position", st.text], [zso, fmtValue(`${station}:${zso}`).text], [zsc, fmtValue(`${station}:${zsc}`).text]];
  if (cmd) rows.push([`command ${cmd}`, fmtValue(`${station}:${cmd}`).text]);
  for (const v of values || []) rows.push([v, fmtValue(`${station}:${v}`).text]);
  const buttons = cmd && may("command") ? commandChoices(station, cmd).map((c) =>
    h("button", { "data-cmd": "1", onclick: () => { document.getElementById("dialog").close(); sendCommand(station, cmd, c.value, `${c.label} ${id}`); } }, c.label)) : [];
  faceplate(`${id} (${station})`, rows, buttons);
}

function cmdButton(g, station, id, x, y, cmd, label, extraRows = []) {
  const grp = s("g", { class: "clickable", "data-cmdtag": cmd, transform: `translate(${x},${y})` });
  grp.append(s("rect", { class: "equip hover", x: 0, y: 0, width: 96, height: 20, rx: 3 }),
    s("text", { class: "label", x: 48, y: 14, "text-anchor": "middle", text: label }));
  g.append(grp);
  grp.addEventListener("click", () => {
    const rows = [[cmd, fmtValue(`${station}:${cmd}`).text], ...extraRows.map((t) => [t, fmtValue(`${station}:${t}`).text])];
    const buttons = may("command") ? commandChoices(station, cmd).map((c) =>
      h("button", { "data-cmd": "1", onclick: () => { document.getElementById("dialog").close(); sendCommand(station, cmd, c.value, `${c.label}: ${id}`); } }, c.label)) : [];
    faceplate(`${id} (${station})`, rows, buttons);
  });
}

function filter(g, x, y, label) {
  g.append(s("rect", { class: "equip", x: x - 14, y: y - 11, width: 28, height: 22 }),
    s("line", { x1: x - 14, y1: y + 11, x2: x + 14, y2: y - 11, stroke: "#3a3a3a" }),
    s("text", { class: "small", x, y: y + 24, "text-anchor": "middle", text: label }));
}

function regulator(g, x, y, label, dy = -22) {
  g.append(s("polygon", { class: "equip", points: `${x - 9},${y - 7} ${x + 9},${y + 7} ${x + 9},${y - 7} ${x - 9},${y + 7}` }),
    s("line", { x1: x, y1: y, x2: x, y2: y - 16, stroke: "#3a3a3a" }),
    s("path", { d: `M${x - 8},${y - 16} a8,6 0 0,1 16,0 z`, class: "equip" }),
    s("text", { class: "small", x, y: y + dy, "text-anchor": "middle", text: label }));
}

function digital(g, station, tag, x, y, { on = "yes", off = "no", abnormalWhen = null, label = tag } = {}) {
  const key = `${station}:${tag}`;
  const t = s("text", { class: "label", x, y, text: label });
  g.append(t);
  bindings.push(() => {
    const r = reading(key);
    if (!r) { t.textContent = `${label}: ---`; return; }
    const abn = abnormalWhen !== null && r.v === abnormalWhen && !r.stale;
    t.textContent = `${label}: ${r.v ? on : off}${r.stale ? "?" : ""}${abn ? "  !" : ""}`;
    t.setAttribute("font-weight", abn ? "700" : "400");
    t.setAttribute("fill", r.stale ? "#777" : "#1e1e1e");
    t.setAttribute("data-abnormal", abn ? "1" : "0");
  });
}

// vertical bar against alarm and trip lines (detectors, tank levels)
function bar(g, station, tag, x, y, hgt, { max = 100, lines = [], label = tag, width = 34 }) {
  const key = `${station}:${tag}`;
  const grp = s("g", { "data-bar": key });
  const bg = s("rect", { class: "bar-bg", x, y, width, height: hgt });
  const fill = s("rect", { class: "bar", x: x + 1, y: y + hgt, width: width - 2, height: 0 });
  grp.append(bg, fill);
  for (const ln of lines) {
    const ly = y + hgt - (Math.min(ln.v, max) / max) * hgt;
    grp.append(s("line", { class: "limit" + (ln.trip ? " trip" : ""), x1: x - 6, y1: ly, x2: x + width + 6, y2: ly }),
      s("text", { class: "small", x: x + width + 8, y: ly + 3, text: `${ln.name} ${ln.v}` }));
  }
  const vt = s("text", { class: "vtext", x: x + width / 2, y: y + hgt + 16, "text-anchor": "middle", text: "---" });
  const at = s("text", { class: "small", x: x + width / 2, y: y + hgt + 28, "text-anchor": "middle", text: "" });
  grp.append(vt, at, s("text", { class: "label", x: x + width / 2, y: y - 6, "text-anchor": "middle", text: label }));
  g.append(grp);
  bindings.push(() => {
    const f = fmtValue(key);
    const v = f.r && typeof f.r.v === "number" ? f.r.v : 0;
    const hh = Math.max(0, Math.min(v, max)) / max * hgt;
    fill.setAttribute("y", y + hgt - hh);
    fill.setAttribute("height", hh);
    const tripLine = lines.find((l) => l.trip);
    let cls = "bar";
    if (!f.stale) {
      if (tripLine && v >= tripLine.v) cls += " a1";
      else if (f.band) cls += bandPrio(f.band) === 2 ? " a2" : " a3";
    }
    fill.setAttribute("class", cls);
    bg.setAttribute("fill", f.stale ? "url(#hatch)" : "");
    vt.textContent = `${f.text}${f.sig ? " " + f.sig.units : ""}`;
    at.textContent = f.stale && f.r ? `stale ${fmtAge(f.r.age)}` : "";
    grp.setAttribute("data-stale", f.stale ? "1" : "0");
  });
}

function pump(g, station, id, x, y, { run, cmd, current, pressure }) {
  const grp = s("g", { class: "clickable", "data-pump": id });
  const c = s("circle", { class: "equip hover", cx: x, cy: y, r: 20 });
  grp.append(c, s("polygon", { points: `${x - 8},${y - 12} ${x + 14},${y} ${x - 8},${y + 12}`, fill: "none", stroke: "#3a3a3a" }));
  const st = s("text", { class: "small", x, y: y + 34, "text-anchor": "middle", text: "" });
  g.append(grp, s("text", { class: "label", x: x - 24, y: y - 26, "text-anchor": "end", text: id }), st);
  grp.addEventListener("click", () => {
    const rows = [[run, fmtValue(`${station}:${run}`).text], [current, fmtValue(`${station}:${current}`).text]];
    if (pressure) rows.push([pressure, fmtValue(`${station}:${pressure}`).text]);
    const buttons = may("command") ? [
      h("button", { "data-cmd": "1", onclick: () => { document.getElementById("dialog").close(); sendCommand(station, cmd, true, `Start ${id}`); } }, "Start"),
      h("button", { "data-cmd": "1", onclick: () => { document.getElementById("dialog").close(); sendCommand(station, cmd, false, `Stop ${id}`); } }, "Stop")] : [];
    faceplate(`${id} (${station})`, rows, buttons);
  });
  bindings.push(() => {
    const r = reading(`${station}:${run}`);
    const stale = !r || r.stale;
    c.setAttribute("class", `equip hover ${stale ? "" : r.v ? "running" : "stopped"}`);
    c.setAttribute("fill", stale ? "url(#hatch)" : r.v ? "#2d2d2d" : "#f6f6f6");
    st.textContent = stale ? "?" : r.v ? "RUNNING" : "STOPPED";
    grp.setAttribute("data-state", st.textContent);
  });
}

function linkBanner(station) {
  const box = h("div", { class: "linkdown", id: `linkdown-${station}`, style: "display:none" });
  linkBoxes[station] = box;
  return box;
}

function updateLinkBanners(st) {
  for (const [station, box] of Object.entries(linkBoxes)) {
    const l = st.links && st.links[station];
    if (!l || l.up) { box.style.display = "none"; continue; }
    const extra = store.connected ? (performance.now() - store.lastMsgAt) / 1000 : 0;
    const down = (l.down_s || 0) + extra;
    const th = store.config.manual_thresholds_s || [1800, 21600, 86400];
    const marks = th.map((t) => `${fmtDur(t)}${down >= t ? " (passed)" : ""}`).join("  |  ");
    box.style.display = "block";
    box.textContent = `PLC link to ${station} DOWN for ${fmtDur(down)}: its values are stale. ` +
      (l.next_threshold_s ? `Next manual-operation threshold at ${fmtDur(l.next_threshold_s)} (in ${fmtDur(l.next_threshold_s - down)}). ` : "All manual-operation thresholds passed. ") +
      `Thresholds: ${marks}`;
  }
}

// --- Plant A: gas path from the offtake to the GT compartment -------------------------------------
function gasMimic() {
  const G = "gas_station";
  const svg = s("svg", { class: "mimic", id: "mimic-gas", viewBox: "0 0 1500 610", role: "img", "aria-label": "gas station mimic" });
  svg.append(defs());
  const g = s("g", {});
  svg.append(g);
  const P = (d, cls = "pipe") => g.append(s("path", { class: cls, d }));
  g.append(s("text", { class: "label", x: 10, y: 18, "font-weight": "700", text: "Plant A: natural-gas supply to GT-400" }));
  // offtake station
  g.append(s("rect", { class: "equip", x: 10, y: 150, width: 120, height: 140 }),
    s("text", { class: "label", x: 16, y: 166, text: "OS-001 offtake" }));
  digital(g, G, "ZSC-001", 16, 186, { label: "XV-001", on: "closed", off: "not closed" });
  digital(g, G, "FL-002", 16, 204, { label: "FL-002 flare", on: "lit", off: "off" });
  digital(g, G, "YA-001", 16, 222, { label: "ack", on: "yes", off: "no" });
  cmdButton(g, G, "Offtake request (HS-001)", 22, 240, "HS-001", "HS-001 request", ["YA-001", "ZSC-001", "FL-002"]);
  // PL-100
  P("M130,220 H330");
  g.append(s("text", { class: "small", x: 140, y: 212, text: "PL-100 DN400 10 km" }));
  value(g, G, "PT-101", 140, 258);
  value(g, G, "TT-101", 140, 298);
  P("M280,220 V110");
  valve(g, G, "BDV-102", 280, 160, { zso: "ZSO-102", zsc: "ZSC-102", cmd: "HS-102", vertical: true, labelDy: 0 });
  g.append(s("text", { class: "small", x: 292, y: 108, text: "vent VS-102" }));
  // XV-201 and the regulating runs
  P("M330,220 H390");
  valve(g, G, "XV-201", 345, 220, { zso: "ZSO-201", zsc: "ZSC-201", cmd: "XY-201", values: ["PT-201"] });
  value(g, G, "PT-201", 340, 290, { w: 80 });
  P("M390,130 V310");
  for (const [run, y] of [["A", 130], ["B", 310]]) {
    P(`M390,${y} H720`);
    valve(g, G, `XV-211${run}`, 425, y, { zso: `ZSO-211${run}`, zsc: `ZSC-211${run}`, cmd: `XY-211${run}` });
    filter(g, 480, y, `F-212${run}`);
    value(g, G, `PDT-212${run}`, 452, y - 32, { w: 80, label: `PDT-212${run}` });
    // slam-shut: latched tripped = closed
    const ssv = s("g", { class: "clickable", "data-valve": `SSV-213${run}` });
    const body = s("polygon", { class: "valve", points: `${530},${y - 8} ${552},${y + 8} ${552},${y - 8} ${530},${y + 8}` });
    ssv.append(body);
    const sst = s("text", { class: "small", x: 541, y: y + 38, "text-anchor": "middle", text: "" });
    g.append(ssv, s("text", { class: "label", x: 541, y: y + 26, "text-anchor": "middle", text: `SSV-213${run}` }), sst);
    ssv.addEventListener("click", () => {
      const buttons = may("command") ? [h("button", { "data-cmd": "1", onclick: () => { document.getElementById("dialog").close(); sendCommand(G, `HS-213${run}`, true, `Reset SSV-213${run}`); } }, "Field reset (HS-213)")] : [];
      faceplate(`SSV-213${run} slam-shut`, [[`ZS-213${run} tripped`, fmtValue(`${G}:ZS-213${run}`).text]], buttons);
    });
    bindings.push(() => {
      const r = reading(`${G}:ZS-213${run}`);
      const stale = !r || r.stale;
      body.setAttribute("class", `valve ${stale ? "bad" : r.v ? "closed" : "open"}`);
      sst.textContent = stale ? "?" : r.v ? "TRIPPED" : "set";
      sst.setAttribute("font-weight", !stale && r.v ? "700" : "400");
    });
    regulator(g, 590, y, `PCV-214${run}`);
    regulator(g, 635, y, `PCV-215${run}`, 22);
    value(g, G, `PCV-215${run}`, 575, y + 50, { w: 90, label: "setpoint" });
    valve(g, G, `XV-216${run}`, 690, y, { zso: `ZSO-216${run}`, zsc: `ZSC-216${run}`, cmd: `XY-216${run}` });
  }
  P("M720,130 V310");
  P("M720,220 H950");
  value(g, G, "PT-202", 728, 262, { w: 84 });
  value(g, G, "FT-204", 728, 300, { w: 84 });
  valve(g, G, "XV-205", 845, 220, { zso: "ZSO-205", zsc: "ZSC-205", cmd: "XY-205" });
  g.append(s("text", { class: "small", x: 870, y: 212, text: "PL-250 DN300" }));
  value(g, G, "PT-301", 872, 262, { w: 70 });
  P("M950,220 H995");
  valve(g, G, "XV-301", 965, 220, { zso: "ZSO-301", zsc: "ZSC-301", cmd: "XY-301" });
  P("M995,160 V280");
  for (const [br, y] of [["A", 160], ["B", 280]]) {
    P(`M995,${y} H1165`);
    valve(g, G, `XV-311${br}`, 1025, y, { zso: `ZSO-311${br}`, zsc: `ZSC-311${br}`, cmd: `XY-311${br}` });
    filter(g, 1080, y, `F-312${br}`);
    value(g, G, `PDT-312${br}`, 1050, y - 30, { w: 78, label: `PDT-312${br}` });
    valve(g, G, `XV-313${br}`, 1135, y, { zso: `ZSO-313${br}`, zsc: `ZSC-313${br}`, cmd: `XY-313${br}` });
  }
  P("M1165,160 V280");
  P("M1165,220 H1300");
  P("M1190,220 V100");
  valve(g, G, "BV-321", 1190, 150, { zso: "ZSO-321", zsc: "ZSC-321", cmd: "HS-321", vertical: true, labelDy: 0 });
  g.append(s("text", { class: "small", x: 1200, y: 98, text: "vent VS-321" }));
  valve(g, G, "SRV-320", 1235, 220, { zso: "ZSO-320", zsc: "ZSC-320", cmd: "XY-320" });
  value(g, G, "PT-322", 1196, 280, { w: 96 });
  value(g, G, "FT-323", 1196, 316, { w: 96 });
  value(g, G, "TT-324", 1196, 352, { w: 96 });
  // GT-400
  g.append(s("rect", { class: "equip", x: 1300, y: 150, width: 190, height: 150 }),
    s("text", { class: "label", x: 1308, y: 166, "font-weight": "700", text: "GT-400 gas turbine" }));
  value(g, G, "XS-400", 1308, 192, { w: 110, label: "state XS-400" });
  value(g, G, "JT-400", 1308, 228, { w: 90 });
  value(g, G, "ST-400", 1400, 228, { w: 84 });
  digital(g, G, "XY-400", 1308, 252, { label: "permissive XY-400", on: "healthy", off: "TRIP", abnormalWhen: false });
  cmdButton(g, G, "GT load (HS-400)", 1308, 264, "HS-400", "load HS-400", ["JT-400", "XS-400"]);
  cmdButton(g, G, "GT permissive (XY-400)", 1392, 264, "XY-400", "ESD XY-400", ["XS-400"]);
  // compartment GC-410
  g.append(s("rect", { class: "equip", x: 960, y: 380, width: 530, height: 225 }),
    s("text", { class: "label", x: 968, y: 396, "font-weight": "700", text: "GT gas compartment GC-410 (detectors in the ventilation outlet)" }));
  P("M1395,300 V380", "pipe thin");
  const trip = tripLevel();
  for (const [i, d] of ["A", "B", "C"].entries()) {
    bar(g, G, `GD-401${d}`, 990 + i * 95, 425, 130, { max: 50, label: `GD-401${d}`,
      lines: [{ name: "H", v: 10 }, { name: "HH", v: 20 }, { name: "trip", v: trip, trip: true }] });
    digital(g, G, `XA-401${d}`, 985 + i * 95, 598, { label: "fault", on: "YES", off: "no", abnormalWhen: true });
  }
  pump(g, G, "VF-411A", 1330, 445, { run: "XS-411A", cmd: "XY-411A", current: "FS-411" });
  pump(g, G, "VF-411B", 1440, 445, { run: "XS-411B", cmd: "XY-411B", current: "FS-411" });
  digital(g, G, "FS-411", 1300, 510, { label: "ventilation FS-411", on: "flow OK", off: "NO FLOW", abnormalWhen: false });
  digital(g, G, "TS-402", 1300, 530, { label: "fire TS-402", on: "FIRE", off: "clear", abnormalWhen: true });
  value(g, G, "AI-901", 1300, 572, { w: 100, label: "portable AI-901" });
  legend(g, 10, 400);
  return svg;
}

function tripLevel() {
  const il = (store.config.interlocks || []).find((i) => i.members.some((m) => m.tag === "GD-401A"));
  return il ? Number(il.members[0].value) : 25;
}

function legend(g, x, y) {
  g.append(s("text", { class: "label", x, y, "font-weight": "700", text: "Legend" }));
  const items = [["open", "OPEN (hollow)"], ["closed", "CLOSED (solid)"], ["travel", "TRAVEL (half)"], ["bad", "not trusted (hatched)"]];
  items.forEach(([cls, text], i) => {
    const yy = y + 20 + i * 22;
    g.append(s("polygon", { class: `valve ${cls}`, points: `${x},${yy - 7} ${x + 20},${yy + 7} ${x + 20},${yy - 7} ${x},${yy + 7}` }),
      s("text", { class: "small", x: x + 28, y: yy + 4, text }));
  });
  const yy = y + 20 + items.length * 22;
  g.append(s("polygon", { class: "almark a2", points: `${x},${yy + 6} ${x + 16},${yy + 6} ${x + 8},${yy - 8}` }),
    s("text", { class: "small", x: x + 28, y: yy + 4, text: "HH/LL limit (priority 2)" }),
    s("rect", { class: "almark a3", x, y: yy + 14, width: 14, height: 14 }),
    s("text", { class: "small", x: x + 28, y: yy + 26, text: "H/L limit (priority 3)" }));
}

// --- Plant B: pump station one-line ------------------------------------------------------
function pumpMimic() {
  const S = "pump_station";
  const svg = s("svg", { class: "mimic", id: "mimic-pump", viewBox: "0 0 1500 560", role: "img", "aria-label": "pump station mimic" });
  svg.append(defs());
  const g = s("g", {});
  svg.append(g);
  const P = (d, cls = "pipe") => g.append(s("path", { class: cls, d }));
  g.append(s("text", { class: "label", x: 10, y: 18, "font-weight": "700", text: "Plant B: circulating-water pump station" }));
  const bus = s("line", { class: "bus", x1: 80, y1: 60, x2: 960, y2: 60 });
  g.append(bus, s("text", { class: "label", x: 80, y: 48, text: "6 kV bus EB-601" }));
  value(g, S, "EI-601", 230, 46, { w: 90 });
  value(g, S, "XS-601", 380, 46, { w: 150, label: "bus state XS-601" });
  bindings.push(() => {
    const r = reading(`${S}:XS-601`);
    bus.setAttribute("class", "bus" + (r && !r.stale && r.v === 1 ? " dead" : ""));
  });
  g.append(s("line", { class: "bus", x1: 1040, y1: 60, x2: 1480, y2: 60, "stroke-width": 3 }),
    s("text", { class: "label", x: 1040, y: 48, text: "0.4 kV emergency MCC EB-602" }));
  value(g, S, "EI-602", 1260, 46, { w: 90 });
  const pumps = [["P-701A", "703A", 160], ["P-701B", "703B", 300], ["P-701C", "703C", 440], ["P-711A", "713A", 640], ["P-711B", "713B", 780]];
  for (const [id, mov, x] of pumps) {
    const n = id.slice(2); // 701A
    const big = n.startsWith("70");
    P(`M${x},60 V180`, "pipe thin");
    g.append(s("rect", { class: "equip", x: x - 6, y: 84, width: 12, height: 12 }));
    pump(g, S, id, x, 200, { run: `XS-${n}`, cmd: `HS-${n}`, current: `II-${n}`, pressure: `PT-${big ? "702" : "712"}${n.slice(3)}` });
    value(g, S, `II-${n}`, x + 26, 150, { w: 74 });
    value(g, S, `PT-${big ? "702" : "712"}${n.slice(3)}`, x + 26, 250, { w: 74 });
    P(`M${x},220 V360`);
    valve(g, S, `MOV-${mov}`, x, 300, { zso: `ZSO-${mov}`, zsc: `ZSC-${mov}`, cmd: `HS-${mov}`, vertical: true, labelDy: 0 });
  }
  P("M110,360 H520");
  g.append(s("text", { class: "label", x: 110, y: 380, text: "BF normal-pressure water header" }));
  value(g, S, "PT-720", 110, 412, { w: 86 });
  value(g, S, "FT-721", 210, 412, { w: 100 });
  value(g, S, "TT-722", 325, 412, { w: 86 });
  P("M600,360 H860");
  g.append(s("text", { class: "label", x: 610, y: 380, text: "HBS cooling-water header" }));
  value(g, S, "PT-730", 610, 412, { w: 86 });
  value(g, S, "FT-731", 710, 412, { w: 100 });
  P("M520,360 H600");
  valve(g, S, "MOV-740", 560, 360, { zso: "ZSO-740", zsc: "ZSC-740", cmd: "HS-740", labelDy: -16 });
  P("M520,360 H530 M860,360 H900", "pipe");
  g.append(s("text", { class: "small", x: 870, y: 352, text: "to users" }), s("text", { class: "small", x: 60, y: 352, text: "BF staves" }));
  // suction well
  g.append(s("rect", { class: "equip", x: 110, y: 460, width: 700, height: 60 }),
    s("text", { class: "label", x: 120, y: 478, text: "suction well" }));
  value(g, S, "LT-750", 120, 504, { w: 80 });
  // diesel set
  g.append(s("rect", { class: "equip", x: 1000, y: 110, width: 250, height: 200 }),
    s("text", { class: "label", x: 1008, y: 128, "font-weight": "700", text: "Diesel DE-801 / pump P-801" }));
  value(g, S, "YS-801", 1008, 156, { w: 120, label: "state YS-801" });
  value(g, S, "XS-801", 1136, 156, { w: 100, label: "mode XS-801" });
  value(g, S, "ST-802", 1008, 192, { w: 100 });
  value(g, S, "PT-803", 1136, 192, { w: 100 });
  value(g, S, "TT-804", 1008, 228, { w: 100 });
  value(g, S, "FQ-808", 1136, 228, { w: 100 });
  digital(g, S, "XA-801", 1008, 250, { label: "overcrank XA-801", on: "FAILED", off: "no", abnormalWhen: true });
  cmdButton(g, S, "Diesel manual start (HS-809)", 1008, 262, "HS-809", "crank HS-809", ["YS-801", "EI-807A", "EI-807B"]);
  cmdButton(g, S, "Diesel mode (HS-801)", 1108, 262, "HS-801", "mode HS-801", ["XS-801"]);
  cmdButton(g, S, "Diesel stop request (HS-810)", 1008, 286, "HS-810", "stop HS-810", ["YS-801"]);
  P("M1125,310 V440 H480 V360");
  value(g, S, "PT-805", 1135, 350, { w: 90 });
  g.append(s("text", { class: "small", x: 700, y: 434, text: "diesel discharge via CV-804 into the BF header" }));
  value(g, S, "EI-807A", 1240, 350, { w: 76, label: "battery A" });
  value(g, S, "EI-807B", 1330, 350, { w: 76, label: "battery B" });
  // day tank
  bar(g, S, "LT-806", 1300, 120, 150, { max: 100, label: "day tank T-806", width: 40,
    lines: [{ name: "L", v: 66.7 }, { name: "LL", v: 33 }] });
  digital(g, S, "XS-806", 1290, 312, { label: "reserve", on: "available", off: "EMPTY", abnormalWhen: false });
  cmdButton(g, S, "Fuel transfer (HS-806)", 1380, 286, "HS-806", "transfer HS-806", ["LT-806", "XS-806"]);
  value(g, S, "UY-790", 1240, 420, { w: 90, label: "damage score UY-790" });
  return svg;
}

export const page = {
  async mount(root) {
    bindings = [];
    linkBoxes = {};
    root.append(
      h("h2", {}, "Overview"),
      linkBanner("gas_station"),
      h("div", { id: "ov-gas" }, gasMimic()),
      linkBanner("pump_station"),
      h("div", { id: "ov-pump" }, pumpMimic()));
  },
  update(st) {
    for (const b of bindings) b();
    updateLinkBanners(st);
  },
  unmount() { bindings = []; linkBoxes = {}; },
};
