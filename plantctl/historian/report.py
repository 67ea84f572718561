"""The post-incident report: journal + historian -> one HTML page and one Markdown file.

Theory of operation
-------------------
Everything in the report is read, never inferred from memory: the events come
from the journal (read-only, streamed through ``journal.export``, so a report can
be made beside a running controller), the curves from the historian's embedded
store. For a window ``[t0, t1]`` (wall time) the report has:

* first-out: the first cause to trip in each trip group (the engine's FIRST_OUT
  record with its first voting member) and the first alarm to annunciate (the
  alarm board's first-out per group, else the earliest alarm of the window):
  "which detector saw it first";
* the timeline: trips, first-outs, alarm annunciations, procedure steps, commands
  with their verification, operator actions with names, in time order, each with
  its time relative to the first-out (T+s);
* sections per kind: trips, alarms (every state change, with who), procedures,
  commands and their verification (verified after n s / FAILED and why), operator
  actions (who, from where, accepted or refused, and why);
* trend plots of the signals involved (first-out members, alarmed tags, limit
  crossings, commanded outputs and their feedback), min/max-decimated from the
  embedded store, with the alarm limits and the trips marked; matplotlib renders
  them to SVG, inlined in the HTML so the page is self-contained (no CDN, no
  script: control rooms are air-gapped) and written beside the Markdown file;
* empty sections for the cause and the preventive measures, due within two days
  of the incident, and the journal records the report rests on (seq range and
  hash, to check with ``plantctl journal verify --anchor``).
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..alarms import AlarmState, is_annunciation
from ..journal import Event, EventKind, JournalError, export
from .base import Historian, Point

DUE_S = 2 * 86400.0  # cause and preventive measures are due within two days


@dataclass(frozen=True)
class Entry:
    """A journal record as the report uses it."""

    seq: int
    event: Event
    hash: str = ""


@dataclass(frozen=True)
class Incident:
    seq: int
    t_wall: float
    trip_group: str
    interlock: str
    first_member: str
    station: str


@dataclass
class Report:
    title: str
    t0: float
    t1: float
    reference: float  # the first-out time (or t0): "T+0"
    html: str
    markdown: str
    svgs: dict[str, str] = field(default_factory=dict)  # file name -> SVG text
    first_alarm: str = ""  # alarm id of the first alarm to annunciate
    first_detector: str = ""  # its tag


# ---------------------------------------------------------------------------------------------
# Reading the journal


class _Stop(Exception):
    pass


class _Collector(io.TextIOBase):
    """A text sink for ``journal.export`` (JSON lines) that keeps the records in a window."""

    def __init__(self, t0: float | None, t1: float | None, margin_s: float) -> None:
        self.t0, self.t1, self.margin_s = t0, t1, margin_s
        self.entries: list[Entry] = []
        self.last: Entry | None = None
        self._buf = ""

    def write(self, s: str) -> int:
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                self._line(json.loads(line))
        return len(s)

    def _line(self, d: dict[str, Any]) -> None:
        payload = d.get("payload")
        try:
            kind = EventKind(d["kind"])
        except ValueError:
            return
        ev = Event(kind, float(d["t_plant"]), float(d["t_wall"]), d.get("station") or "", d.get("source") or "",
                   d.get("user") or "", d.get("address") or "", payload if isinstance(payload, dict) else {})
        entry = Entry(int(d["seq"]), ev, str(d.get("hash", "")))
        if self.t1 is not None and ev.t_wall > self.t1 + self.margin_s:
            raise _Stop  # records are in seq order; past the window (and a clock-step margin) we are done
        if (self.t0 is None or ev.t_wall >= self.t0) and (self.t1 is None or ev.t_wall <= self.t1):
            self.entries.append(entry)
            self.last = entry


def load_entries(journal_path: str | Path, t0: float | None = None, t1: float | None = None,
                 *, margin_s: float = 3600.0) -> list[Entry]:
    """Journal records with ``t0 <= t_wall <= t1``, in seq order (read-only, streamed)."""
    sink = _Collector(t0, t1, margin_s)
    try:
        export(journal_path, "jsonl", sink)  # type: ignore[arg-type]
    except _Stop:
        pass
    return sink.entries


def find_incidents(entries: Iterable[Entry]) -> list[Incident]:
    """Every first-out (the start of a trip of a trip group) in the records."""
    out = []
    for e in entries:
        ev = e.event
        if ev.kind is EventKind.FIRST_OUT:
            p = ev.payload
            out.append(Incident(e.seq, ev.t_wall, str(p.get("trip_group", "")), str(p.get("interlock", "")),
                                str(p.get("first_member") or ""), ev.station))
    return out


def incident_window(entries: Sequence[Entry], seq: int, before_s: float = 600.0, after_s: float = 300.0,
                    max_s: float = 4 * 3600.0) -> tuple[float, float]:
    """The window of the incident whose FIRST_OUT (or TRIP) record is ``seq``: from ``before_s``
    ahead of it to ``after_s`` past the reset of the group's last trip (or the end of the records)."""
    start = next((e for e in entries if e.seq == seq), None)
    if start is None or start.event.kind not in (EventKind.FIRST_OUT, EventKind.TRIP):
        raise JournalError(f"record {seq} is not a FIRST_OUT or TRIP record")
    group = start.event.payload.get("trip_group")
    tripped: set[str] = set()
    end = None
    for e in entries:
        ev = e.event
        if e.seq < seq:
            continue
        if ev.kind is EventKind.TRIP and ev.payload.get("trip_group") == group:
            tripped.add(str(ev.payload.get("interlock")))
        elif ev.kind is EventKind.TRIP_RESET and ev.payload.get("interlock") in tripped:
            tripped.discard(str(ev.payload.get("interlock")))
            if not tripped:
                end = ev.t_wall
                break
    t0 = start.event.t_wall - before_s
    last = entries[-1].event.t_wall if entries else start.event.t_wall
    t1 = min((end if end is not None else last) + after_s, start.event.t_wall + max_s)
    return t0, t1


# ---------------------------------------------------------------------------------------------
# Formatting


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _rel(t: float, ref: float) -> str:
    d = t - ref
    return f"T{'+' if d >= 0 else '-'}{abs(d):.1f} s"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return str(v)


@dataclass
class _Table:
    id: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # a CSS class per row ("" for none)
    note: str = ""

    def add(self, row: Iterable[Any], cls: str = "") -> None:
        self.rows.append([_fmt(c) for c in row])
        self.classes.append(cls)

    def html(self) -> str:
        h = [f'<section id="{self.id}"><h2>{html.escape(self.title)}</h2>']
        if self.note:
            h.append(f"<p>{html.escape(self.note)}</p>")
        if not self.rows:
            h.append('<p class="none">None in this window.</p></section>')
            return "".join(h)
        h.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in self.columns) + "</tr></thead><tbody>")
        for row, cls in zip(self.rows, self.classes, strict=True):
            attr = f' class="{cls}"' if cls else ""
            h.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        h.append("</tbody></table></section>")
        return "".join(h)

    def markdown(self) -> str:
        m = [f"## {self.title}", ""]
        if self.note:
            m += [self.note, ""]
        if not self.rows:
            return "\n".join(m + ["None in this window.", ""])

        def cell(c: str) -> str:
            return c.replace("|", "\\|").replace("\n", " ")

        m.append("| " + " | ".join(self.columns) + " |")
        m.append("|" + "---|" * len(self.columns))
        m += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(m + [""])


_CSS = """
body{font-family:sans-serif;color:#222;background:#e8e8e8;margin:1.5em;max-width:1200px}
h1,h2{font-weight:600}h2{border-bottom:1px solid #999;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:90%;background:#f4f4f4}
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#d6d6d6}tr.trip td{background:#f3c6c6;font-weight:600}tr.p1 td,tr.p2 td{color:#8a0000}
tr.refused td{color:#7a4b00}tr.failed td{background:#f7dcb4}
.none{color:#666;font-style:italic}.key{font-size:110%;background:#f4f4f4;padding:.6em;border:1px solid #bbb}
.todo{min-height:4em;border:1px dashed #777;padding:.6em;background:#fafafa}
figure{margin:1em 0;background:#fff;border:1px solid #bbb;padding:.4em}figcaption{font-size:90%;color:#444}
"""


# ---------------------------------------------------------------------------------------------
# Building


def _signals_involved(events: Sequence[Event], limit: int) -> list[tuple[str, str]]:
    """Signals worth a trend, most telling first: first-out members, alarmed tags, limit crossings,
    commanded outputs and their feedback."""
    ranked: list[tuple[int, float, str, str]] = []
    for ev in events:
        p = ev.payload
        if ev.kind in (EventKind.FIRST_OUT, EventKind.TRIP) and p.get("first_member"):
            ranked.append((0, ev.t_wall, ev.station, str(p["first_member"])))
        elif ev.kind is EventKind.ALARM and p.get("tag") and is_annunciation(ev):
            ranked.append((1, ev.t_wall, ev.station, str(p["tag"])))
        elif ev.kind is EventKind.LIMIT_CROSSING and p.get("tag"):
            ranked.append((2, ev.t_wall, ev.station, str(p["tag"])))
        elif ev.kind is EventKind.COMMAND and p.get("tag"):
            ranked.append((3, ev.t_wall, ev.station, str(p["tag"])))
            verify = p.get("verify")
            if isinstance(verify, dict) and verify.get("tag"):
                ranked.append((3, ev.t_wall, ev.station, str(verify["tag"])))
    seen: list[tuple[str, str]] = []
    for _, _, st, tag in sorted(ranked, key=lambda r: (r[0], r[1])):
        if (st, tag) not in seen:
            seen.append((st, tag))
    return seen[:limit]


def _svg_clean(svg: str) -> str:
    """Strip the XML prolog, DOCTYPE and RDF metadata: only the drawing goes inline."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    return svg.strip()


def _plot(points: Sequence[Point], title: str, units: str, ref: float, limits: dict[str, float],
          marks: Sequence[tuple[float, str]]) -> str:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "plantctl", "font.size": 9}):
        fig = Figure(figsize=(9.0, 2.6))
        ax = fig.add_subplot(1, 1, 1)
        good = [(p.t_wall - ref, p.value) for p in points if p.quality > 0 and not math.isnan(p.value)]
        bad = [(p.t_wall - ref, p.value) for p in points if p.quality == 0 and not math.isnan(p.value)]
        if good:
            ax.plot([x for x, _ in good], [y for _, y in good], color="#333333", linewidth=1.0, gid="values")
        if bad:
            ax.plot([x for x, _ in bad], [y for _, y in bad], linestyle="none", marker="x", color="#b00000",
                    markersize=3, gid="bad-quality")
        for name, lim in sorted(limits.items()):
            ax.axhline(lim, color="#c08000" if len(name) == 1 else "#b00000", linewidth=0.8, linestyle=":",
                       gid=f"limit-{name}")
            ax.annotate(name, (0.995, lim), xycoords=("axes fraction", "data"), fontsize=7, color="#804000",
                        ha="right", va="bottom")
        for i, (t, label) in enumerate(marks):
            ax.axvline(t - ref, color="#b00000", linewidth=0.9, linestyle="--", gid=f"mark-{i}")
            ax.annotate(label, (t - ref, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color="#b00000",
                        rotation=90, va="top", ha="right")
        ax.set_title(title, loc="left")
        ax.set_xlabel("s from the first-out")
        ax.set_ylabel(units)
        ax.grid(True, color="#dddddd", linewidth=0.5)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _svg_clean(buf.getvalue())


def build_report(
    entries: Sequence[Entry],
    historian: Historian | None,
    t0: float,
    t1: float,
    *,
    title: str = "",
    site: str = "",
    max_signals: int = 12,
    max_points: int = 1500,
    units: dict[tuple[str, str], str] | None = None,
) -> Report:
    events = [e.event for e in entries if t0 <= e.event.t_wall <= t1]
    firsts = [ev for ev in events if ev.kind is EventKind.FIRST_OUT]
    ref = firsts[0].t_wall if firsts else t0
    units = dict(units or {})
    for ev in events:
        if ev.kind is EventKind.LIMIT_CROSSING and ev.payload.get("units") is not None:
            units.setdefault((ev.station, str(ev.payload.get("tag"))), str(ev.payload["units"]))

    # -- first-out --------------------------------------------------------------------------
    annunciations = [ev for ev in events if ev.kind is EventKind.ALARM and is_annunciation(ev)]
    fo_alarm: dict[str, Event] = {}
    for ev in annunciations:
        groups = ev.payload.get("first_out")
        for g in [groups] if isinstance(groups, str) else (groups or []):
            fo_alarm.setdefault(str(g), ev)
    first_alarm_ev: Event | None = None
    for f in firsts:
        found = fo_alarm.get(str(f.payload.get("trip_group")))
        if found is not None:
            first_alarm_ev = found
            break
    if first_alarm_ev is None and fo_alarm:
        first_alarm_ev = min(fo_alarm.values(), key=lambda e: e.t_wall)
    if first_alarm_ev is None:
        tagged = [ev for ev in annunciations if ev.payload.get("tag")]
        first_alarm_ev = tagged[0] if tagged else (annunciations[0] if annunciations else None)
    first_alarm = str(first_alarm_ev.payload["id"]) if first_alarm_ev else ""
    first_detector = str(first_alarm_ev.payload.get("tag", "")) if first_alarm_ev else ""

    fo = _Table("first-out", "First-out", ["time", "T", "trip group", "first cause", "first member", "first alarm of the group"])
    for f in firsts:
        p = f.payload
        ga = fo_alarm.get(str(p.get("trip_group")))
        fa = f"{ga.payload['id']} ({_fmt(ga.payload.get('value'))}) at {_rel(ga.t_wall, ref)}" if ga else ""
        fo.add([_iso(f.t_wall), _rel(f.t_wall, ref), p.get("trip_group"), p.get("interlock"), p.get("first_member"), fa],
               "trip")
    for g, ga in fo_alarm.items():
        if not any(str(f.payload.get("trip_group")) == g for f in firsts):
            fo.add([_iso(ga.t_wall), _rel(ga.t_wall, ref), g, "(no trip)", "", f"{ga.payload['id']}"])

    # -- the sections ---------------------------------------------------------------------------
    timeline = _Table("timeline", "Timeline", ["time", "T", "station", "what", "detail", "who"])
    trips = _Table("trips", "Trips", ["time", "T", "station", "interlock", "event", "detail", "who"])
    alarms = _Table("alarms", "Alarms", ["time", "T", "alarm", "priority", "state", "from", "value", "message", "who"])
    procs = _Table("procedures", "Procedure steps", ["time", "T", "run", "from", "to", "trigger", "step", "who"])
    cmds = _Table("commands", "Commands and their verification",
                  ["time", "T", "station", "command", "by", "expected feedback", "result"])
    ops = _Table("operator-actions", "Operator actions", ["time", "T", "who", "from", "action", "outcome"])

    # An acknowledgement through the engine is journaled twice (the request, and the alarm's change):
    # the operator-actions list shows the request, which carries the address.
    acks = {(ev.user, str(ev.payload.get("tag")), ev.t_plant) for ev in events
            if ev.kind is EventKind.OPERATOR_ACTION and ev.payload.get("action") == "ack"}
    outcome: dict[int, Event] = {}
    issued: dict[int, Event] = {}
    for ev in events:
        if ev.kind in (EventKind.COMMAND_VERIFIED, EventKind.COMMAND_FAILED) and "id" in ev.payload:
            cid = int(ev.payload["id"])
            if cid in issued:
                outcome[id(issued[cid])] = ev
        elif ev.kind is EventKind.COMMAND and "id" in ev.payload:
            issued[int(ev.payload["id"])] = ev

    for ev in events:
        p = ev.payload
        t, rel = _iso(ev.t_wall), _rel(ev.t_wall, ref)
        k = ev.kind
        if k in (EventKind.TRIP, EventKind.TRIP_RESET, EventKind.FIRST_OUT):
            detail = p.get("description") or (f"first member {p.get('first_member')}" if p.get("first_member") else "")
            if k is EventKind.TRIP:
                detail = f"{p.get('description', '')}; {p.get('architecture', '')} votes {p.get('votes')}; " \
                         f"first member {p.get('first_member')}"
            trips.add([t, rel, ev.station, p.get("interlock"), k.value, detail, ev.user], "trip" if k is EventKind.TRIP else "")
            timeline.add([t, rel, ev.station, k.value, f"{p.get('interlock')}: {detail}", ev.user],
                         "trip" if k is not EventKind.TRIP_RESET else "")
        elif k is EventKind.ALARM:
            prio = int(p.get("priority", 4))
            alarms.add([t, rel, p.get("id"), prio, p.get("state"), p.get("from"), p.get("value"), p.get("message"),
                        ev.user], f"p{prio}" if p.get("state") == AlarmState.UNACK.value else "")
            if is_annunciation(ev):
                timeline.add([t, rel, ev.station, "ALARM", f"{p.get('id')}: {p.get('message')}", ""], f"p{prio}")
            if ev.user and not (p.get("acked") and (ev.user, str(p.get("id")), ev.t_plant) in acks):
                what = ("reset" if p.get("reset") else "acknowledged" if p.get("acked") else
                        f"{p.get('state')}" + (f" ({p.get('reason')})" if p.get("reason") else ""))
                ops.add([t, rel, ev.user, ev.address, f"alarm {p.get('id')}", what])
                timeline.add([t, rel, ev.station, "OPERATOR", f"alarm {p.get('id')}: {what}", ev.user])
        elif k is EventKind.PROCEDURE_TRANSITION:
            procs.add([t, rel, p.get("run"), p.get("from"), p.get("to"), p.get("trigger"), p.get("step_text"), ev.user])
            timeline.add([t, rel, ev.station, "PROCEDURE",
                          f"{p.get('run')}: {p.get('from')} -> {p.get('to')} ({p.get('trigger')})", ev.user])
        elif k is EventKind.TASK:
            procs.add([t, rel, ev.source, "", "", "task", _fmt(p), ev.user])
            if ev.user:
                ops.add([t, rel, ev.user, ev.address, f"task of {ev.source}", _fmt(p)])
        elif k is EventKind.COMMAND:
            v = p.get("verify")
            expect = f"{v.get('tag')} = {v.get('expect')} by T{v.get('deadline', 0) - ev.t_plant:+.1f} s" \
                if isinstance(v, dict) else "(none declared)"
            done = outcome.get(id(ev))
            if done is None:
                result, cls = ("pending at the end of the window" if isinstance(v, dict) else ""), ""
            elif done.kind is EventKind.COMMAND_VERIFIED:
                result, cls = f"verified after {done.payload.get('after_s')} s", ""
            else:
                result, cls = f"FAILED: {done.payload.get('why')}", "failed"
            by = ev.source + (f" ({ev.user})" if ev.user else "")
            cmds.add([t, rel, ev.station, f"{p.get('tag')} := {_fmt(p.get('value'))}", by, expect, result], cls)
            timeline.add([t, rel, ev.station, "COMMAND", f"{p.get('tag')} := {_fmt(p.get('value'))} -> {result}",
                          ev.user or ev.source], cls)
        elif k is EventKind.COMMAND_FAILED:
            timeline.add([t, rel, ev.station, "COMMAND FAILED", f"{p.get('tag')}: {p.get('why')}", ev.source], "failed")
        elif k in (EventKind.OPERATOR_ACTION, EventKind.BYPASS_ON, EventKind.BYPASS_OFF, EventKind.OVERRIDE_ON,
                   EventKind.OVERRIDE_OFF, EventKind.FORCE):
            if k is EventKind.OPERATOR_ACTION:
                what = " ".join(str(x) for x in (p.get("action"), p.get("interlock") or "", p.get("tag") or "",
                                                 _fmt(p.get("value")) if p.get("value") is not None else "") if x)
                res = ("accepted" if p.get("accepted") else "REFUSED") + (f": {p.get('message')}" if p.get("message") else "")
                if p.get("confirmed_by"):
                    res += f" (confirmed by {p['confirmed_by']})"
                ops.add([t, rel, ev.user, ev.address, what, res], "" if p.get("accepted") else "refused")
                timeline.add([t, rel, ev.station, "OPERATOR", f"{what}: {res}", ev.user],
                             "" if p.get("accepted") else "refused")
            else:
                what = f"{k.value} {p.get('interlock', '')} {p.get('tag') or p.get('mode') or ''}".strip()
                res = str(p.get("reason") or p.get("how") or "")
                ops.add([t, rel, ev.user or "(automatic)", ev.address, what, res])
                timeline.add([t, rel, ev.station, k.value, f"{what} {res}".strip(), ev.user])
        elif k in (EventKind.LINK_DOWN, EventKind.LINK_UP):
            timeline.add([t, rel, ev.station, k.value, _fmt(p.get("detail")), ""])

    # -- trends ----------------------------------------------------------------------------------
    svgs: dict[str, str] = {}
    figures: list[tuple[str, str, str]] = []  # (file name, caption, svg)
    trend_note = ""
    signals = _signals_involved(events, max_signals)
    limits: dict[tuple[str, str], dict[str, float]] = {}
    for ev in events:
        p = ev.payload
        if ev.kind is EventKind.ALARM and p.get("tag") and p.get("limit") is not None and p.get("kind"):
            limits.setdefault((ev.station, str(p["tag"])), {})[str(p["kind"])] = float(p["limit"])
    marks = [(ev.t_wall, f"TRIP {ev.payload.get('interlock')}") for ev in events if ev.kind is EventKind.TRIP]
    if first_alarm_ev is not None:
        marks.append((first_alarm_ev.t_wall, f"first alarm {first_detector}".strip()))
    if historian is None:
        trend_note = "No historian was available: no trends."
    else:
        for st, tag in signals:
            pts = historian.query(st, tag, t0, t1, max_points)
            if not pts:
                continue
            name = f"{st}_{tag}.svg".replace("/", "_").replace(":", "_")
            cap = f"{tag} ({st}), {len(pts)} samples" + (", min/max decimated" if len(pts) >= max_points - 1 else "")
            svg = _plot(pts, f"{tag} ({st})", units.get((st, tag), ""), ref, limits.get((st, tag), {}), marks)
            svgs[name] = svg
            figures.append((name, cap, svg))
        if not figures:
            trend_note = "The historian holds no samples of the signals involved in this window."

    # -- evidence ----------------------------------------------------------------------------------
    in_window = [e for e in entries if t0 <= e.event.t_wall <= t1]
    anchor = f"{in_window[-1].seq}:{in_window[-1].hash}" if in_window and in_window[-1].hash else ""
    evidence = (f"Journal records {in_window[0].seq} to {in_window[-1].seq} ({len(in_window)} records)."
                if in_window else "No journal records in this window.")

    title = title or (f"Incident {firsts[0].payload.get('trip_group')} {_iso(ref)}" if firsts
                      else f"Events {_iso(t0)} to {_iso(t1)}")
    due = _iso(ref + DUE_S)
    fa_line = (f"First alarm: {first_alarm} ({first_detector}) at {_iso(first_alarm_ev.t_wall)} "
               f"({_rel(first_alarm_ev.t_wall, ref)}), value {_fmt(first_alarm_ev.payload.get('value'))}"
               if first_alarm_ev is not None else "First alarm: none in this window")
    fo_line = (f"First-out trip: {firsts[0].payload.get('interlock')} (group {firsts[0].payload.get('trip_group')}, "
               f"first member {firsts[0].payload.get('first_member')}) at {_iso(firsts[0].t_wall)}"
               if firsts else "First-out trip: none in this window")
    sections = [fo, timeline, trips, alarms, procs, cmds, ops]

    # -- HTML ----------------------------------------------------------------------------------
    h: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                    f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
                    f"<h1>{html.escape(title)}</h1>",
                    f'<p>Site: {html.escape(site or "-")}. Window {html.escape(_iso(t0))} to {html.escape(_iso(t1))}; '
                    f"times are UTC, T is relative to the first-out ({html.escape(_iso(ref))}).</p>",
                    '<section class="key" id="summary">',
                    f'<p id="first-alarm" data-alarm="{html.escape(first_alarm)}" data-tag="{html.escape(first_detector)}">'
                    f"{html.escape(fa_line)}</p>",
                    f'<p id="first-trip">{html.escape(fo_line)}</p></section>']
    for sec in sections:
        h.append(sec.html())
    h.append('<section id="trends"><h2>Trends</h2>')
    if trend_note:
        h.append(f'<p class="none">{html.escape(trend_note)}</p>')
    for name, cap, svg in figures:
        h.append(f'<figure data-file="{html.escape(name)}">{svg}<figcaption>{html.escape(cap)}</figcaption></figure>')
    h.append("</section>")
    for sid, head in (("cause", "Cause"), ("preventive-measures", "Preventive measures")):
        h.append(f'<section id="{sid}"><h2>{head}</h2><p>To be completed by the incident owner by '
                 f"{html.escape(due)} (within two days of the incident).</p><div class=\"todo\"></div></section>")
    h.append(f'<section id="evidence"><h2>Evidence</h2><p>{html.escape(evidence)}</p>')
    if anchor:
        h.append(f"<p>Check that nothing was rewritten since: <code>plantctl journal verify JOURNAL --anchor "
                 f"{html.escape(anchor)}</code></p>")
    h.append("</section></body></html>")

    # -- Markdown --------------------------------------------------------------------------------
    md: list[str] = [f"# {title}", "", f"Site: {site or '-'}. Window {_iso(t0)} to {_iso(t1)}; times are UTC, "
                     f"T is relative to the first-out ({_iso(ref)}).", "", f"- {fa_line}", f"- {fo_line}", ""]
    for sec in sections:
        md.append(sec.markdown())
    md += ["## Trends", ""]
    if trend_note:
        md += [trend_note, ""]
    md += [f"![{cap}](trends/{name})\n" for name, cap, _ in figures]
    for head in ("Cause", "Preventive measures"):
        md += [f"## {head}", "", f"To be completed by the incident owner by {due} (within two days of the incident).",
               "", "(empty)", ""]
    md += ["## Evidence", "", evidence, ""]
    if anchor:
        md += [f"Check that nothing was rewritten since: `plantctl journal verify JOURNAL --anchor {anchor}`", ""]
    return Report(title, t0, t1, ref, "\n".join(h), "\n".join(md), svgs, first_alarm, first_detector)


def write_report(report: Report, out_dir: str | Path, stem: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.html`` (self-contained) and ``<stem>.md`` with its ``trends/`` SVG files."""
    out = Path(out_dir)
    stem = stem or "incident-" + datetime.fromtimestamp(report.reference, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = out / stem
    (folder / "trends").mkdir(parents=True, exist_ok=True)
    html_path = folder / f"{stem}.html"
    md_path = folder / f"{stem}.md"
    html_path.write_text(report.html, encoding="utf-8")
    md_path.write_text(report.markdown, encoding="utf-8")
    for name, svg in report.svgs.items():
        (folder / "trends" / name).write_text(svg, encoding="utf-8")
    return html_path, md_path
