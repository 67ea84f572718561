"""The controller at run time: drivers -> tag table -> engine -> commands, journal.

Theory of operation
-------------------
This module is the I/O shell around the sans-I/O engine. Each scan:

1. take a snapshot of the tag table (staleness applied) at ``clock.now()``;
2. ``engine.scan`` it; then let the procedure manager (if any) step;
3. put the commands on the wire at once, each write its own task (the trip
   path first: nothing below can delay a command);
4. append the scan's events to the journal in one group commit, on the
   journal's own thread, so the fsync never blocks the event loop; only then
   are they published to subscribers (HMI, historian): durable first;
5. record the scan time; a scan that ends after the next period started is an
   overrun, counted and reported.

A journal that cannot write (disk full) raises a top-priority alarm and the
controller keeps protecting; the events of that scan are kept in memory and
retried, never half-written. A command whose write fails is retried on the
next scan while its verification is still pending; the verification deadline
remains the judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from .alarms import Priority
from .clock import Clock, yield_to_loop
from .engine import Command, Engine, EngineConfig, ScanResult
from .errors import DriverError, PlantctlError
from .fieldbus.base import Driver
from .historian.base import Historian, Point, historian_alarms, points_from_snapshot
from .journal import Event, EventKind, InvalidEvent, Journal
from .site import Site
from .tags import Reading, TagTable

log = logging.getLogger("plantctl.runtime")


class ProcedureHost(Protocol):
    """What the runtime needs from the procedure manager (plantctl.procedures)."""

    def step(self, snapshot: Any, now: float, wall: float, engine: Engine) -> ScanResult: ...

    def start(self, proc_id: str, reason: str, now: float, wall: float, user: str = "") -> Any: ...


@dataclass
class ScanStats:
    scans: int = 0
    overruns: int = 0
    last_ms: float = 0.0
    max_ms: float = 0.0
    recent_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def percentile(self, p: float) -> float:
        if not self.recent_ms:
            return 0.0
        data = sorted(self.recent_ms)
        return data[min(len(data) - 1, int(p / 100.0 * len(data)))]


Subscriber = Callable[[list[Event]], None]


class Controller:
    def __init__(
        self,
        site: Site,
        clock: Clock,
        journal: Journal,
        *,
        drivers: dict[str, Driver] | None = None,
        driver_factory: Callable[[Controller, str], Driver] | None = None,
        procedures: ProcedureHost | None = None,
        scan_period_s: float | None = None,
        historian: Historian | None = None,
    ) -> None:
        self.site = site
        self.clock = clock
        self.journal = journal
        self.period = scan_period_s or site.scan_period_s
        self.engine = Engine(
            EngineConfig(
                site.iolists,
                site.interlocks,
                two_person=site.two_person,
                bypass_max_s=site.bypass_max_s,
                override_max_s=site.override_max_s,
                alarm_settings=site.alarms,
            )
        )
        self.historian = historian
        self._hist_period = float(site.historian.get("period_s", 1.0))
        self._hist_next = clock.now()
        self.multi = len(site.stations) > 1
        self.table = TagTable(
            [self.key(st, s.tag) for st, iol in site.iolists.items() for s in iol.signals],
            stale_after=site.stale_after_s,
            t0=clock.now(),
        )
        self.procedures = procedures
        self.startup_problems: list[str] = []  # e.g. a journal that could not be opened (see build_controller)
        self.stats = ScanStats()
        self.subscribers: list[Subscriber] = []
        self._unjournaled: list[Event] = []
        self._journal_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._write_tasks: set[asyncio.Task[None]] = set()
        self._retry: list[Command] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.drivers: dict[str, Driver] = dict(drivers or {})
        factory = driver_factory or default_driver_factory
        for name in site.stations:
            if name not in self.drivers:
                self.drivers[name] = factory(self, name)

    # -- keys and callbacks -------------------------------------------------------
    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}" if self.multi else tag

    def on_readings_for(self, station: str) -> Callable[[list[tuple[str, Reading]]], None]:
        def on_readings(items: list[tuple[str, Reading]]) -> None:
            for tag, r in items:
                k = self.key(station, tag)
                if k in self.table:
                    self.table.update(k, r)

        return on_readings

    def on_link_for(self, station: str) -> Callable[[bool, float, str], None]:
        def on_link(up: bool, t: float, detail: str) -> None:
            self.engine.link_changed(station, up, t, self.clock.wall(), detail)

        return on_link

    # -- life cycle ---------------------------------------------------------------
    async def check_journal(self) -> None:
        """Walk the whole hash chain at start-up. A broken chain is a top-priority alarm and is
        never repaired: the evidence stays as it is for the investigation."""
        from .journal import verify

        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._journal_exec, verify, self.journal.path)
        problems = list(result.problems) + self.startup_problems
        if problems:
            now, wall = self.clock.now(), self.clock.wall()
            self.engine.note_many(
                self.engine.alarms.raise_(
                    "journal:chain", f"journal integrity: {problems[0]} ({len(problems)} problem(s))",
                    Priority.CRITICAL, now, wall, "", "journal")
            )
            self.engine.note(Event(EventKind.SYSTEM, now, wall, "", "journal", "", "",
                                   {"what": "journal chain broken", "problems": problems[:20]}))

    async def start(self) -> None:
        await self.check_journal()
        self._append(
            [
                Event(
                    EventKind.CONFIG_LOAD,
                    self.clock.now(),
                    self.clock.wall(),
                    "",
                    "controller",
                    "",
                    "",
                    {
                        "site": str(self.site.path),
                        "stations": sorted(self.site.stations),
                        "interlocks": [i.id for i in self.site.interlocks],
                        "procedures": self.site.procedures,
                        "pid": os.getpid(),
                    },
                )
            ]
        )
        restore = getattr(self.procedures, "restore", None)
        if restore is not None:
            # A controller restarted mid-procedure continues from the journal.
            history = [r.event for r in self.journal.records(kinds=[EventKind.PROCEDURE_TRANSITION])]
            restored = restore(history, self.clock.now(), self.clock.wall())
            if restored:
                log.info("restored %d running procedure(s) from the journal", len(restored))
        for drv in self.drivers.values():
            await drv.start()
        self._task = asyncio.create_task(self._loop(), name="plantctl-scan")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for drv in self.drivers.values():
            await drv.stop()
        for t in list(self._write_tasks):
            t.cancel()
        if self._write_tasks:
            await asyncio.gather(*self._write_tasks, return_exceptions=True)
        if self._unjournaled:
            with contextlib.suppress(PlantctlError):
                self.journal.append_many(self._unjournaled)
        self._journal_exec.shutdown(wait=True)
        if self.historian is not None:
            self.historian.close()

    async def __aenter__(self) -> Controller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the scan loop ------------------------------------------------------------
    async def _loop(self) -> None:
        next_t = self.clock.now()
        while not self._stop.is_set():
            started = self.clock.now()
            await self.scan_once(started)
            took = self.clock.now() - started
            self.stats.scans += 1
            self.stats.last_ms = took * 1000.0
            self.stats.max_ms = max(self.stats.max_ms, self.stats.last_ms)
            self.stats.recent_ms.append(self.stats.last_ms)
            next_t += self.period
            now = self.clock.now()
            if now > next_t:
                self.stats.overruns += 1
                next_t = now  # do not try to catch up with a burst of scans
            await self.clock.sleep_until(next_t)

    async def scan_once(self, now: float) -> ScanResult:
        wall = self.clock.wall()
        snapshot = self.table.snapshot(now)
        result = self.engine.scan(snapshot, now, wall)
        for proc_id, reason in result.start_procedures:
            if self.procedures is not None:
                self.procedures.start(proc_id, reason, now, wall)
        if self.procedures is not None:
            more = self.procedures.step(snapshot, now, wall, self.engine)
            take = getattr(self.procedures, "take_events", None)
            if take is not None:
                more.events.extend(take())
            result.commands.extend(more.commands)
            result.events.extend(more.events)
        # operator requests accepted between scans left commands and events in the engine
        result.commands.extend(self.engine.take_commands())
        result.events.extend(self.engine.take_events())
        # 3. commands first
        retry, self._retry = self._retry, []
        for cmd in retry + result.commands:
            self._dispatch(cmd, now)
        if retry or result.commands:
            await yield_to_loop()  # the writes reach the socket before the journal starts its fsync
        # 4. durable, then published; the historian samples at its own period
        hist_points: list[Point] = []
        if self.historian is not None and now >= self._hist_next:
            self._hist_next = now + self._hist_period
            hist_points = points_from_snapshot("", snapshot, wall)
            result.events.extend(historian_alarms(self.engine.alarms, self.historian.status(), now, wall))
        await self._journal(result.events, hist_points)
        return result

    def _dispatch(self, cmd: Command, now: float) -> None:
        drv = self.drivers.get(cmd.station)
        if drv is None:
            return
        task = asyncio.create_task(self._write(drv, cmd), name=f"write {cmd.tag}")
        self._write_tasks.add(task)
        task.add_done_callback(self._write_tasks.discard)

    async def _write(self, drv: Driver, cmd: Command) -> None:
        try:
            await drv.write(cmd.tag, cmd.value)
        except DriverError as exc:
            now = self.clock.now()
            self.engine.note(
                Event(
                    EventKind.SYSTEM,
                    now,
                    self.clock.wall(),
                    cmd.station,
                    "fieldbus",
                    cmd.user,
                    "",
                    {"what": "write failed", "id": cmd.id, "tag": cmd.tag, "error": str(exc)},
                )
            )
            if cmd.id in self.engine.pending or cmd.verify is None:
                if cmd.verify is None or now < cmd.verify.deadline:
                    self._retry.append(cmd)

    async def _journal(self, events: list[Event], points: list[Point] | None = None) -> None:
        batch = self._unjournaled + events
        loop = asyncio.get_running_loop()
        if points and self.historian is not None:
            # same worker thread as the journal: never blocks the scan's event loop
            hist = self.historian
            loop.run_in_executor(self._journal_exec, _record_quietly, hist, points)
        if not batch:
            return
        try:
            await loop.run_in_executor(self._journal_exec, self.journal.append_many, batch)
        except InvalidEvent:
            # One malformed event must not block the journal: write the others one by one
            # and record what was refused.
            batch = await loop.run_in_executor(self._journal_exec, self._append_valid, batch)
            if batch:
                return
        except PlantctlError as exc:
            # Keep protecting; keep the events; tell the operator loudly.
            self._unjournaled = batch
            now = self.clock.now()
            self.engine.note_many(
                self.engine.alarms.raise_(
                    "journal:write", f"journal cannot write: {exc}", Priority.CRITICAL, now, self.clock.wall(), "", "journal"
                )
            )
            log.error("journal write failed: %s", exc)
            return
        self._unjournaled = []
        if self.engine.alarms.is_active("journal:write"):
            self.engine.note_many(self.engine.alarms.clear("journal:write", self.clock.now(), self.clock.wall()))
        for sub in list(self.subscribers):
            try:
                sub(batch)
            except Exception:  # a subscriber must never stop the scan  # noqa: BLE001
                log.exception("subscriber failed")

    def _append(self, events: list[Event]) -> None:
        self.journal.append_many(events)

    def _append_valid(self, batch: list[Event]) -> list[Event]:
        """Append each event that is valid; returns what could not be written for I/O reasons."""
        for i, ev in enumerate(batch):
            try:
                self.journal.append(ev)
            except InvalidEvent as exc:
                log.error("event refused by the journal: %s: %r", exc, ev)
                self.journal.append(
                    Event(EventKind.SYSTEM, ev.t_plant if ev.t_plant == ev.t_plant else 0.0, self.clock.wall(), ev.station,
                          "journal", "", "", {"what": "event refused", "kind": str(ev.kind), "error": str(exc)})
                )
            except PlantctlError:
                return batch[i:]
        return []


def _record_quietly(hist: Historian, points: list[Point]) -> None:
    try:
        hist.record(points)
    except Exception:  # the historian reports its own state through status(); never stop a scan  # noqa: BLE001
        log.exception("historian record failed")


def default_driver_factory(ctrl: Controller, name: str) -> Driver:
    st = ctrl.site.stations[name]
    opts = dict(st.plc.options)
    if st.plc.protocol == "modbus":
        from .fieldbus.modbus import ModbusDriver

        tls = None
        if opts.get("tls_cert"):
            tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=opts.get("tls_ca"))
            tls.load_cert_chain(opts["tls_cert"], opts.get("tls_key"))
        return ModbusDriver(
            st.iolist,
            opts["host"],
            int(opts["port"]),
            ctrl.clock,
            ctrl.on_readings_for(name),
            ctrl.on_link_for(name),
            unit_id=opts.get("unit_id"),
            timeout=float(opts["timeout_s"]),
            period=opts["period_ms"] / 1000.0,
            tls=tls,
        )
    if st.plc.protocol == "opcua":
        from .fieldbus.opcua import OpcUaDriver

        password = os.environ.get(opts["password_env"], "")
        if not password:
            raise PlantctlError(f"station {name}: set the OPC-UA password in ${opts['password_env']}")
        return OpcUaDriver(
            st.iolist,
            opts["url"],
            ctrl.clock,
            ctrl.on_readings_for(name),
            ctrl.on_link_for(name),
            user=opts["user"],
            password=password,
            cert_dir=opts["cert_dir"],
            server_cert=opts.get("server_cert"),
            security=opts["security"],
            publishing_interval_ms=opts["publishing_interval_ms"],
            timeout=opts["timeout_s"],
        )
    raise PlantctlError(
        f"station {name}: protocol {st.plc.protocol} needs a station model; pass drivers= (loopback is for tests and scenarios)"
    )
