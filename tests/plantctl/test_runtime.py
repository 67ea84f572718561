"""The runtime controller: start-up journal check, scan loop, commands before the journal."""

from __future__ import annotations

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
    import asyncio

    from plantctl.alarms import Priority
    from plantctl.interlocks import TripState

    site = _site(tmp_path)
    clock = VirtualClock()
    model = GasStation()
    ctrl = _controller(site, clock, model)
    drv = ctrl.drivers["gas_station"]
    assert isinstance(drv, LoopbackDriver)
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
    # raised (condition true) and cleared (condition false), both on the record
    assert [e.payload["condition"] for e in scan_alarms][:2] == [True, False], scan_alarms
