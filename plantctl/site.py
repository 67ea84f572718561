"""The site file: one file naming everything a controller runs.

Stations with their PLC endpoint and protocol, their I/O lists, the
cause-and-effect matrix, the procedures to load, the users file, the journal
and the historian. Loading is all-or-nothing: the file is checked by pydantic
for shape, then every cross-reference is checked (interlock members and effect
commands exist in that station's I/O list with the right kind, vote sizes fit,
procedure ids are known when a catalogue is given), and every problem comes back
as ``file:line: field: message`` before anything runs. Paths in a site file are
relative to the file itself.

Two cross-checks keep the matrix honest about what its I/O lists say:

- a command effect's value must be one the driver will write: true/false for a bool
  output, a number inside the range for an analog one, a state name (or index) for an
  enum. A string such as ``"false"`` on a bool output would pass a loose check and then
  make the driver refuse the write at the moment of the trip;
- a member whose signal the I/O list declares ``bad_counts_as: unsafe`` must count
  against the plant when it is BAD. ``degraded: drop`` or ``reduce`` makes a BAD member
  not count toward the trip, so it needs an explicit ``degraded_reason`` (why this
  group favours availability, e.g. plant-reference 3.7 FAULT_VOTES_TRIP = false), which
  is kept in ``Site.degraded_reasons`` for the journal and the documentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .interlocks import Condition, Effect, Interlock, Op
from .iolist import BadCountsAs, CommandType, IOList, Kind, Signal, load_io_list
from .voting import DegradedMode
from .yamlio import LineDict, LineList, line_of, load_yaml


class _Modbus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: Literal["modbus"]
    host: str = "127.0.0.1"
    port: int = 502
    unit_id: int | None = None
    timeout_s: float = Field(0.5, gt=0)
    period_ms: int = Field(100, ge=10)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    # Scan classes (docs/site-files.md): class name -> poll period in ms, each class polled on
    # its own; ``default`` is the class of every signal no rule names (period_ms when absent).
    scan_classes: dict[str, int] | None = None
    # Tag prefix -> class, first match wins (absent: detectors, ESD limit switches, fire and
    # flow switches are ``fast``: plantctl.fieldbus.modbus.DEFAULT_SCAN_RULES).
    scan_rules: dict[str, str] | None = None

    @model_validator(mode="after")
    def _classes(self) -> _Modbus:
        classes = self.scan_classes or {}
        for name, ms in classes.items():
            if not 1 <= ms <= 60_000:
                raise ValueError(f"scan_classes.{name}: {ms} ms is outside 1..60000")
        if "default" in classes and "period_ms" in self.model_fields_set and classes["default"] != self.period_ms:
            raise ValueError(f"period_ms {self.period_ms} and scan_classes.default {classes['default']} disagree: "
                             "give the default period once")
        for prefix, name in (self.scan_rules or {}).items():
            if name != "default" and name not in classes:
                raise ValueError(f"scan_rules.{prefix}: class {name!r} is not in scan_classes "
                                 f"({', '.join(sorted(classes)) or 'none given'})")
        return self


class _OpcUa(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: Literal["opcua"]
    url: str
    user: str = "plantctl"
    password_env: str = "PLANTCTL_OPCUA_PASSWORD"
    cert_dir: str = "pki"
    server_cert: str | None = None
    security: Literal["Basic256Sha256_SignAndEncrypt", "None"] = "Basic256Sha256_SignAndEncrypt"
    publishing_interval_ms: int = Field(100, ge=10)
    timeout_s: float = Field(2.0, gt=0)


class _Loopback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: Literal["loopback"]
    period_ms: int = Field(100, ge=10)


class _Station(BaseModel):
    model_config = ConfigDict(extra="forbid")
    io_list: str
    plc: _Modbus | _OpcUa | _Loopback = Field(discriminator="protocol")


class _Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str
    op: Op = Op.GE
    value: float | bool | str  # a state name for enum signals
    deadband: float = Field(0.0, ge=0)


class _Effect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str | None = None
    value: float | bool | str | None = None
    procedure: str | None = None


class _Interlock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    station: str
    description: str
    vote: str = "1oo1"
    degraded: DegradedMode = DegradedMode.VOTE_TRIP
    # Why drop/reduce is right although a member is declared bad_counts_as: unsafe.
    degraded_reason: str | None = None
    members: list[_Member] = Field(min_length=1)
    on_delay_s: float = Field(0.0, ge=0)
    off_delay_s: float = Field(0.0, ge=0)
    trip_group: str = ""
    latch: bool = True
    priority: int = Field(1, ge=1, le=4)
    effects: list[_Effect] = []
    armed_when: list[_Member] = []


class _Engine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scan_period_ms: int = Field(100, ge=10, le=10_000)
    stale_after_s: float = Field(3.0, gt=0)
    two_person: bool = True
    bypass_max_h: float = Field(8.0, gt=0)
    override_max_h: float = Field(1.0, gt=0)


class _Historian(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    path: str = "history.db"
    url: str | None = None
    org: str | None = None
    bucket: str | None = None
    token_env: str | None = None
    spool: str | None = None
    retention_days: float = Field(90.0, gt=0)
    spool_max_points: int = Field(20_000_000, gt=0)
    spool_overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    period_s: float = Field(1.0, gt=0)  # one sample of every signal per period


class _Site(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    title: str = ""
    journal: str = "journal.db"
    users: str | None = None
    historian: _Historian = _Historian()
    engine: _Engine = _Engine()
    stations: dict[str, _Station] = Field(min_length=1)
    procedures: list[str] = []
    interlocks: list[_Interlock] = []
    alarms: dict[str, Any] = {}  # docs/alarms.md: areas, suppression by design, deviation, rate, flood
    hmi: dict[str, Any] = {}


@dataclass
class PlcEndpoint:
    protocol: str
    options: dict[str, Any]


@dataclass
class StationConfig:
    name: str
    iolist: IOList
    plc: PlcEndpoint


@dataclass
class Site:
    path: Path
    name: str
    title: str
    stations: dict[str, StationConfig]
    interlocks: list[Interlock]
    procedures: list[str]
    journal_path: Path
    users_path: Path | None
    historian: dict[str, Any]
    scan_period_s: float
    stale_after_s: float
    two_person: bool
    bypass_max_s: float
    override_max_s: float
    hmi: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, Any] = field(default_factory=dict)
    # interlock id -> the degraded_reason the site file gives for drop/reduce (to journal)
    degraded_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def iolists(self) -> dict[str, IOList]:
        return {n: s.iolist for n, s in self.stations.items()}


_VOTE = re.compile(r"^(\d+)oo(\d+)$")


def _show(value: float | bool | str) -> str:
    """A value as the site file wrote it: a string quoted, YAML's ``4`` (a float here) as 4."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _effect_value_problem(sig: Signal, value: float | bool | str) -> str | None:
    """Why ``value`` cannot be written to the command output ``sig``, or None when it can.
    The same rules the drivers apply at write time, checked at load time instead: a trip
    must never meet a value its driver refuses."""
    if sig.type is CommandType.ENUM:
        if isinstance(value, str):
            return None if sig.states and value in sig.states else f"{value} is not a state of {sig.tag}"
        n = len(sig.states or [])
        if isinstance(value, bool) or not float(value).is_integer() or not 0 <= value < n:
            return f"{_show(value)} is neither a state name nor a state index 0..{n - 1} of {sig.tag}"
        return None
    if sig.type is CommandType.BOOL:
        if not isinstance(value, bool):
            return f"{sig.tag} is a bool command output: its value is true or false (unquoted), not {_show(value)}"
        return None
    if isinstance(value, str | bool):  # analog
        return f"{sig.tag} is an analog command output: its value is a number, not {_show(value)}"
    if sig.range is not None and not sig.range[0] <= value <= sig.range[1]:
        return f"{_show(value)} is outside the range {list(sig.range)} of {sig.tag}"
    return None


def looks_like_site(path: str | Path) -> bool:
    """A site file has a top-level ``site:`` key (an I/O list has ``station:``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("site:"):
                    return True
                if line.startswith("station:"):
                    return False
    except OSError:
        return False
    return False


def load_site(path: str | Path, known_procedures: set[str] | None = None) -> Site:
    p = Path(path)
    doc = load_yaml(p)
    if not isinstance(doc, LineDict):
        raise ConfigError(f"{p}:1: file: expected a mapping with 'site' and 'stations'")
    try:
        spec = _Site.model_validate(dict(doc))
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc: list[str | int] = [x for x in err["loc"] if not (isinstance(x, str) and x in ("modbus", "opcua", "loopback"))]
            msgs.append(f"{p}:{line_of(doc, loc)}: {'.'.join(map(str, loc))}: {err['msg']}")
        raise ConfigError(msgs) from None

    base = p.parent
    errors: list[str] = []

    def rel(s: str) -> Path:
        q = Path(s)
        return q if q.is_absolute() else (base / q)

    stations: dict[str, StationConfig] = {}
    for name, st in spec.stations.items():
        sline = line_of(doc, ["stations", name, "io_list"])
        try:
            iol = load_io_list(rel(st.io_list))
        except ConfigError as exc:
            errors.append(f"{p}:{sline}: stations.{name}.io_list: invalid I/O list {st.io_list}")
            errors.extend(exc.messages)
            continue
        if iol.station != name:
            errors.append(f"{p}:{sline}: stations.{name}.io_list: {st.io_list} describes station {iol.station!r}, not {name!r}")
        opts = st.plc.model_dump()
        proto = opts.pop("protocol")
        for key in ("cert_dir", "server_cert", "tls_cert", "tls_key", "tls_ca"):
            if opts.get(key):
                opts[key] = str(rel(opts[key]))
        stations[name] = StationConfig(name, iol, PlcEndpoint(proto, opts))

    interlocks: list[Interlock] = []
    degraded_reasons: dict[str, str] = {}
    seen: dict[str, int] = {}
    raw_ils = doc.get("interlocks", LineList())
    for i, il in enumerate(spec.interlocks):
        where: list[str | int] = ["interlocks", i]
        iline = line_of(doc, where)
        if il.id in seen:
            errors.append(f"{p}:{iline}: interlocks[{i}].id: duplicate interlock id {il.id} (first on line {seen[il.id]})")
            continue
        seen[il.id] = iline
        m_vote = _VOTE.match(il.vote)
        if m_vote is None:
            errors.append(f"{p}:{line_of(doc, where + ['vote'])}: interlocks[{i}].vote: {il.vote!r} is not MooN (e.g. 2oo3)")
            continue
        m, n = int(m_vote.group(1)), int(m_vote.group(2))
        if n != len(il.members) or not 1 <= m <= n:
            errors.append(
                f"{p}:{line_of(doc, where + ['vote'])}: interlocks[{i}].vote: {il.vote} does not fit {len(il.members)} member(s)"
            )
        station = stations.get(il.station)
        if station is None:
            if il.station not in spec.stations:
                errors.append(f"{p}:{line_of(doc, where + ['station'])}: interlocks[{i}].station: unknown station {il.station!r}")
            continue
        by_tag = station.iolist.by_tag
        conds: dict[str, list[Condition]] = {"members": [], "armed_when": []}
        for part, items in (("members", il.members), ("armed_when", il.armed_when)):
            for j, mem in enumerate(items):
                mline = line_of(doc, where + [part, j])
                sig = by_tag.get(mem.tag)
                if sig is None:
                    errors.append(f"{p}:{mline}: interlocks[{i}].{part}[{j}].tag: {mem.tag} is not in {il.station}'s I/O list")
                    continue
                if sig.kind is Kind.COMMAND_OUT:
                    errors.append(f"{p}:{mline}: interlocks[{i}].{part}[{j}].tag: {mem.tag} is a command output, not an input")
                    continue
                value: Any = mem.value
                if isinstance(value, str):
                    if not sig.states or value not in sig.states:
                        errors.append(f"{p}:{mline}: interlocks[{i}].{part}[{j}].value: {value!r} is not a state of {mem.tag}")
                        continue
                    value = sig.states.index(value)
                conds[part].append(Condition(mem.tag, mem.op, value, mem.deadband))
        # A BAD member of a signal declared unsafe must count against the plant: drop/reduce
        # (a BAD member does not count toward the trip) only with a written justification.
        reason = (il.degraded_reason or "").strip()
        rline = line_of(doc, where + ["degraded_reason"])
        if il.degraded is DegradedMode.VOTE_TRIP:
            if il.degraded_reason is not None:
                errors.append(f"{p}:{rline}: interlocks[{i}].degraded_reason: only drop or reduce needs a "
                              "justification (vote_trip already counts a BAD member as a trip vote)")
        else:
            unsafe = [mem.tag for mem in il.members
                      if (s := by_tag.get(mem.tag)) is not None and s.bad_counts_as is BadCountsAs.UNSAFE]
            if unsafe and not reason:
                dline = line_of(doc, where + ["degraded"])
                errors.append(
                    f"{p}:{dline}: interlocks[{i}].degraded: {il.degraded.value} makes a BAD member not count "
                    f"toward the trip, but {', '.join(unsafe)} {'is' if len(unsafe) == 1 else 'are'} declared "
                    f"bad_counts_as: unsafe in {il.station}'s I/O list: use vote_trip, or justify the mode "
                    "with degraded_reason: \"<why>\""
                )
            elif il.degraded_reason is not None and not reason:
                errors.append(f"{p}:{rline}: interlocks[{i}].degraded_reason: an empty justification")
        for j, eff in enumerate(il.effects):
            eline = line_of(doc, where + ["effects", j])
            if (eff.command is None) == (eff.procedure is None):
                errors.append(f"{p}:{eline}: interlocks[{i}].effects[{j}]: give either command (with value) or procedure")
                continue
            if eff.command is not None:
                sig = by_tag.get(eff.command)
                if sig is None or sig.kind is not Kind.COMMAND_OUT:
                    errors.append(f"{p}:{eline}: interlocks[{i}].effects[{j}].command: {eff.command} is not a command output of {il.station}")
                elif eff.value is None:
                    errors.append(f"{p}:{eline}: interlocks[{i}].effects[{j}].value: a command effect needs a value")
                elif (problem := _effect_value_problem(sig, eff.value)) is not None:
                    errors.append(f"{p}:{eline}: interlocks[{i}].effects[{j}].value: {problem}")
            elif known_procedures is not None and eff.procedure not in known_procedures:
                errors.append(f"{p}:{eline}: interlocks[{i}].effects[{j}].procedure: unknown procedure {eff.procedure}")
        if errors:
            continue
        effects = []
        for eff in il.effects:
            value = eff.value
            if eff.command is not None:
                sig = by_tag[eff.command]
                if sig.type is CommandType.ENUM and isinstance(value, str) and sig.states:
                    value = sig.states.index(value)
                elif sig.type is CommandType.ENUM and isinstance(value, float):
                    value = int(value)  # YAML's 2 arrives as 2.0: the drivers write an enum index as int
            effects.append(Effect(eff.command, value, eff.procedure))
        if reason and il.degraded is not DegradedMode.VOTE_TRIP:
            degraded_reasons[il.id] = reason
        interlocks.append(
            Interlock(
                id=il.id,
                station=il.station,
                description=il.description,
                members=tuple(conds["members"]),
                armed_when=tuple(conds["armed_when"]),
                m=m,
                degraded=il.degraded,
                on_delay_s=il.on_delay_s,
                off_delay_s=il.off_delay_s,
                trip_group=il.trip_group,
                effects=tuple(effects),
                latch=il.latch,
                priority=il.priority,
                line=iline,
            )
        )
    del raw_ils
    if known_procedures is not None:
        for k, proc in enumerate(spec.procedures):
            if proc not in known_procedures:
                errors.append(f"{p}:{line_of(doc, ['procedures', k])}: procedures[{k}]: unknown procedure {proc}")
    if not errors and spec.alarms:
        from .alarms import AlarmBoard

        try:
            AlarmBoard().configure({n: st.iolist for n, st in stations.items()}, dict(spec.alarms))
        except ConfigError as exc:
            aline = line_of(doc, ["alarms"])
            errors.extend(f"{p}:{aline}: {m}" for m in exc.messages)
    if errors:
        raise ConfigError(errors)
    return Site(
        path=p,
        name=spec.site,
        title=spec.title,
        stations=stations,
        interlocks=interlocks,
        procedures=list(spec.procedures),
        journal_path=rel(spec.journal),
        users_path=rel(spec.users) if spec.users else None,
        historian={**spec.historian.model_dump(), "path": str(rel(spec.historian.path))},
        scan_period_s=spec.engine.scan_period_ms / 1000.0,
        stale_after_s=spec.engine.stale_after_s,
        two_person=spec.engine.two_person,
        bypass_max_s=spec.engine.bypass_max_h * 3600.0,
        override_max_s=spec.engine.override_max_h * 3600.0,
        hmi=dict(spec.hmi),
        alarms=dict(spec.alarms),
        degraded_reasons=degraded_reasons,
    )
