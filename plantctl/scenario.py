"""Scenarios: a procedure proven against the simulator, in virtual time or over the wire.

Theory of operation
-------------------
A scenario file (YAML, format in docs/scenarios.md) names the site, the initial
plant state, timed actions (fault injections and clears, an operator starting a
procedure or sending a manual command), scripted operator answers and the
expectations. ``prepare`` loads and cross-checks it against the site, the
procedure catalogue and the simulator's fault catalogue, so every mistake comes
back as ``file:line: field: message`` before anything runs.

Three drivers run the same prepared scenario, and share two parts:

* ``Checker`` turns what a run shows (journal events and tag readings, each
  with its plant time) into a verdict per expectation: a tag condition within a
  deadline, at a time or throughout a window; a procedure reaching a step or an
  end state; an event or alarm that must (or must never) occur, or occur a given
  number of times; an order of events. Events are judged by their own time
  stamps, and a deadline is only judged once ``settle_s`` has passed after it,
  so a driver whose events arrive late (the journal writes on its own thread)
  cannot fail an expectation that was in fact met in time.
* ``Script`` plays the timed actions and the operator: it injects what falls
  due and answers open tasks after their scripted delay.

``ScenarioRunner`` ticks a ``VirtualRig`` over sim_plc's in-process plant on a
virtual clock: hours of plant time in seconds. ``WireRunner`` starts the
simulator's Modbus and OPC-UA servers on free ports with a ``ScaledClock`` and a
real ``Controller`` whose drivers speak the protocol, and checks the same
expectations from the controller's journaled events and tag table.
``plantctl.drill`` uses the Checker against a controller run by people.

Results are deterministic functions of the scenario file and the code (the
models are seeded), so ``run_scenario`` keeps each plain result for the rest of
the process: the pytest items of scenarios/ and the coverage test share one run.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .clock import Clock, VirtualClock
from .engine import Action, Actor, Outcome, Request, Role
from .errors import ConfigError, PlantctlError
from .interlocks import Interlock
from .journal import Event, EventKind
from .paths import sites_dir
from .procedure_cli import load_definitions
from .procedures import TERMINALS, ProcedureDef, Run
from .rig import VirtualRig
from .site import Site, load_site
from .tags import Quality, Reading
from .voting import DegradedMode
from .yamlio import LineDict, line_of, load_yaml

_DUR = re.compile(r"^\s*([0-9.]+)\s*(ms|s|sec|min|m|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0, "m": 60.0, "h": 3600.0}


@functools.lru_cache(maxsize=4096)  # called for every expectation on every scan
def seconds(v: float | int | str) -> float:
    """``90``, ``"90 s"``, ``"1.5 min"``, ``"8 h"`` -> seconds."""
    if isinstance(v, int | float):
        return float(v)
    m = _DUR.match(str(v))
    if m is None:
        raise ValueError(f"not a duration: {v!r} (use e.g. 90 s, 2 min, 8 h)")
    return float(m.group(1)) * _UNIT[m.group(2)]


Dur = float | int | str
ReadFn = Callable[[str, str], Reading | None]  # (station, tag) -> latest reading


# =====================================================================================================
# the file format
# =====================================================================================================
class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str
    fault: str
    params: dict[str, Any] = {}


class _Start(BaseModel):
    model_config = ConfigDict(extra="forbid")
    procedure: str
    reason: str = "started by the operator"
    by: str = "olga"


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str
    tag: str
    value: float | bool | str  # a state name for enum commands
    by: str = "olga"
    role: Role = Role.OPERATOR


class _Timed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Dur
    inject: _Fault | None = None
    clear: _Fault | None = None
    start: _Start | None = None  # the operator starts a procedure
    command: _Command | None = None  # the operator's manual command (through the engine's checks)
    note: str = ""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    procedure: str
    task: str
    answer: str = "done"
    by: str = "olga"
    role: Role = Role.OPERATOR
    after: Dur = 10
    values: dict[str, Any] = {}
    read: list[str] = []  # tags whose live values go into the answer (a log): {tag: value}
    times: int = 1  # recurring tasks: answer this many rounds (0 = every round)
    refused: bool = False  # the controller must refuse this answer (role, missing values)
    confirmed_by: str = ""  # a two-person task: the second person who confirms the answer
    confirmer_role: Role = Role.OPERATOR


class _Confirm(BaseModel):
    """A person confirms a step locally (a field check stands in for a BAD or missing signal)."""

    model_config = ConfigDict(extra="forbid")
    procedure: str
    step: str
    after: Dur = 10  # in the step this long first
    by: str = "olga"
    role: Role = Role.OPERATOR
    refused: bool = False  # the controller must refuse it (the instruments read and say no)


class _Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # a tag condition
    tag: str | None = None
    station: str | None = None
    op: str | None = None
    value: float | bool | str | None = None
    throughout: bool = False  # the condition holds at every scan of the window
    # a procedure
    procedure: str | None = None
    reaches: str | None = None
    # events and alarms
    event: EventKind | None = None
    never: EventKind | None = None
    count: int | None = None  # with event: exactly this many in the window
    apart: Dur | None = None  # with event: every two matching events at least this far apart
    where: dict[str, Any] = {}
    alarm: str | None = None
    order: list[dict[str, Any]] | None = None
    # timing
    within: Dur | None = None
    at: Dur | None = None
    after: Dur | None = None
    says: str = ""  # the expectation in words, for the report


class _Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    proves: str
    site: str = ""
    stations: list[str] = []
    procedures: list[str] | None = None
    duration: Dur
    scan_period: Dur = 0.1
    seed: int = 0
    degraded_override: dict[str, DegradedMode] = {}  # interlock id -> degraded-voting mode for this run
    initial: list[_Fault] = []
    events: list[_Timed] = []
    answers: list[_Answer] = []
    confirms: list[_Confirm] = []
    expect: list[_Expect] = Field(min_length=1)
    record: list[str] = []  # tags to sample for the report ("station:TAG")
    covers: list[str] = []  # step ids this scenario is meant to exercise (for coverage)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


@dataclass
class Expectation:
    spec: _Expect
    text: str
    line: int
    passed: bool | None = None  # None: still open
    seen: str = ""
    t: float | None = None
    _order_idx: int = 0
    _count: int = 0
    _last: tuple[float, str] | None = None  # apart: the previous matching event

    def close(self, ok: bool, seen: str, t: float | None) -> None:
        if self.passed is None:
            self.passed, self.seen, self.t = ok, seen, t


@dataclass
class ScenarioResult:
    name: str
    path: Path
    proves: str
    passed: bool
    expectations: list[Expectation]
    duration_s: float
    events: list[Event]
    samples: dict[str, list[tuple[float, float]]]
    steps_visited: set[tuple[str, str]] = field(default_factory=set)
    wall_s: float = 0.0
    states: dict[str, list[str]] = field(default_factory=dict)  # enum tag -> state names (report labels)
    t0: float = 0.0  # plant time of the scenario's start (event times are shown relative to it)

    def failures(self) -> list[str]:
        return [f"{self.path}:{e.line}: {e.text}: {e.seen}" for e in self.expectations if not e.passed]


def load_scenario(path: str | Path) -> tuple[_Scenario, LineDict]:
    p = Path(path)
    doc = load_yaml(p)
    if not isinstance(doc, LineDict):
        raise ConfigError(f"{p}:1: file: a scenario is a mapping (name, proves, duration, expect)")
    try:
        sc = _Scenario.model_validate(dict(doc))
    except ValidationError as exc:
        raise ConfigError(
            [f"{p}:{line_of(doc, list(err['loc']))}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()]
        ) from None
    problems: list[str] = []
    for k, t in enumerate(sc.events):
        try:
            seconds(t.at)
        except ValueError as exc:
            problems.append(f"{p}:{line_of(doc, ['events', k, 'at'])}: events[{k}].at: {exc}")
        if not any((t.inject, t.clear, t.start, t.command)):
            problems.append(f"{p}:{line_of(doc, ['events', k])}: events[{k}]: give inject, clear, start or command")
    for name, v in (("duration", sc.duration), ("scan_period", sc.scan_period)):
        try:
            seconds(v)
        except ValueError as exc:
            problems.append(f"{p}:{line_of(doc, [name])}: {name}: {exc}")
    for k, e in enumerate(sc.expect):
        for part in ("within", "at", "after", "apart"):
            v = getattr(e, part)
            if v is not None:
                try:
                    seconds(v)
                except ValueError as exc:
                    problems.append(f"{p}:{line_of(doc, ['expect', k, part])}: expect[{k}].{part}: {exc}")
        kinds = [x for x in (e.tag, e.procedure, e.event, e.never, e.alarm, e.order) if x]
        if len(kinds) != 1:
            problems.append(f"{p}:{line_of(doc, ['expect', k])}: expect[{k}]: give exactly one of tag, procedure, "
                            "event, never, alarm, order")
        if e.procedure and not e.reaches:
            problems.append(f"{p}:{line_of(doc, ['expect', k])}: expect[{k}].reaches: which step or end state?")
        if e.op is not None and e.op not in _OPS:
            problems.append(f"{p}:{line_of(doc, ['expect', k, 'op'])}: expect[{k}].op: {e.op!r} is not one of "
                            f"{', '.join(_OPS)}")
    if problems:
        raise ConfigError(problems)
    return sc, doc


def describe_expectation(e: _Expect) -> str:
    if e.says:
        return e.says
    when = f" within {e.within}" if e.within is not None else (f" at {e.at}" if e.at is not None else "")
    if e.after is not None:
        when = f" after {e.after}" + when
    if e.tag:
        return f"{e.station + ':' if e.station else ''}{e.tag} {e.op or '=='} {e.value}{' throughout' if e.throughout else ''}{when}"
    if e.procedure:
        return f"{e.procedure} reaches {e.reaches}{when}"
    if e.event:
        w = " ".join(f"{k}={v}" for k, v in e.where.items())
        n = f" exactly {e.count} time(s)" if e.count is not None else ""
        if e.apart is not None:
            return f"events {e.event.value}{(' ' + w) if w else ''} at least {e.apart} apart{when}"
        return f"event {e.event.value}{(' ' + w) if w else ''} occurs{n}{when}"
    if e.never:
        w = " ".join(f"{k}={v}" for k, v in e.where.items())
        return f"event {e.never.value}{(' ' + w) if w else ''} never occurs{when}"
    if e.alarm:
        return f"alarm {e.alarm} raised{when}"
    if e.order:
        return "events in order: " + " -> ".join(_order_text(o) for o in e.order)
    return "?"


def _order_text(o: Mapping[str, Any]) -> str:
    rest = " ".join(f"{k}={v}" for k, v in o.items() if k != "event")
    return f"{o.get('event')}{(' ' + rest) if rest else ''}"


def _matches(ev: Event, kind: EventKind | str | None, where: Mapping[str, Any]) -> bool:
    if kind is not None and ev.kind.value != str(kind):
        return False
    for k, v in where.items():
        got = getattr(ev, k) if k in ("station", "source", "user") else ev.payload.get(k)
        if isinstance(v, str) and isinstance(got, str):
            if not (got == v or re.fullmatch(v, got)):
                return False
        elif isinstance(v, bool):
            if not isinstance(got, bool | int) or bool(got) != v:
                return False
        elif got != v:
            return False
    return True


# =====================================================================================================
# preparing: the file checked against the site, the procedures and the simulator
# =====================================================================================================
@dataclass
class Prepared:
    """A scenario file checked against everything it names, ready for any driver."""

    path: Path
    sc: _Scenario
    doc: LineDict
    site: Site
    defs: dict[str, ProcedureDef]
    stations: list[str]
    proc_ids: list[str]
    interlocks: list[Interlock]
    sim_package: str = "sim_plc"
    missing_steps: dict[int, str] = field(default_factory=dict)  # expect index -> why its step does not exist

    def station_of(self, e_station: str | None) -> str:
        return e_station or self.stations[0]

    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}" if len(self.stations) > 1 else tag

    def states(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for st in self.stations:
            for sig in self.site.stations[st].iolist.signals:
                if sig.states:
                    out[sig.tag] = list(sig.states)
        return out


def _site_path(path: Path, sc: _Scenario) -> Path:
    if not sc.site:
        return sites_dir() / "demo.yaml"
    p = Path(sc.site)
    return p if p.is_absolute() else (path.parent / p).resolve()


def prepare(path: str | Path, *, sim_package: str = "sim_plc", proc_package: str = "sequences",
            mutate: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Prepared:
    """Load a scenario and check every name in it; ConfigError lists each problem as file:line: field: message."""
    p = Path(path)
    sc, doc = load_scenario(p)
    defs: dict[str, Any] = dict(load_definitions(proc_package))
    if mutate is not None:
        defs = mutate(defs)
    site = load_site(_site_path(p, sc), known_procedures=set(defs))
    stations = sc.stations or list(site.stations)
    errors: list[str] = []

    def at(loc: list[str | int]) -> str:
        return f"{p}:{line_of(doc, loc)}"

    for k, name in enumerate(stations):
        if name not in site.stations:
            errors.append(f"{at(['stations', k])}: stations[{k}]: unknown station {name} "
                          f"(the site has {', '.join(site.stations)})")
    stations = [s for s in stations if s in site.stations]
    if sc.procedures is not None:
        proc_ids = list(sc.procedures)
    else:
        proc_ids = [pid for pid in site.procedures if pid in defs and defs[pid].station in stations]
    for k, pid in enumerate(proc_ids):
        if pid not in defs:
            errors.append(f"{at(['procedures', k])}: procedures[{k}]: unknown procedure {pid} "
                          f"(known: {', '.join(sorted(defs))})")
        elif defs[pid].station not in stations:
            errors.append(f"{at(['procedures', k])}: procedures[{k}]: {pid} runs on {defs[pid].station}, "
                          "which this scenario does not simulate")
    loaded = [pid for pid in proc_ids if pid in defs]
    # the simulator's fault catalogue, by name (plantctl never imports sim_plc at import time)
    cat = importlib.import_module(f"{sim_package}.catalogue")
    specs: dict[tuple[str, str], Any] = {(f.station, f.name): f for f in cat.all_faults()}
    checks: list[tuple[list[str | int], str, _Fault, bool]] = []
    for k, f0 in enumerate(sc.initial):
        checks.append((["initial", k], f"initial[{k}]", f0, True))
    for k, t0 in enumerate(sc.events):
        for part, f1 in (("inject", t0.inject), ("clear", t0.clear)):
            if f1 is not None:
                checks.append((["events", k, part], f"events[{k}].{part}", f1, part == "inject"))
    for loc, name, f, inject in checks:
        if f.station not in stations:
            errors.append(f"{at(loc)}: {name}.station: unknown station {f.station} "
                          f"(this scenario simulates {', '.join(stations)})")
            continue
        spec = specs.get((f.station, f.fault))
        if spec is None:
            known = sorted(n for (s, n) in specs if s == f.station)
            errors.append(f"{at(loc)}: {name}.fault: unknown fault {f.fault} (known: {', '.join(known)})")
        elif inject:
            try:
                spec.coerce(dict(f.params))
            except Exception as exc:  # the catalogue's BadFaultParameter names the parameter  # noqa: BLE001
                errors.append(f"{at(loc)}: {name}.params: {exc}")
    for k, t1 in enumerate(sc.events):
        if t1.start is not None and t1.start.procedure not in loaded:
            errors.append(f"{at(['events', k, 'start'])}: events[{k}].start.procedure: unknown procedure "
                          f"{t1.start.procedure} (this scenario loads: {', '.join(loaded) or 'none'})")
        if t1.command is not None:
            c = t1.command
            sig = site.stations[c.station].iolist.by_tag.get(c.tag) if c.station in stations else None
            if c.station not in stations:
                errors.append(f"{at(['events', k, 'command'])}: events[{k}].command.station: unknown station {c.station}")
            elif sig is None or sig.kind.value != "command_out":
                errors.append(f"{at(['events', k, 'command'])}: events[{k}].command.tag: {c.tag} is not a command "
                              f"output of {c.station}")
            elif isinstance(c.value, str) and (not sig.states or c.value not in sig.states):
                errors.append(f"{at(['events', k, 'command'])}: events[{k}].command.value: {c.value} is not a state "
                              f"of {c.tag}")
    for k, a in enumerate(sc.answers):
        d = defs.get(a.procedure)
        if d is None or a.procedure not in loaded:
            errors.append(f"{at(['answers', k])}: answers[{k}].procedure: unknown procedure {a.procedure} "
                          f"(this scenario loads: {', '.join(loaded) or 'none'})")
            continue
        tasks = {s.id for s in d.steps if s.task is not None} | {r.id for r in d.recurring}
        if a.task not in tasks:
            errors.append(f"{at(['answers', k])}: answers[{k}].task: {a.procedure} has no task {a.task} "
                          f"(tasks: {', '.join(sorted(tasks))})")
        for j, tag in enumerate(a.read):
            if tag not in site.stations[d.station].iolist.by_tag:
                errors.append(f"{at(['answers', k, 'read', j])}: answers[{k}].read[{j}]: unknown tag {tag}")
    for k, c1 in enumerate(sc.confirms):
        d = defs.get(c1.procedure)
        if d is None or c1.procedure not in loaded:
            errors.append(f"{at(['confirms', k])}: confirms[{k}].procedure: unknown procedure {c1.procedure} "
                          f"(this scenario loads: {', '.join(loaded) or 'none'})")
        elif c1.step not in {s.id for s in d.steps}:
            errors.append(f"{at(['confirms', k])}: confirms[{k}].step: {c1.procedure} has no step {c1.step}")
    missing_steps: dict[int, str] = {}
    for k, e in enumerate(sc.expect):
        st = e.station or (stations[0] if len(stations) == 1 else None)
        if e.tag:
            if st is None or st not in stations or e.tag not in site.stations[st].iolist.by_tag:
                errors.append(f"{at(['expect', k])}: expect[{k}].tag: unknown tag {e.tag}"
                              f"{'' if st else ' (name its station)'}")
            elif isinstance(e.value, str):
                sig = site.stations[st].iolist.by_tag[e.tag]
                names = [x for x in e.value.split("|")]
                if not sig.states or any(n not in sig.states for n in names):
                    errors.append(f"{at(['expect', k, 'value'])}: expect[{k}].value: {e.value} is not a state of "
                                  f"{e.tag}{' (' + ', '.join(sig.states) + ')' if sig.states else ''}")
        if e.procedure:
            if e.procedure not in defs:
                errors.append(f"{at(['expect', k])}: expect[{k}].procedure: unknown procedure {e.procedure}")
            elif e.reaches and e.reaches not in TERMINALS and e.reaches not in {s.id for s in defs[e.procedure].steps}:
                # Not a load error: a procedure that lost a step must still run, so that every
                # expectation shows what the plant did without it; this one fails, saying so.
                missing_steps[k] = f"{e.procedure} has no step {e.reaches}"
    for j, key in enumerate(sc.record):
        st, _, tag = key.rpartition(":")
        st = st or (stations[0] if stations else "")
        if st not in stations or tag not in site.stations[st].iolist.by_tag:
            errors.append(f"{at(['record', j])}: record[{j}]: unknown tag {key}")
    known_ils = {i.id: i for i in site.interlocks}
    for il_id in sc.degraded_override:
        if il_id not in known_ils:
            errors.append(f"{at(['degraded_override', il_id])}: degraded_override.{il_id}: unknown interlock "
                          f"{il_id} (the site has {', '.join(known_ils)})")
    if errors:
        raise ConfigError(errors)
    interlocks = [replace(i, degraded=sc.degraded_override[i.id]) if i.id in sc.degraded_override else i
                  for i in site.interlocks if i.station in stations]
    return Prepared(p, sc, doc, site, defs, stations, proc_ids, interlocks, sim_package, missing_steps)


# =====================================================================================================
# the verdict
# =====================================================================================================
class Checker:
    """Every expectation of a scenario, fed with events and readings as a run shows them.

    Times are relative to ``t0`` (the plant time the scenario started). ``settle_s``: how long after
    a deadline its verdict waits for late events (0 on the virtual rig)."""

    def __init__(self, prep: Prepared, *, t0: float = 0.0, settle_s: float = 0.0) -> None:
        self.prep = prep
        self.t0 = t0
        self.settle_s = settle_s
        self.expectations = [
            Expectation(e, describe_expectation(e), line_of(prep.doc, ["expect", k]))
            for k, e in enumerate(prep.sc.expect)
        ]
        self.visited: set[tuple[str, str]] = set()
        self.paths: dict[str, list[str]] = {}  # procedure -> states in the order entered (all its runs)
        self.proc_state: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return all(x.passed is not None for x in self.expectations)

    def add_problem(self, line: int, text: str, seen: str, t: float | None) -> None:
        """A failure found outside the expectations (a scripted answer refused)."""
        x = Expectation(_Expect(says=text), text, line)
        x.close(False, seen, t)
        self.expectations.append(x)

    def update(self, events: Iterable[Event], now_abs: float, read: ReadFn) -> None:
        now = now_abs - self.t0
        evs = list(events)
        for ev in evs:
            if ev.kind is EventKind.PROCEDURE_TRANSITION and "to" in ev.payload:
                pid, to = str(ev.payload.get("procedure")), str(ev.payload.get("to"))
                self.visited.add((pid, to))
                if ev.payload.get("from") != to:
                    self.paths.setdefault(pid, []).append(to)
                self.proc_state[pid] = to
        judge = now - self.settle_s
        for x in self.expectations:
            if x.passed is not None:
                continue
            e = x.spec
            start = seconds(e.after) if e.after is not None else 0.0
            deadline = seconds(e.within) if e.within is not None else None
            if e.tag:
                self._tag(x, e, now, start, deadline, read)
            elif e.procedure:
                for ev in evs:
                    t = ev.t_plant - self.t0
                    if (ev.kind is EventKind.PROCEDURE_TRANSITION and ev.payload.get("procedure") == e.procedure
                            and ev.payload.get("to") == e.reaches and t >= start - 1e-9):
                        if deadline is not None and t > deadline + 1e-9:
                            x.close(False, f"reached {e.reaches} only at t = {t:.1f} s, after the deadline", t)
                        else:
                            x.close(True, f"reached {e.reaches} at t = {t:.1f} s", t)
                        break
                if x.passed is None and deadline is not None and judge >= deadline:
                    x.close(False, self._not_reached(e.procedure, e.reaches or "", deadline), deadline)
            elif e.event:
                for ev in evs:
                    t = ev.t_plant - self.t0
                    if t < start - 1e-9 or not _matches(ev, e.event, e.where):
                        continue
                    if e.apart is not None:
                        if deadline is not None and t > deadline + 1e-9:
                            continue
                        x._count += 1
                        if x._last is not None and t - x._last[0] < seconds(e.apart) - 1e-9:
                            x.close(False, f"{x._last[1]} at t = {x._last[0]:.1f} s and {_brief(ev)} at t = {t:.1f} s "
                                    f"are only {t - x._last[0]:.1f} s apart", t)
                            break
                        x._last = (t, _brief(ev))
                        continue
                    if e.count is not None:
                        if deadline is None or t <= deadline + 1e-9:
                            x._count += 1
                        continue
                    if deadline is not None and t > deadline + 1e-9:
                        x.close(False, f"seen only at t = {t:.1f} s, after the deadline", t)
                    else:
                        x.close(True, f"seen at t = {t:.1f} s", t)
                    break
                if x.passed is None and deadline is not None and judge >= deadline:
                    if e.apart is not None:
                        x.close(x._count > 0, f"{x._count} seen, none closer than {e.apart}" if x._count
                                else "none seen", deadline)
                    elif e.count is not None:
                        x.close(x._count == e.count, f"seen {x._count} time(s) by t = {deadline:.1f} s", deadline)
                    else:
                        x.close(False, f"not seen by the deadline (t = {deadline:.1f} s)", deadline)
            elif e.never:
                for ev in evs:
                    t = ev.t_plant - self.t0
                    if t >= start - 1e-9 and (deadline is None or t <= deadline + 1e-9) and _matches(ev, e.never, e.where):
                        x.close(False, f"it happened at t = {t:.1f} s: {_brief(ev)}", t)
                        break
                if x.passed is None and deadline is not None and judge >= deadline:
                    x.close(True, f"not seen up to t = {deadline:.1f} s", deadline)
            elif e.alarm:
                for ev in evs:
                    t = ev.t_plant - self.t0
                    if (ev.kind is EventKind.ALARM and t >= start - 1e-9 and ev.payload.get("condition", True)
                            and re.search(e.alarm, str(ev.payload.get("id", "")))):
                        if deadline is not None and t > deadline + 1e-9:
                            x.close(False, f"raised only at t = {t:.1f} s, after the deadline", t)
                        else:
                            x.close(True, f"raised at t = {t:.1f} s ({ev.payload.get('message')})", t)
                        break
                if x.passed is None and deadline is not None and judge >= deadline:
                    x.close(False, f"not raised by the deadline (t = {deadline:.1f} s)", deadline)
            elif e.order:
                for ev in evs:
                    t = ev.t_plant - self.t0
                    if x._order_idx < len(e.order) and t >= start - 1e-9:
                        o = e.order[x._order_idx]
                        if _matches(ev, o.get("event"), {k: v for k, v in o.items() if k != "event"}):
                            x._order_idx += 1
                            if x._order_idx == len(e.order):
                                x.close(True, f"all {len(e.order)} in order by t = {t:.1f} s", t)
                if x.passed is None and deadline is not None and judge >= deadline:
                    x.close(False, self._order_missing(e.order, x._order_idx, deadline), deadline)

    def _tag(self, x: Expectation, e: _Expect, now: float, start: float, deadline: float | None, read: ReadFn) -> None:
        if now < start - 1e-9:
            return
        st = self.prep.station_of(e.station)
        at = seconds(e.at) if e.at is not None else None
        if at is not None and now + 1e-9 < at:
            return
        ok, seen = self.tag_ok(st, e, read(st, e.tag or ""))
        if e.throughout:
            if not ok:
                x.close(False, f"{seen} at t = {now:.1f} s", now)
            elif deadline is not None and now >= deadline:
                x.close(True, f"held from t = {start:.0f} s to t = {deadline:.0f} s", now)
            return
        if ok:
            x.close(True, f"{seen} at t = {now:.1f} s", now)
        elif at is not None:
            x.close(False, f"{seen} at t = {now:.1f} s", now)
        elif deadline is not None and now >= deadline:
            x.close(False, f"still {seen} at the deadline (t = {now:.1f} s)", now)

    def tag_ok(self, station: str, e: _Expect, r: Reading | None) -> tuple[bool, str]:
        sig = self.prep.site.stations[station].iolist.by_tag[e.tag or ""]
        if r is None:
            return False, f"{e.tag} was not read"
        value = r.value
        shown: Any = sig.state_name(int(value)) if sig.states else value
        if isinstance(shown, float):
            shown = round(shown, 4)
        seen = f"{e.tag} was {shown}{' ' + sig.units if sig.units and not sig.states else ''}"
        if r.quality is Quality.BAD:
            return False, seen + f" (BAD quality{': ' + r.reason.value if r.reason.value else ''})"
        op = e.op or "=="
        want: Any = e.value
        if isinstance(want, str) and sig.states:
            got = sig.state_name(int(value))
            inside = got in want.split("|")
            return (inside if op == "==" else not inside), seen
        if isinstance(want, bool) or isinstance(value, bool):
            return _OPS[op](bool(value), bool(want)), seen
        return _OPS[op](float(value), float(want if want is not None else 0)), seen

    def _not_reached(self, pid: str, step: str, deadline: float) -> str:
        path = self.paths.get(pid)
        if not path:
            return f"{pid} never started (t = {deadline:.1f} s)"
        exists = any(s.id == step for s in self.prep.defs[pid].steps) or step in TERMINALS
        first = path[:12] if not exists else path[-12:]
        shown = " -> ".join(first)
        more = "... -> " if len(path) > 12 and exists else ""
        tail = " -> ..." if len(path) > 12 and not exists else ""
        return (f"{pid} {'never entered' if exists else 'has no step'} {step}; it went {more}{shown}{tail} and was in "
                f"{self.proc_state.get(pid, path[-1])} at the deadline (t = {deadline:.1f} s)")

    @staticmethod
    def _order_missing(order: list[dict[str, Any]], idx: int, t: float) -> str:
        return f"only {idx} of {len(order)} seen in order by t = {t:.1f} s; missing: {_order_text(order[idx])}"

    def finish(self, now_abs: float) -> None:
        now = now_abs - self.t0
        for x in self.expectations:
            if x.passed is not None:
                continue
            e = x.spec
            if e.never:
                x.close(True, "never seen", now)
            elif e.tag and e.throughout:
                x.close(True, f"held to the end of the run (t = {now:.1f} s)", now)
            elif e.event and e.apart is not None:
                x.close(x._count > 0, f"{x._count} seen, none closer than {e.apart}" if x._count else "none seen", now)
            elif e.event and e.count is not None:
                x.close(x._count == e.count, f"seen {x._count} time(s)", now)
            elif e.order:
                x.close(False, self._order_missing(e.order, x._order_idx, now), now)
            elif e.procedure:
                x.close(False, self._not_reached(e.procedure, e.reaches or "", now).replace(
                    "at the deadline", "at the end of the run"), now)
            else:
                x.close(False, f"not met by the end of the run (t = {now:.1f} s)", now)

    @property
    def passed(self) -> bool:
        return all(x.passed for x in self.expectations)


def _brief(ev: Event) -> str:
    keys = ("interlock", "tag", "value", "procedure", "to", "task", "answer", "id", "message", "why")
    parts = [f"{k}={ev.payload[k]}" for k in keys if k in ev.payload and ev.payload[k] not in (None, "")]
    return ", ".join(parts)[:200] or str(ev.payload)[:200]


# =====================================================================================================
# the script: timed actions and the operator's answers
# =====================================================================================================
class Script:
    """Plays a scenario's timed actions and scripted answers against any controller.

    The driver hands it callables: ``inject``/``clear`` reach the simulator, ``start``/``command``/
    ``answer`` the controller, ``runs`` lists the procedure instances, ``read`` the tag table."""

    def __init__(self, prep: Prepared, checker: Checker, *,
                 inject: Callable[[str, str, dict[str, Any]], Any],
                 clear: Callable[[str, str], Any],
                 start: Callable[[str, str, str], Any],
                 command: Callable[[Request], Outcome],
                 answer: Callable[[str, str, str, Actor, dict[str, Any], Actor | None], Outcome],
                 confirm: Callable[[str, Actor], Outcome],
                 runs: Callable[[], Iterable[Run]],
                 read: ReadFn) -> None:
        self.prep, self.checker = prep, checker
        self._inject, self._clear, self._start, self._command = inject, clear, start, command
        self._confirm = confirm
        self._confirmed: set[tuple[int, str, float]] = set()
        self._answer_fn, self._runs, self._read = answer, runs, read
        self._timed = sorted(((seconds(t.at), k, t) for k, t in enumerate(prep.sc.events)), key=lambda x: (x[0], x[1]))
        self._answered: dict[int, int] = {}
        self._tried: set[tuple[int, str, str, float]] = set()

    def initial(self) -> None:
        for f in self.prep.sc.initial:
            self._inject(f.station, f.fault, dict(f.params))

    def due(self, now: float) -> None:
        """Timed actions whose time (relative to the scenario's start) has come."""
        while self._timed and self._timed[0][0] <= now + 1e-9:
            _, k, t = self._timed.pop(0)
            if t.inject is not None:
                self._inject(t.inject.station, t.inject.fault, dict(t.inject.params))
            if t.clear is not None:
                self._clear(t.clear.station, t.clear.fault)
            if t.start is not None:
                self._start(t.start.procedure, t.start.reason, t.start.by)
            if t.command is not None:
                c = t.command
                sig = self.prep.site.stations[c.station].iolist.by_tag[c.tag]
                value: float | int | bool = (sig.states.index(c.value) if isinstance(c.value, str) and sig.states
                                             else c.value if not isinstance(c.value, str) else 0)
                out = self._command(Request(Action.COMMAND, Actor(c.by, frozenset({c.role})), station=c.station,
                                            tag=c.tag, value=value, reason="scenario"))
                if not out.accepted:
                    self.checker.add_problem(line_of(self.prep.doc, ["events", k]),
                                             f"events[{k}]: {c.by} commands {c.tag} := {c.value}",
                                             f"refused: {out.message}", now)

    def answers(self, now_abs: float) -> None:
        """Answer every open task that has a scripted answer whose delay has passed; confirm steps locally."""
        now = now_abs - self.checker.t0
        for k, c in enumerate(self.prep.sc.confirms):
            for run in list(self._runs()):
                if run.finished or run.held or run.defn.id != c.procedure or run.state != c.step:
                    continue
                inst = (k, run.run_id, run.entered_at)
                if inst in self._confirmed or now_abs - run.entered_at < seconds(c.after) - 1e-9:
                    continue
                self._confirmed.add(inst)
                out = self._confirm(run.run_id, Actor(c.by, frozenset({c.role})))
                if out.accepted == c.refused:
                    self.checker.add_problem(line_of(self.prep.doc, ["confirms", k]),
                                             f"confirms[{k}]: {c.by} confirms {c.procedure} {c.step} locally"
                                             + (" and is refused" if c.refused else ""),
                                             "it was accepted" if out.accepted else f"refused: {out.message}", now)
        for run in list(self._runs()):
            if run.finished:
                continue
            for key in list(run.tasks):
                task = run.tasks.get(key)
                if task is None:
                    continue
                for k, a in enumerate(self.prep.sc.answers):
                    if a.procedure != run.defn.id or a.task != key:
                        continue
                    done = self._answered.get(k, 0)
                    if a.times and done >= a.times:
                        continue
                    ainst = (k, run.run_id, key, task.opened_at)
                    if ainst in self._tried:
                        continue
                    if now_abs - task.opened_at < seconds(a.after) - 1e-9:
                        break
                    self._tried.add(ainst)
                    values = dict(a.values)
                    for tag in a.read:
                        r = self._read(run.defn.station, tag)
                        if r is not None:
                            values[tag] = round(float(r.value), 4) if not isinstance(r.value, bool) else r.value
                    confirmer = (Actor(a.confirmed_by, frozenset({a.confirmer_role})) if a.confirmed_by
                                 else None)
                    out = self._answer_fn(run.run_id, key, a.answer, Actor(a.by, frozenset({a.role})), values,
                                          confirmer)
                    line = line_of(self.prep.doc, ["answers", k])
                    if out.accepted:
                        self._answered[k] = done + 1
                        if a.refused:
                            self.checker.add_problem(line, f"answers[{k}]: {a.by} answers {a.procedure} {key} "
                                                     f"'{a.answer}' and is refused", "it was accepted", now)
                    elif not a.refused:
                        self.checker.add_problem(line, f"answers[{k}]: {a.by} answers {a.procedure} {key} "
                                                 f"'{a.answer}'", f"refused: {out.message}", now)
                    else:
                        self._answered[k] = done + 1
                    break


def _sample(samples: dict[str, list[tuple[float, float]]], prep: Prepared, read: ReadFn, now: float) -> None:
    for key in prep.sc.record:
        st, _, tag = key.rpartition(":")
        r = read(st or prep.stations[0], tag)
        if r is None or r.quality is Quality.BAD:
            continue
        series = samples.setdefault(key, [])
        if not series or now - series[-1][0] >= 1.0:
            series.append((now, float(r.value)))


# =====================================================================================================
# the virtual rig
# =====================================================================================================
class ScenarioRunner:
    """One scenario on a VirtualRig against sim_plc's in-process plant, on a virtual clock."""

    def __init__(self, path: str | Path, *, sim_package: str = "sim_plc", proc_package: str = "sequences",
                 progress: Callable[[str], None] | None = None,
                 mutate: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.prep = prepare(path, sim_package=sim_package, proc_package=proc_package, mutate=mutate)
        self.path = self.prep.path
        self.sc, self.doc, self.site, self.stations = self.prep.sc, self.prep.doc, self.prep.site, self.prep.stations
        cat = importlib.import_module(f"{sim_package}.catalogue")
        plant_mod = importlib.import_module(f"{sim_package}.plant")
        models = [cat.station_class(n)(seed=self.sc.seed) for n in self.stations]
        self.clock = VirtualClock()
        self.plant = plant_mod.Plant(models, self.clock)
        self.rig = VirtualRig(
            {n: self.site.stations[n].iolist for n in self.stations}, self.plant, self.clock,
            interlocks=self.prep.interlocks,
            procedures=[self.prep.defs[p] for p in self.prep.proc_ids],
            scan_period=seconds(self.sc.scan_period),
            two_person=self.site.two_person,
        )
        self.checker = Checker(self.prep)
        self.expectations = self.checker.expectations
        self.progress = progress
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.script = Script(
            self.prep, self.checker,
            inject=lambda st, f, params: self.plant.inject(st, f, params),
            clear=lambda st, f: self.plant.clear(st, f),
            start=lambda pid, reason, user: self.rig.start(pid, f"{reason} ({user})"),
            command=self.rig.request,
            answer=self._answer,
            confirm=lambda run_id, actor: self.rig.procs.confirm_locally(run_id, actor, self.clock.now(),
                                                                          self.clock.wall()),
            runs=lambda: self.rig.procs.runs.values(),
            read=self._read,
        )

    def _answer(self, run_id: str, key: str, ans: str, actor: Actor, values: dict[str, Any],
                confirmed_by: Actor | None) -> Outcome:
        if confirmed_by is None:
            return self.rig.answer(run_id, key, ans, actor, values)
        # a two-person answer: the rig's helper takes one person, so the manager is asked directly
        # (its events reach the journal with the next scan)
        return self.rig.procs.answer(run_id, key, ans, actor, self.clock.now(), self.clock.wall(), values,
                                     confirmed_by=confirmed_by)

    def _read(self, station: str, tag: str) -> Reading | None:
        k = self.rig.key(station, tag)
        return self.rig.table[k] if k in self.rig.table else None

    def run(self) -> ScenarioResult:
        self.script.initial()
        end = seconds(self.sc.duration)
        next_progress = 0.0
        ev_seen = 0
        while self.clock.now() < end - 1e-9:
            now = self.clock.now()
            self.script.due(now)
            self.script.answers(now)
            self.rig.tick()
            new = self.rig.events[ev_seen:]
            ev_seen = len(self.rig.events)
            now = self.clock.now()
            self.checker.update(new, now, self._read)
            _sample(self.samples, self.prep, self._read, now)
            if self.progress is not None and now >= next_progress:
                self.progress(f"{self.sc.name}: t = {now / 60:.1f} min of {end / 60:.1f}")
                next_progress += max(60.0, end / 10)
            if self.checker.done:
                break
        self.checker.update(self.rig.events[ev_seen:], self.clock.now(), self._read)
        self.checker.finish(self.clock.now())
        return ScenarioResult(self.sc.name, self.path, self.sc.proves, self.checker.passed, self.expectations,
                              self.clock.now(), list(self.rig.events), self.samples, set(self.checker.visited),
                              states=self.prep.states())


# =====================================================================================================
# over the wire: the simulator's servers and a real controller
# =====================================================================================================
class Wire:
    MODBUS = "modbus"
    OPCUA = "opcua"


@dataclass
class WireOptions:
    speed: float = 20.0  # plant seconds per wall second
    poll_wall_s: float = 0.005  # wall seconds between Modbus polls of the fast class (detectors, limit switches)
    slow_poll_wall_s: float = 0.02  # the rest of the signals
    connect_timeout_s: float = 30.0  # wall seconds to wait for every link and tag to come up
    cert_dir: Path | None = None  # OPC-UA PKI folder (default: a temporary one)


class WireRunner:
    """One scenario through Modbus TCP or OPC-UA: sim_plc's servers on free ports, a real Controller.

    Time is a ``ScaledClock`` shared by the plant and the controller (``speed`` times real time), so
    the scenario's deadlines mean the same plant seconds as on the rig. Faults are injected into the
    simulator's plant, answers go through the controller's procedure manager, and the verdict comes
    from the events the controller journals (its subscribers see them once durable) and its tag table.
    """

    def __init__(self, path: str | Path, wire: str, options: WireOptions | None = None, *,
                 sim_package: str = "sim_plc", proc_package: str = "sequences",
                 progress: Callable[[str], None] | None = None) -> None:
        if wire not in (Wire.MODBUS, Wire.OPCUA):
            raise ValueError(f"wire must be modbus or opcua, not {wire!r}")
        self.prep = prepare(path, sim_package=sim_package, proc_package=proc_package)
        self.wire = wire
        self.opts = options or WireOptions()
        self.progress = progress

    async def run(self, work_dir: Path) -> ScenarioResult:
        import tempfile

        from .clock import RealClock, ScaledClock
        from .journal import Journal
        from .procedures import ProcedureManager
        from .runtime import Controller

        prep, sc, opts = self.prep, self.prep.sc, self.opts
        runner_mod = importlib.import_module(f"{prep.sim_package}.runner")
        clock = ScaledClock(opts.speed)
        cert_dir = opts.cert_dir or Path(tempfile.mkdtemp(prefix="pki-", dir=work_dir))
        password = "scenario-wire-" + hashlib.sha256(str(cert_dir).encode()).hexdigest()[:16]
        cfg = runner_mod.SimConfig(stations=tuple(prep.stations), http_port=None, opcua=self.wire == Wire.OPCUA,
                                   cert_dir=cert_dir, opcua_password=password, seed=sc.seed)
        wall = RealClock()  # the run's own duration, for the report: not plant logic
        w0 = wall.now()
        async with runner_mod.SimRunner(cfg, clock=clock) as sim:
            plant = sim.plant
            site = replace(prep.site, interlocks=prep.interlocks, procedures=list(prep.proc_ids),
                           stations={n: prep.site.stations[n] for n in prep.stations},
                           scan_period_s=seconds(sc.scan_period))
            procs = ProcedureManager([prep.defs[p] for p in prep.proc_ids], site.iolists)
            journal = Journal(work_dir / f"{sc.name}-{self.wire}.db")
            events: list[Event] = []
            ctrl_ref: list[Any] = []

            def factory(ctrl: Any, name: str) -> Any:
                return self._driver(ctrl, name, sim, clock, cert_dir, password)

            ctrl = Controller(site, clock, journal, driver_factory=factory, procedures=procs)
            ctrl_ref.append(ctrl)
            ctrl.subscribers.append(events.extend)

            def read(station: str, tag: str) -> Reading | None:
                k = ctrl.key(station, tag)
                return ctrl.table[k] if k in ctrl.table else None

            try:
                await ctrl.start()
                await self._until_up(ctrl, wall)
                t0 = clock.now()
                # the checker judges a deadline only once the journal has caught up with it
                checker = Checker(prep, t0=t0, settle_s=max(1.0, 4 * site.scan_period_s))
                script = Script(
                    prep, checker,
                    inject=lambda st, f, params: plant.inject(st, f, params),
                    clear=lambda st, f: plant.clear(st, f),
                    start=lambda pid, reason, user: procs.start(pid, f"{reason} ({user})", clock.now(), clock.wall(),
                                                               user),
                    command=lambda req: ctrl.engine.request(req, clock.now(), clock.wall()),
                    answer=lambda run_id, key, ans, actor, values, by: procs.answer(
                        run_id, key, ans, actor, clock.now(), clock.wall(), values, confirmed_by=by),
                    confirm=lambda run_id, actor: procs.confirm_locally(run_id, actor, clock.now(), clock.wall()),
                    runs=lambda: procs.runs.values(),
                    read=read,
                )
                script.initial()
                end = seconds(sc.duration)
                samples: dict[str, list[tuple[float, float]]] = {}
                seen = 0
                next_progress = 0.0
                while True:
                    now = clock.now() - t0
                    script.due(now)
                    script.answers(clock.now())
                    new = events[seen:]
                    seen = len(events)
                    checker.update(new, clock.now(), read)
                    _sample(samples, prep, read, now)
                    if self.progress is not None and now >= next_progress:
                        self.progress(f"{sc.name} over {self.wire}: t = {now / 60:.1f} min of {end / 60:.1f}")
                        next_progress += max(60.0, end / 10)
                    if checker.done or now >= end + checker.settle_s:
                        break
                    await clock.sleep_until(clock.now() + site.scan_period_s)
                checker.update(events[seen:], clock.now(), read)
                checker.finish(min(clock.now(), t0 + end + checker.settle_s))
            finally:
                await ctrl.stop()
                journal.close()
        all_events = [replace(ev, t_plant=ev.t_plant - t0) for ev in events]
        res = ScenarioResult(sc.name, prep.path, sc.proves, checker.passed, checker.expectations,
                             min(clock.now() - t0, end), all_events, samples, set(checker.visited),
                             states=prep.states())
        res.wall_s = wall.now() - w0
        return res

    def _driver(self, ctrl: Any, name: str, sim: Any, clock: Clock, cert_dir: Path, password: str) -> Any:
        iol = ctrl.site.stations[name].iolist
        if self.wire == Wire.MODBUS:
            from .fieldbus.modbus import ModbusDriver

            # Poll periods are plant seconds on the scaled clock: keep them a few ms of real time.
            return ModbusDriver(iol, sim.config.host, sim.modbus[name].port, clock, ctrl.on_readings_for(name),
                                ctrl.on_link_for(name), timeout=2.0, period=self.opts.slow_poll_wall_s * self.opts.speed,
                                scan_classes={"fast": self.opts.poll_wall_s * self.opts.speed})
        from .fieldbus.opcua import OpcUaDriver

        return OpcUaDriver(iol, sim.opcua[name].endpoint_url, clock, ctrl.on_readings_for(name), ctrl.on_link_for(name),
                           user=sim.config.opcua_user, password=password, cert_dir=cert_dir / "client",
                           publishing_interval_ms=max(10.0, 1000.0 * self.opts.poll_wall_s), timeout=5.0,
                           # the keepalive re-stamps unchanged values: well inside the tag table's staleness
                           keepalive=ctrl.site.stale_after_s / 3.0)

    async def _until_up(self, ctrl: Any, wall: Any) -> None:
        """Wait (wall time) until every link is up and every tag has a good or uncertain reading."""
        t_end = wall.now() + self.opts.connect_timeout_s
        while True:
            ups = all(ctrl.engine.link_up.get(n, False) for n in self.prep.stations)
            fresh = all(ctrl.table[k].quality is not Quality.BAD or ctrl.table[k].reason.value == "sensor fault"
                        for k in ctrl.table.tags())
            if ups and fresh:
                return
            if wall.now() > t_end:
                down = [n for n in self.prep.stations if not ctrl.engine.link_up.get(n, False)]
                raise PlantctlError(f"over {self.wire}: link(s) not up within {self.opts.connect_timeout_s:.0f} s: "
                                    f"{', '.join(down) or 'tags still BAD'}")
            await asyncio.sleep(0.05)  # a wall-time wait for sockets to connect, not plant logic


def run_wire(path: str | Path, wire: str, work_dir: Path, options: WireOptions | None = None,
             progress: Callable[[str], None] | None = None) -> ScenarioResult:
    return asyncio.run(WireRunner(path, wire, options, progress=progress).run(work_dir))


# =====================================================================================================
# running files
# =====================================================================================================
_CACHE: dict[tuple[str, str], ScenarioResult] = {}


def _key(path: str | Path) -> tuple[str, str]:
    p = Path(path).resolve()
    return str(p), hashlib.sha256(p.read_bytes()).hexdigest()


def run_scenario(path: str | Path, **kw: Any) -> ScenarioResult:
    """Run one scenario on the virtual rig. A plain run (no keyword) is kept for the rest of the process."""
    from .clock import RealClock

    key = _key(path) if not kw else None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    wall = RealClock()  # the run's own duration, for the report: not plant logic
    t0 = wall.now()
    res = ScenarioRunner(path, **kw).run()
    res.wall_s = wall.now() - t0
    if key is not None:
        _CACHE[key] = res
    return res


def _run_plain(path: str) -> ScenarioResult | ConfigError:
    try:
        return run_scenario(path)
    except ConfigError as exc:
        return exc


def run_library(paths: Iterable[str | Path], jobs: int = 1) -> list[ScenarioResult | ConfigError]:
    """Run scenario files (results already in this process are reused), ``jobs`` at a time."""
    files = [Path(p) for p in paths]
    out: dict[int, ScenarioResult | ConfigError] = {}
    todo: list[int] = []
    for i, f in enumerate(files):
        k = _key(f)
        if k in _CACHE:
            out[i] = _CACHE[k]
        else:
            todo.append(i)
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for i, res in zip(todo, pool.map(_run_plain, [str(files[i]) for i in todo]), strict=True):
                out[i] = res
                if isinstance(res, ScenarioResult):
                    _CACHE[_key(files[i])] = res
    else:
        for i in todo:
            out[i] = _run_plain(str(files[i]))
    return [out[i] for i in range(len(files))]


def visited_steps(results: Iterable[ScenarioResult]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for key in r.steps_visited:
            out.setdefault(key, []).append(r.name)
    return out


def coverage(results: Iterable[ScenarioResult], defs: Mapping[str, ProcedureDef]) -> tuple[list[str], list[str]]:
    """The coverage listing (one line per procedure and step) and the [SRC] steps no scenario passes through."""
    visited = visited_steps(results)
    lines: list[str] = []
    missing: list[str] = []
    for pid, d in sorted(defs.items()):
        lines.append(f"{pid}: {d.title}")
        for s in d.steps:
            who = sorted(set(visited.get((pid, s.id), [])))
            if not who and s.src:
                missing.append(f"{pid} {s.id}")
            shown = ", ".join(who)
            if len(shown) > 100:
                shown = shown[:97] + "..."
            lines.append(f"  {s.id:<12} [{'SRC' if s.src else 'ADD'}] {shown or 'NOT COVERED'}")
    src_total = sum(1 for d in defs.values() for s in d.steps if s.src)
    lines.append("")
    lines.append(f"[SRC] steps covered: {src_total - len(missing)} of {src_total}; "
                 f"[SRC] steps not covered by any scenario: {len(missing)}")
    return lines, missing


__all__ = ["Checker", "Expectation", "Prepared", "ScenarioResult", "ScenarioRunner", "Script", "TERMINALS",
           "WireOptions", "WireRunner", "coverage", "load_scenario", "prepare", "run_library", "run_scenario",
           "run_wire", "seconds", "visited_steps"]
