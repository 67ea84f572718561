"""Scan classes: configured per station, polled on their own periods, and a change of a
fast-class cause-and-effect input runs a trip scan at once instead of waiting for the
periodic scan (docs/site-files.md, "Scan classes")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plantctl.clock import RealClock, VirtualClock
from plantctl.errors import ConfigError
from plantctl.fieldbus.loopback import LoopbackDriver
from plantctl.fieldbus.modbus import ModbusDriver
from plantctl.journal import Event, EventKind, Journal
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.site import Site, load_site
from plantctl.tags import FLOAT
from sim_plc.gas_station import GasStation
from sim_plc.modbus_server import StationModbusServer
from sim_plc.plant import Plant

pytestmark = pytest.mark.timeout(60)

GAS = "gas_station"

INTERLOCKS = """\
interlocks:
  - id: GT-GAS-2OO3
    station: gas_station
    description: gas 2oo3
    vote: 2oo3
    degraded: drop
    degraded_reason: plant-reference 3.7 default (FAULT_VOTES_TRIP = false)
    members:
      - {tag: GD-401A, op: ">=", value: 25}
      - {tag: GD-401B, op: ">=", value: 25}
      - {tag: GD-401C, op: ">=", value: 25}
    effects:
      - {command: XY-400, value: false}
  - id: PIPE-LOW
    station: gas_station
    description: pipeline pressure low (a default-class cause)
    vote: 1oo1
    degraded: drop
    degraded_reason: plant-reference 3.7 default (FAULT_VOTES_TRIP = false)
    members:
      - {tag: PT-101, op: "<=", value: 0.5}
"""


def _site(tmp_path: Path, plc: str) -> Site:
    p = tmp_path / "site.yaml"
    p.write_text(f"""site: t
journal: {tmp_path / 'journal.db'}
engine: {{scan_period_ms: 10000, two_person: false}}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {plc}
{INTERLOCKS}""")
    return load_site(p)


MODBUS = "{protocol: modbus, port: 1, scan_classes: {fast: 10, default: 200, slow: 1000}, scan_rules: {'GD-': fast, 'ZSC-': fast, 'TT-': slow}}"


def test_site_scan_classes_reach_the_modbus_driver(tmp_path: Path) -> None:
    site = _site(tmp_path, MODBUS)
    ctrl = Controller(site, RealClock(), Journal(site.journal_path))
    drv = ctrl.drivers[GAS]
    assert isinstance(drv, ModbusDriver)
    assert {n: sc.period for n, sc in drv.classes.items()} == {"default": 0.2, "fast": 0.01, "slow": 1.0}
    assert {"GD-401A", "GD-401B", "GD-401C", "ZSC-320"} <= set(drv.classes["fast"].tags)
    assert all(t.startswith(("GD-", "ZSC-")) for t in drv.classes["fast"].tags)
    assert all(t.startswith("TT-") for t in drv.classes["slow"].tags)
    assert "PT-101" in drv.classes["default"].tags
    # the trip scan waits on the fast cause-and-effect inputs only
    assert ctrl.trigger_keys == {"GD-401A", "GD-401B", "GD-401C"}
    ctrl.journal.close()


@pytest.mark.parametrize(
    ("plc", "problem"),
    [
        ("{protocol: modbus, scan_classes: {fast: 10}, scan_rules: {'GD-': fastest}}", "class 'fastest' is not in"),
        ("{protocol: modbus, period_ms: 100, scan_classes: {default: 200}}", "disagree"),
        ("{protocol: modbus, scan_classes: {fast: 0}}", "outside 1..60000"),
    ],
)
def test_site_refuses_inconsistent_scan_classes(tmp_path: Path, plc: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _site(tmp_path, plc)


def test_without_scan_classes_one_default_class_at_period_ms(tmp_path: Path) -> None:
    site = _site(tmp_path, "{protocol: modbus, port: 1, period_ms: 250}")
    ctrl = Controller(site, RealClock(), Journal(site.journal_path))
    drv = ctrl.drivers[GAS]
    assert isinstance(drv, ModbusDriver)
    assert {n: sc.period for n, sc in drv.classes.items()} == {"default": 0.25}
    assert ctrl.trigger_keys == frozenset()  # no fast class: everything waits for the periodic scan
    ctrl.journal.close()


def _block(ctrl: Controller, tags: tuple[str, ...], values: list[float]) -> None:
    n = len(tags)
    cb = ctrl.on_columns_for(GAS)
    cb(tags, np.array(values), np.full(n, FLOAT, np.int8), np.full(n, 2, np.int8), np.zeros(n, np.int8), 1.0)


def test_only_a_change_of_a_fast_cause_wakes_the_loop(tmp_path: Path) -> None:
    site = _site(tmp_path, MODBUS)
    ctrl = Controller(site, RealClock(), Journal(site.journal_path))
    fast, slow = ("GD-401A", "GD-401B"), ("PT-101", "PT-102")
    _block(ctrl, fast, [1.0, 1.0])
    _block(ctrl, slow, [3.0, 3.0])
    ctrl._wake.clear()
    _block(ctrl, slow, [0.1, 0.2])  # a default-class cause changed: the periodic scan will see it
    assert not ctrl._wake.is_set()
    _block(ctrl, fast, [1.0, 1.0])  # polled again, nothing changed
    assert not ctrl._wake.is_set()
    _block(ctrl, fast, [1.0, 30.0])
    assert ctrl._wake.is_set()
    assert ctrl.table["GD-401B"].value == 30.0 and ctrl.table["PT-101"].value == 0.1
    ctrl.journal.close()


async def test_trip_scan_sends_the_trip_before_the_journal_and_leaves_alarms_to_the_periodic_scan(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path, "{protocol: loopback}")
    clock = VirtualClock()
    model = GasStation()
    order: list[str] = []

    def factory(ctrl: Controller, name: str) -> Any:
        return LoopbackDriver(site.stations[name].iolist, model, clock, ctrl.on_readings_for(name), ctrl.on_link_for(name))

    ctrl = Controller(site, clock, Journal(site.journal_path), driver_factory=factory)
    assert ctrl.trigger_keys == {"GD-401A", "GD-401B", "GD-401C"}  # the built-in rules call them fast
    drv = ctrl.drivers[GAS]
    real_write = drv.write

    async def write(tag: str, value: Any) -> None:
        order.append(f"write {tag}")
        await real_write(tag, value)

    drv.write = write  # type: ignore[method-assign]
    real_append = ctrl.journal.append_many

    def append_many(events: list[Event]) -> Any:
        order.extend(f"journal {e.kind.value} {e.payload.get('id', '')}".strip()
                     for e in events if e.kind in (EventKind.TRIP, EventKind.ALARM))
        return real_append(events)

    ctrl.journal.append_many = append_many  # type: ignore[method-assign]
    assert isinstance(drv, LoopbackDriver)
    drv.poll(clock.now())
    await ctrl.scan_once(clock.now())
    order.clear()
    model.inject("detector_stuck", tag="GD-401A", value=40.0)
    model.inject("detector_stuck", tag="GD-401B", value=40.0)
    model.step(0.1)
    drv.poll(clock.now())
    assert ctrl._wake.is_set()  # the detectors changed: the loop would run a trip scan now
    await ctrl.scan_trips(clock.now())
    assert order[:2] == ["write XY-400", "journal TRIP"], order
    assert "journal ALARM GT-GAS-2OO3:trip" in order  # the trip's own alarm goes with it
    assert not any("GD-401" in o for o in order)  # the detectors' limit alarms do not
    assert not ctrl.engine.alarms.is_active("gas_station:GD-401A:HH")  # alarms wait for the periodic scan
    await ctrl.scan_once(clock.now())
    assert ctrl.engine.alarms.is_active("gas_station:GD-401A:HH")
    ctrl._journal_exec.shutdown(wait=True)
    ctrl.journal.close()


@pytest.fixture
async def gas_server() -> AsyncIterator[tuple[Plant, StationModbusServer]]:
    from plantctl.iolist import load_io_list

    plant = Plant([GasStation(seed=0)], VirtualClock())
    srv = StationModbusServer(plant, load_io_list(io_dir() / "gas_station.yaml"))
    await srv.start()
    try:
        yield plant, srv
    finally:
        await srv.stop()


async def test_a_fast_class_change_trips_before_the_periodic_scan_comes_round(
    tmp_path: Path, gas_server: tuple[Plant, StationModbusServer]
) -> None:
    """Over real Modbus: detectors polled every 10 ms, the periodic scan every 60 s. The ESD
    write reaches the PLC, and the TRIP is journaled, with no periodic scan in between."""
    plant, srv = gas_server
    site = _site(tmp_path, MODBUS.replace("port: 1", f"port: {srv.port}"))
    ctrl = Controller(site, RealClock(), Journal(site.journal_path), scan_period_s=60.0)
    written = asyncio.Event()
    journaled = asyncio.Event()
    real_write = plant.write

    def plant_write(station: str, tag: str, value: Any) -> None:
        real_write(station, tag, value)
        if tag == "XY-400" and value is False:
            written.set()

    plant.write = plant_write  # type: ignore[method-assign]
    ctrl.subscribers.append(lambda evs: journaled.set() if any(e.kind is EventKind.TRIP for e in evs) else None)
    async with ctrl:
        # the first periodic scan runs at start; wait until the detectors have been read
        deadline = asyncio.get_running_loop().time() + 10
        while not (ctrl.stats.scans >= 1 and ctrl.engine.link_up.get(GAS) and ctrl.table["GD-401A"].good):
            assert asyncio.get_running_loop().time() < deadline, "controller never came up"
            await asyncio.sleep(0.01)
        scans_before = ctrl.stats.scans
        plant.inject(GAS, "detector_stuck", {"tag": "GD-401A", "value": 40.0})
        plant.inject(GAS, "detector_stuck", {"tag": "GD-401C", "value": 40.0})
        plant.advance(plant.dt)  # the model reports the stuck values from its next step
        await asyncio.wait_for(written.wait(), 10)
        await asyncio.wait_for(journaled.wait(), 10)
        assert ctrl.stats.scans == scans_before  # no periodic scan came round: a trip scan did it
        assert ctrl.stats.trip_scans >= 1
        assert "GT-GAS-2OO3" in ctrl.engine.tripped()
    ctrl.journal.close()


async def test_a_trip_scan_does_not_wait_for_the_disk(tmp_path: Path) -> None:
    """The scan loop hands each commit to the journal's thread and goes on: while that thread is
    stuck in a slow fsync, a detector change still gets its ESD write out at once."""
    import threading

    site = _site(tmp_path, "{protocol: loopback}")
    clock = VirtualClock()
    model = GasStation()

    def factory(ctrl: Controller, name: str) -> Any:
        return LoopbackDriver(site.stations[name].iolist, model, clock, ctrl.on_readings_for(name),
                              ctrl.on_link_for(name))

    ctrl = Controller(site, clock, Journal(site.journal_path), driver_factory=factory)
    drv = ctrl.drivers[GAS]
    assert isinstance(drv, LoopbackDriver)
    disk_stuck, in_fsync = threading.Event(), threading.Event()
    real_append = ctrl.journal.append_many

    def slow_append(events: list[Event]) -> Any:
        in_fsync.set()
        disk_stuck.wait(30)  # the journal's own thread: a disk that takes its time
        return real_append(events)

    written = asyncio.Event()
    real_write = drv.write

    async def write(tag: str, value: Any) -> None:
        await real_write(tag, value)
        if tag == "XY-400" and value is False:
            written.set()

    drv.write = write  # type: ignore[method-assign]
    await ctrl.start()
    try:
        ctrl.journal.append_many = slow_append  # type: ignore[method-assign]
        drv.poll(clock.now())  # link up: the next periodic scan has events to commit
        clock.advance(0.1)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.run_in_executor(None, in_fsync.wait, 10), 10)  # that commit hangs now
        model.inject("detector_stuck", tag="GD-401A", value=40.0)
        model.inject("detector_stuck", tag="GD-401B", value=40.0)
        model.step(0.1)
        drv.poll(clock.now())
        await asyncio.wait_for(written.wait(), 10)
        assert not disk_stuck.is_set() and ctrl.stats.trip_scans >= 1
    finally:
        disk_stuck.set()
        await ctrl.stop()
        ctrl.journal.close()
    assert any(r.event.kind is EventKind.TRIP for r in Journal(site.journal_path).records())


async def test_reads_waiting_for_the_wire_go_fastest_class_first() -> None:
    """While a read is on the wire, a detector poll (10 ms class) queued after two slow-class
    reads is served before them; a waiter cancelled in the queue is skipped, not served."""
    from plantctl.fieldbus.modbus import _FastestFirst

    gate = _FastestFirst()
    order: list[str] = []
    on_wire = asyncio.Event()
    release = asyncio.Event()

    async def read(name: str, period: float, hold: asyncio.Event | None = None) -> None:
        async with gate.hold(period):
            order.append(name)
            if hold is not None:
                on_wire.set()
                await hold.wait()

    first = asyncio.create_task(read("slow-1", 1.0, release))
    await on_wire.wait()
    queued = [asyncio.create_task(read("slow-2", 1.0)), asyncio.create_task(read("default", 0.1))]
    gone = asyncio.create_task(read("cancelled", 0.001))
    queued.append(asyncio.create_task(read("fast", 0.01)))
    for _ in range(5):
        await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *queued), 5)
    assert order == ["slow-1", "fast", "default", "slow-2"]
    # free again: the next reader goes straight through
    await asyncio.wait_for(read("again", 1.0), 1)
    assert order[-1] == "again"
