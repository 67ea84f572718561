"""The plant: station models stepped together on one clock, and their PLC links.

Theory of operation
-------------------
A ``Plant`` owns one or more station models (the contract in sim_plc: ``step``,
``read_tags``, ``write``, ``inject``/``clear``) and a ``plantctl.clock`` Clock.
Plant time starts at 0 when the plant is built and moves only in whole steps of
``dt`` (0.1 s by default): ``advance_to(t)`` takes every step that fits up to
``t``, so a run is a deterministic function of its inputs whatever clock drives it.
The step count, not a running float sum, defines plant time, so it never drifts.

Who moves time:
- on a ``VirtualClock`` the test or the scenario runner calls ``advance_to``; the
  plant carries the virtual clock along step by step (so timers registered on it
  fire in order with the physics) unless the clock is already ahead;
- on a ``RealClock`` ``run_realtime`` sleeps on the clock until the next step is
  due and catches up with every step it owes. After a long stall (a suspended
  laptop) it slips time rather than computing an hour of steps in one go.

Servers never poll the models: they read ``tags(station)``, a snapshot computed at
most once per step (and after each client write), and they register a listener
that runs after every ``advance_to`` and every link or fault change. Listeners are
plain callables; a server that has async work to do (OPC-UA value pushes,
re-opening a listening socket) schedules it from there.

``PlcLink`` models the communication link of each station's PLC for fault F-X01
(``link_drop``): while DOWN the Modbus and OPC-UA servers of that station stop
answering; the PLC itself (the model) keeps running, as a real PLC does when its
network cable is pulled. It comes back UP by itself at ``down_until``.

Every station model serves the PLC's I/O heartbeat ``KQI-000`` (plant-reference
4.10-4): a counter the PLC program adds 1 to every plant second, so it follows the
plant clock, virtual or real. ``plc_frozen`` models a PLC whose CPU stopped (or an
OPC-UA gateway whose backend froze) behind a live communications module: ``tags``
keeps returning the image taken at the injection (the counter and every input stop
changing) while the servers go on answering; the process itself keeps running,
and commands written meanwhile still reach it (what is modelled is the frozen read
path; what a real CPU in STOP does with its outputs is plant-specific).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol

from plantctl.clock import Clock, VirtualClock

from .errors import SimError, UnknownFault
from .faults import FaultSpec, Param

log = logging.getLogger(__name__)

TagValue = float | int | bool


class UnknownStation(SimError, KeyError):
    """A request named a station this plant does not hold."""


class StationModel(Protocol):
    """What the plant, the servers and the HTTP API need from a station model."""

    name: str
    time: float
    FAULTS: ClassVar[tuple[FaultSpec, ...]]

    def step(self, dt: float) -> None: ...

    def read_tags(self) -> dict[str, TagValue]: ...

    def write(self, tag: str, value: TagValue) -> None: ...

    def inject(self, fault: str, **params: Any) -> None: ...

    def clear(self, fault: str | None = None) -> None: ...

    def active_faults(self) -> list[dict[str, Any]]: ...


class LinkState(Enum):
    UP = "up"
    DOWN = "down"


@dataclass
class PlcLink:
    """The network link to one station's PLC."""

    state: LinkState = LinkState.UP
    down_until: float | None = None  # plant time at which a dropped link returns

    @property
    def is_up(self) -> bool:
        return self.state is LinkState.UP


# A plant-level fault: it acts on the link, not on the process model, so every
# station accepts it. Listed in the catalogue next to the stations' own faults.
LINK_DROP = FaultSpec(
    name="link_drop",
    help="Cut the PLC's network link: its Modbus and OPC-UA servers stop answering for duration_s "
    "seconds of plant time, while the PLC and the process keep running.",
    params=(Param("duration_s", float, "how long the link stays down, plant seconds", default=60.0),),
    scenarios=("F-X01",),
)


# A plant-level fault like link_drop: the PLC's data stops, the process does not.
PLC_FROZEN = FaultSpec(
    name="plc_frozen",
    help="Freeze the PLC behind a live comms module (CPU in STOP): its Modbus and OPC-UA servers keep "
    "answering with the values of the moment of injection, the heartbeat KQI-000 included, until cleared.",
)

HEARTBEAT_TAG = "KQI-000"  # the I/O lists' heartbeat: signal


def heartbeat_count(t: float) -> float:
    """The heartbeat counter at plant time ``t``: +1 per whole plant second, wrapping as the
    16-bit register does. Computed from the model's time rather than counted in ``step``, so
    that merged steps (``step_many``) still count every second they cover."""
    return float(math.floor(t + 1e-9) % 65536)


PLANT_FAULTS: tuple[FaultSpec, ...] = (PLC_FROZEN, LINK_DROP)  # every station accepts these


@dataclass(frozen=True)
class PlantParams:
    """Runtime parameters (A)."""

    dt: float = 0.1  # fixed physics step, s
    max_catchup_s: float = 5.0  # real-time loop: beyond this lag, slip time instead of catching up


Listener = Callable[["Plant"], None]


class Plant:
    """Station models stepped together in fixed ``dt`` on one clock."""

    def __init__(
        self,
        stations: Iterable[StationModel],
        clock: Clock,
        params: PlantParams | None = None,
    ) -> None:
        self.params = params or PlantParams()
        if not self.params.dt > 0:
            raise ValueError(f"dt must be positive, got {self.params.dt}")
        self.clock = clock
        self.stations: dict[str, StationModel] = {}
        for st in stations:
            if st.name in self.stations:
                raise ValueError(f"two stations are named {st.name}")
            self.stations[st.name] = st
        self.links: dict[str, PlcLink] = {name: PlcLink() for name in self.stations}
        self._steps = 0
        self._origin = clock.now()  # clock reading at plant time 0
        self._listeners: list[Listener] = []
        self._snapshots: dict[str, dict[str, TagValue]] = {}
        self._frozen: dict[str, dict[str, TagValue]] = {}  # plc_frozen: station -> the held image

    # -- time -----------------------------------------------------------------
    @property
    def dt(self) -> float:
        return self.params.dt

    @property
    def time(self) -> float:
        """Plant seconds simulated so far (a whole number of steps)."""
        return round(self._steps * self.params.dt, 9)  # 112 * 0.1 is 11.200000000000001

    def wall(self) -> float:
        """Epoch seconds matching the plant's current time (for timestamps)."""
        return self.clock.wall() - (self.clock.now() - self._origin - self.time)

    def advance_to(self, t: float) -> int:
        """Step every station in fixed ``dt`` up to plant time ``t``; returns the steps taken."""
        dt = self.params.dt
        # The epsilon keeps 0.3 / 0.1 = 2.9999999999999996 from losing a step.
        target = math.floor(t / dt + 1e-9)
        taken = 0
        link_changed = False
        virtual = isinstance(self.clock, VirtualClock)
        while self._steps < target:
            n = target - self._steps
            if virtual:
                # Go in one chunk up to the next timer on the clock, so timers still fire in
                # order with the physics; a station that can (step_many) merges quiet steps.
                nd = self.clock.next_deadline()
                if nd is not None:
                    n = min(n, max(1, math.floor((nd - self._origin) / dt + 1e-9) - self._steps))
                due = self._origin + (self._steps + n) * dt
                if n == 1 and self.clock.now() < due:
                    self.clock.advance_to(due)
            for st in self.stations.values():
                many = getattr(st, "step_many", None) if n > 1 else None
                if many is not None:
                    many(n, dt)
                else:
                    for _ in range(n):
                        st.step(dt)
            self._steps += n
            taken += n
            if virtual and self.clock.now() < due:
                self.clock.advance_to(due)
            link_changed |= self._restore_links()
        if taken or link_changed:
            self._snapshots.clear()
            self._notify()
        return taken

    def advance(self, dt: float) -> int:
        return self.advance_to(self.time + dt)

    def sync(self) -> int:
        """Catch up with the clock (for a runner that moves the clock itself)."""
        return self.advance_to(self.clock.now() - self._origin)

    async def run_realtime(self, clock: Clock | None = None) -> None:
        """Step forever as the clock moves; cancel the task to stop.

        Plant time continues from its current value, following ``clock`` (default:
        the plant's own) from now on. Works on a VirtualClock too, when something
        else advances it (e.g. ``VirtualClock.autojump``).
        """
        if clock is not None:
            self.clock = clock
        clk = self.clock
        # Plant time goes on from where it is: whatever happened before the loop
        # started (servers starting up, a scenario's set-up) is not owed as steps.
        self._origin = clk.now() - self.time
        while True:
            await clk.sleep_until(self._origin + self.time + self.params.dt)
            lag = clk.now() - self._origin - self.time
            if lag > self.params.max_catchup_s:
                skipped = lag - self.params.dt
                log.warning("plant fell %.1f s behind the clock; slipping time instead of catching up", lag)
                self._origin += skipped
            self.sync()

    # -- listeners --------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(plant)`` after every advance and every link/fault change; returns a remover."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)

    # -- stations and tags ----------------------------------------------------
    def station(self, name: str) -> StationModel:
        try:
            return self.stations[name]
        except KeyError:
            raise UnknownStation(f"unknown station {name!r} (known: {', '.join(self.stations)})") from None

    def tags(self, station: str) -> dict[str, TagValue]:
        """Every tag of a station, engineering units; computed at most once per step (while
        ``plc_frozen``, the image of the moment of injection)."""
        held = self._frozen.get(station)
        if held is not None:
            return held
        snap = self._snapshots.get(station)
        if snap is None:
            snap = dict(self.station(station).read_tags())
            self._snapshots[station] = snap
        return snap

    def write(self, station: str, tag: str, value: TagValue) -> None:
        """A client writes a command_out tag (UnknownTag if it is not one)."""
        self.station(station).write(tag, value)
        self._snapshots.pop(station, None)  # the PLC now holds the new command

    # -- faults ---------------------------------------------------------------
    def fault_spec(self, station: str, fault: str) -> FaultSpec:
        st = self.station(station)
        for spec in PLANT_FAULTS:
            if spec.name == fault:
                return spec
        for spec in type(st).FAULTS:
            if spec.name == fault:
                return spec
        names = ", ".join([s.name for s in type(st).FAULTS] + [f.name for f in PLANT_FAULTS])
        raise UnknownFault(f"station {station} has no fault {fault!r} (known: {names})")

    def inject(self, station: str, fault: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the parameters against the catalogue and inject; returns them coerced.

        Raises UnknownStation, UnknownFault or BadFaultParameter (all SimError).
        """
        spec = self.fault_spec(station, fault)
        coerced = spec.coerce(dict(params or {}))
        if spec is LINK_DROP:
            self.link_drop(station, coerced["duration_s"])
            return coerced
        if spec is PLC_FROZEN:
            self.freeze(station)
            return coerced
        self.station(station).inject(fault, **coerced)
        self._snapshots.pop(station, None)
        self._notify()
        return coerced

    def clear(self, station: str | None = None, fault: str | None = None) -> None:
        """Remove one fault kind (or all) from one station (or from every station that has it)."""
        if station is not None:
            names = [station]
            if fault is not None:
                self.fault_spec(station, fault)  # UnknownFault for a name this station does not know
        else:
            names = [n for n in self.stations if fault is None or self._knows(n, fault)]
            if not names:
                raise UnknownFault(f"no station has a fault {fault!r}")
        plant_level = {f.name for f in PLANT_FAULTS}
        for name in names:
            if fault is None or fault == LINK_DROP.name:
                self._set_link(name, up=True)
            if fault is None or fault == PLC_FROZEN.name:
                self._frozen.pop(name, None)
            if fault not in plant_level:
                self.station(name).clear(fault)
            self._snapshots.pop(name, None)
        self._notify()

    def _knows(self, station: str, fault: str) -> bool:
        try:
            self.fault_spec(station, fault)
        except UnknownFault:
            return False
        return True

    def active_faults(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, st in self.stations.items():
            link = self.links[name]
            if not link.is_up:
                left = (link.down_until or self.time) - self.time
                out.append({"station": name, "fault": LINK_DROP.name, "remaining_s": round(left, 3)})
            if name in self._frozen:
                out.append({"station": name, "fault": PLC_FROZEN.name})
            for entry in st.active_faults():
                out.append({"station": name, **entry})
        return out

    # -- PLC links ------------------------------------------------------------
    def link(self, station: str) -> PlcLink:
        self.station(station)
        return self.links[station]

    def link_drop(self, station: str, duration_s: float) -> None:
        """Take a station's PLC link DOWN for ``duration_s`` plant seconds (fault F-X01)."""
        if not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        self.station(station)
        link = self.links[station]
        link.state = LinkState.DOWN
        link.down_until = self.time + duration_s
        log.info("PLC link of %s down until plant time %.1f s", station, link.down_until)
        self._notify()

    def freeze(self, station: str) -> None:
        """Freeze a station's PLC (``plc_frozen``): its served image stops changing until cleared."""
        if station not in self._frozen:
            self._frozen[station] = dict(self.tags(station))
            log.info("PLC of %s frozen at plant time %.1f s", station, self.time)
        self._notify()

    def _set_link(self, station: str, *, up: bool) -> None:
        link = self.links[station]
        if up:
            link.state, link.down_until = LinkState.UP, None

    def _restore_links(self) -> bool:
        changed = False
        for name, link in self.links.items():
            # The link returns on the first step at or after down_until (steps are dt apart).
            if not link.is_up and link.down_until is not None and self.time >= link.down_until - 1e-9:
                link.state, link.down_until = LinkState.UP, None
                log.info("PLC link of %s back up at plant time %.1f s", name, self.time)
                changed = True
        return changed
