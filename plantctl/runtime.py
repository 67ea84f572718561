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
   are they published to subscribers (HMI, historian): durable first. The loop
   does not wait for that commit: the next trip scan may start while the disk
   is still busy (commits stay one at a time, in scan order; a disk slower than
   the scan period lets the next scans' commands out first, their records
   following in order, rather than hold a trip back);
5. record the scan time; a scan that ends after the next period started is an
   overrun, counted and reported.

Between two periodic scans the loop is not deaf. A change (value or quality) of
a *trigger* signal wakes it at once for a trip scan: the interlocks alone
(``Engine.scan(trips_only=True)``), their commands on the wire, their events
journaled by the same group commit; alarms, procedures and the historian wait
for the next periodic scan, whose timing the trip scan does not move. Trigger
signals are the cause-and-effect members (and arming conditions) that belong to
their station's ``fast`` scan class: for Modbus the class the site file gives
(``scan_classes``/``scan_rules``, polled on its own period by the driver), for
other drivers the tags the default scan rules call fast (gas and fire
detectors, ESD limit switches...). So a detector polled every 10 ms trips within
one poll, while ten thousand slow tags are read and checked every 100 ms.

A Modbus driver hands the table whole decoded blocks (``on_columns_for``): no
per-signal object on the hot path (plantctl.tags explains the columns).

Before each snapshot (periodic or trip scan) the PLC I/O heartbeats are checked
(plantctl.heartbeat): a station whose heartbeat froze behind a live link has every
tag held BAD/PLC_FROZEN in the table (``TagTable.hold_bad``) and a top-priority
``heartbeat:<station>`` alarm; both end when the counter moves again.

A journal that cannot write (disk full) raises a top-priority alarm and the
controller keeps protecting; the events of that scan are kept in memory and
retried, never half-written. A command whose write fails is retried on the
next scan while its verification is still pending; the verification deadline
remains the judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import ssl
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .alarms import Priority
from .clock import Clock, yield_to_loop
from .engine import Command, Engine, EngineConfig, ScanResult
from .errors import DriverError, PlantctlError
from .fieldbus.base import Driver
from .heartbeat import Beat, HeartbeatWatch
from .historian.base import Historian, Point, historian_alarms, points_from_snapshot
from .journal import Event, EventKind, InvalidEvent, Journal
from .site import Site
from .tags import BOOL, CodeArray, FloatArray, IndexArray, Reading, Reason, TableSnapshot, TagTable

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
    trip_scans: int = 0  # scans run at once on a change of a trigger signal
    recent_trip_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    recent_commit_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # scan end -> durable
    scan_errors: int = 0  # scans that ended in an unexpected exception (a bug): alarmed, the loop goes on

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
        # PLC I/O heartbeats (plantctl.heartbeat), per station that declares one
        self.heartbeats: dict[str, HeartbeatWatch] = {
            name: HeartbeatWatch(name, iol.heartbeat.tag, iol.heartbeat.max_age_s)
            for name, iol in site.iolists.items() if iol.heartbeat is not None
        }
        self._station_keys: dict[str, list[str]] = {
            name: [self.key(name, s.tag) for s in iol.signals] for name, iol in site.iolists.items()
        }
        self.procedures = procedures
        self.startup_problems: list[str] = []  # e.g. a journal that could not be opened (see build_controller)
        self.stats = ScanStats()
        self.subscribers: list[Subscriber] = []
        self._unjournaled: list[Event] = []
        self._journal_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        # The historian has a thread of its own: ten thousand points a second take it longer
        # than a scan period, and a scan's journal commit must never queue behind them.
        self._hist_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="historian")
        self._write_tasks: set[asyncio.Task[None]] = set()
        self._commits: set[asyncio.Task[None]] = set()  # journal commits the scan loop did not wait for
        self._commit_lock = asyncio.Lock()
        self._commit_behind = False  # inside the scan loop: its scans do not wait for their commit
        self._retry: list[Command] = []
        self._write_failing: set[int] = set()  # commands whose write failed and is being retried
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.drivers: dict[str, Driver] = dict(drivers or {})
        self._wake = asyncio.Event()  # a trigger signal changed: run a trip scan now
        self._heap_frozen = False
        self._trigger_mask = np.zeros(len(self.table.keys_tuple), dtype=np.bool_)
        self._trigger_keys: frozenset[str] = frozenset()
        factory = driver_factory or default_driver_factory
        for name in site.stations:
            if name not in self.drivers:
                self.drivers[name] = factory(self, name)
        self._set_triggers()

    def _set_triggers(self) -> None:
        """The trigger signals: cause-and-effect inputs of each station's fast class."""
        from .fieldbus.modbus import DEFAULT_SCAN_RULES, FAST_CLASS, scan_class_of

        keys: set[str] = set()
        for name, iol in self.site.iolists.items():
            cause = {c.tag for il in self.site.interlocks if il.station == name for c in (*il.members, *il.armed_when)}
            classes = getattr(self.drivers.get(name), "classes", None)
            if isinstance(classes, dict):
                fast = set(classes[FAST_CLASS].tags) if FAST_CLASS in classes else set()
            else:
                fast = {s.tag for s in iol.signals if scan_class_of(s, DEFAULT_SCAN_RULES, (FAST_CLASS,)) == FAST_CLASS}
            keys.update(self.key(name, tag) for tag in cause & fast)
        self._trigger_keys = frozenset(keys)
        self._trigger_mask[:] = False
        if keys:
            self._trigger_mask[self.table.index(sorted(keys))] = True

    @property
    def trigger_keys(self) -> frozenset[str]:
        """Signals whose change runs a trip scan at once (see the module docstring)."""
        return self._trigger_keys

    # -- keys and callbacks -------------------------------------------------------
    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}" if self.multi else tag

    def on_readings_for(self, station: str) -> Callable[[list[tuple[str, Reading]]], None]:
        keys = {s.tag: self.key(station, s.tag) for s in self.site.stations[station].iolist.signals}
        table = self.table

        def on_readings(items: list[tuple[str, Reading]]) -> None:
            triggers = self._trigger_keys
            wake = False
            for tag, r in items:
                k = keys.get(tag)
                if k is None:
                    k = self.key(station, tag)
                    if k not in table:
                        continue
                if triggers and not wake and k in triggers:
                    old = table[k]
                    wake = old.quality is not r.quality or old.value != r.value
                table.update(k, r)
            if wake:
                self._wake.set()

        return on_readings

    def on_columns_for(self, station: str) -> Callable[[tuple[str, ...], FloatArray, CodeArray, CodeArray,
                                                        CodeArray, float], None]:
        """The callback a Modbus driver hands each decoded block to (plantctl.fieldbus.modbus)."""
        table = self.table
        # per block (keyed by its tags tuple, which lives as long as the driver): the table rows,
        # the block positions that are in the table (None: all), and the positions of trigger signals
        plans: dict[int, tuple[tuple[str, ...], IndexArray, IndexArray | None, IndexArray | None]] = {}

        def plan(tags: tuple[str, ...]) -> tuple[tuple[str, ...], IndexArray, IndexArray | None, IndexArray | None]:
            keys = [self.key(station, tag) for tag in tags]
            known = [i for i, k in enumerate(keys) if k in table]
            sel = None if len(known) == len(keys) else np.array(known, dtype=np.intp)
            rows = table.index([keys[i] for i in known])
            trig = np.flatnonzero(self._trigger_mask[rows])
            return tags, rows, sel, (trig if trig.size else None)

        def on_columns(tags: tuple[str, ...], value: FloatArray, vtype: CodeArray, quality: CodeArray,
                       reason: CodeArray, t: float) -> None:
            hit = plans.get(id(tags))
            if hit is None or hit[0] is not tags:
                hit = plans[id(tags)] = plan(tags)
            _, rows, sel, trig = hit
            if sel is not None:
                value, vtype, quality, reason = value[sel], vtype[sel], quality[sel], reason[sel]
            if trig is not None and table.changed(rows[trig], value[trig], quality[trig]):
                self._wake.set()
            table.update_columns(rows, value, vtype, quality, reason, t)

        return on_columns

    def on_link_for(self, station: str) -> Callable[[bool, float, str], None]:
        def on_link(up: bool, t: float, detail: str) -> None:
            self.engine.link_changed(station, up, t, self.clock.wall(), detail)
            if up and not self._heap_frozen and all(self.engine.link_up.get(n) for n in self.site.stations):
                self._heap_frozen = True
                freeze_heap()  # and once more with the sessions built (OPC-UA keeps a lot)

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
                        # why a group on signals declared unsafe when BAD still drops them
                        "degraded_reasons": dict(self.site.degraded_reasons),
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
        freeze_heap()
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
        if self._commits:  # the loop's last commits, in order, before the journal's thread goes
            await asyncio.gather(*list(self._commits), return_exceptions=True)
        self._journal_exec.shutdown(wait=True)  # a write in flight ends before the last one
        self._hist_exec.shutdown(wait=True)
        # what no scan will journal now: a failed batch, and events noted since the last scan
        # (operator actions, alarm changes such as the journal:write clear)
        take = getattr(self.procedures, "take_events", None)
        pending = self._unjournaled + self.engine.take_events() + (take() if take is not None else [])
        if pending:
            with contextlib.suppress(PlantctlError):
                self.journal.append_many(pending)
        if self.historian is not None:
            self.historian.close()
        gc.unfreeze()  # what start() froze is ordinary garbage again once the controller is gone

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
            # called as scan_once(now), so that a wrapper that forwards only ``now`` still works
            self._commit_behind = True
            try:
                await self.scan_once(started)
                self._scan_succeeded()
            except Exception as exc:  # noqa: BLE001  a bug must not end protection: see _scan_failed
                self._scan_failed(exc, "periodic scan")
            finally:
                self._commit_behind = False
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
            await self._wait(next_t)

    SCAN_FAULT = "controller:scan"

    def _scan_failed(self, exc: Exception, which: str) -> None:
        """An unexpected exception in a scan is a bug in plantctl or in a site's procedure code.
        The loop must not die of it: a dead loop would leave the HMI showing the last values
        while nothing protects. So: count it, log it (with its traceback, the first time in a
        row), raise a top-priority alarm that names it, and scan again at the next period,
        where the readings are fresh. Trips already latched stay latched (they are engine
        state, not in-flight work), and the PLC's own hard-wired trips are untouched."""
        self.stats.scan_errors += 1
        first = not self.engine.alarms.is_active(self.SCAN_FAULT)
        if first:
            log.exception("%s failed; the scan loop goes on", which)
        elif self.stats.scan_errors % 100 == 0:  # not a line every scan: the alarm is standing
            log.error("%s failed again (%d scan failures so far): %r", which, self.stats.scan_errors, exc)
        try:
            self.engine.note_many(self.engine.alarms.raise_(
                self.SCAN_FAULT, f"controller {which} failed: {exc!r}; automatic protection by plantctl "
                "is not assured until this clears (PLC trips are unaffected)",
                Priority.CRITICAL, self.clock.now(), self.clock.wall(), "", "controller"))
        except Exception:  # noqa: BLE001  the alarm board itself broken: the log line is all we have
            log.exception("cannot raise the scan-fault alarm")

    def _scan_succeeded(self) -> None:
        if self.engine.alarms.is_active(self.SCAN_FAULT):
            self.engine.note_many(self.engine.alarms.clear(self.SCAN_FAULT, self.clock.now(), self.clock.wall()))

    async def _wait(self, deadline: float) -> None:
        """Sleep until the next periodic scan; run a trip scan at each trigger change meanwhile."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
        waker: asyncio.Future[Any] | None = None
        try:
            while True:
                waker = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
                if waker not in done:
                    return
                started = self.clock.now()
                try:
                    await self.scan_trips(started, wait_commit=False)
                except Exception as exc:  # noqa: BLE001  as in _loop: alarm it, keep scanning
                    self._scan_failed(exc, "trip scan")
                took_ms = (self.clock.now() - started) * 1000.0
                self.stats.trip_scans += 1
                self.stats.recent_trip_ms.append(took_ms)
                if sleeper.done():
                    return
        finally:
            for fut in (sleeper, waker):
                if fut is not None and not fut.done():
                    fut.cancel()

    async def scan_trips(self, now: float, *, wait_commit: bool | None = None) -> ScanResult:
        """The trip path alone, between two periodic scans: interlocks, their commands, their events.
        Called by the scan loop it returns once the commands are out, the journal commit going
        on in the background (see ``_commit``); ``wait_commit`` says otherwise."""
        return await self._scan(now, trips_only=True, wait_commit=wait_commit)

    async def scan_once(self, now: float, *, wait_commit: bool | None = None) -> ScanResult:
        """One periodic scan. Called by the scan loop it returns once the commands are out, the
        journal commit (then the historian sample) going on in the background; called from
        anywhere else it returns with its events durable. ``wait_commit`` says otherwise."""
        return await self._scan(now, trips_only=False, wait_commit=wait_commit)

    async def _scan(self, now: float, *, trips_only: bool, wait_commit: bool | None) -> ScanResult:
        """A scan is built so that a bug in one of its stages loses nothing already decided:
        whatever the engine and the procedures produced before an exception (a trip's
        commands above all) is still dispatched and journaled, and only then is the
        exception raised again, for the scan loop to count and alarm (``_scan_failed``)."""
        wall = self.clock.wall()
        self._wake.clear()  # this scan sees every change so far; a later one wakes the loop again
        failure: Exception | None = None
        if self.heartbeats:
            try:
                self._supervise_heartbeats(now, wall)
            except Exception as exc:  # noqa: BLE001  a bug here must not stop the interlocks: raised below
                failure = exc
        snapshot = self.table.snapshot(now)
        result = ScanResult()
        try:
            result = self.engine.scan(snapshot, now, wall, trips_only=trips_only)
        except Exception as exc:  # noqa: BLE001  raised again below, once the outboxes are out
            failure = failure or exc
        try:
            if self.procedures is not None:
                for proc_id, reason in result.start_procedures:
                    self.procedures.start(proc_id, reason, now, wall)
                if not trips_only:
                    more = self.procedures.step(snapshot, now, wall, self.engine)
                    result.commands.extend(more.commands)
                    result.events.extend(more.events)
        except Exception as exc:  # noqa: BLE001  as above
            failure = failure or exc
        take = getattr(self.procedures, "take_events", None)
        if take is not None:
            result.events.extend(take())
        # operator requests accepted between scans, and anything a failed stage left behind
        result.commands.extend(self.engine.take_commands())
        result.events.extend(self.engine.take_events())
        # 3. commands first
        retry: list[Command] = []
        if not trips_only:
            retry, self._retry = self._retry, []
        for cmd in retry + result.commands:
            self._dispatch(cmd, now)
        if retry or result.commands:
            await yield_to_loop()  # the writes reach the socket before the journal starts its fsync
        # 4. durable, then published; the historian samples at its own period, on its own
        # thread (the snapshot is immutable: the points are made there, off the event loop),
        # once this scan's commit is done, so that the two threads do not contend for it
        sample = not trips_only and self.historian is not None and now >= self._hist_next
        if sample and self.historian is not None:
            self._hist_next = now + self._hist_period
            result.events.extend(historian_alarms(self.engine.alarms, self.historian.status(), now, wall))
        await self._commit(result.events, not self._commit_behind if wait_commit is None else wait_commit,
                           (snapshot, wall) if sample else None)
        if failure is not None:
            raise failure
        return result

    def heartbeat_alarm_id(self, station: str) -> str:
        return f"heartbeat:{station}"

    def _supervise_heartbeats(self, now: float, wall: float) -> None:
        """Check each station's PLC heartbeat; a transition holds or releases every tag of the
        station and raises or clears its alarm (plantctl.heartbeat). The driver's own reading
        is looked at (``table[...]``), not a snapshot: a held reading is BAD by construction
        and would hide the counter moving again."""
        for name, watch in self.heartbeats.items():
            beat = watch.observe(self.table[self.key(name, watch.tag)], bool(self.engine.link_up.get(name)), now)
            if beat is Beat.FROZE:
                self.table.hold_bad(self._station_keys[name], Reason.PLC_FROZEN)
                log.error("PLC I/O heartbeat %s of %s frozen for %.1f s", watch.tag, name, watch.age(now))
                self.engine.note_many(self.engine.alarms.raise_(
                    self.heartbeat_alarm_id(name),
                    f"PLC I/O heartbeat {watch.tag} of {name} has not changed for {watch.age(now):.1f} s "
                    f"(limit {watch.max_age_s:g} s): the PLC serves frozen values; every {name} signal is BAD",
                    Priority.CRITICAL, now, wall, name, "heartbeat"))
            elif beat is Beat.MOVED:
                self.table.release(self._station_keys[name])
                log.warning("PLC I/O heartbeat %s of %s moves again", watch.tag, name)
                self.engine.note_many(self.engine.alarms.clear(self.heartbeat_alarm_id(name), now, wall))

    async def _commit(self, events: list[Event], wait: bool, sample: tuple[Any, float] | None = None) -> None:
        """Journal a scan's events (then let the historian sample its snapshot).

        The scan loop does not wait for the commit: a trip found while the disk is busy with
        the previous scan's fsync must not wait for it. Commits still happen one at a time,
        in scan order (``_commit_lock``), each durable before it is published."""

        async def commit() -> None:
            t0 = self.clock.now()
            async with self._commit_lock:
                await self._journal(events)
            self.stats.recent_commit_ms.append((self.clock.now() - t0) * 1000.0)
            if sample is not None and self.historian is not None:
                asyncio.get_running_loop().run_in_executor(self._hist_exec, _record_snapshot, self.historian, *sample)

        if wait:
            await commit()
            return
        task = asyncio.create_task(commit(), name="journal commit")
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

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
            now, wall = self.clock.now(), self.clock.wall()
            if cmd.id not in self._write_failing:  # journaled once, not once per retry
                self._write_failing.add(cmd.id)
                self.engine.note(
                    Event(EventKind.SYSTEM, now, wall, cmd.station, "fieldbus", cmd.user, "",
                          {"what": "write failed", "id": cmd.id, "tag": cmd.tag, "error": str(exc)})
                )
            if self.engine.write_result(cmd, str(exc), now, wall):
                self._retry.append(cmd)  # the next scan tries again
            else:
                self._write_failing.discard(cmd.id)
        else:
            self._write_failing.discard(cmd.id)
            self.engine.write_result(cmd, None, self.clock.now(), self.clock.wall())

    async def _journal(self, events: list[Event], points: list[Point] | None = None) -> None:
        batch = self._unjournaled + events
        loop = asyncio.get_running_loop()
        if points and self.historian is not None:
            # the historian's own thread: never blocks the scan's event loop, nor the journal
            hist = self.historian
            loop.run_in_executor(self._hist_exec, _record_quietly, hist, points)
        if not batch:
            return
        written: list[Event] = batch
        leftover: list[Event] = []
        error: PlantctlError | None = None
        try:
            await loop.run_in_executor(self._journal_exec, self.journal.append_many, batch)
        except InvalidEvent:
            # One malformed event must not block the journal: write the others one by one
            # and record what was refused.
            written, leftover, error = await loop.run_in_executor(self._journal_exec, self._append_valid, batch)
        except PlantctlError as exc:
            written, leftover, error = [], batch, exc
        if leftover:
            # Keep protecting; keep the events not yet written (in order, for the next commit);
            # tell the operator loudly (the log once per outage: a line every scan would only
            # fill the full disk faster).
            self._unjournaled = leftover
            now = self.clock.now()
            if not self.engine.alarms.is_active("journal:write"):
                log.error("journal write failed: %s", error)
            self.engine.note_many(
                self.engine.alarms.raise_(
                    "journal:write", f"journal cannot write: {error}", Priority.CRITICAL, now, self.clock.wall(), "", "journal"
                )
            )
        else:
            self._unjournaled = []
            if self.engine.alarms.is_active("journal:write"):
                self.engine.note_many(self.engine.alarms.clear("journal:write", self.clock.now(), self.clock.wall()))
        if not written:
            return
        for sub in list(self.subscribers):  # durable first, then published: only what was written
            try:
                sub(written)
            except Exception:  # a subscriber must never stop the scan  # noqa: BLE001
                log.exception("subscriber failed")

    def _append(self, events: list[Event]) -> None:
        self.journal.append_many(events)

    def _append_valid(self, batch: list[Event]) -> tuple[list[Event], list[Event], PlantctlError | None]:
        """Append each valid event, one by one, and a SYSTEM record for each refused one.
        Returns what was written, what could not be written for I/O reasons (in order, to
        be tried again), and that I/O error."""
        written: list[Event] = []
        for i, ev in enumerate(batch):
            try:
                self.journal.append(ev)
                written.append(ev)
            except InvalidEvent as exc:
                log.error("event refused by the journal: %s: %r", exc, ev)
                note = Event(EventKind.SYSTEM, ev.t_plant if ev.t_plant == ev.t_plant else 0.0, self.clock.wall(),
                             ev.station if isinstance(ev.station, str) else "", "journal", "", "",
                             {"what": "event refused", "kind": str(ev.kind), "error": str(exc)})
                try:
                    self.journal.append(note)
                except PlantctlError as io_exc:
                    return written, [note, *batch[i + 1:]], io_exc
                written.append(note)
            except PlantctlError as exc:
                return written, batch[i:], exc
        return written, [], None


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    The libraries, the site, the I/O lists and the sessions live as long as the process;
    left in the oldest generation, each full collection walks them all, which stops the
    event loop for tens of milliseconds (measured: 40-50 ms with asyncua loaded) and a
    trip would wait for it. Called at start-up and once every link is up; garbage made
    later is collected as usual, and ``Controller.stop`` unfreezes everything."""
    gc.collect()
    gc.freeze()


def snapshot_points(snapshot: Any, wall: float) -> list[Point]:
    """``points_from_snapshot`` of a whole scan, read straight off a table snapshot's columns
    when it has them (the same points, without building a reading per tag)."""
    if isinstance(snapshot, TableSnapshot) and snapshot.has_columns:
        keys = snapshot.keys_tuple
        cols = snapshot.columns_for(keys)
        if not (cols.vtype > BOOL).any():  # every value a float, int or bool
            split = _SPLIT.get(id(keys))
            if split is None or split[0] is not keys:
                parts = [k.partition(":") for k in keys]
                split = _SPLIT[id(keys)] = (keys, [p[0] if p[1] else "" for p in parts],
                                            [p[2] if p[1] else p[0] for p in parts])
            _, stations, tags = split
            return list(map(Point, stations, tags, itertools.repeat(wall), cols.value.tolist(),
                            cols.quality.tolist()))
    return points_from_snapshot("", snapshot, wall)


_SPLIT: dict[int, tuple[tuple[str, ...], list[str], list[str]]] = {}  # key order -> stations, tags


def _record_snapshot(hist: Historian, snapshot: Any, wall: float) -> None:
    try:
        points = snapshot_points(snapshot, wall)
    except Exception:  # never stop a scan  # noqa: BLE001
        log.exception("historian sampling failed")
        return
    _record_quietly(hist, points)


def _record_quietly(hist: Historian, points: list[Point]) -> None:
    try:
        hist.record(points)
    except Exception:  # the historian reports its own state through status(); never stop a scan  # noqa: BLE001
        log.exception("historian record failed")


def default_driver_factory(ctrl: Controller, name: str) -> Driver:
    st = ctrl.site.stations[name]
    opts = dict(st.plc.options)
    if st.plc.protocol == "modbus":
        from .fieldbus.modbus import DEFAULT_SCAN_RULES, ModbusDriver

        tls = None
        if opts.get("tls_cert"):
            tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=opts.get("tls_ca"))
            tls.load_cert_chain(opts["tls_cert"], opts.get("tls_key"))
        classes = dict(opts.get("scan_classes") or {})
        default_ms = classes.pop("default", opts["period_ms"])
        rules = opts.get("scan_rules")
        return ModbusDriver(
            st.iolist,
            opts["host"],
            int(opts["port"]),
            ctrl.clock,
            ctrl.on_readings_for(name),
            ctrl.on_link_for(name),
            unit_id=opts.get("unit_id"),
            timeout=float(opts["timeout_s"]),
            period=default_ms / 1000.0,
            tls=tls,
            scan_classes={k: v / 1000.0 for k, v in classes.items()} or None,
            scan_rules=tuple(rules.items()) if rules else DEFAULT_SCAN_RULES,
            on_columns=ctrl.on_columns_for(name),
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
