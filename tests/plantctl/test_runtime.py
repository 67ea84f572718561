"""The runtime controller: start-up journal check, scan loop, commands before the journal."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from plantctl.clock import VirtualClock
from plantctl.fieldbus.loopback import LoopbackDriver
from plantctl.journal import Event, EventKind, Journal, verify
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import open_journal
from plantctl.site import load_site
from sim_plc.gas_station import GasStation


def _site(tmp_path: Path) -> Any:
    p = tmp_path / "site.yaml"
    p.write_text(f"""site: t
journal: {tmp_path / 'journal.db'}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {{protocol: loopback}}
interlocks:
  - id: GT-GAS-2OO3
    station: gas_station
    description: gas 2oo3
    vote: 2oo3
    degraded: drop
    degraded_reason: plant-reference 3.7 default (FAULT_VOTES_TRIP = false)
    members:
      - {{tag: GD-401A, op: ">=", value: 25}}
      - {{tag: GD-401B, op: ">=", value: 25}}
      - {{tag: GD-401C, op: ">=", value: 25}}
    effects:
      - {{command: XY-400, value: false}}
""")
    return load_site(p)


def _controller(site: Any, clock: VirtualClock, model: GasStation, journal: Journal | None = None) -> Controller:
    journal = journal or Journal(site.journal_path)

    def factory(ctrl: Controller, name: str) -> Any:
        return LoopbackDriver(site.stations[name].iolist, model, clock, ctrl.on_readings_for(name), ctrl.on_link_for(name))

    return Controller(site, clock, journal, driver_factory=factory)


def _loopback_controller(tmp_path: Path) -> tuple[Any, VirtualClock, GasStation, Controller, LoopbackDriver]:
    """The test site's controller on a virtual clock, its gas station on the loopback driver."""
    site = _site(tmp_path)
    clock = VirtualClock()
    model = GasStation()
    ctrl = _controller(site, clock, model)
    drv = ctrl.drivers["gas_station"]
    assert isinstance(drv, LoopbackDriver)
    return site, clock, model, ctrl, drv


async def test_broken_chain_raises_a_top_priority_alarm_at_start(tmp_path: Path) -> None:
    site = _site(tmp_path)
    with Journal(site.journal_path) as j:
        for i in range(5):
            j.append(Event(EventKind.SYSTEM, float(i), 1e9 + i, "", "test", "", "", {"n": i}))
    # an attacker edits one byte of record 2, going around the append-only triggers
    con = sqlite3.connect(site.journal_path)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    triggers = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for t in triggers:
        con.execute(f"DROP TRIGGER {t}")
    con.execute("UPDATE events SET payload = replace(payload, ':', ': ') WHERE seq = 2")
    con.commit()
    con.close()
    clock = VirtualClock()
    model = GasStation()
    journal, problems = open_journal(site.journal_path, clock.wall())
    assert journal.path != site.journal_path  # the damaged file is kept as it is, never repaired
    assert any("events_no_update" in p for p in problems)
    ctrl = _controller(site, clock, model, journal)
    ctrl.startup_problems = problems
    await ctrl.check_journal()
    assert ctrl.engine.alarms.is_active("journal:chain")
    events = ctrl.engine.take_events()
    assert any(e.kind is EventKind.SYSTEM and "events_no_update" in str(e.payload.get("problems")) for e in events)
    # the broken file is untouched: verify still names the edited record
    assert any("record 2" in p for p in verify(site.journal_path).problems)
    ctrl.journal.close()


async def test_trip_commands_go_out_before_the_journal_write(tmp_path: Path) -> None:
    site = _site(tmp_path)
    clock = VirtualClock()
    model = GasStation()
    ctrl = _controller(site, clock, model)
    order: list[str] = []
    drv = ctrl.drivers["gas_station"]
    real_write = drv.write

    async def write(tag: str, value: Any) -> None:
        order.append(f"write {tag}")
        await real_write(tag, value)

    drv.write = write  # type: ignore[method-assign]
    real_append = ctrl.journal.append_many

    def append_many(events: list[Event]) -> Any:
        if any(e.kind is EventKind.TRIP for e in events):
            order.append("journal TRIP")
        return real_append(events)

    ctrl.journal.append_many = append_many  # type: ignore[method-assign]
    drv.poll(clock.now())
    model.inject("detector_stuck", tag="GD-401A", value=40.0)
    model.inject("detector_stuck", tag="GD-401B", value=40.0)
    model.step(0.1)
    drv.poll(clock.now())
    await ctrl.scan_once(clock.now())
    await ctrl.scan_once(clock.now())
    assert order[:2] == ["write XY-400", "journal TRIP"], order
    ctrl._journal_exec.shutdown(wait=True)
    ctrl.journal.close()


async def test_a_scan_that_raises_is_alarmed_and_the_loop_keeps_protecting(tmp_path: Path) -> None:
    """A bug that makes the engine raise must not end the scan loop: the failure is counted and
    raised as a top-priority alarm, the loop goes on, the alarm clears when a scan succeeds,
    and a 2oo3 gas trip still reaches the ESD coil afterwards."""

    from plantctl.alarms import Priority
    from plantctl.interlocks import TripState

    site, clock, model, ctrl, drv = _loopback_controller(tmp_path)
    real_scan = ctrl.engine.scan
    broken = False

    def scan(*args: Any, **kwargs: Any) -> Any:
        if broken:
            raise ZeroDivisionError("a bug in the engine")
        return real_scan(*args, **kwargs)

    ctrl.engine.scan = scan  # type: ignore[method-assign]

    async def run_for(seconds: float) -> None:
        end = clock.now() + seconds
        while clock.now() < end - 1e-9:
            model.step(0.05)
            drv.poll(clock.now())
            clock.advance(0.05)
            for _ in range(20):
                await asyncio.sleep(0)

    await ctrl.start()
    try:
        await run_for(0.5)
        assert ctrl.stats.scan_errors == 0
        broken = True
        before = ctrl.stats.scans
        await run_for(1.0)
        assert ctrl._task is not None and not ctrl._task.done()
        assert ctrl.stats.scan_errors >= 5 and ctrl.stats.scans > before
        alarm = ctrl.engine.alarms.alarms["controller:scan"]
        assert alarm.in_alarm and alarm.priority is Priority.CRITICAL and "ZeroDivisionError" in alarm.message
        broken = False
        await run_for(0.5)
        assert not ctrl.engine.alarms.is_active("controller:scan")
        # and protection works again: two detectors over the limit trip the gas turbine feed
        model.inject("detector_stuck", tag="GD-401A", value=40.0)
        model.inject("detector_stuck", tag="GD-401B", value=40.0)
        await run_for(1.5)
        assert ctrl.engine.interlocks["GT-GAS-2OO3"].state is TripState.TRIPPED
        assert model.read_tags()["XY-400"] is False  # the ESD command reached the plant
    finally:
        await ctrl.stop()
        ctrl.journal.close()
    with Journal(site.journal_path) as j:
        scan_alarms = [r.event for r in j.records(kinds=[EventKind.ALARM]) if r.event.payload.get("id") == "controller:scan"]
    with Journal(site.journal_path) as j:
        load = next(r.event for r in j.records(kinds=[EventKind.CONFIG_LOAD]))
    assert "FAULT_VOTES_TRIP" in load.payload["degraded_reasons"]["GT-GAS-2OO3"]  # the why is on the record
    # raised (condition true) and cleared (condition false), both on the record
    assert [e.payload["condition"] for e in scan_alarms][:2] == [True, False], scan_alarms


async def test_a_procedure_bug_in_the_trip_scan_does_not_lose_the_trip(tmp_path: Path) -> None:
    """The scan in which a trip latches also runs the procedures; should one of them raise,
    the trip's ESD write still goes out and its TRIP record is still journaled, and then
    the exception reaches the scan loop (which alarms it)."""
    import pytest

    site, clock, model, ctrl, drv = _loopback_controller(tmp_path)

    class BuggyProcedures:
        def start(self, proc_id: str, reason: str, now: float, wall: float, user: str = "") -> Any:
            return None

        def step(self, snapshot: Any, now: float, wall: float, engine: Any) -> Any:
            raise KeyError("a bug in a procedure")

    ctrl.procedures = BuggyProcedures()
    drv.poll(clock.now())
    model.inject("detector_stuck", tag="GD-401A", value=40.0)
    model.inject("detector_stuck", tag="GD-401B", value=40.0)
    model.step(0.1)
    clock.advance(0.1)
    drv.poll(clock.now())
    with pytest.raises(KeyError):
        await ctrl.scan_once(clock.now())
    for _ in range(10):
        await asyncio.sleep(0)  # the write task runs
    assert model.read_tags()["XY-400"] is False
    ctrl._journal_exec.shutdown(wait=True)
    kinds = [r.event.kind for r in ctrl.journal.records()]
    assert EventKind.TRIP in kinds and EventKind.COMMAND in kinds
    ctrl.journal.close()


async def test_a_command_without_feedback_is_retried_until_stale_then_failed(tmp_path: Path) -> None:
    """A write that fails (link down) is retried each scan, journaled once; past write_retry_s
    the command fails (COMMAND_FAILED, a HIGH alarm) and is never written afterwards, even when
    the link comes back (F-X01: no replay of stale commands). Until then a procedure sees it
    pending, not verified."""
    site, clock, model, ctrl, drv = _loopback_controller(tmp_path)
    drv.poll(clock.now())
    await ctrl.scan_once(clock.now())
    drv.set_link(False)
    cmd = ctrl.engine.make_command("gas_station", "HS-400", "UNLOAD", "test", clock.now(), "op")
    assert cmd.verify is None
    ctrl.engine._emit_command(cmd, clock.wall())
    written: list[Any] = []
    real_write = drv.write

    async def write(tag: str, value: Any) -> None:
        await real_write(tag, value)
        written.append((tag, value))

    drv.write = write  # type: ignore[method-assign]
    for _ in range(40):  # 4 s of scans with the link down
        await ctrl.scan_once(clock.now())
        for _ in range(5):
            await asyncio.sleep(0)
        assert ctrl.engine.command_state(cmd.id) == "pending"
        clock.advance(0.1)
    clock.advance(1.5)  # past write_retry_s (5 s)
    await ctrl.scan_once(clock.now())
    for _ in range(5):
        await asyncio.sleep(0)
    await ctrl.scan_once(clock.now())
    assert ctrl.engine.command_state(cmd.id) == "failed"
    assert ctrl.engine.alarms.is_active("cmd:gas_station:HS-400:failed")
    drv.set_link(True)
    for _ in range(5):
        clock.advance(0.1)
        await ctrl.scan_once(clock.now())
        for _ in range(5):
            await asyncio.sleep(0)
    assert written == []  # never replayed once stale
    ctrl._journal_exec.shutdown(wait=True)
    events = [r.event for r in ctrl.journal.records()]
    assert sum(1 for e in events if e.payload.get("what") == "write failed" and e.payload.get("id") == cmd.id) == 1
    assert any(e.kind is EventKind.COMMAND_FAILED and e.payload.get("id") == cmd.id for e in events)
    ctrl.journal.close()


async def test_a_malformed_event_is_refused_alone_and_the_rest_is_journaled_and_published(tmp_path: Path) -> None:
    """One event the journal refuses (a non-finite time) in a scan's batch: the others are
    written and published to the subscribers (HMI, historian), with a SYSTEM record of the
    refusal; and when the disk fails half-way, what was not written is kept, in order, for
    the next commit, with the journal:write alarm."""
    from plantctl.journal import JournalError

    site = _site(tmp_path)
    clock = VirtualClock()
    ctrl = _controller(site, clock, GasStation())
    published: list[Event] = []
    ctrl.subscribers.append(published.extend)
    good = [Event(EventKind.SYSTEM, 1.0, 1e9, "", "test", "", "", {"n": i}) for i in range(3)]
    bad = Event(EventKind.SYSTEM, float("nan"), 1e9, "", "test", "", "", {"n": "bad"})
    await ctrl._journal([good[0], bad, good[1], good[2]])
    records = [r.event for r in ctrl.journal.records()]
    assert [e.payload.get("n") for e in records if e.source == "test"] == [0, 1, 2]
    assert any(e.payload.get("what") == "event refused" for e in records)
    assert [e.payload.get("n") for e in published if e.source == "test"] == [0, 1, 2]
    # the disk fails after the first of three: the two others wait, in order
    real_append = ctrl.journal.append
    calls = {"n": 0}

    def failing_append(ev: Event) -> Any:
        calls["n"] += 1
        if calls["n"] > 3:
            raise JournalError("disk full")
        return real_append(ev)

    ctrl.journal.append = failing_append  # type: ignore[method-assign]
    more = [Event(EventKind.SYSTEM, 2.0, 1e9, "", "test", "", "", {"n": 10 + i}) for i in range(3)]
    await ctrl._journal([bad, *more])  # bad refused (call 1), its note (2), 10 (3), 11 fails
    assert [e.payload.get("n") for e in ctrl._unjournaled] == [11, 12]
    assert ctrl.engine.alarms.is_active("journal:write")
    ctrl.journal.append = real_append  # type: ignore[method-assign]
    await ctrl._journal([])
    assert [e.payload.get("n") for e in (r.event for r in ctrl.journal.records()) if e.source == "test"] == [0, 1, 2, 10, 11, 12]
    assert not ctrl._unjournaled
    ctrl._journal_exec.shutdown(wait=True)
    ctrl.journal.close()
