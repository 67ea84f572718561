"""The controller on a virtual clock against an in-process plant: hours in seconds.

``VirtualRig`` wires the same parts the real controller uses (tag table,
engine, procedure manager, journal) to loopback drivers over an in-process plant
(sim_plc's ``Plant``, handed in: plantctl never imports the simulator). Time is
a ``VirtualClock``: each tick advances the plant to the next scan, polls the
drivers, scans, and applies the commands straight away. Nothing sleeps, so a
long outage runs as fast as the models compute.

Used by the procedure tests, the scenario runner and replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .clock import VirtualClock
from .engine import Actor, Command, Engine, EngineConfig, Outcome, Request, ScanResult
from .errors import DriverError
from .fieldbus.loopback import LoopbackDriver, StationModelLike
from .interlocks import Interlock
from .iolist import IOList
from .journal import Event, EventKind, Journal
from .procedures import ProcedureDef, ProcedureManager
from .tags import Reading, Snapshot, TagTable


class PlantLike(Protocol):
    @property
    def stations(self) -> Mapping[str, Any]: ...

    def advance_to(self, t: float) -> int: ...


class VirtualRig:
    def __init__(
        self,
        iolists: Mapping[str, IOList],
        plant: PlantLike,
        clock: VirtualClock,
        *,
        interlocks: list[Interlock] | None = None,
        procedures: list[ProcedureDef] | None = None,
        journal: Journal | str | Path | None = None,
        scan_period: float = 0.1,
        stale_after: float = 3.0,
        two_person: bool = True,
        pause_timers_on_hold: bool = False,
    ) -> None:
        self.iolists = dict(iolists)
        self.plant = plant
        self.clock = clock
        self.period = scan_period
        self.multi = len(self.iolists) > 1
        self.engine = Engine(EngineConfig(self.iolists, list(interlocks or []), two_person=two_person))
        self.procs = ProcedureManager(procedures or [], self.iolists, pause_timers_on_hold=pause_timers_on_hold)
        self.table = TagTable(
            [self.key(st, s.tag) for st, iol in self.iolists.items() for s in iol.signals],
            stale_after=max(stale_after, 2 * scan_period),
            t0=clock.now(),
        )
        if isinstance(journal, str | Path):
            journal = Journal(Path(journal))
        self.journal = journal
        self.events: list[Event] = []
        self.drivers: dict[str, LoopbackDriver] = {}
        for name in self.iolists:
            model: StationModelLike = plant.stations[name]
            self.drivers[name] = LoopbackDriver(
                self.iolists[name], model, clock, self._on_readings(name), self._on_link(name), period=scan_period
            )
        self.last: ScanResult | None = None
        self._link_wanted: dict[str, bool] = {}
        self._retry: list[Command] = []
        self._write_failing: set[int] = set()

    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}" if self.multi else tag

    def _on_readings(self, station: str) -> Any:
        def cb(items: list[tuple[str, Reading]]) -> None:
            for tag, r in items:
                self.table.update(self.key(station, tag), r)

        return cb

    def _on_link(self, station: str) -> Any:
        def cb(up: bool, t: float, detail: str) -> None:
            self.engine.link_changed(station, up, t, self.clock.wall(), detail)

        return cb

    # -- running ------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    def snapshot(self) -> Snapshot:
        return self.table.snapshot(self.clock.now())

    def value(self, tag: str, station: str | None = None) -> Any:
        st = station or next(iter(self.iolists))
        return self.table[self.key(st, tag)].value

    def tick(self) -> ScanResult:
        t = self.clock.now() + self.period
        self.plant.advance_to(t)
        if self.clock.now() < t:
            self.clock.advance_to(t)
        now, wall = self.clock.now(), self.clock.wall()
        links = getattr(self.plant, "links", None)
        for name, drv in self.drivers.items():
            if links is not None and name in links:
                # the simulator's link_drop fault cuts the loopback link too (F-X01)
                up = bool(links[name].is_up)
                if up != drv.link_up and up != self._link_wanted.get(name, True):
                    self._link_wanted[name] = up
                    drv.set_link(up)
            drv.poll(now)
        snap = self.table.snapshot(now)
        result = self.engine.scan(snap, now, wall)
        for proc_id, reason in result.start_procedures:
            self.procs.start(proc_id, reason, now, wall)
        more = self.procs.step(snap, now, wall, self.engine)
        result.commands.extend(more.commands)
        result.events.extend(more.events)
        result.commands.extend(self.engine.take_commands())
        result.events.extend(self.engine.take_events())
        result.events.extend(self.procs.take_events())
        retry, self._retry = self._retry, []
        for cmd in retry + result.commands:  # as the runtime does: retried each scan until stale
            try:
                self.drivers[cmd.station].write_nowait(cmd.tag, cmd.value)
            except DriverError as exc:
                if cmd.id not in self._write_failing:
                    self._write_failing.add(cmd.id)
                    result.events.append(
                        Event(EventKind.SYSTEM, now, wall, cmd.station, "fieldbus", cmd.user, "",
                              {"what": "write failed", "id": cmd.id, "tag": cmd.tag, "error": str(exc)})
                    )
                if self.engine.write_result(cmd, str(exc), now, wall):
                    self._retry.append(cmd)
                else:
                    self._write_failing.discard(cmd.id)
            else:
                self._write_failing.discard(cmd.id)
                self.engine.write_result(cmd, None, now, wall)
        result.events.extend(self.engine.take_events())  # a write that went stale failed just now
        self._record(result.events)
        self.last = result
        return result

    def _record(self, events: list[Event]) -> None:
        if not events:
            return
        self.events.extend(events)
        if self.journal is not None:
            self.journal.append_many(events)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now() + seconds)

    def run_until(self, t: float, until: Any = None) -> bool:
        """Tick up to plant time t; stop early (returning True) when ``until(rig)`` holds."""
        while self.clock.now() < t - 1e-9:
            self.tick()
            if until is not None and until(self):
                return True
        return False

    # -- people -------------------------------------------------------------------
    def request(self, req: Request) -> Outcome:
        out = self.engine.request(req, self.clock.now(), self.clock.wall())
        self._flush()
        return out

    def answer(self, run_id: str, key: str, answer: str, actor: Actor, values: Mapping[str, Any] | None = None,
               confirmed_by: Actor | None = None) -> Outcome:
        """Answer a task; a two-person task's affirmative answer needs ``confirmed_by``."""
        out = self.procs.answer(run_id, key, answer, actor, self.clock.now(), self.clock.wall(), values,
                                confirmed_by=confirmed_by)
        self._flush()
        return out

    def proc_request(self, action: str, run_id: str, actor: Actor, confirmed_by: Actor | None = None) -> Outcome:
        out = self.procs.request(action, run_id, actor, self.clock.now(), self.clock.wall(), confirmed_by=confirmed_by)
        self._flush()
        return out

    def start(self, proc_id: str, reason: str = "operator") -> Any:
        run = self.procs.start(proc_id, reason, self.clock.now(), self.clock.wall())
        self._flush()
        return run

    def _flush(self) -> None:
        evs = self.engine.take_events() + self.procs.take_events()
        self._record(evs)
        # commands accepted between ticks go out on the next tick (engine outbox)

    def events_of(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind is kind]
