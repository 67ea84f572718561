"""Alarms by ISA-18.2 / IEC 62682 (OPC UA Part 9 semantics).

Theory of operation
-------------------
Every alarm has two independent things: its *condition* (is the process abnormal:
``Alarm.in_alarm``) and its *annunciation* (what the operator is shown and must
do). The annunciation follows the ISA-18.2 state diagram::

    NORMAL ----condition----> UNACK --ack--> ACKED
      ^                         |              |
      |                    condition clears   condition clears
      |                         v              v
      +--------ack-------- RTN_UNACK          NORMAL          (non-latching)
      +-------reset------- LATCHED <----------+ (latching: both paths; ack while
                                                latched is recorded, reset ends it)

A return of the condition from RTN_UNACK or LATCHED annunciates anew (UNACK).

Three things take an alarm *out* of that flow for a while, in this precedence:
``OUT_OF_SERVICE`` (maintenance, by a permitted role, until returned to service),
``SHELVED`` (by a permitted role, with a reason and a duration that always
expires) and ``SUPPRESSED`` (by design: a rule of the site, e.g. low fuel-gas
pressure while the GT is stopped). While hidden the condition is still tracked
and journaled, but nothing is annunciated. When the last of them ends, the alarm
re-enters the flow from the condition as it is *now*: abnormal gives a fresh
UNACK (a new annunciation), normal gives NORMAL.

Condition sources:

* the engine and the procedures call ``raise_`` / ``clear`` by id (trips,
  command failures, link loss...): the condition is whatever they say;
* ``evaluate(snapshot_by_station, now, wall)`` runs the alarms configured from the
  I/O lists (``configure(iolists, settings)``): analog limits LL/L/H/HH, digital
  ``alarm_on``, deviation and rate of change (those two from the site's
  ``alarms:`` section), and BAD quality of ``bad_counts_as: alarm_only`` signals.
  Each has a deadband (hysteresis towards normal), an on-delay (the condition must
  hold that long before it annunciates) and an off-delay (it must be gone that long
  before the alarm returns). A BAD reading holds the alarm where it is (and
  restarts its delays): a value that cannot be read neither raises nor clears.

Alongside: first-out per trip group (the first alarm of the group to annunciate
since the group was last all normal; simultaneous ones are ordered by their
sample time), flood detection per operator area (more than ``flood_threshold``
annunciations in ``flood_window_s``, 10 in 10 minutes by default; the flood ends
below ``flood_end``) raised as an alarm itself with the alarm-rate figure, and the
KPIs (alarms per hour, top ten, chattering and stale alarms) computed from the
ALARM events, so the same function serves the live board and the journal.

Every change of state (and every change of condition while hidden) is an ALARM
event carrying the user who caused it; the caller journals it. The board never
reads a clock: ``now`` (plant seconds) and ``wall`` are handed in.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .iolist import BadCountsAs, IOList, Kind, Signal
from .journal import Event, EventKind
from .tags import INT, MISSING, REASON_CODE, Columns, Quality, Reading, Reason, columns_of


class Priority(IntEnum):
    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4


class AlarmState(StrEnum):
    NORMAL = "normal"
    UNACK = "unacknowledged"
    ACKED = "acknowledged"
    RTN_UNACK = "returned unacknowledged"
    LATCHED = "latched"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed by design"
    OUT_OF_SERVICE = "out of service"


ANNUNCIATED = frozenset({AlarmState.UNACK, AlarmState.ACKED, AlarmState.RTN_UNACK, AlarmState.LATCHED})
HIDDEN = frozenset({AlarmState.SHELVED, AlarmState.SUPPRESSED, AlarmState.OUT_OF_SERVICE})


class AlarmKind(StrEnum):
    """What a configured alarm watches; the last part of its id (``station:tag:KIND``)."""

    LL = "LL"
    L = "L"
    H = "H"
    HH = "HH"
    DIGITAL = "ALM"
    DEVIATION = "DEV"
    RATE = "ROC"
    BAD = "BAD"
    EXTERNAL = ""  # raised by the engine or a procedure through raise_()


_KIND_TEXT = {
    AlarmKind.LL: "low-low",
    AlarmKind.L: "low",
    AlarmKind.H: "high",
    AlarmKind.HH: "high-high",
    AlarmKind.DIGITAL: "alarm",
    AlarmKind.DEVIATION: "deviation",
    AlarmKind.RATE: "rate of change",
    AlarmKind.BAD: "signal BAD",
}

DEFAULT_PRIORITIES: dict[AlarmKind, Priority] = {
    AlarmKind.HH: Priority.HIGH,
    AlarmKind.LL: Priority.HIGH,
    AlarmKind.H: Priority.MEDIUM,
    AlarmKind.L: Priority.MEDIUM,
    AlarmKind.DIGITAL: Priority.HIGH,
    AlarmKind.DEVIATION: Priority.LOW,
    AlarmKind.RATE: Priority.MEDIUM,
    AlarmKind.BAD: Priority.LOW,
}

# Reasons of a BAD reading that raise a "signal BAD" alarm. A lost link or a PLC
# never reached is one alarm of its own (link:<station>), not one per signal.
_BAD_ALARM_REASONS = frozenset({Reason.SENSOR_FAULT, Reason.OUT_OF_RANGE, Reason.DEVICE_STATUS})
_BAD_ALARM_CODE = np.zeros(len(REASON_CODE), dtype=np.bool_)  # reason code -> raises a BAD alarm
_BAD_ALARM_CODE[[REASON_CODE[r] for r in _BAD_ALARM_REASONS]] = True

# Kinds evaluated on arrays (one numpy expression for every point of the site); the rest
# (deviation, rate of change) need another tag or a history and keep the per-point loop.
_VECTOR_KINDS = frozenset({AlarmKind.LL, AlarmKind.L, AlarmKind.H, AlarmKind.HH, AlarmKind.DIGITAL, AlarmKind.BAD})
_V_HIGH, _V_LOW, _V_DIGITAL, _V_BAD = 0, 1, 2, 3
_V_CODE = {AlarmKind.HH: _V_HIGH, AlarmKind.H: _V_HIGH, AlarmKind.LL: _V_LOW, AlarmKind.L: _V_LOW,
           AlarmKind.DIGITAL: _V_DIGITAL, AlarmKind.BAD: _V_BAD}


@dataclass(slots=True)  # tens of thousands on a large site: no per-object __dict__
class Alarm:
    id: str
    station: str
    message: str
    priority: Priority
    state: AlarmState
    raised_at: float
    source: str = ""
    acked_by: str = ""
    # -- the ISA-18.2 model ------------------------------------------------------
    in_alarm: bool = False  # the condition: process abnormal now
    flow: AlarmState = AlarmState.NORMAL  # NORMAL/UNACK/ACKED/RTN_UNACK/LATCHED, under any hiding
    latched_acked: bool = False  # LATCHED and already acknowledged (reset still due)
    latching: bool = False
    configured: bool = False  # from the I/O list / site: kept while normal
    tag: str = ""
    kind: AlarmKind = AlarmKind.EXTERNAL
    area: str = ""
    shelved_until: float | None = None
    shelved_by: str = ""
    shelve_reason: str = ""
    out_of_service: bool = False
    oos_by: str = ""
    oos_reason: str = ""
    suppressed_by: str = ""  # name of the suppression-by-design rule holding it
    first_out_of: str = ""  # the trip group this alarm was first out of
    value: float | None = None  # value at the last change (configured alarms)
    limit: float | None = None

    @property
    def active(self) -> bool:
        """The condition is present (whether or not it is annunciated)."""
        return self.in_alarm

    @property
    def annunciated(self) -> bool:
        return self.state in ANNUNCIATED

    @property
    def hidden(self) -> bool:
        return self.out_of_service or self.shelved_until is not None or bool(self.suppressed_by)

    def _display(self) -> AlarmState:
        if self.out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if self.shelved_until is not None:
            return AlarmState.SHELVED
        if self.suppressed_by:
            return AlarmState.SUPPRESSED
        return self.flow


@dataclass(frozen=True)
class AlarmOutcome:
    """Answer to an operator request on an alarm (shelve, reset, out of service...)."""

    accepted: bool
    message: str
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class AlarmRate:
    area: str
    count: int  # annunciations within the window
    window_s: float
    per_10min: float
    per_hour: float
    flooding: bool


# ---------------------------------------------------------------------------------------------
# Settings: the site file's ``alarms:`` section


def _parse_priority(v: Any) -> Priority:
    if isinstance(v, Priority):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return Priority(v)
    if isinstance(v, str):
        try:
            return Priority[v.strip().upper()]
        except KeyError:
            pass
    raise ValueError(f"priority {v!r}: use critical, high, medium, low or 1-4")


class _TagSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_delay_s: float | None = Field(None, ge=0)
    off_delay_s: float | None = Field(None, ge=0)
    deadband: float | None = Field(None, ge=0)  # engineering units
    priority: dict[str, str | int] = {}
    latching: bool | None = None
    disabled: list[str] = []  # kinds not evaluated for this tag (e.g. [L])


class _DeviationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str  # station:TAG
    limit: float = Field(gt=0)
    reference: float | None = None
    reference_tag: str | None = None  # station:TAG or TAG of the same station
    priority: str | int = "low"
    deadband: float = Field(0.0, ge=0)


class _RateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str
    limit_per_s: float = Field(gt=0)
    window_s: float = Field(10.0, gt=0)
    priority: str | int = "medium"


class _When(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str  # station:TAG
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"] = "=="
    value: Any


class _SuppressSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    when: _When
    alarms: list[str] = Field(min_length=1)  # alarm id patterns (fnmatch)
    release_delay_s: float = Field(0.0, ge=0)


class _FloodSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: int = Field(10, ge=1)
    window_s: float = Field(600.0, gt=0)
    end_below: int = Field(5, ge=0)


class _ChatterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(3, ge=2)
    window_s: float = Field(60.0, gt=0)


class _ShelvingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[str] = ["operator", "supervisor"]
    max_h: float = Field(8.0, gt=0)
    allow_critical: bool = False


class _AlarmsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    areas: dict[str, list[str]] = {}
    flood: _FloodSpec = _FloodSpec()
    on_delay_s: float = Field(0.0, ge=0)
    off_delay_s: float = Field(0.0, ge=0)
    deadband_frac: float = Field(0.01, ge=0, lt=0.5)
    priorities: dict[str, str | int] = {}
    tags: dict[str, _TagSpec] = {}
    latching: list[str] = []
    deviation: list[_DeviationSpec] = []
    rate: list[_RateSpec] = []
    suppress: list[_SuppressSpec] = []
    first_out_groups: dict[str, list[str]] = {}
    chattering: _ChatterSpec = _ChatterSpec()
    stale_after_h: float = Field(24.0, gt=0)
    shelving: _ShelvingSpec = _ShelvingSpec()
    out_of_service_roles: list[str] = ["supervisor", "engineer"]
    bad_quality: Literal["alarm_only", "all", "none"] = "alarm_only"
    history_max: int = Field(100_000, ge=100)


@dataclass(frozen=True)
class TagAlarmSettings:
    on_delay_s: float | None = None
    off_delay_s: float | None = None
    deadband: float | None = None
    priority: Mapping[AlarmKind, Priority] = field(default_factory=dict)
    latching: bool | None = None
    disabled: frozenset[AlarmKind] = frozenset()


@dataclass(frozen=True)
class DeviationAlarm:
    station: str
    tag: str
    limit: float
    reference: float | None = None
    reference_station: str = ""
    reference_tag: str = ""
    priority: Priority = Priority.LOW
    deadband: float = 0.0


@dataclass(frozen=True)
class RateAlarm:
    station: str
    tag: str
    limit_per_s: float
    window_s: float = 10.0
    priority: Priority = Priority.MEDIUM


@dataclass(frozen=True)
class SuppressionRule:
    name: str
    station: str
    tag: str
    op: str
    value: Any
    alarms: tuple[str, ...]
    release_delay_s: float = 0.0


@dataclass
class AlarmSettings:
    """The site's ``alarms:`` section, parsed. Defaults give ISA-18.2's usual figures."""

    areas: dict[str, tuple[str, ...]] = field(default_factory=dict)
    flood_threshold: int = 10
    flood_window_s: float = 600.0
    flood_end: int = 5
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    deadband_frac: float = 0.01  # of the signal's span
    priorities: dict[AlarmKind, Priority] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    tags: dict[str, TagAlarmSettings] = field(default_factory=dict)  # key "station:TAG"
    latching: tuple[str, ...] = ()  # alarm id patterns
    deviation: tuple[DeviationAlarm, ...] = ()
    rate: tuple[RateAlarm, ...] = ()
    suppress: tuple[SuppressionRule, ...] = ()
    first_out_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    chatter_count: int = 3
    chatter_window_s: float = 60.0
    stale_after_s: float = 24 * 3600.0
    shelve_roles: frozenset[str] = frozenset({"operator", "supervisor"})
    shelve_max_s: float = 8 * 3600.0
    shelve_critical: bool = False
    oos_roles: frozenset[str] = frozenset({"supervisor", "engineer"})
    bad_quality: str = "alarm_only"
    history_max: int = 100_000

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None, where: str = "alarms") -> AlarmSettings:
        """Parse the site's ``alarms:`` mapping; ConfigError lists every problem."""
        try:
            spec = _AlarmsSpec.model_validate(dict(doc or {}))
        except ValidationError as exc:
            raise ConfigError(
                [f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            ) from None
        errors: list[str] = []

        def prio(v: Any, loc: str) -> Priority:
            try:
                return _parse_priority(v)
            except ValueError as exc:
                errors.append(f"{where}.{loc}: {exc}")
                return Priority.MEDIUM

        def kind(k: str, loc: str) -> AlarmKind | None:
            try:
                return AlarmKind(k)
            except ValueError:
                errors.append(f"{where}.{loc}: unknown alarm kind {k!r} (LL, L, H, HH, ALM, DEV, ROC, BAD)")
                return None

        def split(key: str, loc: str) -> tuple[str, str]:
            station, sep, tag = key.partition(":")
            if not sep or not station or not tag:
                errors.append(f"{where}.{loc}: {key!r} must be station:TAG")
            return station, tag

        priorities = dict(DEFAULT_PRIORITIES)
        for k, v in spec.priorities.items():
            kk = kind(k, f"priorities.{k}")
            if kk is not None:
                priorities[kk] = prio(v, f"priorities.{k}")
        tags: dict[str, TagAlarmSettings] = {}
        for key, t in spec.tags.items():
            split(key, f"tags.{key}")
            tp: dict[AlarmKind, Priority] = {}
            for k, v in t.priority.items():
                kk = kind(k, f"tags.{key}.priority.{k}")
                if kk is not None:
                    tp[kk] = prio(v, f"tags.{key}.priority.{k}")
            disabled = {kind(k, f"tags.{key}.disabled") for k in t.disabled}
            tags[key] = TagAlarmSettings(
                t.on_delay_s, t.off_delay_s, t.deadband, tp, t.latching,
                frozenset(k for k in disabled if k is not None),
            )
        deviation = []
        for i, d in enumerate(spec.deviation):
            st, tag = split(d.tag, f"deviation[{i}].tag")
            if (d.reference is None) == (d.reference_tag is None):
                errors.append(f"{where}.deviation[{i}]: give either reference (a value) or reference_tag")
            rst, rtag = st, ""
            if d.reference_tag:
                rst, _, rtag = d.reference_tag.rpartition(":")
                rst = rst or st
            deviation.append(DeviationAlarm(st, tag, d.limit, d.reference, rst, rtag,
                                            prio(d.priority, f"deviation[{i}].priority"), d.deadband))
        rate = []
        for i, r in enumerate(spec.rate):
            st, tag = split(r.tag, f"rate[{i}].tag")
            rate.append(RateAlarm(st, tag, r.limit_per_s, r.window_s, prio(r.priority, f"rate[{i}].priority")))
        suppress = []
        seen_rules: set[str] = set()
        for i, s in enumerate(spec.suppress):
            if s.name in seen_rules:
                errors.append(f"{where}.suppress[{i}].name: duplicate rule name {s.name!r}")
            seen_rules.add(s.name)
            st, tag = split(s.when.tag, f"suppress[{i}].when.tag")
            if s.when.op in ("in", "not in") and not isinstance(s.when.value, list):
                errors.append(f"{where}.suppress[{i}].when.value: '{s.when.op}' needs a list")
            suppress.append(SuppressionRule(s.name, st, tag, s.when.op, s.when.value, tuple(s.alarms), s.release_delay_s))
        if spec.flood.end_below > spec.flood.threshold:
            errors.append(f"{where}.flood.end_below: must not exceed threshold ({spec.flood.threshold})")
        if errors:
            raise ConfigError(errors)
        return cls(
            areas={a: tuple(p) for a, p in spec.areas.items()},
            flood_threshold=spec.flood.threshold,
            flood_window_s=spec.flood.window_s,
            flood_end=spec.flood.end_below,
            on_delay_s=spec.on_delay_s,
            off_delay_s=spec.off_delay_s,
            deadband_frac=spec.deadband_frac,
            priorities=priorities,
            tags=tags,
            latching=tuple(spec.latching),
            deviation=tuple(deviation),
            rate=tuple(rate),
            suppress=tuple(suppress),
            first_out_groups={g: tuple(p) for g, p in spec.first_out_groups.items()},
            chatter_count=spec.chattering.count,
            chatter_window_s=spec.chattering.window_s,
            stale_after_s=spec.stale_after_h * 3600.0,
            shelve_roles=frozenset(spec.shelving.roles),
            shelve_max_s=spec.shelving.max_h * 3600.0,
            shelve_critical=spec.shelving.allow_critical,
            oos_roles=frozenset(spec.out_of_service_roles),
            bad_quality=spec.bad_quality,
            history_max=spec.history_max,
        )


# ---------------------------------------------------------------------------------------------
# Configured alarm points (one per alarm id evaluated from the snapshot)


@dataclass(slots=True)
class _Point:
    alarm_id: str
    station: str
    tag: str
    kind: AlarmKind
    order: int
    limit: float = 0.0
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    alarm_on: bool = True  # digital
    reference: float | None = None  # deviation
    ref_station: str = ""
    ref_tag: str = ""
    window_s: float = 0.0  # rate
    cond_since: float | None = None  # raw condition present since (on-delay)
    clear_since: float | None = None  # raw condition absent since (off-delay)
    history: deque[tuple[float, float]] | None = None  # rate samples (rate points only: a deque is big)

    def condition(self, r: Reading, in_alarm: bool, view: Mapping[str, Mapping[str, Reading]]) -> bool | None:
        """The raw condition with hysteresis; None = cannot be judged (hold)."""
        if self.kind is AlarmKind.BAD:
            return r.quality is Quality.BAD and r.reason in _BAD_ALARM_REASONS
        if r.quality is Quality.BAD:
            return None
        if self.kind is AlarmKind.DIGITAL:
            return bool(r.value) == self.alarm_on
        if isinstance(r.value, bool):
            return None
        v = float(r.value)
        if not math.isfinite(v):
            return None
        db = self.deadband if in_alarm else 0.0
        if self.kind in (AlarmKind.H, AlarmKind.HH):
            return v >= self.limit - db
        if self.kind in (AlarmKind.L, AlarmKind.LL):
            return v <= self.limit + db
        if self.kind is AlarmKind.DEVIATION:
            ref = self.reference
            if ref is None:
                rr = view.get(self.ref_station, {}).get(self.ref_tag)
                if rr is None or rr.quality is Quality.BAD or isinstance(rr.value, bool):
                    return None
                ref = float(rr.value)
            return abs(v - ref) >= self.limit - db
        # rate of change over the window
        h = self.history
        if h is None:
            h = self.history = deque()
        if not h or r.t > h[-1][0]:
            h.append((r.t, v))
        while len(h) > 2 and h[1][0] <= r.t - self.window_s:
            h.popleft()
        t0, v0 = h[0]
        if r.t - t0 < 0.5 * self.window_s:
            return None  # not enough history yet
        rate = (v - v0) / (r.t - t0)
        return abs(rate) >= self.limit - db

    def value_of(self, r: Reading) -> float | None:
        if isinstance(r.value, bool):
            return float(r.value)
        v = float(r.value)
        return v if math.isfinite(v) else None


class _VectorPoints:
    """The limit, digital and BAD points of the board as arrays, evaluated in one pass.

    The per-point rule is ``_Point.condition`` plus the on/off delays of ``evaluate``,
    written over arrays: ``cond_since``/``clear_since`` are NaN where the point's
    attribute would be None, ``in_alarm`` mirrors each alarm's condition (kept in step
    by ``AlarmBoard._set_condition``). Same inputs, same floating-point operations, so
    the outcome is the one the loop gives, point for point."""

    def __init__(self, points: list[_Point], col_of: Mapping[str, int]) -> None:
        n = len(points)
        self.points = points
        self.slot_of: dict[str, int] = {p.alarm_id: i for i, p in enumerate(points)}
        self.col = np.array([col_of[f"{p.station}:{p.tag}"] for p in points], dtype=np.intp)
        self.kind = np.array([_V_CODE[p.kind] for p in points], dtype=np.int8)
        self.limit = np.array([p.limit for p in points], dtype=np.float64)
        self.deadband = np.array([p.deadband for p in points], dtype=np.float64)
        self.on_delay = np.array([p.on_delay_s for p in points], dtype=np.float64) - 1e-9
        self.off_delay = np.array([p.off_delay_s for p in points], dtype=np.float64) - 1e-9
        self.alarm_on = np.array([p.alarm_on for p in points], dtype=np.bool_)
        self.in_alarm = np.zeros(n, dtype=np.bool_)
        self.cond_since = np.full(n, math.nan)
        self.clear_since = np.full(n, math.nan)
        self.high = self.kind == _V_HIGH
        self.low = self.kind == _V_LOW
        self.digital = self.kind == _V_DIGITAL
        self.bad_kind = self.kind == _V_BAD
        self.analog = self.high | self.low

    def evaluate(self, cols: Columns, now: float) -> npt.NDArray[np.intp]:
        """Advance every point by one scan; the slots whose condition should change."""
        if not self.points:
            return np.zeros(0, dtype=np.intp)
        c = self.col
        value = cols.value[c]
        vtype = cols.vtype[c]
        bad = cols.quality[c] == int(Quality.BAD)
        present = vtype != MISSING
        # raw condition, and whether there is a verdict at all (a point without one holds)
        db = self.deadband * self.in_alarm  # the deadband applies towards normal only
        with np.errstate(invalid="ignore"):
            raw = np.where(self.high, value >= self.limit - db, value <= self.limit + db)
        raw = np.where(self.digital, (value != 0) == self.alarm_on, raw)
        raw = np.where(self.bad_kind, bad & _BAD_ALARM_CODE[cols.reason[c]], raw)
        # analog: a finite number (not a bool); every kind but BAD: not BAD quality
        judged = present & ~(bad & ~self.bad_kind) & ~(self.analog & ((vtype > INT) | ~np.isfinite(value)))
        in_alarm = self.in_alarm
        cond_since, clear_since = self.cond_since, self.clear_since
        on = judged & raw
        off = judged & ~raw
        # no verdict: both delays restart; condition present: the on-delay runs from its
        # first scan; condition absent: the off-delay runs while the alarm stands
        cond_since[(present & ~judged) | off] = math.nan
        clear_since[(present & ~judged) | on | (off & ~in_alarm)] = math.nan
        cond_since[on & np.isnan(cond_since)] = now
        clearing = off & in_alarm
        clear_since[clearing & np.isnan(clear_since)] = now
        with np.errstate(invalid="ignore"):
            flip = (on & ~in_alarm & (now - cond_since >= self.on_delay)) | (
                clearing & (now - clear_since >= self.off_delay))
        return np.flatnonzero(flip)


@dataclass
class _Rule:
    spec: SuppressionRule
    op: str
    value: Any  # enum names resolved to indices
    active: bool = False
    released_at: float | None = None  # condition gone at; suppression lasts release_delay_s more

    def holds(self, r: Reading | None) -> bool:
        # A condition that cannot be read does not suppress: alarms stay visible.
        if r is None or r.quality is Quality.BAD:
            return False
        v: Any = r.value
        ref = self.value
        op = self.op
        try:
            if op == "in":
                return any(_same(v, x) for x in ref)
            if op == "not in":
                return not any(_same(v, x) for x in ref)
            if op == "==":
                return _same(v, ref)
            if op == "!=":
                return not _same(v, ref)
            fv, fr = float(v), float(ref)
        except (TypeError, ValueError):
            return False
        return {"<": fv < fr, "<=": fv <= fr, ">": fv > fr, ">=": fv >= fr}[op]


@lru_cache(maxsize=1 << 16)
def _matches(alarm_id: str, patterns: tuple[str, ...]) -> bool:
    """Shell-style match of an alarm id against patterns (cached: evaluated every scan)."""
    return any(fnmatchcase(alarm_id, p) for p in patterns)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return bool(a == b)


# ---------------------------------------------------------------------------------------------
# The board


class AlarmBoard:
    # Below this many limit, digital and BAD points the board evaluates them one by one:
    # the arrays pay only past a few hundred (docs/performance.md).
    vector_min_points = 200

    def __init__(self, settings: AlarmSettings | None = None) -> None:
        self.alarms: dict[str, Alarm] = {}
        self.settings = settings or AlarmSettings()
        self.first_out: dict[str, str] = {}  # trip group -> alarm id first out
        self._points: list[_Point] = []
        self._rules: list[_Rule] = []
        self._annunciations: dict[str, deque[float]] = {}  # area -> plant times in the flood window
        self._flooding: dict[str, float] = {}  # area -> plant time the flood began
        self.log: deque[Event] = deque(maxlen=self.settings.history_max)  # ALARM events, for KPIs
        # -- evaluation on arrays (see _VectorPoints) ---------------------------------
        self._columns: tuple[str, ...] = ()  # "station:TAG" of every I/O-list signal, in order
        self._vector = _VectorPoints([], {})
        self._scalar_points: list[_Point] = []
        self._shelved: dict[str, None] = {}  # ids with a shelve running (ordered set)
        self._version = 0  # bumped when an alarm is added to or removed from the board
        self._group_members: dict[str, tuple[int, list[Alarm]]] = {}  # first-out group -> (version, alarms)
        self._suppression_seen: tuple[bool, ...] | None = None  # rule states at the last full pass

    # -- configuration -------------------------------------------------------------
    def configure(self, iolists: Mapping[str, IOList], settings: AlarmSettings | Mapping[str, Any] | None = None) -> None:
        """Build the configured alarms from the I/O lists and the site's settings.

        Raises ConfigError naming every reference to a station, tag or state that
        does not exist. May be called again (reload): alarms that still exist keep
        their state."""
        s = settings if isinstance(settings, AlarmSettings) else AlarmSettings.from_dict(settings)
        errors: list[str] = []

        def signal(station: str, tag: str, where: str) -> Signal | None:
            iol = iolists.get(station)
            if iol is None:
                errors.append(f"alarms.{where}: unknown station {station!r}")
                return None
            sig = iol.by_tag.get(tag)
            if sig is None:
                errors.append(f"alarms.{where}: {tag} is not in {station}'s I/O list")
            return sig

        for key in s.tags:
            st, _, tag = key.partition(":")
            signal(st, tag, f"tags.{key}")
        points: list[_Point] = []
        order = 0
        for station, iol in iolists.items():
            for sig in iol.signals:
                if sig.kind is Kind.COMMAND_OUT:
                    continue
                ts = s.tags.get(f"{station}:{sig.tag}", TagAlarmSettings())
                span = (sig.range[1] - sig.range[0]) if sig.range else 0.0
                deadband = ts.deadband if ts.deadband is not None else s.deadband_frac * span
                on_d = ts.on_delay_s if ts.on_delay_s is not None else s.on_delay_s
                off_d = ts.off_delay_s if ts.off_delay_s is not None else s.off_delay_s
                if sig.kind is Kind.ANALOG_IN:
                    for name, lim in sig.alarms.items():
                        kind = AlarmKind(name)
                        if kind in ts.disabled:
                            continue
                        points.append(_Point(f"{station}:{sig.tag}:{kind.value}", station, sig.tag, kind, order,
                                             limit=float(lim), deadband=deadband, on_delay_s=on_d, off_delay_s=off_d))
                        order += 1
                if sig.kind is Kind.DIGITAL_IN and sig.alarm_on is not None and AlarmKind.DIGITAL not in ts.disabled:
                    points.append(_Point(f"{station}:{sig.tag}:{AlarmKind.DIGITAL.value}", station, sig.tag,
                                         AlarmKind.DIGITAL, order, on_delay_s=on_d, off_delay_s=off_d,
                                         alarm_on=bool(sig.alarm_on)))
                    order += 1
                wants_bad = s.bad_quality == "all" or (
                    s.bad_quality == "alarm_only" and sig.bad_counts_as is BadCountsAs.ALARM_ONLY)
                if wants_bad and AlarmKind.BAD not in ts.disabled:
                    points.append(_Point(f"{station}:{sig.tag}:{AlarmKind.BAD.value}", station, sig.tag, AlarmKind.BAD,
                                         order, on_delay_s=on_d, off_delay_s=off_d))
                    order += 1
        for i, d in enumerate(s.deviation):
            found = signal(d.station, d.tag, f"deviation[{i}].tag")
            if d.reference_tag:
                signal(d.reference_station, d.reference_tag, f"deviation[{i}].reference_tag")
            if found is None:
                continue
            points.append(_Point(f"{d.station}:{d.tag}:{AlarmKind.DEVIATION.value}", d.station, d.tag,
                                 AlarmKind.DEVIATION, order, limit=d.limit, deadband=d.deadband,
                                 on_delay_s=s.on_delay_s, off_delay_s=s.off_delay_s, reference=d.reference,
                                 ref_station=d.reference_station, ref_tag=d.reference_tag))
            order += 1
        for i, r in enumerate(s.rate):
            found = signal(r.station, r.tag, f"rate[{i}].tag")
            if found is None:
                continue
            points.append(_Point(f"{r.station}:{r.tag}:{AlarmKind.RATE.value}", r.station, r.tag, AlarmKind.RATE,
                                 order, limit=r.limit_per_s, deadband=0.1 * r.limit_per_s,
                                 on_delay_s=s.on_delay_s, off_delay_s=s.off_delay_s, window_s=r.window_s))
            order += 1
        rules: list[_Rule] = []
        for i, rule in enumerate(s.suppress):
            found = signal(rule.station, rule.tag, f"suppress[{i}].when.tag")
            value = rule.value
            if found is not None and found.states:
                value = self._state_values(found, value, f"suppress[{i}].when.value", errors)
            rules.append(_Rule(rule, rule.op, value))
        if errors:
            raise ConfigError(errors)  # nothing changed: the board runs on as configured before

        self.settings = s
        self.log = deque(self.log, maxlen=s.history_max)
        self._points = points
        self._rules = rules
        self._suppression_seen = None
        self._version += 1
        wanted = {p.alarm_id for p in points}
        for aid in [a for a, al in self.alarms.items() if al.configured and a not in wanted]:
            del self.alarms[aid]
            self._shelved.pop(aid, None)
        for p in points:
            a = self.alarms.get(p.alarm_id)
            psig = iolists[p.station].by_tag[p.tag]
            prio = s.tags.get(f"{p.station}:{p.tag}", TagAlarmSettings()).priority.get(p.kind) or s.priorities[p.kind]
            for d in s.deviation:
                if p.kind is AlarmKind.DEVIATION and (d.station, d.tag) == (p.station, p.tag):
                    prio = d.priority
            for r in s.rate:
                if p.kind is AlarmKind.RATE and (r.station, r.tag) == (p.station, p.tag):
                    prio = r.priority
            message = self._message(psig, p)
            if a is None:
                a = Alarm(p.alarm_id, p.station, message, prio, AlarmState.NORMAL, 0.0, "alarm")
                self.alarms[p.alarm_id] = a
            a.message, a.priority, a.configured = message, prio, True
            a.tag, a.kind, a.limit = p.tag, p.kind, (p.limit if p.kind is not AlarmKind.DIGITAL else None)
            a.area = self._area_for(p.station, p.tag)
            ts = s.tags.get(f"{p.station}:{p.tag}", TagAlarmSettings())
            a.latching = ts.latching if ts.latching is not None else self._matches(p.alarm_id, s.latching)
        self._columns = tuple(f"{st}:{sig.tag}" for st, iol in iolists.items() for sig in iol.signals)
        col_of = {k: i for i, k in enumerate(self._columns)}
        vector = [p for p in points if p.kind in _VECTOR_KINDS]
        if len(vector) < self.vector_min_points:
            vector = []  # a few points: numpy's per-call cost outweighs the loop
        self._vector = _VectorPoints(vector, col_of)
        self._vector.in_alarm[:] = [self.alarms[p.alarm_id].in_alarm for p in vector]
        taken = {p.alarm_id for p in vector}
        self._scalar_points = [p for p in points if p.alarm_id not in taken]

    @staticmethod
    def _state_values(sig: Signal, value: Any, where: str, errors: list[str]) -> Any:
        states = sig.states or []

        def one(v: Any) -> Any:
            if isinstance(v, str):
                if v not in states:
                    errors.append(f"alarms.{where}: {v!r} is not a state of {sig.tag} ({', '.join(states)})")
                    return -1
                return states.index(v)
            return v

        return [one(v) for v in value] if isinstance(value, list) else one(value)

    @staticmethod
    def _message(sig: Signal, p: _Point) -> str:
        text = _KIND_TEXT[p.kind]
        if p.kind in (AlarmKind.H, AlarmKind.HH, AlarmKind.L, AlarmKind.LL):
            return f"{sig.tag} {text}: {sig.description} (limit {p.limit:g} {sig.units})".rstrip()
        if p.kind is AlarmKind.DEVIATION:
            ref = f"{p.reference:g}" if p.reference is not None else p.ref_tag
            return f"{sig.tag} {text}: {sig.description} (more than {p.limit:g} {sig.units} from {ref})"
        if p.kind is AlarmKind.RATE:
            return f"{sig.tag} {text}: {sig.description} (faster than {p.limit:g} {sig.units}/s)"
        if p.kind is AlarmKind.BAD:
            return f"{sig.tag} {text}: {sig.bad_means or sig.description}"
        return f"{sig.tag} {text}: {sig.description}"

    @staticmethod
    def _matches(alarm_id: str, patterns: tuple[str, ...]) -> bool:
        return _matches(alarm_id, patterns)

    def _area_for(self, station: str, tag: str) -> str:
        """An area pattern is a station name (all of it) or ``station:TAGPATTERN``."""
        key = f"{station}:{tag}" if tag else station
        for area, patterns in self.settings.areas.items():
            for pat in patterns:
                if pat == station or (tag and fnmatchcase(key, pat)):
                    return area
        return station or "site"

    # -- events ------------------------------------------------------------------------
    def _event(
        self,
        a: Alarm,
        now: float,
        wall: float,
        user: str = "",
        extra: dict[str, Any] | None = None,
        prev: AlarmState | None = None,
    ) -> Event:
        payload: dict[str, Any] = {
            "id": a.id,
            "state": a.state.value,
            "priority": int(a.priority),
            "message": a.message,
            "from": None if prev is None else prev.value,
            "condition": a.in_alarm,
            "area": a.area,
        }
        if a.tag:
            payload["tag"] = a.tag
            payload["kind"] = a.kind.value
        if a.value is not None:
            payload["value"] = round(a.value, 6)
        if a.limit is not None:
            payload["limit"] = a.limit
        if extra:
            payload.update(extra)
        ev = Event(EventKind.ALARM, now, wall, a.station, a.source or "alarm", user, "", payload)
        self.log.append(ev)
        return ev

    def _settle(self, a: Alarm) -> None:
        """Drop an ad-hoc alarm that is back to normal with nothing holding it."""
        if (not a.configured and a.state is AlarmState.NORMAL and not a.in_alarm and not a.hidden
                and self.alarms.get(a.id) is a):
            del self.alarms[a.id]
            self._version += 1

    # -- condition -----------------------------------------------------------------
    def _set_condition(self, a: Alarm, active: bool, now: float, wall: float,
                       extra: dict[str, Any] | None = None) -> list[Event]:
        if a.in_alarm == active:
            return []
        a.in_alarm = active
        slot = self._vector.slot_of.get(a.id)
        if slot is not None:
            self._vector.in_alarm[slot] = active  # the arrays mirror the condition of configured alarms
        prev = a.state
        if active:
            a.raised_at = now
        if a.hidden:
            # Tracked and journaled, not annunciated.
            out = [self._event(a, now, wall, extra=extra, prev=prev)]
            self._settle(a)
            return out
        post: list[Event] = []
        more = dict(extra or {})
        if active:
            a.flow = AlarmState.UNACK
            a.latched_acked = False
            a.acked_by = ""
            more.update(self._first_out_mark(a))
        elif a.flow is AlarmState.UNACK:
            a.flow = AlarmState.LATCHED if a.latching else AlarmState.RTN_UNACK
            a.latched_acked = False
        elif a.flow is AlarmState.ACKED:
            a.flow = AlarmState.LATCHED if a.latching else AlarmState.NORMAL
            a.latched_acked = a.latching
        a.state = a._display()
        out = [self._event(a, now, wall, extra=more, prev=prev)]
        if active:
            post = self._count_annunciation(a, now, wall)
        self._settle(a)
        return out + post

    def _reveal(self, a: Alarm, now: float, wall: float, user: str, extra: dict[str, Any]) -> list[Event]:
        """Recompute the state after a hiding flag changed; a newly visible condition annunciates."""
        prev = a.state
        post: list[Event] = []
        if not a.hidden:
            if a.in_alarm:
                a.flow = AlarmState.UNACK
                a.latched_acked = False
                a.acked_by = ""
                extra = {**extra, **self._first_out_mark(a)}
            else:
                a.flow = AlarmState.NORMAL
        a.state = a._display()
        out = [self._event(a, now, wall, user, extra, prev)]
        if not a.hidden and a.in_alarm:
            post = self._count_annunciation(a, now, wall)
        self._settle(a)
        return out + post

    def _hide(self, a: Alarm) -> AlarmState:
        """Take the alarm out of the annunciation flow; returns the state before."""
        prev = a.state
        a.flow = AlarmState.NORMAL
        a.latched_acked = False
        a.state = a._display()
        return prev

    # -- the engine's API (unchanged) ---------------------------------------------------
    def raise_(
        self,
        alarm_id: str,
        message: str,
        priority: Priority,
        now: float,
        wall: float,
        station: str = "",
        source: str = "",
    ) -> list[Event]:
        return self._raise(alarm_id, message, priority, now, wall, station, source)

    def _raise(
        self,
        alarm_id: str,
        message: str,
        priority: Priority,
        now: float,
        wall: float,
        station: str = "",
        source: str = "",
        extra: dict[str, Any] | None = None,
    ) -> list[Event]:
        a = self.alarms.get(alarm_id)
        if a is not None and a.in_alarm:
            return []
        if a is None:
            a = Alarm(alarm_id, station, message, priority, AlarmState.NORMAL, now, source)
            a.area = self._area_for(station, "")
            a.latching = self._matches(alarm_id, self.settings.latching)
            self.alarms[alarm_id] = a
            self._version += 1
            rule = self._suppressing_rule(alarm_id)
            if rule:
                a.suppressed_by = rule
                a.state = a._display()
        elif not a.configured:
            # a new occurrence of an ad-hoc alarm may carry a new text
            a.message, a.priority = message, priority
            a.station, a.source = station or a.station, source or a.source
        return self._set_condition(a, True, now, wall, extra)

    def clear(self, alarm_id: str, now: float, wall: float) -> list[Event]:
        return self._clear(alarm_id, now, wall)

    def _clear(self, alarm_id: str, now: float, wall: float, extra: dict[str, Any] | None = None) -> list[Event]:
        a = self.alarms.get(alarm_id)
        if a is None or not a.in_alarm:
            return []
        return self._set_condition(a, False, now, wall, extra)

    def ack(self, alarm_id: str, user: str, now: float, wall: float) -> list[Event]:
        a = self.alarms.get(alarm_id)
        if a is None or a.hidden:
            return []
        prev = a.state
        if a.flow is AlarmState.UNACK:
            a.flow = AlarmState.ACKED
        elif a.flow is AlarmState.RTN_UNACK:
            a.flow = AlarmState.NORMAL
        elif a.flow is AlarmState.LATCHED and not a.latched_acked:
            a.latched_acked = True  # acknowledged; stays latched until reset
        else:
            return []
        a.acked_by = user
        a.state = a._display()
        out = [self._event(a, now, wall, user, {"acked": True}, prev)]
        self._settle(a)
        return out

    def active(self) -> list[Alarm]:
        """The alarm list: annunciated alarms, highest priority first, newest first."""
        return sorted(
            (a for a in self.alarms.values() if a.state in ANNUNCIATED),
            key=lambda a: (a.priority, -a.raised_at),
        )

    def is_active(self, alarm_id: str) -> bool:
        """True while the alarm's condition is present (shelved or not)."""
        a = self.alarms.get(alarm_id)
        return a is not None and a.in_alarm

    # -- operator actions ---------------------------------------------------------------
    def ack_all(self, user: str, now: float, wall: float, area: str | None = None) -> list[Event]:
        out: list[Event] = []
        for a in list(self.alarms.values()):
            if area is None or a.area == area:
                out.extend(self.ack(a.id, user, now, wall))
        return out

    def reset(self, alarm_id: str, user: str, now: float, wall: float) -> AlarmOutcome:
        """Reset a latched alarm whose condition has cleared (it also acknowledges)."""
        a = self.alarms.get(alarm_id)
        if a is None:
            return AlarmOutcome(False, f"unknown alarm {alarm_id!r}")
        if a.state is not AlarmState.LATCHED:
            return AlarmOutcome(False, f"{alarm_id} is {a.state.value}, not latched")
        prev = a.state
        a.flow = AlarmState.NORMAL
        a.latched_acked = False
        a.acked_by = a.acked_by or user
        a.state = a._display()
        events = [self._event(a, now, wall, user, {"reset": True}, prev)]
        self._settle(a)
        return AlarmOutcome(True, f"{alarm_id} reset", events)

    def shelve(
        self,
        alarm_id: str,
        user: str,
        roles: Iterable[str],
        duration_s: float,
        reason: str,
        now: float,
        wall: float,
    ) -> AlarmOutcome:
        s = self.settings
        a = self.alarms.get(alarm_id)
        if a is None:
            return AlarmOutcome(False, f"unknown alarm {alarm_id!r}")
        if not set(roles) & s.shelve_roles:
            return AlarmOutcome(False, f"{user} may not shelve alarms (role; needs one of {', '.join(sorted(s.shelve_roles))})")
        if not reason.strip():
            return AlarmOutcome(False, "shelving needs a reason")
        if not 0 < duration_s <= s.shelve_max_s:
            return AlarmOutcome(False, f"shelve duration must be within 0..{s.shelve_max_s:.0f} s")
        if a.out_of_service:
            return AlarmOutcome(False, f"{alarm_id} is out of service")
        if a.priority is Priority.CRITICAL and not s.shelve_critical:
            return AlarmOutcome(False, f"{alarm_id} is a critical alarm and may not be shelved")
        prev = self._hide(a)
        a.shelved_until = now + duration_s
        self._shelved[a.id] = None
        a.shelved_by, a.shelve_reason = user, reason
        a.state = a._display()
        ev = self._event(a, now, wall, user, {"reason": reason, "until": a.shelved_until, "duration_s": duration_s}, prev)
        return AlarmOutcome(True, f"{alarm_id} shelved for {duration_s:.0f} s", [ev])

    def unshelve(self, alarm_id: str, user: str, now: float, wall: float, how: str = "unshelved") -> AlarmOutcome:
        a = self.alarms.get(alarm_id)
        if a is None or a.shelved_until is None:
            return AlarmOutcome(False, f"{alarm_id} is not shelved")
        a.shelved_until = None
        self._shelved.pop(a.id, None)
        a.shelved_by = a.shelve_reason = ""
        return AlarmOutcome(True, f"{alarm_id} {how}", self._reveal(a, now, wall, user, {"how": how}))

    def set_out_of_service(
        self, alarm_id: str, user: str, roles: Iterable[str], reason: str, now: float, wall: float
    ) -> AlarmOutcome:
        s = self.settings
        a = self.alarms.get(alarm_id)
        if a is None:
            return AlarmOutcome(False, f"unknown alarm {alarm_id!r}")
        if not set(roles) & s.oos_roles:
            return AlarmOutcome(False, f"{user} may not take alarms out of service (role; needs one of "
                                       f"{', '.join(sorted(s.oos_roles))})")
        if not reason.strip():
            return AlarmOutcome(False, "out of service needs a reason (the work order)")
        if a.out_of_service:
            return AlarmOutcome(False, f"{alarm_id} is already out of service")
        prev = self._hide(a)
        a.shelved_until = None  # out of service overrides a shelve
        self._shelved.pop(a.id, None)
        a.out_of_service, a.oos_by, a.oos_reason = True, user, reason
        a.state = a._display()
        ev = self._event(a, now, wall, user, {"reason": reason}, prev)
        return AlarmOutcome(True, f"{alarm_id} out of service", [ev])

    def return_to_service(self, alarm_id: str, user: str, roles: Iterable[str], now: float, wall: float) -> AlarmOutcome:
        a = self.alarms.get(alarm_id)
        if a is None or not a.out_of_service:
            return AlarmOutcome(False, f"{alarm_id} is not out of service")
        if not set(roles) & self.settings.oos_roles:
            return AlarmOutcome(False, f"{user} may not return alarms to service (role)")
        a.out_of_service = False
        a.oos_by = a.oos_reason = ""
        return AlarmOutcome(True, f"{alarm_id} returned to service",
                            self._reveal(a, now, wall, user, {"how": "returned to service"}))

    # -- views ----------------------------------------------------------------------------
    def get(self, alarm_id: str) -> Alarm | None:
        return self.alarms.get(alarm_id)

    def shelved(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.state is AlarmState.SHELVED]

    def suppressed(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.state is AlarmState.SUPPRESSED]

    def out_of_service(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.state is AlarmState.OUT_OF_SERVICE]

    # -- first-out --------------------------------------------------------------------------
    def _first_out_mark(self, a: Alarm) -> dict[str, Any]:
        groups = [g for g, pats in self.settings.first_out_groups.items()
                  if g not in self.first_out and self._matches(a.id, pats)]
        for g in groups:
            self.first_out[g] = a.id
        if groups:
            a.first_out_of = groups[0]
            return {"first_out": groups[0] if len(groups) == 1 else groups}
        return {}

    def _first_out_housekeeping(self) -> None:
        """A group's first-out resets once every alarm of the group is back to NORMAL."""
        for g in list(self.first_out):
            if not any(a.flow is not AlarmState.NORMAL or (a.in_alarm and not a.hidden) for a in self._members_of(g)):
                del self.first_out[g]

    @property
    def columns_order(self) -> tuple[str, ...]:
        """``station:TAG`` of every I/O-list signal: the rows ``evaluate(columns=...)`` expects."""
        return self._columns

    def _members_of(self, group: str) -> list[Alarm]:
        """The alarms a first-out group's patterns match (cached until an alarm comes or goes)."""
        hit = self._group_members.get(group)
        if hit is None or hit[0] != self._version:
            pats = self.settings.first_out_groups.get(group, ())
            hit = (self._version, [a for a in self.alarms.values() if self._matches(a.id, pats)])
            self._group_members[group] = hit
        return hit[1]

    def reset_first_out(self, group: str) -> None:
        self.first_out.pop(group, None)

    # -- flood ------------------------------------------------------------------------------
    def _count_annunciation(self, a: Alarm, now: float, wall: float) -> list[Event]:
        if a.id.startswith("flood:"):
            return []
        q = self._annunciations.setdefault(a.area, deque())
        q.append(now)
        return self._flood_check(a.area, now, wall)

    def alarm_rate(self, area: str, now: float) -> AlarmRate:
        """Annunciations in the flood window ending now, and the same as per 10 min and per hour."""
        s = self.settings
        q = self._annunciations.get(area, deque())
        while q and q[0] <= now - s.flood_window_s:
            q.popleft()
        n = len(q)
        return AlarmRate(area, n, s.flood_window_s, n * 600.0 / s.flood_window_s, n * 3600.0 / s.flood_window_s,
                         area in self._flooding)

    def _flood_check(self, area: str, now: float, wall: float) -> list[Event]:
        s = self.settings
        rate = self.alarm_rate(area, now)
        aid = f"flood:{area}"
        figure = {"area": area, "alarms_in_window": rate.count, "window_s": s.flood_window_s,
                  "rate_per_10min": round(rate.per_10min, 2), "rate_per_hour": round(rate.per_hour, 1)}
        if area not in self._flooding and rate.count > s.flood_threshold:
            self._flooding[area] = now
            station = area if any(a.station == area for a in self.alarms.values()) else ""
            return self._raise(aid, f"Alarm flood in {area}: {rate.count} alarms in {s.flood_window_s / 60:.0f} min",
                               Priority.HIGH, now, wall, station, "alarms", figure)
        if area in self._flooding and rate.count <= s.flood_end:
            began = self._flooding.pop(area)
            return self._clear(aid, now, wall, {**figure, "flood_s": round(now - began, 1)})
        return []

    def flooding(self) -> dict[str, float]:
        """Areas in flood, with the plant time each flood began."""
        return dict(self._flooding)

    # -- suppression by design --------------------------------------------------------------
    def _suppressing_rule(self, alarm_id: str) -> str:
        for r in self._rules:
            if (r.active or r.released_at is not None) and self._matches(alarm_id, r.spec.alarms):
                return r.spec.name
        return ""

    def _apply_suppression(self, view: Mapping[str, Mapping[str, Reading]], now: float, wall: float) -> list[Event]:
        for r in self._rules:
            holds = r.holds(view.get(r.spec.station, {}).get(r.spec.tag))
            if holds:
                r.active, r.released_at = True, None
            elif r.active:
                r.active = False
                r.released_at = now if r.spec.release_delay_s > 0 else None
            if r.released_at is not None and now - r.released_at >= r.spec.release_delay_s - 1e-9:
                r.released_at = None
        out: list[Event] = []
        # Which alarm a rule holds depends only on which rules are in force; an alarm raised
        # since the last pass took its rule when it was raised (_raise). So the pass over
        # every alarm is needed only when a rule came into or out of force.
        seen = tuple(r.active or r.released_at is not None for r in self._rules)
        if seen == self._suppression_seen:
            return out
        self._suppression_seen = seen
        for a in list(self.alarms.values()):
            rule = self._suppressing_rule(a.id)
            if rule == a.suppressed_by:
                continue
            if rule and not a.suppressed_by:
                prev = self._hide(a) if not a.hidden else a.state
                a.suppressed_by = rule
                a.state = a._display()
                out.append(self._event(a, now, wall, "", {"rule": rule}, prev))
            elif not rule:
                old = a.suppressed_by
                a.suppressed_by = ""
                out.extend(self._reveal(a, now, wall, "", {"rule": old, "how": "suppression ended"}))
            else:
                a.suppressed_by = rule
        return out

    # -- the scan ---------------------------------------------------------------------------
    def expire(self, now: float, wall: float) -> list[Event]:
        """End the shelves whose time is up."""
        out: list[Event] = []
        if not self._shelved:
            return out
        due = [aid for aid in self._shelved
               if (a := self.alarms.get(aid)) is not None and a.shelved_until is not None and now >= a.shelved_until]
        if len(due) > 1:
            order = {aid: i for i, aid in enumerate(self.alarms)}
            due.sort(key=order.__getitem__)  # board order, as a pass over every alarm would give
        for aid in due:
            out.extend(self.unshelve(aid, "", now, wall, how="shelve expired").events)
        return out

    def evaluate(
        self,
        snapshot_by_station: Mapping[str, Mapping[str, Reading]],
        now: float,
        wall: float,
        columns: Columns | None = None,
    ) -> list[Event]:
        """One scan of the configured alarms: shelve expiry, suppression by design,
        limits/digital/deviation/rate/BAD with deadband and delays, flood end,
        first-out housekeeping. Returns the ALARM events to journal, in order.

        ``columns``: the same snapshot as arrays, one row per I/O-list signal in the order of
        ``columns_order`` (the engine passes them; without them they are built from the mapping)."""
        out = self.expire(now, wall)
        out.extend(self._apply_suppression(snapshot_by_station, now, wall))
        changes: list[tuple[float, int, _Point, bool, float | None]] = []
        vec = self._vector
        if vec.points:
            if columns is None or len(columns.keys) != len(self._columns):
                columns = columns_of(_FlatView(snapshot_by_station), self._columns)
            for slot in vec.evaluate(columns, now).tolist():
                p = vec.points[slot]
                seen = snapshot_by_station[p.station][p.tag]
                changes.append((seen.t, p.order, p, not vec.in_alarm[slot], p.value_of(seen)))
        views: dict[str, Mapping[str, Reading]] = {}
        for p in self._scalar_points:
            a = self.alarms.get(p.alarm_id)
            view = views.get(p.station)
            if view is None:
                view = views[p.station] = snapshot_by_station.get(p.station, {})
            r = view.get(p.tag)
            if a is None or r is None:
                continue
            raw = p.condition(r, a.in_alarm, snapshot_by_station)
            if raw is None:
                p.cond_since = p.clear_since = None
                continue
            want = a.in_alarm
            if raw:
                p.clear_since = None
                if p.cond_since is None:
                    p.cond_since = now
                if not a.in_alarm and now - p.cond_since >= p.on_delay_s - 1e-9:
                    want = True
            else:
                p.cond_since = None
                if a.in_alarm:
                    if p.clear_since is None:
                        p.clear_since = now
                    if now - p.clear_since >= p.off_delay_s - 1e-9:
                        want = False
                else:
                    p.clear_since = None
            if want != a.in_alarm:
                changes.append((r.t, p.order, p, want, p.value_of(r)))
        # Several alarms in one scan: the earlier sample annunciates first (first-out).
        changes.sort(key=lambda c: (c[0], c[1]))
        for _, _, p, want, value in changes:
            a = self.alarms[p.alarm_id]
            a.value = value
            out.extend(self._set_condition(a, want, now, wall))
        for area in list(self._flooding):
            out.extend(self._flood_check(area, now, wall))
        self._first_out_housekeeping()
        return out

    # -- KPIs ----------------------------------------------------------------------------------
    def kpis(self, wall: float, since_wall: float | None = None) -> AlarmKPIs:
        """Alarm KPIs over the board's own recent history (see ``alarm_kpis``)."""
        s = self.settings
        t0 = since_wall if since_wall is not None else (self.log[0].t_wall if self.log else wall)
        return alarm_kpis(self.log, t0, wall, chatter_count=s.chatter_count, chatter_window_s=s.chatter_window_s,
                          stale_after_s=s.stale_after_s)


# ---------------------------------------------------------------------------------------------
# KPIs (ISA-18.2 section 16 / EEMUA 191 figures), from ALARM events: board or journal alike


@dataclass(frozen=True)
class AlarmKPIs:
    t0: float
    t1: float
    annunciations: int
    per_hour: float
    peak_per_10min: int
    top_ten: list[tuple[str, int]]
    chattering: list[tuple[str, int]]  # id, most activations inside one chatter window
    stale: list[tuple[str, float]]  # id, seconds standing at t1
    floods: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "t0": self.t0, "t1": self.t1, "annunciations": self.annunciations,
            "per_hour": round(self.per_hour, 2), "peak_per_10min": self.peak_per_10min,
            "top_ten": [{"id": i, "count": n} for i, n in self.top_ten],
            "chattering": [{"id": i, "activations": n} for i, n in self.chattering],
            "stale": [{"id": i, "standing_s": round(s, 1)} for i, s in self.stale],
            "floods": self.floods,
        }


_ACTIVE_STATES = frozenset({AlarmState.UNACK.value, AlarmState.ACKED.value})


def is_annunciation(ev: Event) -> bool:
    """An ALARM event that puts an alarm in front of the operator anew (-> unacknowledged)."""
    p = ev.payload
    return ev.kind is EventKind.ALARM and p.get("state") == AlarmState.UNACK.value and p.get("from") != AlarmState.UNACK.value


def alarm_kpis(
    events: Iterable[Event],
    t0: float,
    t1: float,
    *,
    chatter_count: int = 3,
    chatter_window_s: float = 60.0,
    stale_after_s: float = 24 * 3600.0,
) -> AlarmKPIs:
    """KPIs over ALARM events with ``t0 <= t_wall <= t1``.

    Alarms per hour and the peak per 10 minutes count annunciations (flood alarms
    excluded); chattering: an alarm annunciated ``chatter_count`` times or more
    within ``chatter_window_s``; stale: annunciated and still standing (condition
    present, not hidden) for more than ``stale_after_s`` at ``t1``, replaying every
    event up to ``t1`` (so give the events from before ``t0`` too for stale ones)."""
    times: dict[str, list[float]] = {}
    standing: dict[str, float] = {}
    all_times: list[float] = []
    floods = 0
    for ev in events:
        if ev.kind is not EventKind.ALARM or ev.t_wall > t1:
            continue
        p = ev.payload
        aid = str(p.get("id", ""))
        state = p.get("state")
        if state in _ACTIVE_STATES and p.get("condition", True):
            standing.setdefault(aid, ev.t_wall)
        else:
            standing.pop(aid, None)
        if ev.t_wall < t0 or not is_annunciation(ev):
            continue
        if aid.startswith("flood:"):
            floods += 1
            continue
        times.setdefault(aid, []).append(ev.t_wall)
        all_times.append(ev.t_wall)
    hours = max(t1 - t0, 1e-9) / 3600.0
    counts = Counter({aid: len(ts) for aid, ts in times.items()})
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    chatter: list[tuple[str, int]] = []
    for aid, ts in times.items():
        best, j = 0, 0
        for i in range(len(ts)):
            while ts[i] - ts[j] > chatter_window_s:
                j += 1
            best = max(best, i - j + 1)
        if best >= chatter_count:
            chatter.append((aid, best))
    chatter.sort(key=lambda kv: (-kv[1], kv[0]))
    peak, j = 0, 0
    all_times.sort()
    for i in range(len(all_times)):
        while all_times[i] - all_times[j] >= 600.0:
            j += 1
        peak = max(peak, i - j + 1)
    stale = sorted(((aid, t1 - since) for aid, since in standing.items()
                    if t1 - since > stale_after_s and not aid.startswith("flood:")), key=lambda kv: -kv[1])
    return AlarmKPIs(t0, t1, len(all_times), len(all_times) / hours, peak, top, chatter, stale, floods)


class _FlatView(Mapping[str, Reading]):
    """A by-station view read as one mapping keyed ``station:TAG`` (to build columns)."""

    def __init__(self, view: Mapping[str, Mapping[str, Reading]]) -> None:
        self._view = view

    def __getitem__(self, key: str) -> Reading:
        st, _, tag = key.partition(":")
        return self._view[st][tag]

    def get(self, key: str, default: Any = None) -> Any:
        st, _, tag = key.partition(":")
        inner = self._view.get(st)
        return default if inner is None else inner.get(tag, default)

    def __iter__(self) -> Iterator[str]:
        return (f"{st}:{tag}" for st, inner in self._view.items() for tag in inner)

    def __len__(self) -> int:
        return sum(len(inner) for inner in self._view.values())


class StationViews(Mapping[str, Mapping[str, Reading]]):
    """An engine snapshot (plain tags for one station, ``station:TAG`` for several) seen by
    station without copying it: what ``snapshot_view`` returns, built lazily."""

    def __init__(self, snapshot: Mapping[str, Reading], stations: Sequence[str]) -> None:
        self._snapshot = snapshot
        self._stations = tuple(stations)
        self._single = len(self._stations) == 1

    def __getitem__(self, station: str) -> Mapping[str, Reading]:
        if station not in self._stations:
            raise KeyError(station)
        return self._snapshot if self._single else _Prefixed(self._snapshot, station)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stations)

    def __len__(self) -> int:
        return len(self._stations)


class _Prefixed(Mapping[str, Reading]):
    def __init__(self, snapshot: Mapping[str, Reading], station: str) -> None:
        self._snapshot = snapshot
        self._prefix = station + ":"

    def __getitem__(self, tag: str) -> Reading:
        return self._snapshot[self._prefix + tag]

    def get(self, tag: str, default: Any = None) -> Any:
        return self._snapshot.get(self._prefix + tag, default)

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return (k[n:] for k in self._snapshot if k.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def snapshot_view(snapshot: Mapping[str, Reading], stations: Sequence[str]) -> dict[str, dict[str, Reading]]:
    """Split an engine snapshot (plain tags for one station, ``station:TAG`` for several) by station."""
    if len(stations) == 1:
        as_dict = getattr(snapshot, "as_dict", None)
        return {stations[0]: as_dict() if as_dict is not None else dict(snapshot)}
    out: dict[str, dict[str, Reading]] = {s: {} for s in stations}
    for key, r in snapshot.items():
        st, _, tag = key.partition(":")
        if st in out:
            out[st][tag] = r
    return out
