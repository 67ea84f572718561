"""I/O lists: every field signal of a station, loaded and validated once.

Theory of operation
-------------------
An I/O list (``io/<station>.yaml``, format in docs/io-lists.md) is the single
description of a station's signals that both the controller and the simulator
read, so register maps and tag tables cannot drift apart.

Loading runs in two passes and fails closed:
1. shape: each signal is checked by a pydantic model (types, required fields,
   known kinds, tables and units);
2. meaning: cross-checks no schema can express (duplicate tags, an address
   used twice or outside its table's block, a table that does not fit the
   kind, alarm limits out of order or outside the range, feedback naming a
   tag that does not exist, a heartbeat naming a tag that is not a PLC input).
Every problem found is collected, each as ``file:line: TAG: message``, and the
load raises one ``ConfigError`` holding all of them: nothing half-loaded is
ever returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .errors import ConfigError
from .yamlio import LineDict, LineList, line_of, load_yaml


class Kind(StrEnum):
    ANALOG_IN = "analog_in"
    DIGITAL_IN = "digital_in"
    STATE_ENUM = "state_enum"
    COMMAND_OUT = "command_out"


class CommandType(StrEnum):
    BOOL = "bool"
    ENUM = "enum"
    ANALOG = "analog"


class ModbusTable(StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    INPUT_REGISTER = "input_register"
    HOLDING_REGISTER = "holding_register"


class BadCountsAs(StrEnum):
    UNSAFE = "unsafe"
    NOT_CONFIRMED = "not_confirmed"
    ALARM_ONLY = "alarm_only"


# Modicon numbering: the first digit names the table.
TABLE_BLOCK: dict[ModbusTable, tuple[int, int]] = {
    ModbusTable.COIL: (1, 9999),
    ModbusTable.DISCRETE_INPUT: (10001, 19999),
    ModbusTable.INPUT_REGISTER: (30001, 39999),
    ModbusTable.HOLDING_REGISTER: (40001, 49999),
}

KNOWN_UNITS = frozenset(
    ["MPa", "kPa", "bar", "degC", "%LEL", "vol%", "kg/s", "m3/h", "MW", "rpm", "kV", "V", "A",
     "m", "%", "L/h", "L", "s", "min", "h", ""]
)

ALARM_ORDER = ("LL", "L", "H", "HH")


class _ModbusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: ModbusTable
    address: int


class _SignalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str
    description: str
    kind: Kind
    type: CommandType | None = None
    units: str = ""
    range: tuple[float, float] | None = None
    raw: tuple[int, int] | None = None
    fault_raw: tuple[int, int] | None = None
    modbus: _ModbusSpec
    opcua: str | None = None
    normal: Any = None
    alarms: dict[Literal["LL", "L", "H", "HH"], float] = {}
    states: list[str] | None = None
    true_means: str | None = None
    alarm_on: bool | None = None
    bad_counts_as: BadCountsAs | None = None
    bad_means: str | None = None
    feedback: dict[str, Any] | None = None
    safe_value: Any = None
    source: Literal["plc", "external", "manual"] = "plc"

    @field_validator("units")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        if v not in KNOWN_UNITS:
            raise ValueError(f"unknown unit {v!r} (known: {', '.join(sorted(u for u in KNOWN_UNITS if u))})")
        return v


class _HeartbeatSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str
    max_age_s: float

    @field_validator("max_age_s")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"must be a positive number of seconds, not {v}")
        return v


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str
    title: str = ""
    modbus: dict[str, int] = {"unit_id": 1}
    opcua: dict[str, str] = {}
    constants: dict[str, float] = {}
    heartbeat: _HeartbeatSpec | None = None
    signals: list[dict[str, Any]]


@dataclass(frozen=True)
class Signal:
    tag: str
    description: str
    kind: Kind
    type: CommandType | None
    units: str
    range: tuple[float, float] | None
    raw: tuple[int, int] | None
    fault_raw: tuple[int, int] | None
    table: ModbusTable
    address: int
    offset: int
    opcua_node: str
    states: list[str] | None
    alarms: dict[str, float]
    normal: Any
    bad_counts_as: BadCountsAs
    bad_means: str
    feedback: dict[str, Any] | None
    safe_value: Any
    true_means: str | None
    alarm_on: bool | None
    source: str
    line: int

    @property
    def is_bit(self) -> bool:
        return self.table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT)

    @property
    def is_analog(self) -> bool:
        return self.kind == Kind.ANALOG_IN or self.type == CommandType.ANALOG

    @property
    def is_enum(self) -> bool:
        return self.kind == Kind.STATE_ENUM or self.type == CommandType.ENUM

    def to_raw(self, value: float | int | bool) -> int:
        """Engineering value to the register/bit value (clamped to 16 bits).

        NaN and +/-Inf have no register value: ValueError naming the tag (clamping
        +Inf to 65535 or NaN to anything would invent a measurement; readers judge a
        non-finite value BAD before they scale it, see fieldbus.base.reading_from_value)."""
        if self.is_bit:
            return 1 if value else 0
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.tag}: {value!r} has no raw value")
        if self.is_enum:
            return max(0, min(65535, int(value)))
        assert self.range is not None and self.raw is not None
        (e_lo, e_hi), (r_lo, r_hi) = self.range, self.raw
        raw = r_lo + (float(value) - e_lo) * (r_hi - r_lo) / (e_hi - e_lo)
        return max(0, min(65535, int(round(raw))))

    def from_raw(self, raw: int) -> float | int | bool:
        if self.is_bit:
            return bool(raw)
        if self.is_enum:
            return int(raw)
        assert self.range is not None and self.raw is not None
        (e_lo, e_hi), (r_lo, r_hi) = self.range, self.raw
        return e_lo + (raw - r_lo) * (e_hi - e_lo) / (r_hi - r_lo)

    def raw_faulted(self, raw: int) -> bool:
        """True when a raw reading lies outside the live-zero band (open loop, sensor fault)."""
        if self.fault_raw is None:
            return False
        return raw < self.fault_raw[0] or raw > self.fault_raw[1]

    def state_name(self, index: int) -> str:
        if self.states and 0 <= index < len(self.states):
            return self.states[index]
        return f"?{index}"


@dataclass(frozen=True)
class Heartbeat:
    """The PLC's I/O heartbeat: an input the PLC program changes every second (a counter).
    plantctl.heartbeat says how it is supervised: a value that has not changed for
    ``max_age_s`` means the PLC's data source froze behind a live comms module."""

    tag: str
    max_age_s: float
    line: int


@dataclass
class IOList:
    path: Path
    station: str
    title: str
    unit_id: int
    namespace_uri: str
    constants: dict[str, float]
    signals: list[Signal]
    heartbeat: Heartbeat | None = None
    by_tag: dict[str, Signal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_tag = {s.tag: s for s in self.signals}

    def of_kind(self, *kinds: Kind) -> list[Signal]:
        return [s for s in self.signals if s.kind in kinds]


def _fmt(path: Path, line: int, who: str, msg: str) -> str:
    return f"{path}:{line}: {who}: {msg}"


def load_io_list(path: str | Path) -> IOList:
    """Load and fully validate one I/O list; raise ConfigError listing every problem."""
    p = Path(path)
    doc = load_yaml(p)
    errors: list[str] = []
    if not isinstance(doc, LineDict):
        raise ConfigError(_fmt(p, 1, "file", "expected a mapping with 'station' and 'signals'"))
    try:
        spec = _FileSpec.model_validate(dict(doc))
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(x) if not isinstance(x, int) else x for x in err["loc"]]
            errors.append(_fmt(p, line_of(doc, loc), ".".join(map(str, loc)) or "file", err["msg"]))
        raise ConfigError(errors) from None

    raw_signals = doc["signals"]
    station_prefix = spec.station.split("_")[0].upper()
    signals: list[Signal] = []
    seen_tags: dict[str, Signal] = {}
    seen_addr: dict[tuple[ModbusTable, int], Signal] = {}

    for i, raw in enumerate(raw_signals):
        sline = raw_signals.item_lines[i] if isinstance(raw_signals, LineList) else 0
        tag = raw.get("tag", f"signals[{i}]") if isinstance(raw, dict) else f"signals[{i}]"

        def where(key: str, raw: Any = raw, sline: int = sline) -> int:
            if isinstance(raw, LineDict):
                return raw.key_lines.get(key, sline)
            return sline

        if not isinstance(raw, dict):
            errors.append(_fmt(p, sline, tag, "a signal must be a mapping"))
            continue
        try:
            s = _SignalSpec.model_validate(dict(raw))
        except ValidationError as exc:
            for err in exc.errors():
                loc = [x for x in err["loc"]]
                field_name = str(loc[0]) if loc else "signal"
                line = line_of(raw, [str(x) if not isinstance(x, int) else x for x in loc]) or sline
                errors.append(_fmt(p, line, tag, f"{'.'.join(map(str, loc))}: {err['msg']}"))
                del field_name
            continue

        problems: list[tuple[str, str]] = []  # (key, message)
        # kind <-> table
        allowed: dict[Kind, tuple[ModbusTable, ...]] = {
            Kind.ANALOG_IN: (ModbusTable.INPUT_REGISTER,),
            Kind.DIGITAL_IN: (ModbusTable.DISCRETE_INPUT,),
            Kind.STATE_ENUM: (ModbusTable.INPUT_REGISTER,),
            Kind.COMMAND_OUT: (ModbusTable.COIL, ModbusTable.HOLDING_REGISTER),
        }
        if s.modbus.table not in allowed[s.kind]:
            problems.append(("modbus", f"table {s.modbus.table.value} does not fit kind {s.kind.value}"))
        lo, hi = TABLE_BLOCK[s.modbus.table]
        if not lo <= s.modbus.address <= hi:
            problems.append(
                ("modbus", f"address {s.modbus.address:05d} is outside the {s.modbus.table.value} block {lo:05d}-{hi:05d}")
            )
        # command type
        if s.kind == Kind.COMMAND_OUT:
            if s.type is None:
                problems.append(("type", "command_out needs type: bool, enum or analog"))
            elif s.type == CommandType.BOOL and s.modbus.table != ModbusTable.COIL:
                problems.append(("modbus", "a bool command is a coil"))
            elif s.type in (CommandType.ENUM, CommandType.ANALOG) and s.modbus.table != ModbusTable.HOLDING_REGISTER:
                problems.append(("modbus", f"an {s.type.value} command is a holding register"))
        elif s.type is not None:
            problems.append(("type", "type is only for command_out"))
        analog = s.kind == Kind.ANALOG_IN or s.type == CommandType.ANALOG
        enum = s.kind == Kind.STATE_ENUM or s.type == CommandType.ENUM
        if analog:
            if s.range is None:
                problems.append(("range", "an analog signal needs range: [lo, hi]"))
            elif not s.range[0] < s.range[1]:
                problems.append(("range", f"range {list(s.range)} is not increasing"))
            if s.raw is None:
                problems.append(("raw", "an analog signal needs raw: [lo, hi]"))
            elif not (0 <= s.raw[0] < s.raw[1] <= 65535):
                problems.append(("raw", f"raw {list(s.raw)} must be increasing within 0..65535"))
            if s.fault_raw is not None and not (0 <= s.fault_raw[0] < s.fault_raw[1] <= 65535):
                problems.append(("fault_raw", f"fault_raw {list(s.fault_raw)} must be increasing within 0..65535"))
        if enum and not s.states:
            problems.append(("states", "an enum needs states: [...]"))
        if s.kind != Kind.COMMAND_OUT:
            if s.bad_counts_as is None:
                problems.append(("bad_counts_as", "say what a BAD value means: unsafe, not_confirmed or alarm_only"))
            if not s.bad_means:
                problems.append(("bad_means", "say in a sentence what a BAD value means for safety"))
        # alarms: ordered, and inside the range
        present = [(k, s.alarms[k]) for k in ALARM_ORDER if k in s.alarms]
        for (k1, v1), (k2, v2) in zip(present, present[1:], strict=False):  # noqa: B905
            if not v1 < v2:
                problems.append(("alarms", f"limits out of order: {k1} {v1} must be below {k2} {v2}"))
        if s.alarms and s.range is not None:
            for k, v in present:
                if not s.range[0] <= v <= s.range[1]:
                    problems.append(("alarms", f"{k} {v} lies outside the range {list(s.range)}"))
        if s.alarms and not analog:
            problems.append(("alarms", "analog alarm limits on a non-analog signal"))

        for key, msg in problems:
            errors.append(_fmt(p, where(key), s.tag, f"{key}: {msg}"))

        # duplicates
        if s.tag in seen_tags:
            errors.append(_fmt(p, where("tag"), s.tag, f"duplicate tag (first defined on line {seen_tags[s.tag].line})"))
            continue
        addr_key = (s.modbus.table, s.modbus.address)
        if addr_key in seen_addr:
            errors.append(_fmt(p, where("modbus"), s.tag, f"address {s.modbus.address:05d} already used by {seen_addr[addr_key].tag}"))
        sig = Signal(
            tag=s.tag,
            description=s.description,
            kind=s.kind,
            type=s.type,
            units=s.units,
            range=s.range,
            raw=s.raw,
            fault_raw=s.fault_raw,
            table=s.modbus.table,
            address=s.modbus.address,
            offset=s.modbus.address - TABLE_BLOCK[s.modbus.table][0],
            opcua_node=s.opcua or f"{station_prefix}.{s.tag}",
            states=s.states,
            alarms={str(k): v for k, v in s.alarms.items()},
            normal=s.normal,
            bad_counts_as=s.bad_counts_as or BadCountsAs.UNSAFE,
            bad_means=s.bad_means or "",
            feedback=s.feedback,
            safe_value=s.safe_value,
            true_means=s.true_means,
            alarm_on=s.alarm_on,
            source=s.source,
            line=sline,
        )
        seen_tags[s.tag] = sig
        seen_addr.setdefault(addr_key, sig)
        if not problems:  # a signal with problems is known by name (no cascade) but never returned
            signals.append(sig)

    # feedback names existing tags
    for sig in seen_tags.values():
        if not sig.feedback:
            continue
        raw = raw_signals[[x.get("tag") if isinstance(x, dict) else None for x in raw_signals].index(sig.tag)]
        fline = raw.key_lines.get("feedback", sig.line) if isinstance(raw, LineDict) else sig.line
        for fk, v in sig.feedback.items():
            if fk == "within_s":
                if not isinstance(v, int | float) or v <= 0:
                    errors.append(_fmt(p, fline, sig.tag, "feedback.within_s must be a positive number of seconds"))
                continue
            if not isinstance(v, dict) or "tag" not in v:
                errors.append(_fmt(p, fline, sig.tag, f"feedback.{fk} must be {{tag: ..., value: ...}}"))
                continue
            if not isinstance(v["tag"], str):  # a list or a mapping cannot even be looked up
                errors.append(_fmt(p, fline, sig.tag, f"feedback.{fk}.tag must be a tag name, not {v['tag']!r}"))
            elif v["tag"] not in seen_tags:
                errors.append(_fmt(p, fline, sig.tag, f"feedback.{fk} names unknown tag {v['tag']}"))
            w = v.get("within_s")
            if w is not None and (not isinstance(w, int | float) or w <= 0):
                errors.append(_fmt(p, fline, sig.tag, f"feedback.{fk}.within_s must be a positive number of seconds"))
        if "within_s" not in sig.feedback:
            errors.append(_fmt(p, fline, sig.tag, "feedback needs within_s (the verification deadline)"))

    # heartbeat: a PLC input, because its whole point is that the PLC program changes it; an
    # external or manual signal, or a command the controller writes itself, proves nothing
    heartbeat: Heartbeat | None = None
    if spec.heartbeat is not None:
        hb = spec.heartbeat
        hline = line_of(doc, ["heartbeat", "tag"])
        hsig = seen_tags.get(hb.tag)
        if hsig is None:
            errors.append(_fmt(p, hline, "heartbeat", f"tag: names unknown tag {hb.tag}"))
        elif hsig.kind == Kind.COMMAND_OUT:
            errors.append(_fmt(p, hline, "heartbeat", f"tag: {hb.tag} is a command_out, not an input the PLC changes"))
        elif hsig.source != "plc":
            errors.append(_fmt(p, hline, "heartbeat", f"tag: {hb.tag} has source {hsig.source}; a heartbeat comes from the PLC"))
        heartbeat = Heartbeat(hb.tag, hb.max_age_s, line_of(doc, ["heartbeat"]))

    if errors:
        raise ConfigError(errors)
    return IOList(
        path=p,
        station=spec.station,
        title=spec.title,
        unit_id=int(spec.modbus.get("unit_id", 1)),
        namespace_uri=spec.opcua.get("namespace_uri", f"urn:plantctl:{spec.station}"),
        constants=dict(spec.constants),
        signals=signals,
        heartbeat=heartbeat,
    )
