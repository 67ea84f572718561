"""Scenarios: a procedure proven against the simulator, in virtual time.

Theory of operation
-------------------
A scenario file (YAML, format in docs/scenarios.md) names the site, the initial
plant state, timed fault injections, scripted operator answers and the
expectations. ``run_scenario`` builds the simulator's plant (sim_plc, loaded
by name), a ``VirtualRig`` with the site's interlocks and procedures, and ticks
it on a virtual clock to the scenario's end. Every tick it:

1. injects the faults that fall due (``at`` times are plant seconds);
2. answers the operator tasks that are open and scripted (after their delay);
3. ticks the rig (plant, drivers, engine, procedures);
4. updates every expectation from what it saw: a tag condition within a
   deadline or at a time, a procedure reaching a step or an end state, an event
   or alarm that must (or must never) occur, and an order of events.

The result lists each expectation with pass/fail, the value seen and the time,
in sentences an engineer reads without the code; the whole run's samples and
events are kept for the HTML report.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .clock import VirtualClock
from .engine import Actor, Role
from .errors import ConfigError
from .journal import Event, EventKind
from .paths import sites_dir
from .procedure_cli import load_definitions
from .procedures import TERMINALS
from .rig import VirtualRig
from .site import Site, load_site
from .tags import Quality
from .yamlio import LineDict, line_of, load_yaml

_DUR = re.compile(r"^\s*([0-9.]+)\s*(ms|s|sec|min|m|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0, "m": 60.0, "h": 3600.0}


def seconds(v: float | int | str) -> float:
    """``90``, ``"90 s"``, ``"1.5 min"``, ``"8 h"`` -> seconds."""
    if isinstance(v, int | float):
        return float(v)
    m = _DUR.match(str(v))
    if m is None:
        raise ValueError(f"not a duration: {v!r} (use e.g. 90 s, 2 min, 8 h)")
    return float(m.group(1)) * _UNIT[m.group(2)]


Dur = float | int | str


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str
    fault: str
    params: dict[str, Any] = {}


class _Timed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Dur
    inject: _Fault | None = None
    clear: _Fault | None = None
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
    times: int = 1  # recurring tasks: answer this many rounds (0 = every round)


class _Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # a tag condition
    tag: str | None = None
    station: str | None = None
    op: str | None = None
    value: float | bool | str | None = None
    # a procedure
    procedure: str | None = None
    reaches: str | None = None
    # events and alarms
    event: EventKind | None = None
    never: EventKind | None = None
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
    initial: list[_Fault] = []
    events: list[_Timed] = []
    answers: list[_Answer] = []
    expect: list[_Expect] = Field(min_length=1)
    record: list[str] = []  # tags to sample for the report ("station:TAG")
    covers: list[str] = []  # step ids this scenario is meant to exercise (for coverage)


@dataclass
class Expectation:
    spec: _Expect
    text: str
    line: int
    passed: bool | None = None  # None: still open
    seen: str = ""
    t: float | None = None
    _order_idx: int = 0

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
    for k, t in enumerate(sc.events):
        try:
            seconds(t.at)
        except ValueError as exc:
            raise ConfigError(f"{p}:{line_of(doc, ['events', k, 'at'])}: events[{k}].at: {exc}") from None
    return sc, doc


def describe_expectation(e: _Expect) -> str:
    if e.says:
        return e.says
    when = f" within {e.within}" if e.within is not None else (f" at {e.at}" if e.at is not None else "")
    if e.tag:
        return f"{e.station + ':' if e.station else ''}{e.tag} {e.op or '=='} {e.value}{when}"
    if e.procedure:
        return f"{e.procedure} reaches {e.reaches}{when}"
    if e.event:
        w = " ".join(f"{k}={v}" for k, v in e.where.items())
        return f"event {e.event.value}{(' ' + w) if w else ''} occurs{when}"
    if e.never:
        w = " ".join(f"{k}={v}" for k, v in e.where.items())
        return f"event {e.never.value}{(' ' + w) if w else ''} never occurs"
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
        elif got != v:
            return False
    return True


class ScenarioRunner:
    """One scenario on a VirtualRig against sim_plc's in-process plant."""

    def __init__(self, path: str | Path, *, sim_package: str = "sim_plc", proc_package: str = "sequences",
                 progress: Callable[[str], None] | None = None,
                 mutate: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.sc, self.doc = load_scenario(self.path)
        site_path = Path(self.sc.site) if self.sc.site else sites_dir() / "demo.yaml"
        if not site_path.is_absolute() and self.sc.site:
            site_path = (self.path.parent / site_path).resolve()
        defs = load_definitions(proc_package)
        if mutate is not None:
            defs = mutate(defs)
        self.site: Site = load_site(site_path, known_procedures=set(defs))
        stations = self.sc.stations or list(self.site.stations)
        errors = []
        for k, name in enumerate(stations):
            if name not in self.site.stations:
                errors.append(f"{self.path}:{line_of(self.doc, ['stations', k])}: stations[{k}]: unknown station {name}")
        proc_ids = self.sc.procedures if self.sc.procedures is not None else [
            p for p in self.site.procedures if defs[p].station in stations]
        for k, pid in enumerate(proc_ids):
            if pid not in defs:
                errors.append(f"{self.path}:{line_of(self.doc, ['procedures', k])}: procedures[{k}]: unknown procedure {pid}")
        sim = importlib.import_module(f"{sim_package}.catalogue")
        plant_mod = importlib.import_module(f"{sim_package}.plant")
        known_faults: dict[str, set[str]] = {}
        for name in stations:
            cls = sim.station_class(name)
            known_faults[name] = {f.name for f in cls.FAULTS} | {"link_drop"}
        checks: list[tuple[list[str | int], str, _Fault]] = []
        for k, f0 in enumerate(self.sc.initial):
            checks.append((["initial", k], f"initial[{k}]", f0))
        for k, t0 in enumerate(self.sc.events):
            for part, f1 in (("inject", t0.inject), ("clear", t0.clear)):
                if f1 is not None:
                    checks.append((["events", k, part], f"events[{k}].{part}", f1))
        for loc, name, f in checks:
            if f.station not in known_faults:
                errors.append(f"{self.path}:{line_of(self.doc, loc)}: {name}: unknown station {f.station}")
            elif f.fault not in known_faults[f.station]:
                errors.append(f"{self.path}:{line_of(self.doc, loc)}: {name}: unknown fault {f.fault} "
                              f"(known: {', '.join(sorted(known_faults[f.station]))})")
        for k, a in enumerate(self.sc.answers):
            if a.procedure not in defs:
                errors.append(f"{self.path}:{line_of(self.doc, ['answers', k])}: answers[{k}].procedure: unknown procedure {a.procedure}")
        for k, e in enumerate(self.sc.expect):
            st = e.station or (stations[0] if len(stations) == 1 else None)
            if e.tag:
                if st is None or st not in self.site.stations or e.tag not in self.site.stations[st].iolist.by_tag:
                    errors.append(f"{self.path}:{line_of(self.doc, ['expect', k])}: expect[{k}].tag: unknown tag {e.tag}"
                                  f"{'' if st else ' (name its station)'}")
            if e.procedure and e.procedure not in defs:
                errors.append(f"{self.path}:{line_of(self.doc, ['expect', k])}: expect[{k}].procedure: unknown procedure {e.procedure}")
        if errors:
            raise ConfigError(errors)
        self.stations = stations
        models = [sim.station_class(n)(seed=self.sc.seed) for n in stations]
        self.clock = VirtualClock()
        self.plant = plant_mod.Plant(models, self.clock)
        iolists = {n: self.site.stations[n].iolist for n in stations}
        self.rig = VirtualRig(
            iolists, self.plant, self.clock,
            interlocks=[i for i in self.site.interlocks if i.station in stations],
            procedures=[defs[p] for p in proc_ids],
            scan_period=seconds(self.sc.scan_period),
            two_person=self.site.two_person,
        )
        self.expectations = [
            Expectation(e, describe_expectation(e), line_of(self.doc, ["expect", k])) for k, e in enumerate(self.sc.expect)
        ]
        self.progress = progress
        self._timed = sorted(((seconds(t.at), k, t) for k, t in enumerate(self.sc.events)), key=lambda x: (x[0], x[1]))
        self._answered: dict[int, int] = {}
        self._seen_open: dict[tuple[int, str], float] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._record = list(self.sc.record)
        self._visited: set[tuple[str, str]] = set()

    # -- running ----------------------------------------------------------------
    def run(self) -> ScenarioResult:
        for f in self.sc.initial:
            self.plant.inject(f.station, f.fault, f.params)
        end = seconds(self.sc.duration)
        next_progress = 0.0
        ev_seen = 0
        while self.clock.now() < end - 1e-9:
            now = self.clock.now()
            while self._timed and self._timed[0][0] <= now + 1e-9:
                _, _, t = self._timed.pop(0)
                if t.inject is not None:
                    self.plant.inject(t.inject.station, t.inject.fault, t.inject.params)
                if t.clear is not None:
                    self.plant.clear(t.clear.station, t.clear.fault)
            self._answer(now)
            self.rig.tick()
            new = self.rig.events[ev_seen:]
            ev_seen = len(self.rig.events)
            self._observe(new, self.clock.now())
            self._sample(self.clock.now())
            if self.progress is not None and self.clock.now() >= next_progress:
                self.progress(f"{self.sc.name}: t = {self.clock.now() / 60:.1f} min of {end / 60:.1f}")
                next_progress += max(60.0, end / 10)
            if all(e.passed is not None for e in self.expectations) and not any(
                e.spec.never or (e.spec.at is not None) for e in self.expectations
            ):
                break
        self._finish(self.clock.now())
        passed = all(e.passed for e in self.expectations)
        return ScenarioResult(self.sc.name, self.path, self.sc.proves, passed, self.expectations, self.clock.now(),
                              list(self.rig.events), self.samples, set(self._visited))

    def _answer(self, now: float) -> None:
        for run in self.rig.procs.runs.values():
            if run.finished:
                continue
            for key in list(run.tasks):
                for k, a in enumerate(self.sc.answers):
                    if a.procedure != run.defn.id or a.task != key:
                        continue
                    done = self._answered.get(k, 0)
                    if a.times and done >= a.times:
                        continue
                    opened = self._seen_open.setdefault((k, f"{run.run_id}:{key}:{run.tasks[key].opened_at}"), now)
                    if now - opened >= seconds(a.after):
                        actor = Actor(a.by, frozenset({a.role}))
                        out = self.rig.answer(run.run_id, key, a.answer, actor, a.values)
                        if out.accepted:
                            self._answered[k] = done + 1
                        break

    def _sample(self, now: float) -> None:
        for key in self._record:
            st, _, tag = key.rpartition(":")
            st = st or self.stations[0]
            r = self.rig.table[self.rig.key(st, tag)]
            if r.quality is Quality.BAD:
                continue
            series = self.samples.setdefault(key, [])
            if not series or now - series[-1][0] >= 1.0:
                series.append((now, float(r.value)))

    def _observe(self, events: list[Event], now: float) -> None:
        for ev in events:
            if ev.kind is EventKind.PROCEDURE_TRANSITION:
                self._visited.add((str(ev.payload.get("procedure")), str(ev.payload.get("to"))))
        for x in self.expectations:
            if x.passed is not None:
                continue
            e = x.spec
            deadline = seconds(e.within) if e.within is not None else None
            start = seconds(e.after) if e.after is not None else 0.0
            if now < start:
                continue
            if e.tag:
                if e.at is not None and now + 1e-9 < seconds(e.at):
                    continue
                st = e.station or self.stations[0]
                r = self.rig.table[self.rig.key(st, e.tag)]
                ok, seen = self._tag_ok(st, e, r.value, r.quality)
                if ok:
                    x.close(True, f"{seen} at t = {now:.1f} s", now)
                elif e.at is not None:
                    x.close(False, f"{seen} at t = {now:.1f} s", now)
                elif deadline is not None and now >= deadline:
                    x.close(False, f"still {seen} at the deadline (t = {now:.1f} s)", now)
                continue
            if e.procedure:
                for ev in events:
                    if (ev.kind is EventKind.PROCEDURE_TRANSITION and ev.payload.get("procedure") == e.procedure
                            and ev.payload.get("to") == e.reaches):
                        x.close(True, f"reached {e.reaches} at t = {ev.t_plant:.1f} s", ev.t_plant)
                        break
                if x.passed is None and deadline is not None and now >= deadline:
                    x.close(False, f"{e.procedure} was in {self._proc_state(e.procedure)} at the deadline (t = {now:.1f} s)", now)
                continue
            if e.event:
                for ev in events:
                    if _matches(ev, e.event, e.where):
                        x.close(True, f"seen at t = {ev.t_plant:.1f} s", ev.t_plant)
                        break
                if x.passed is None and deadline is not None and now >= deadline:
                    x.close(False, f"not seen by the deadline (t = {now:.1f} s)", now)
                continue
            if e.never:
                for ev in events:
                    if _matches(ev, e.never, e.where):
                        x.close(False, f"it happened at t = {ev.t_plant:.1f} s: {ev.payload}", ev.t_plant)
                        break
                continue
            if e.alarm:
                for ev in events:
                    if ev.kind is EventKind.ALARM and re.search(e.alarm, str(ev.payload.get("id", ""))):
                        x.close(True, f"raised at t = {ev.t_plant:.1f} s ({ev.payload.get('message')})", ev.t_plant)
                        break
                if x.passed is None and deadline is not None and now >= deadline:
                    x.close(False, f"not raised by the deadline (t = {now:.1f} s)", now)
                continue
            if e.order:
                for ev in events:
                    if x._order_idx < len(e.order):
                        o = e.order[x._order_idx]
                        if _matches(ev, o.get("event"), {k: v for k, v in o.items() if k != "event"}):
                            x._order_idx += 1
                if x._order_idx == len(e.order):
                    x.close(True, f"all {len(e.order)} in order by t = {now:.1f} s", now)

    def _tag_ok(self, station: str, e: _Expect, value: Any, quality: Quality) -> tuple[bool, str]:
        sig = self.site.stations[station].iolist.by_tag[e.tag or ""]
        shown = sig.state_name(int(value)) if sig.states else value
        if isinstance(shown, float):
            shown = round(shown, 4)
        seen = f"{e.tag} was {shown}{' ' + sig.units if sig.units and not sig.states else ''}"
        if quality is Quality.BAD:
            return False, seen + " (BAD quality)"
        op = e.op or "=="
        want: Any = e.value
        if isinstance(want, str) and sig.states:
            got: Any = sig.state_name(int(value))
            return (got == want) if op == "==" else (got != want), seen
        ops = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
               "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
        if isinstance(want, bool) or isinstance(value, bool):
            return ops[op](bool(value), bool(want)), seen
        return ops[op](float(value), float(want if want is not None else 0)), seen

    def _proc_state(self, pid: str) -> str:
        runs = [r for r in self.rig.procs.runs.values() if r.defn.id == pid]
        return runs[-1].state if runs else "(never started)"

    def _finish(self, now: float) -> None:
        for x in self.expectations:
            if x.passed is None:
                if x.spec.never:
                    x.close(True, "never seen", now)
                elif x.spec.order:
                    x.close(False, f"only {x._order_idx} of {len(x.spec.order)} seen in order", now)
                else:
                    x.close(False, f"not met by the end of the run (t = {now:.1f} s)", now)


def run_scenario(path: str | Path, **kw: Any) -> ScenarioResult:
    from .clock import RealClock

    wall = RealClock()  # the run's own duration, for the report: not plant logic
    t0 = wall.now()
    res = ScenarioRunner(path, **kw).run()
    res.wall_s = wall.now() - t0
    return res


def visited_steps(results: Iterable[ScenarioResult]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for key in r.steps_visited:
            out.setdefault(key, []).append(r.name)
    return out


__all__ = ["ScenarioResult", "ScenarioRunner", "TERMINALS", "load_scenario", "run_scenario", "seconds"]
