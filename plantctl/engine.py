"""The scan engine: a sans-I/O function of snapshots, requests and time.

Theory of operation
-------------------
``Engine.scan(snapshot, now, wall)`` is the whole of automatic protection for
one scan. It never touches a socket, a file or a clock: the runtime (or a test,
or the scenario runner) hands it the tag snapshot and the time, and gets back
the commands to write and the events to journal, in that order of urgency:

1. interlocks: causes voted, delays applied, trips latched; a new trip emits
   its effect commands (and procedure starts) *first*, so the caller can put
   them on the wire before anything else happens;
2. command verification: each command issued with feedback declared in the
   I/O list is checked against its deadline; a miss raises its own alarm and a
   COMMAND_FAILED event (the safe outcome is named: the alarm, and the
   procedure or operator that owns the next move);
3. limit crossings of the I/O list's alarm limits, bypass and override expiry.

``scan(..., trips_only=True)`` is step 1 alone: the runtime runs it the moment a
fast-class signal changes, between two full scans, so a trip does not wait for
the scan period; everything else keeps the period.

Ten thousand signals a scan: the limit crossings and the alarm board's limit,
digital and BAD checks run on arrays (``tags.Columns``, taken straight from the
tag table's snapshot), one numpy expression per check for the whole site rather
than a Python loop per signal; the arithmetic is the loop's, so the outcome is
the same signal for signal.

Operator requests (reset, bypass, override, force, manual command) enter
through ``request()``, which checks the user's role on the server side and
the two-person rule for critical actions, and answers accepted or refused;
both outcomes are journaled with the user and address.

Given the same snapshots, requests and times the engine produces the same
outputs, which is what makes virtual-time scenarios, replay and property
tests possible.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .alarms import AlarmBoard, Priority, StationViews, snapshot_view
from .interlocks import Bypass, Interlock, InterlockState, Override, TripState
from .iolist import IOList, Kind, Signal
from .journal import Event, EventKind
from .tags import BOOL, INT, MISSING, Columns, Quality, Reading, columns_of

log = logging.getLogger(__name__)

Value = float | int | bool


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ENGINEER = "engineer"
    ADMIN = "admin"


class Action(StrEnum):
    COMMAND = "command"
    ACK = "ack"
    RESET = "reset"
    BYPASS = "bypass"
    OVERRIDE = "override"
    FORCE = "force"


DEFAULT_PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.COMMAND: frozenset({Role.OPERATOR, Role.SUPERVISOR}),
    Action.ACK: frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ENGINEER}),
    Action.RESET: frozenset({Role.SUPERVISOR, Role.OPERATOR}),
    Action.BYPASS: frozenset({Role.SUPERVISOR, Role.ENGINEER}),
    Action.OVERRIDE: frozenset({Role.SUPERVISOR, Role.ENGINEER}),
    Action.FORCE: frozenset({Role.ENGINEER}),
}
# Critical actions need a second, different person with a permitted role.
CRITICAL: frozenset[Action] = frozenset({Action.RESET, Action.BYPASS, Action.FORCE})


@dataclass(frozen=True)
class Actor:
    user: str
    roles: frozenset[Role]
    address: str = ""


@dataclass(frozen=True)
class Verification:
    tag: str
    expect: Value
    deadline: float


@dataclass
class Command:
    id: int
    station: str
    tag: str
    value: Value
    source: str
    issued_at: float
    verify: Verification | None = None
    user: str = ""


@dataclass(frozen=True)
class Request:
    """An operator's request to the engine."""

    action: Action
    actor: Actor
    interlock: str = ""
    station: str = ""
    tag: str = ""
    value: Value | str | None = None
    reason: str = ""
    duration_s: float = 0.0
    mode: str = ""  # override: startup | force_trip | force_normal
    confirmed_by: Actor | None = None


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    message: str
    command: Command | None = None


@dataclass
class ScanResult:
    commands: list[Command] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    start_procedures: list[tuple[str, str]] = field(default_factory=list)  # (procedure id, reason)


@dataclass
class EngineConfig:
    iolists: dict[str, IOList]
    interlocks: list[Interlock]
    permissions: dict[Action, frozenset[Role]] = field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    two_person: bool = True
    bypass_max_s: float = 8 * 3600.0
    override_max_s: float = 3600.0
    limit_deadband_frac: float = 0.01  # of span, for limit-crossing hysteresis
    alarm_settings: Mapping[str, Any] | None = None  # the site's alarms: section
    # A command without feedback whose write fails is retried this long after it was issued,
    # then failed: a write is never replayed stale after a long outage (F-X01: no replay of
    # stale commands). A command with feedback is retried until its verification deadline.
    write_retry_s: float = 5.0


_BANDS = ("LL", "L", "N", "H", "HH")


class Engine:
    # Below this many limited signals the limit crossings are checked one by one: the
    # arrays pay only past a few dozen (docs/performance.md).
    vector_min_signals = 64

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.interlocks: dict[str, InterlockState] = {i.id: InterlockState(i) for i in config.interlocks}
        self.alarms = AlarmBoard()
        self.alarms.configure(config.iolists, config.alarm_settings)
        self._stations = list(config.iolists)
        self.first_out: dict[str, str] = {}  # trip group -> interlock id that tripped first
        self.pending: dict[int, Command] = {}  # commands awaiting verification
        self.failed: dict[int, Command] = {}
        # commands without feedback whose write the PLC has not yet accepted (the runtime says
        # written / write_failed): "pending" to a procedure until then, never "verified" unseen
        self.unwritten: dict[int, Command] = {}
        self._ids = itertools.count(1)
        self._limit_band: dict[tuple[str, str], str] = {}
        self._outbox: list[Event] = []
        self._cmd_outbox: list[Command] = []
        self.link_up: dict[str, bool] = {s: False for s in config.iolists}
        # analog signals with limits, per station, for limit-crossing events
        self._limited: list[tuple[str, Signal]] = [
            (st, sig)
            for st, iol in config.iolists.items()
            for sig in iol.signals
            if sig.kind is Kind.ANALOG_IN and sig.alarms
        ]
        # the snapshot's keys in I/O-list order: the rows of the columns the checks run on
        self._keys: tuple[str, ...] = tuple(keys(self._stations, config.iolists))
        row = {k: i for i, k in enumerate(self._keys)}
        lim = self._limited
        self._lim_rows = np.array([row[self._key(st, sig.tag)] for st, sig in lim], dtype=np.intp)
        self._lim = {
            name: np.array([sig.alarms.get(name, math.nan) for _, sig in lim], dtype=np.float64)
            for name in ("LL", "L", "H", "HH")
        }
        frac = config.limit_deadband_frac
        self._lim_db = np.array([frac * (sig.range[1] - sig.range[0]) if sig.range else 0.0 for _, sig in lim])
        self._lim_band = np.full(len(lim), _BANDS.index("N"), dtype=np.int8)
        # each interlock with the snapshot keys of its members and arming conditions
        self._interlock_inputs: list[tuple[InterlockState, tuple[tuple[str, str], ...]]] = [
            (st, tuple((c.tag, self._key(st.spec.station, c.tag)) for c in (*st.spec.members, *st.spec.armed_when)))
            for st in self.interlocks.values()
        ]
        self._interlock_keys: tuple[str, ...] = tuple(dict.fromkeys(k for _, ins in self._interlock_inputs for _, k in ins))

    # -- helpers ----------------------------------------------------------------
    def signal(self, station: str, tag: str) -> Signal:
        return self.config.iolists[station].by_tag[tag]

    def _key(self, station: str, tag: str) -> str:
        return tag if len(self.config.iolists) == 1 else f"{station}:{tag}"

    def reading(self, snapshot: Mapping[str, Reading], station: str, tag: str) -> Reading | None:
        return snapshot.get(self._key(station, tag))

    def station_view(self, snapshot: Mapping[str, Reading], station: str) -> dict[str, Reading]:
        """The snapshot of one station keyed by plain tag."""
        if len(self.config.iolists) == 1:
            return dict(snapshot)
        prefix = station + ":"
        return {k[len(prefix):]: v for k, v in snapshot.items() if k.startswith(prefix)}

    def make_command(self, station: str, tag: str, value: Value, source: str, now: float, user: str = "") -> Command:
        sig = self.signal(station, tag)
        verify = None
        fb = sig.feedback
        if fb:
            if sig.is_enum and sig.states and isinstance(value, int) and not isinstance(value, bool):
                key = sig.state_name(value)
            else:
                key = str(bool(value)).lower() if sig.is_bit else str(value)
            target = fb.get(key)
            if isinstance(target, dict):
                # a direction may carry its own deadline (closing is faster than opening)
                within = float(target.get("within_s", fb["within_s"]))
                verify = Verification(str(target["tag"]), target.get("value", True), now + within)
        return Command(next(self._ids), station, tag, value, source, now, verify, user)

    def track(self, cmd: Command) -> None:
        """Verify a command issued by someone else (a procedure) against its deadline."""
        if cmd.verify is not None:
            self.pending[cmd.id] = cmd
        else:
            self.unwritten[cmd.id] = cmd

    def written(self, cmd_id: int) -> None:
        """The PLC accepted the write of this command (the runtime's report)."""
        self.unwritten.pop(cmd_id, None)

    def write_result(self, cmd: Command, error: str | None, now: float, wall: float) -> bool:
        """The runtime's report of one write attempt (``error`` None: the PLC accepted it).
        True: try the write again (the command is still wanted and not yet stale)."""
        if error is None:
            self.written(cmd.id)
            return False
        wanted = cmd.id in self.pending if cmd.verify is not None else cmd.id in self.unwritten
        if not wanted:
            return False  # verified, failed or dropped meanwhile
        deadline = cmd.verify.deadline if cmd.verify is not None else cmd.issued_at + self.config.write_retry_s
        if now < deadline:
            return True
        self.write_failed(cmd, error, now, wall)
        return False

    def write_failed(self, cmd: Command, error: str, now: float, wall: float) -> None:
        """The write could not be made before the command went stale (the runtime gave up
        retrying): the command failed. Its feedback, if it has one, can no longer come."""
        self.unwritten.pop(cmd.id, None)
        self.pending.pop(cmd.id, None)
        self.failed[cmd.id] = cmd
        self._outbox.append(Event(EventKind.COMMAND_FAILED, now, wall, cmd.station, cmd.source, cmd.user, "",
                                  {"id": cmd.id, "tag": cmd.tag, "value": cmd.value, "why": f"not written: {error}"}))
        self._outbox.extend(self.alarms.raise_(
            f"cmd:{cmd.station}:{cmd.tag}:failed",
            f"{cmd.tag} := {cmd.value} not written within {now - cmd.issued_at:.1f} s ({error})",
            Priority.HIGH, now, wall, cmd.station, cmd.source))

    def held_by_trip(self, station: str, tag: str, value: Value) -> str:
        """Why a command to ``tag`` must be refused: a latched trip owns that output."""
        for st in self.interlocks.values():
            if st.state is TripState.TRIPPED and st.spec.station == station:
                for eff in st.spec.effects:
                    if eff.command == tag and not _equal(value, eff.value):
                        return f"{tag} is held by trip {st.spec.id}; reset the trip first"
        return ""

    def _emit_command(self, cmd: Command, wall: float) -> None:
        self._cmd_outbox.append(cmd)
        self.track(cmd)
        self._outbox.append(
            Event(
                EventKind.COMMAND,
                cmd.issued_at,
                wall,
                cmd.station,
                cmd.source,
                cmd.user,
                "",
                {
                    "id": cmd.id,
                    "tag": cmd.tag,
                    "value": cmd.value,
                    "verify": None
                    if cmd.verify is None
                    else {"tag": cmd.verify.tag, "expect": cmd.verify.expect, "deadline": cmd.verify.deadline},
                },
            )
        )

    # -- the scan ---------------------------------------------------------------
    def scan(self, snapshot: Mapping[str, Reading], now: float, wall: float, *, trips_only: bool = False) -> ScanResult:
        """One scan (see the module docstring); ``trips_only``: the interlocks alone."""
        result = ScanResult()
        # 1. interlocks: the trip path first
        prefetch = getattr(snapshot, "prefetch", None)
        if prefetch is not None:
            prefetch(self._interlock_keys)  # build the members' readings in one pass over the arrays
        get = snapshot.get
        for st, inputs in self._interlock_inputs:
            spec = st.spec
            view = {}
            for tag, key in inputs:
                r = get(key)
                if r is not None:
                    view[tag] = r
            try:
                newly, bypassed_tripping = st.evaluate(view, now)
            except Exception as exc:  # noqa: BLE001  one interlock's bug must not blind the others
                self._evaluation_failed(st, exc, now, wall)
                continue
            if f"{spec.id}:fault" in self.alarms.alarms:
                self._outbox.extend(self.alarms.clear(f"{spec.id}:fault", now, wall))
            if newly:
                self._on_trip(st, now, wall, result)
            for tag in bypassed_tripping:
                self._outbox.extend(
                    self.alarms.raise_(
                        f"{spec.id}:bypassed-trip:{tag}",
                        f"{spec.id}: bypassed input {tag} is in its trip state",
                        Priority.HIGH,
                        now,
                        wall,
                        spec.station,
                        spec.id,
                    )
                )
            self._degraded_alarm(st, now, wall)
        if not trips_only:
            # 2. verification of commands against their deadlines
            self._verify(snapshot, now, wall)
            # 3. limits (sequence-of-events record), ISA-18.2 alarms, expiry
            if self._wants_columns():
                cols = columns_of(snapshot, self._keys)
                self._limits(snapshot, now, wall, cols)
                views: Mapping[str, Mapping[str, Reading]] = StationViews(snapshot, self._stations)
            else:  # a small site: signal by signal, on plain dicts
                cols = None
                self._limits(snapshot, now, wall)
                views = snapshot_view(snapshot, self._stations)
            self._outbox.extend(self.alarms.evaluate(views, now, wall, columns=cols))
            self._expire(now, wall)
        # Handed over only at the end: should a later stage raise (a bug), the trip's commands
        # and events stay in the outboxes, where the runtime takes them (take_commands,
        # take_events) and sends them all the same.
        result.commands.extend(self._cmd_outbox)
        self._cmd_outbox.clear()
        result.events.extend(self._outbox)
        self._outbox.clear()
        return result

    def _evaluation_failed(self, st: InterlockState, exc: Exception, now: float, wall: float) -> None:
        """An interlock whose evaluation raised (a bug) cannot trip: say so at top priority,
        as for a blind vote, and go on with the others."""
        aid = f"{st.spec.id}:fault"
        if not self.alarms.is_active(aid):
            log.exception("%s: evaluation failed", st.spec.id)
        self._interlock_alarm(st, aid, Priority.CRITICAL, now, wall,
                              f"{st.spec.id}: evaluation failed ({exc!r}): cannot trip automatically; "
                              "unload and stop by hand if its cause appears")

    def _on_trip(self, st: InterlockState, now: float, wall: float, result: ScanResult) -> None:
        spec = st.spec
        group = spec.trip_group or spec.id
        first = group not in self.first_out
        if first:
            self.first_out[group] = spec.id
        vote = st.last_vote
        self._outbox.append(
            Event(
                EventKind.TRIP,
                now,
                wall,
                spec.station,
                spec.id,
                "",
                "",
                {
                    "interlock": spec.id,
                    "description": spec.description,
                    "trip_group": group,
                    "first_out": first,
                    "first_member": st.first_member,
                    "architecture": vote.architecture if vote else spec.architecture,
                    "votes": vote.votes if vote else None,
                    "degraded": vote.degraded if vote else None,
                    "forced": st.override.kind if st.override else None,
                },
            )
        )
        if first:
            self._outbox.append(
                Event(
                    EventKind.FIRST_OUT,
                    now,
                    wall,
                    spec.station,
                    spec.id,
                    "",
                    "",
                    {"trip_group": group, "interlock": spec.id, "first_member": st.first_member},
                )
            )
        self._outbox.extend(
            self.alarms.raise_(
                f"{spec.id}:trip",
                f"TRIP {spec.id}: {spec.description}",
                Priority.CRITICAL,
                now,
                wall,
                spec.station,
                spec.id,
            )
        )
        for eff in spec.effects:
            if eff.procedure:
                result.start_procedures.append((eff.procedure, spec.id))
            elif eff.command is not None and eff.value is not None and not isinstance(eff.value, str):
                cmd = self.make_command(spec.station, eff.command, eff.value, spec.id, now)
                self._emit_command(cmd, wall)

    def _interlock_alarm(self, st: InterlockState, alarm_id: str, priority: Priority, now: float, wall: float,
                         message: str) -> None:
        """Raise one of an interlock's own alarms (degraded, blind, bypass, override), on its station."""
        self._outbox.extend(self.alarms.raise_(alarm_id, message, priority, now, wall, st.spec.station, st.spec.id))

    def _degraded_alarm(self, st: InterlockState, now: float, wall: float) -> None:
        vote = st.last_vote
        blind_id = f"{st.spec.id}:blind"
        aid = f"{st.spec.id}:degraded"
        alarms = self.alarms.alarms
        if (vote is None or (not vote.blind and vote.degraded == 0)) and blind_id not in alarms and aid not in alarms:
            return  # healthy and nothing to clear: the common case, every scan, every interlock
        if vote is not None and vote.blind:
            self._interlock_alarm(st, blind_id, Priority.CRITICAL, now, wall,
                                  f"{st.spec.id}: cannot trip automatically ({vote.degraded} of {len(st.spec.members)} "
                                  "members faulted, unread or bypassed): unload and stop by hand")
        else:
            self._outbox.extend(self.alarms.clear(blind_id, now, wall))
        if vote is not None and vote.degraded > 0:
            self._interlock_alarm(st, aid, Priority.HIGH if vote.degraded > 1 else Priority.MEDIUM, now, wall,
                                  f"{st.spec.id}: voting degraded to {vote.architecture} "
                                  f"({vote.degraded} member(s) faulted, unread or bypassed)")
        else:
            self._outbox.extend(self.alarms.clear(aid, now, wall))

    def _verify(self, snapshot: Mapping[str, Reading], now: float, wall: float) -> None:
        for cid, cmd in list(self.pending.items()):
            v = cmd.verify
            assert v is not None
            r = self.reading(snapshot, cmd.station, v.tag)
            ok = r is not None and r.quality is Quality.GOOD and _equal(r.value, v.expect)
            if ok:
                del self.pending[cid]
                self._outbox.append(
                    Event(
                        EventKind.COMMAND_VERIFIED,
                        now,
                        wall,
                        cmd.station,
                        cmd.source,
                        cmd.user,
                        "",
                        {"id": cid, "tag": cmd.tag, "value": cmd.value, "feedback": v.tag, "after_s": round(now - cmd.issued_at, 3)},
                    )
                )
            elif now >= v.deadline:
                del self.pending[cid]
                self.failed[cid] = cmd
                why = "feedback BAD" if r is not None and r.quality is Quality.BAD else f"{v.tag} is {None if r is None else r.value}"
                self._outbox.append(
                    Event(
                        EventKind.COMMAND_FAILED,
                        now,
                        wall,
                        cmd.station,
                        cmd.source,
                        cmd.user,
                        "",
                        {"id": cid, "tag": cmd.tag, "value": cmd.value, "feedback": v.tag, "expect": v.expect, "why": why},
                    )
                )
                self._outbox.extend(
                    self.alarms.raise_(
                        f"cmd:{cmd.station}:{cmd.tag}:failed",
                        f"{cmd.tag} := {cmd.value} not confirmed by {v.tag} within {v.deadline - cmd.issued_at:.1f} s ({why})",
                        Priority.HIGH,
                        now,
                        wall,
                        cmd.station,
                        cmd.source,
                    )
                )

    def command_state(self, cmd_id: int) -> str:
        if cmd_id in self.pending or cmd_id in self.unwritten:
            return "pending"
        if cmd_id in self.failed:
            return "failed"
        return "verified"

    def _limits(self, snapshot: Mapping[str, Reading], now: float, wall: float, cols: Columns | None = None) -> None:
        """Limit crossings (LL, L, N, H, HH with hysteresis towards normal), on arrays: the
        band logic of ``_band`` for every limited signal at once."""
        if not self._limited:
            return
        if len(self._limited) < self.vector_min_signals:
            self._limits_one_by_one(snapshot, now, wall)
            return
        if cols is None:
            cols = columns_of(snapshot, self._keys)
        rows = self._lim_rows
        v = cols.value[rows]
        vtype = cols.vtype[rows]
        judged = (vtype != MISSING) & (vtype <= INT) & (cols.quality[rows] != int(Quality.BAD))
        judged &= vtype != BOOL
        old = self._lim_band
        db = self._lim_db
        lim = self._lim
        with np.errstate(invalid="ignore"):
            past_ll = v <= lim["LL"] + np.where(old <= 0, db, 0.0)
            past_l = v <= lim["L"] + np.where(old <= 1, db, 0.0)
            past_h = v >= lim["H"] - np.where(old >= 3, db, 0.0)
            past_hh = v >= lim["HH"] - np.where(old >= 4, db, 0.0)
        # first match of LL, HH, L, H (as _band tries them), else N
        band = np.where(past_ll, 0, np.where(past_hh, 4, np.where(past_l, 1, np.where(past_h, 3, 2)))).astype(np.int8)
        moved = np.flatnonzero(judged & (band != old))
        for i in moved.tolist():
            station, sig = self._limited[i]
            r = snapshot[self._key(station, sig.tag)]
            before, after = _BANDS[old[i]], _BANDS[band[i]]
            self._limit_band[(station, sig.tag)] = after
            self._limit_crossed(station, sig, before, after, float(r.value), now, wall)
        old[moved] = band[moved]

    def _limit_crossed(self, station: str, sig: Signal, before: str, after: str, value: float, now: float,
                       wall: float) -> None:
        """The sequence-of-events record of one limit crossing (LL, L, N, H, HH)."""
        self._outbox.append(Event(EventKind.LIMIT_CROSSING, now, wall, station, "limits", "", "",
                                  {"tag": sig.tag, "from": before, "to": after, "value": round(value, 4),
                                   "units": sig.units}))

    def _wants_columns(self) -> bool:
        return len(self._limited) >= self.vector_min_signals or bool(self.alarms._vector.points)

    def _limits_one_by_one(self, snapshot: Mapping[str, Reading], now: float, wall: float) -> None:
        """``_limits`` for a few signals: the same band logic, signal by signal."""
        frac = self.config.limit_deadband_frac
        for i, (station, sig) in enumerate(self._limited):
            r = snapshot.get(self._key(station, sig.tag))
            if r is None or r.quality is Quality.BAD or isinstance(r.value, bool):
                continue
            old = _BANDS[self._lim_band[i]]
            assert sig.range is not None
            band = _band(float(r.value), sig.alarms, old, frac * (sig.range[1] - sig.range[0]))
            if band != old:
                self._lim_band[i] = _BANDS.index(band)
                self._limit_band[(station, sig.tag)] = band
                self._limit_crossed(station, sig, old, band, float(r.value), now, wall)

    def _expire(self, now: float, wall: float) -> None:
        for st in self.interlocks.values():
            if st.bypass is not None and now >= st.bypass.until:
                self._end_bypass(st, now, wall, "expired", "")
            if st.override is not None and now >= st.override.until:
                self._end_override(st, now, wall, "expired", "")

    # -- links ------------------------------------------------------------------
    def link_changed(self, station: str, up: bool, now: float, wall: float, detail: str = "") -> None:
        if self.link_up.get(station) == up:
            return
        self.link_up[station] = up
        self._outbox.append(
            Event(EventKind.LINK_UP if up else EventKind.LINK_DOWN, now, wall, station, "fieldbus", "", "", {"detail": detail})
        )
        aid = f"link:{station}"
        if up:
            self._outbox.extend(self.alarms.clear(aid, now, wall))
        else:
            self._outbox.extend(
                self.alarms.raise_(aid, f"PLC link to {station} lost: {detail}", Priority.CRITICAL, now, wall, station, "fieldbus")
            )

    def note(self, event: Event) -> None:
        """Queue an event produced outside the engine (procedures, HMI) for this scan."""
        self._outbox.append(event)

    def note_many(self, events: list[Event]) -> None:
        self._outbox.extend(events)

    def take_events(self) -> list[Event]:
        out, self._outbox = self._outbox, []
        return out

    def take_commands(self) -> list[Command]:
        out, self._cmd_outbox = self._cmd_outbox, []
        return out

    # -- operator requests ------------------------------------------------------
    def request(self, req: Request, now: float, wall: float) -> Outcome:
        outcome = self._decide(req, now, wall)
        payload: dict[str, Any] = {
            "action": req.action.value,
            "accepted": outcome.accepted,
            "message": outcome.message,
            "interlock": req.interlock or None,
            "tag": req.tag or None,
            "value": req.value if not isinstance(req.value, float) or req.value == req.value else None,
            "reason": req.reason or None,
            "confirmed_by": req.confirmed_by.user if req.confirmed_by else None,
        }
        self._outbox.append(
            Event(EventKind.OPERATOR_ACTION, now, wall, req.station, "operator", req.actor.user, req.actor.address, payload)
        )
        if outcome.command is not None:
            self._emit_command(outcome.command, wall)
        return outcome

    def _permitted(self, action: Action, actor: Actor) -> bool:
        return bool(self.config.permissions.get(action, frozenset()) & actor.roles)

    def _decide(self, req: Request, now: float, wall: float) -> Outcome:
        if not self._permitted(req.action, req.actor):
            return Outcome(False, f"{req.actor.user} may not {req.action.value} (role)")
        if self.config.two_person and req.action in CRITICAL:
            c = req.confirmed_by
            if c is None:
                return Outcome(False, f"{req.action.value} needs a second person to confirm")
            if c.user == req.actor.user:
                return Outcome(False, "the confirming person must be a different user")
            if not self._permitted(req.action, c):
                return Outcome(False, f"{c.user} may not confirm {req.action.value} (role)")
        if req.action is Action.COMMAND:
            return self._manual_command(req, now)
        if req.action is Action.ACK:
            events = self.alarms.ack(req.tag, req.actor.user, now, wall)
            self._outbox.extend(events)
            return Outcome(bool(events), "acknowledged" if events else "nothing to acknowledge")
        st = self.interlocks.get(req.interlock)
        if st is None:
            return Outcome(False, f"unknown interlock {req.interlock!r}")
        if req.action is Action.RESET:
            return self._reset(st, req, now, wall)
        if req.action is Action.BYPASS:
            return self._bypass(st, req, now, wall)
        if req.action in (Action.OVERRIDE, Action.FORCE):
            return self._override(st, req, now, wall)
        return Outcome(False, f"unknown action {req.action}")

    def _manual_command(self, req: Request, now: float) -> Outcome:
        iol = self.config.iolists.get(req.station)
        if iol is None or req.tag not in iol.by_tag:
            return Outcome(False, f"unknown tag {req.station}:{req.tag}")
        sig = iol.by_tag[req.tag]
        if sig.kind is not Kind.COMMAND_OUT:
            return Outcome(False, f"{req.tag} is not a command output")
        if req.value is None or isinstance(req.value, str):
            return Outcome(False, "a command needs a value")
        # A latched trip owns its outputs: nobody drives them the other way until reset.
        refusal = self.held_by_trip(req.station, req.tag, req.value)
        if refusal:
            return Outcome(False, refusal)
        cmd = self.make_command(req.station, req.tag, req.value, "operator", now, req.actor.user)
        return Outcome(True, "command sent", cmd)

    def _reset(self, st: InterlockState, req: Request, now: float, wall: float) -> Outcome:
        if st.state is not TripState.TRIPPED:
            return Outcome(False, f"{st.spec.id} is not tripped")
        if st.cause_active or (st.last_vote is not None and st.last_vote.trip and st.override is None):
            return Outcome(False, f"{st.spec.id}: cause still present; cannot reset")
        unseen = st.cause_unseen()
        if unseen and st.override is None:
            # fail safe: a cause that cannot be seen is not a cause that has cleared
            return Outcome(False, f"{st.spec.id}: cannot reset while {unseen}: restore the signals first "
                                  "(or, under a permit, a force-normal override by two persons)")
        st.state = TripState.NORMAL
        st.first_member = None
        st.tripped_at = None
        group = st.spec.trip_group or st.spec.id
        if not any(
            s.state is TripState.TRIPPED and (s.spec.trip_group or s.spec.id) == group for s in self.interlocks.values()
        ):
            self.first_out.pop(group, None)
        self._outbox.append(
            Event(
                EventKind.TRIP_RESET,
                now,
                wall,
                st.spec.station,
                st.spec.id,
                req.actor.user,
                req.actor.address,
                {"interlock": st.spec.id, "confirmed_by": req.confirmed_by.user if req.confirmed_by else None},
            )
        )
        self._outbox.extend(self.alarms.clear(f"{st.spec.id}:trip", now, wall))
        return Outcome(True, f"{st.spec.id} reset")

    def _bypass(self, st: InterlockState, req: Request, now: float, wall: float) -> Outcome:
        if req.value == "off":
            if st.bypass is None:
                return Outcome(False, "no bypass to remove")
            self._end_bypass(st, now, wall, "removed", req.actor.user)
            return Outcome(True, "bypass removed")
        if not req.reason.strip():
            return Outcome(False, "a bypass needs a reason")
        if req.tag not in {c.tag for c in st.spec.members}:
            return Outcome(False, f"{req.tag} is not a member of {st.spec.id}")
        if st.bypass is not None:
            return Outcome(False, f"{st.spec.id} already has {st.bypass.tag} bypassed (one member at a time)")
        if req.duration_s <= 0 or req.duration_s > self.config.bypass_max_s:
            return Outcome(False, f"bypass duration must be within 0..{self.config.bypass_max_s:.0f} s")
        st.bypass = Bypass(req.tag, req.actor.user, req.reason, now, now + req.duration_s)
        self._outbox.append(
            Event(
                EventKind.BYPASS_ON,
                now,
                wall,
                st.spec.station,
                st.spec.id,
                req.actor.user,
                req.actor.address,
                {
                    "interlock": st.spec.id,
                    "tag": req.tag,
                    "reason": req.reason,
                    "until": now + req.duration_s,
                    "confirmed_by": req.confirmed_by.user if req.confirmed_by else None,
                },
            )
        )
        self._interlock_alarm(st, f"{st.spec.id}:bypass", Priority.MEDIUM, now, wall,
                              f"{st.spec.id}: {req.tag} bypassed by {req.actor.user} ({req.reason})")
        return Outcome(True, f"{req.tag} bypassed for {req.duration_s:.0f} s")

    def _end_bypass(self, st: InterlockState, now: float, wall: float, how: str, user: str) -> None:
        assert st.bypass is not None
        tag = st.bypass.tag
        st.bypass = None
        self._outbox.append(
            Event(EventKind.BYPASS_OFF, now, wall, st.spec.station, st.spec.id, user, "", {"interlock": st.spec.id, "tag": tag, "how": how})
        )
        self._outbox.extend(self.alarms.clear(f"{st.spec.id}:bypass", now, wall))
        self._outbox.extend(self.alarms.clear(f"{st.spec.id}:bypassed-trip:{tag}", now, wall))

    def _override(self, st: InterlockState, req: Request, now: float, wall: float) -> Outcome:
        if req.value == "off":
            if st.override is None:
                return Outcome(False, "no override to remove")
            self._end_override(st, now, wall, "removed", req.actor.user)
            return Outcome(True, "override removed")
        kinds = {"startup"} if req.action is Action.OVERRIDE else {"force_trip", "force_normal"}
        if req.mode not in kinds:
            return Outcome(False, f"mode must be one of {', '.join(sorted(kinds))}")
        if not req.reason.strip():
            return Outcome(False, f"{req.action.value} needs a reason (the permit)")
        if req.duration_s <= 0 or req.duration_s > self.config.override_max_s:
            return Outcome(False, f"duration must be within 0..{self.config.override_max_s:.0f} s")
        if st.override is not None:
            return Outcome(False, f"{st.spec.id} already has an override ({st.override.kind})")
        st.override = Override(req.mode, req.actor.user, req.reason, now, now + req.duration_s)
        kind = EventKind.OVERRIDE_ON if req.action is Action.OVERRIDE else EventKind.FORCE
        self._outbox.append(
            Event(
                kind,
                now,
                wall,
                st.spec.station,
                st.spec.id,
                req.actor.user,
                req.actor.address,
                {"interlock": st.spec.id, "mode": req.mode, "reason": req.reason, "until": now + req.duration_s,
                 "warning": "protection altered by hand" if req.mode == "force_normal" else None},
            )
        )
        self._interlock_alarm(st, f"{st.spec.id}:override", Priority.HIGH, now, wall,
                              f"{st.spec.id}: {req.mode.replace('_', ' ')} by {req.actor.user} ({req.reason})")
        return Outcome(True, f"{req.mode} for {req.duration_s:.0f} s")

    def _end_override(self, st: InterlockState, now: float, wall: float, how: str, user: str) -> None:
        assert st.override is not None
        kind = st.override.kind
        st.override = None
        self._outbox.append(
            Event(EventKind.OVERRIDE_OFF, now, wall, st.spec.station, st.spec.id, user, "", {"interlock": st.spec.id, "mode": kind, "how": how})
        )
        self._outbox.extend(self.alarms.clear(f"{st.spec.id}:override", now, wall))

    # -- views ------------------------------------------------------------------
    def tripped(self) -> list[str]:
        return [i for i, s in self.interlocks.items() if s.state is TripState.TRIPPED]

    def status(self) -> list[dict[str, Any]]:
        out = []
        for st in self.interlocks.values():
            v = st.last_vote
            out.append(
                {
                    "id": st.spec.id,
                    "station": st.spec.station,
                    "description": st.spec.description,
                    "state": st.state.value,
                    "architecture": v.architecture if v else st.spec.architecture,
                    "votes": v.votes if v else 0,
                    "first_member": st.first_member,
                    "bypass": None if st.bypass is None else {"tag": st.bypass.tag, "user": st.bypass.user, "until": st.bypass.until},
                    "override": None if st.override is None else {"mode": st.override.kind, "until": st.override.until},
                }
            )
        return out


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return bool(a == b)


def _band(v: float, limits: Mapping[str, float], old: str, db: float) -> str:
    """Which band v lies in (LL, L, N, H, HH), with hysteresis towards normal."""

    def past(name: str) -> bool:
        if name not in limits:
            return False
        lim = limits[name]
        hold = _BANDS.index(old)
        idx = _BANDS.index(name)
        sticky = (idx < 2 and hold <= idx) or (idx > 2 and hold >= idx)
        if name in ("LL", "L"):
            return v <= lim + (db if sticky else 0.0)
        return v >= lim - (db if sticky else 0.0)

    for name in ("LL", "HH", "L", "H"):
        if past(name):
            return name
    return "N"


def merge_snapshot(per_station: Mapping[str, Mapping[str, Reading]]) -> dict[str, Reading]:
    """Key a multi-station snapshot as "station:TAG" (single station: plain tags)."""
    if len(per_station) == 1:
        return dict(next(iter(per_station.values())))
    return {f"{st}:{tag}": r for st, view in per_station.items() for tag, r in view.items()}


def keys(stations: Iterable[str], iolists: Mapping[str, IOList]) -> list[str]:
    names = list(stations)
    if len(names) == 1:
        return [s.tag for s in iolists[names[0]].signals]
    return [f"{st}:{s.tag}" for st in names for s in iolists[st].signals]
