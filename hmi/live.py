"""The live picture: state built from the controller, diffs pushed over WebSockets.

Theory of operation
-------------------
``LiveView`` reads the controller-like object (a ``plantctl.runtime.Controller``
or the test adapter around a ``VirtualRig``) and builds one JSON-able state:
values with quality and sample time, PLC links with the time they went down,
alarms (with the HMI's shelving on top), interlocks with bypasses and first-out,
procedure runs with their current step and open tasks, commands awaiting their
feedback, pending two-person confirmations and the controller's own health.

``Hub`` owns one task that, at most every ``min_interval`` and at least every
``max_interval`` (100-250 ms; journaled events wake it early), builds the state,
diffs it against what it sent last and broadcasts the diff, serialised once, to
every client. A value is in the diff when its value, quality or reason changed,
or its sample time moved by a second (clients extrapolate the age in between).
A client that joins gets the last broadcast state whole, so the next diff
applies to it exactly. Each client has a bounded queue and its own sender task:
a slow client is disconnected (it reconnects and gets a full snapshot) rather
than allowed to delay the others.

The same ticks feed ``RingHistory``, the in-memory trend store behind
``GET /api/trends``: a small interface (``query(keys, start, end)``) that the
historian (plantctl.historian) replaces when it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from plantctl.alarms import Priority
from plantctl.journal import Event, EventKind
from plantctl.tags import Quality, Reading

from .security import ClockLike, PendingStore

log = logging.getLogger("hmi.live")

MANUAL_THRESHOLDS_S = (1800.0, 6 * 3600.0, 24 * 3600.0)  # procedures.md C: fallback to manual operation


class ControllerLike(Protocol):
    """What the HMI needs of a controller (plantctl.runtime.Controller has all of it)."""

    engine: Any
    table: Any
    clock: Any
    subscribers: list[Callable[[list[Event]], None]]

    def key(self, station: str, tag: str) -> str: ...


def _num(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f or f in (float("inf"), float("-inf")):
        return None
    return float(f"{f:.5g}")


# -- trend store ---------------------------------------------------------------------------------


class HistoryQuery(Protocol):
    def query(self, keys: Iterable[str], start_wall: float, end_wall: float,
              max_points: int = 2000) -> dict[str, list[tuple[float, float | None]]]: ...


class RingHistory:
    """Recent values per key in fixed-size numpy rings (one point per ``resolution_s``)."""

    def __init__(self, capacity: int = 7200, resolution_s: float = 0.5) -> None:
        self.capacity = capacity
        self.resolution_s = resolution_s
        self._t: dict[str, np.ndarray] = {}
        self._v: dict[str, np.ndarray] = {}
        self._n: dict[str, int] = {}  # points written so far (head = n % capacity)

    def append(self, key: str, wall: float, value: float | None) -> None:
        n = self._n.get(key, 0)
        if key not in self._t:
            self._t[key] = np.full(self.capacity, np.nan)
            self._v[key] = np.full(self.capacity, np.nan)
        t = self._t[key]
        if n and wall - t[(n - 1) % self.capacity] < self.resolution_s:
            return
        i = n % self.capacity
        t[i] = wall
        self._v[key][i] = np.nan if value is None else value
        self._n[key] = n + 1

    def query(self, keys: Iterable[str], start_wall: float, end_wall: float,
              max_points: int = 2000) -> dict[str, list[tuple[float, float | None]]]:
        out: dict[str, list[tuple[float, float | None]]] = {}
        for key in keys:
            n = self._n.get(key, 0)
            if n == 0:
                out[key] = []
                continue
            t, v = self._t[key], self._v[key]
            if n >= self.capacity:
                order = np.r_[np.arange(n % self.capacity, self.capacity), np.arange(0, n % self.capacity)]
                t, v = t[order], v[order]
            else:
                t, v = t[:n], v[:n]
            sel = (t >= start_wall) & (t <= end_wall)
            tt, vv = t[sel], v[sel]
            step = max(1, int(np.ceil(len(tt) / max_points)))
            tt, vv = tt[::step], vv[::step]
            out[key] = [(float(a), None if b != b else float(b)) for a, b in zip(tt, vv, strict=True)]
        return out


class HistorianQuery:
    """``plantctl.historian`` behind the trend endpoint: ``create_app(..., history=HistorianQuery(h))``."""

    def __init__(self, historian: Any) -> None:
        self.historian = historian

    def query(self, keys: Iterable[str], start_wall: float, end_wall: float,
              max_points: int = 2000) -> dict[str, list[tuple[float, float | None]]]:
        out: dict[str, list[tuple[float, float | None]]] = {}
        for key in keys:
            station, _, tag = key.partition(":")
            pts = self.historian.query(station, tag, start_wall, end_wall, max_points)
            out[key] = [(float(p.t_wall), float(p.value) if int(p.quality) == int(Quality.GOOD) else None)
                        for p in pts]
        return out


# -- alarm shelving (ISA-18.2 "shelved": hidden for a while, with a reason, always expiring) ---------


@dataclass
class Shelf:
    alarm: str
    user: str
    reason: str
    since_wall: float
    until: float  # HMI clock
    until_wall: float


class AlarmShelf:
    def __init__(self, clock: ClockLike) -> None:
        self.clock = clock
        self.items: dict[str, Shelf] = {}

    def shelve(self, alarm: str, user: str, reason: str, duration_s: float) -> Shelf:
        now, wall = self.clock.now(), self.clock.wall()
        s = Shelf(alarm, user, reason, wall, now + duration_s, wall + duration_s)
        self.items[alarm] = s
        return s

    def unshelve(self, alarm: str) -> Shelf | None:
        return self.items.pop(alarm, None)

    def expire(self, present: set[str]) -> list[tuple[Shelf, str]]:
        """Drop shelves that ran out (or whose alarm is gone); returns (shelf, why)."""
        now = self.clock.now()
        gone: list[tuple[Shelf, str]] = []
        for aid, s in list(self.items.items()):
            if now >= s.until:
                gone.append((s, "expired"))
            elif aid not in present:
                gone.append((s, "alarm cleared"))
            else:
                continue
            del self.items[aid]
        return gone


# -- the state ---------------------------------------------------------------------------------


class LiveView:
    def __init__(self, ctrl: ControllerLike, pending: PendingStore, shelf: AlarmShelf, hmi_clock: ClockLike,
                 *, stopped_after_s: float = 2.0) -> None:
        self.ctrl = ctrl
        self.pending = pending
        self.shelf = shelf
        self.hmi_clock = hmi_clock
        self.stopped_after_s = stopped_after_s
        self.iolists = dict(ctrl.engine.config.iolists)
        self.keys: list[tuple[str, str, str]] = []  # (hmi key, controller key, kind)
        for st, iol in self.iolists.items():
            for sig in iol.signals:
                self.keys.append((f"{st}:{sig.tag}", ctrl.key(st, sig.tag), sig.kind.value))
        self.link_since: dict[str, tuple[float, float]] = {}  # station -> (plant t, wall) of the last change
        self._link_seen: dict[str, bool] = {}
        self._scans_seen = -1
        self._scans_changed_at = hmi_clock.now()
        self.started_wall = hmi_clock.wall()

    # events from the controller (after the journal): exact link times
    def on_events(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind in (EventKind.LINK_DOWN, EventKind.LINK_UP) and ev.station:
                self.link_since[ev.station] = (ev.t_plant, ev.t_wall)
                self._link_seen[ev.station] = ev.kind is EventKind.LINK_UP

    def now(self) -> float:
        return float(self.ctrl.clock.now())

    def wall(self) -> float:
        return float(self.ctrl.clock.wall())

    def values(self, now: float) -> dict[str, list[Any]]:
        snap: Mapping[str, Reading] = self.ctrl.table.snapshot(now)
        out: dict[str, list[Any]] = {}
        for hkey, ckey, _kind in self.keys:
            r = snap.get(ckey)
            if r is None:
                continue
            item: list[Any] = [_num(r.value), int(r.quality), round(float(r.t), 2)]
            if r.quality is not Quality.GOOD:
                item.append(str(r.reason.value) if hasattr(r.reason, "value") else str(r.reason))
            out[hkey] = item
        return out

    def links(self, now: float, wall: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        link_up: dict[str, bool] = dict(getattr(self.ctrl.engine, "link_up", {}))
        for st in self.iolists:
            up = bool(link_up.get(st, True))
            if self._link_seen.get(st) != up:
                # a change seen here before its event (or the first look): count from now;
                # the LINK_DOWN/LINK_UP event, when it comes, gives the exact time
                self._link_seen[st] = up
                self.link_since[st] = (now, wall)
            since_t, since_wall = self.link_since[st]
            entry: dict[str, Any] = {"up": up, "since": round(since_t, 2), "since_wall": since_wall}
            if not up:
                down_s = max(0.0, now - since_t)
                nxt = next((th for th in MANUAL_THRESHOLDS_S if down_s < th), None)
                passed = sum(1 for th in MANUAL_THRESHOLDS_S if down_s >= th)
                entry.update({"down_s": round(down_s, 1), "next_threshold_s": nxt, "thresholds_passed": passed})
            out[st] = entry
        return out

    def alarms(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        board = self.ctrl.engine.alarms
        present = {a.id for a in board.active()}
        for s, why in self.shelf.expire(present):
            self._note_shelf_end(s, why)
        active: list[dict[str, Any]] = []
        shelved: list[dict[str, Any]] = []
        for a in board.active():
            item = {
                "id": a.id,
                "station": a.station,
                "message": a.message,
                "priority": int(a.priority),
                "priority_name": Priority(a.priority).name,
                "state": a.state.value,
                "raised_at": round(float(a.raised_at), 2),
                "source": a.source,
                "acked_by": a.acked_by,
            }
            sh = self.shelf.items.get(a.id)
            if sh is not None:
                item["shelf"] = {"user": sh.user, "reason": sh.reason, "until_wall": sh.until_wall}
                shelved.append(item)
            else:
                active.append(item)
        return active, shelved

    def _note_shelf_end(self, s: Shelf, why: str) -> None:
        note = getattr(self.ctrl.engine, "note", None)
        if note is not None:
            note(Event(EventKind.OPERATOR_ACTION, self.now(), self.wall(), "", "hmi", "", "",
                       {"action": "unshelve", "alarm": s.alarm, "how": why, "shelved_by": s.user}))

    def interlocks(self) -> dict[str, Any]:
        eng = self.ctrl.engine
        items = eng.status()
        for item in items:
            st = eng.interlocks.get(item["id"])
            if st is not None:
                item["tripped_at"] = st.tripped_at
                item["trip_group"] = st.spec.trip_group or st.spec.id
                item["members"] = [c.tag for c in st.spec.members]
                if st.bypass is not None:
                    item["bypass"] = {**(item.get("bypass") or {}), "reason": st.bypass.reason, "since": st.bypass.since}
                if st.override is not None:
                    item["override"] = {**(item.get("override") or {}), "user": st.override.user,
                                        "reason": st.override.reason}
        first_out = [
            {"group": g, "interlock": i,
             "first_member": eng.interlocks[i].first_member if i in eng.interlocks else None,
             "tripped_at": eng.interlocks[i].tripped_at if i in eng.interlocks else None}
            for g, i in sorted(eng.first_out.items())
        ]
        return {"items": items, "first_out": first_out}

    def procedures(self) -> list[dict[str, Any]]:
        mgr = getattr(self.ctrl, "procedures", None)
        if mgr is None:
            return []
        runs = list(mgr.runs.values())
        active = [r for r in runs if not r.finished]
        done = [r for r in runs if r.finished][-10:]
        out: list[dict[str, Any]] = []
        for r in active + done:
            s = r.summary()
            s["finished"] = r.finished
            s["started_at"] = r.started_at
            s["started_wall"] = r.started_wall
            s["entered_at"] = r.entered_at
            s["reason"] = r.reason
            s["history"] = [{"t": t, "from": a, "to": b, "trigger": trig} for t, a, b, trig in r.history[-30:]]
            s["vars"] = {k: (v if isinstance(v, str | int | float | bool) or v is None else str(v))
                         for k, v in s.get("vars", {}).items()}
            out.append(s)
        return out

    def commands(self) -> list[dict[str, Any]]:
        pend = getattr(self.ctrl.engine, "pending", {}) or {}
        return [
            {"id": c.id, "station": c.station, "tag": c.tag, "value": _num(c.value), "source": c.source, "user": c.user,
             "issued_at": c.issued_at, "deadline": c.verify.deadline if c.verify else None,
             "feedback": c.verify.tag if c.verify else None}
            for c in pend.values()
        ]

    def controller(self, now: float) -> dict[str, Any]:
        stats = getattr(self.ctrl, "stats", None)
        scans = int(getattr(stats, "scans", -1)) if stats is not None else -1
        hnow = self.hmi_clock.now()
        if scans != self._scans_seen:
            self._scans_seen = scans
            self._scans_changed_at = hnow
        running = scans < 0 or (hnow - self._scans_changed_at) < self.stopped_after_s
        out: dict[str, Any] = {"running": running, "scans": scans}
        if stats is not None:
            out["overruns"] = int(getattr(stats, "overruns", 0))
            out["scan_errors"] = int(getattr(stats, "scan_errors", 0))
            pct = getattr(stats, "percentile", None)
            out["scan_p99_ms"] = round(float(pct(99)), 2) if callable(pct) else None
        if not running:
            out["stopped_for_s"] = round(hnow - self._scans_changed_at, 1)
        return out

    def state(self) -> dict[str, Any]:
        now, wall = self.now(), self.wall()
        active, shelved = self.alarms()
        return {
            "now": round(now, 3),
            "wall": round(wall, 3),
            "hmi_wall": round(self.hmi_clock.wall(), 3),  # the clock of confirmations and shelving
            "values": self.values(now),
            "links": self.links(now, wall),
            "alarms": active,
            "shelved": shelved,
            "interlocks": self.interlocks(),
            "procedures": self.procedures(),
            "commands": self.commands(),
            "pending": self.pending.public(),
            "controller": self.controller(now),
        }


# -- the hub ------------------------------------------------------------------------------------


def diff_state(old: dict[str, Any] | None, new: dict[str, Any], age_step_s: float = 1.0) -> dict[str, Any]:
    """What changed from ``old`` to ``new``; ``values`` by key, other sections whole."""
    if old is None:
        return dict(new)
    out: dict[str, Any] = {"now": new["now"], "wall": new["wall"], "hmi_wall": new.get("hmi_wall")}
    ov, nv = old.get("values", {}), new["values"]
    changed: dict[str, Any] = {}
    for k, item in nv.items():
        prev = ov.get(k)
        if prev is None or prev[0] != item[0] or prev[1] != item[1] or prev[3:] != item[3:] \
                or abs(item[2] - prev[2]) >= age_step_s:
            changed[k] = item
    if changed:
        out["values"] = changed
    for section, val in new.items():
        if section in ("now", "wall", "hmi_wall", "values"):
            continue
        if old.get(section) != val:
            out[section] = val
    return out


class Client:
    def __init__(self, send: Callable[[str], Any], close: Callable[[int, str], Any], token: str, user: str,
                 queue_max: int = 50) -> None:
        self.send = send
        self.close = close
        self.token = token
        self.user = user
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_max)
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    async def pump(self) -> None:
        while True:
            msg = await self.queue.get()
            if msg is None:
                return
            await self.send(msg)


class Hub:
    def __init__(self, view: LiveView, history: RingHistory | None, *, min_interval: float = 0.1,
                 max_interval: float = 0.25, session_valid: Callable[[str], bool] | None = None) -> None:
        self.view = view
        self.history = history
        self.min_interval = min(max(min_interval, 0.05), 0.25)
        self.max_interval = min(max(max_interval, self.min_interval), 1.0)
        self.session_valid = session_valid
        self.clients: set[Client] = set()
        self.last: dict[str, Any] | None = None
        self._sent: dict[str, Any] | None = None
        self.seq = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hist_keys = [(h, k) for h, k, kind in view.keys if kind != "command_out"]

    def wake(self) -> None:
        self._wake.set()

    def on_events(self, events: list[Event]) -> None:
        self.view.on_events(events)
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hmi-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for c in list(self.clients):
            await self.detach(c, 1001, "server stopping")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_push = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.max_interval)
            self._wake.clear()
            gap = loop.time() - last_push
            if gap < self.min_interval:
                await asyncio.sleep(self.min_interval - gap)
            last_push = loop.time()
            try:
                self.tick()
            except Exception:  # the HMI must keep serving whatever one tick did  # noqa: BLE001
                log.exception("hub tick failed")
            await self._check_sessions()

    def tick(self) -> dict[str, Any]:
        state = self.view.state()
        # values are diffed against what the clients hold (the last *sent* item of each key),
        # so a sample time creeping forward is sent once it moved by a second
        d = diff_state(self._sent, state)
        if self._sent is None:
            self._sent = {**state, "values": dict(state["values"])}
        else:
            self._sent.update({k: v for k, v in state.items() if k != "values"})
            self._sent["values"].update(d.get("values", {}))
        self.last = state
        self.seq += 1
        self._record(state)
        if self.clients:
            msg = json.dumps({"type": "diff", "seq": self.seq, **d}, separators=(",", ":"))
            for c in list(self.clients):
                self._offer(c, msg)
        return d

    def _record(self, state: dict[str, Any]) -> None:
        if self.history is None:
            return
        wall = state["wall"]
        vals = state["values"]
        for hkey, _ in self._hist_keys:
            item = vals.get(hkey)
            if item is None:
                continue
            v = item[0]
            good = item[1] == int(Quality.GOOD)
            num = float(v) if isinstance(v, int | float) and good else None
            self.history.append(hkey, wall, num)

    def _offer(self, c: Client, msg: str) -> None:
        try:
            c.queue.put_nowait(msg)
        except asyncio.QueueFull:
            log.warning("client %s too slow; disconnecting it", c.user)
            asyncio.get_running_loop().create_task(self.detach(c, 1013, "too slow"))

    def snapshot_message(self) -> str:
        if self.last is None:
            self.last = self.view.state()
        return json.dumps({"type": "snapshot", "seq": self.seq, **self.last}, separators=(",", ":"))

    async def attach(self, c: Client) -> None:
        c.queue.put_nowait(self.snapshot_message())
        self.clients.add(c)
        c.task = asyncio.create_task(c.pump(), name=f"ws {c.user}")

    async def detach(self, c: Client, code: int = 1000, reason: str = "") -> None:
        if c.closed:
            return
        c.closed = True
        self.clients.discard(c)
        if c.task is not None:
            c.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await c.task
        with contextlib.suppress(Exception):
            await c.close(code, reason)

    async def _check_sessions(self) -> None:
        if self.session_valid is None:
            return
        for c in list(self.clients):
            if not self.session_valid(c.token):
                await self.detach(c, 4401, "session ended")
