"""PLC I/O heartbeat supervision: the decision core, the table's BAD hold, the I/O-list field,
and the controller on a virtual clock against the gas station model (loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plantctl.clock import VirtualClock
from plantctl.errors import ConfigError
from plantctl.fieldbus.loopback import LoopbackDriver
from plantctl.heartbeat import Beat, HeartbeatWatch
from plantctl.iolist import load_io_list
from plantctl.journal import Journal
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.site import load_site
from plantctl.tags import Quality, Reading, Reason, TagTable
from sim_plc.gas_station import GasStation
from sim_plc.plant import Plant


def good(v: float, t: float = 0.0) -> Reading:
    return Reading(v, Quality.GOOD, t)


# -- the decision core ------------------------------------------------------------------------
def test_a_moving_counter_is_never_frozen() -> None:
    w = HeartbeatWatch("s", "KQI-000", 3.0)
    for i in range(100):
        assert w.observe(good(float(i // 10)), True, i * 0.1) is Beat.NONE  # +1 per second, scans at 0.1 s
    assert not w.frozen


def test_freezes_just_after_max_age_from_the_last_change_and_clears_on_the_next() -> None:
    w = HeartbeatWatch("s", "KQI-000", 3.0)
    assert w.observe(good(1.0), True, 0.0) is Beat.NONE
    assert w.observe(good(2.0), True, 1.0) is Beat.NONE  # last change seen at t = 1
    assert w.observe(good(2.0), True, 4.0) is Beat.NONE  # exactly max_age: not yet
    assert w.observe(good(2.0), True, 4.1) is Beat.FROZE
    assert w.observe(good(2.0), True, 9.0) is Beat.NONE  # reported once
    assert w.frozen
    assert w.observe(good(3.0), True, 9.1) is Beat.MOVED
    assert not w.frozen


def test_after_a_connect_the_link_gets_max_age_to_show_a_change_never_less_nor_more() -> None:
    w = HeartbeatWatch("s", "KQI-000", 3.0)
    # first reading after the connect is only the reference, however old the PLC's value
    assert w.observe(good(7.0), True, 10.0) is Beat.NONE
    assert w.observe(good(7.0), True, 12.9) is Beat.NONE
    assert w.observe(good(7.0), True, 13.1) is Beat.FROZE


def test_bad_or_missing_heartbeat_is_not_movement() -> None:
    w = HeartbeatWatch("s", "KQI-000", 3.0)
    w.observe(good(1.0), True, 0.0)
    # BAD readings with changing values (a failing sensor path) prove nothing
    for i, t in enumerate((1.0, 2.0, 3.0)):
        assert w.observe(Reading(float(10 + i), Quality.BAD, t, Reason.DEVICE_STATUS), True, t) is Beat.NONE
    assert w.observe(None, True, 3.5) is Beat.FROZE


def test_link_down_suspends_the_measure_and_keeps_the_verdict() -> None:
    w = HeartbeatWatch("s", "KQI-000", 3.0)
    w.observe(good(1.0), True, 0.0)
    assert w.observe(good(1.0), False, 2.0) is Beat.NONE  # link lost before max_age
    assert w.observe(good(1.0), False, 60.0) is Beat.NONE  # down for long: nothing is declared
    assert not w.frozen
    assert w.observe(good(1.0), True, 61.0) is Beat.NONE  # reconnect: max_age from here
    assert w.observe(good(1.0), True, 63.9) is Beat.NONE
    assert w.observe(good(1.0), True, 64.1) is Beat.FROZE
    # frozen, then an outage: still frozen after the reconnect until a change is seen
    w.observe(good(1.0), False, 70.0)
    assert w.observe(good(5.0), True, 80.0) is Beat.NONE  # the first value is the reference only
    assert w.frozen
    assert w.observe(good(6.0), True, 80.5) is Beat.MOVED


# -- the table's hold ---------------------------------------------------------------------------
@pytest.mark.parametrize("live", [False, True])
def test_hold_bad_overrides_good_keeps_other_bad_reasons_and_releases(live: bool) -> None:
    table = TagTable(["A", "B", "C", "D"], stale_after=3.0)
    if live:
        table._go_live()
    table.update("A", good(1.5, 10.0))
    table.update("B", Reading(2.0, Quality.BAD, 10.0, Reason.SENSOR_FAULT))
    table.update("C", Reading(3.0, Quality.UNCERTAIN, 10.0, Reason.OUT_OF_RANGE))
    table.update("D", good(4.0, 10.0))
    table.hold_bad(["A", "B", "C"], Reason.PLC_FROZEN)
    snap = table.snapshot(10.5)
    assert snap["A"] == Reading(1.5, Quality.BAD, 10.0, Reason.PLC_FROZEN)  # the value is kept, for display
    assert snap["B"].reason is Reason.SENSOR_FAULT
    assert snap["C"].quality is Quality.BAD and snap["C"].reason is Reason.PLC_FROZEN
    assert snap["D"].good
    if live:
        cols = snap.columns_for(("A", "D"))
        assert cols.quality.tolist() == [int(Quality.BAD), int(Quality.GOOD)]
    # the driver keeps writing GOOD values: still held
    table.update("A", good(1.6, 10.6))
    assert table.snapshot(10.7)["A"].reason is Reason.PLC_FROZEN
    assert table["A"].good  # the table itself keeps the real reading
    assert table.held("A") is Reason.PLC_FROZEN and table.held("D") is None
    table.release(["A", "B", "C"])
    snap = table.snapshot(10.8)
    assert snap["A"] == good(1.6, 10.6) and snap["C"].quality is Quality.UNCERTAIN


# -- the I/O list field -------------------------------------------------------------------------
def _io_with(tmp_path: Path, heartbeat: str) -> Path:
    text = (io_dir() / "gas_station.yaml").read_text()
    head, sep, tail = text.partition("\nheartbeat: {tag: KQI-000, max_age_s: 3.0}\n")
    assert sep, "the gas station I/O list declares its heartbeat"
    p = tmp_path / "gas_station.yaml"
    p.write_text(head + "\n" + heartbeat + "\n" + tail)
    return p


def test_the_shipped_io_lists_declare_a_heartbeat_on_a_plc_input() -> None:
    for name in ("gas_station", "pump_station"):
        iol = load_io_list(io_dir() / f"{name}.yaml")
        assert iol.heartbeat is not None and iol.heartbeat.max_age_s == 3.0
        assert iol.by_tag[iol.heartbeat.tag].source == "plc"


@pytest.mark.parametrize(
    ("heartbeat", "message"),
    [
        ("heartbeat: {tag: KQI-999, max_age_s: 3.0}", "heartbeat: tag: names unknown tag KQI-999"),
        ("heartbeat: {tag: XY-201, max_age_s: 3.0}", "heartbeat: tag: XY-201 is a command_out"),
        ("heartbeat: {tag: ZSC-001, max_age_s: 3.0}", "heartbeat: tag: ZSC-001 has source external"),
        ("heartbeat: {tag: KQI-000, max_age_s: 0}", "heartbeat.max_age_s: Value error, must be a positive"),
        ("heartbeat: {tag: KQI-000, max_age_s: -1.5}", "heartbeat.max_age_s: Value error, must be a positive"),
        ("heartbeat: {tag: KQI-000}", "heartbeat.max_age_s: Field required"),
        ("heartbeat: {tag: KQI-000, max_age_s: 3.0, period_s: 1}", "heartbeat.period_s: Extra inputs"),
    ],
)
def test_a_bad_heartbeat_fails_the_load_with_file_line_and_field(tmp_path: Path, heartbeat: str, message: str) -> None:
    p = _io_with(tmp_path, heartbeat)
    line = p.read_text().splitlines().index(heartbeat) + 1
    with pytest.raises(ConfigError) as exc:
        load_io_list(p)
    text = str(exc.value)
    assert f"{p}:{line}: {message}" in text, text


# -- the controller, on a virtual clock -----------------------------------------------------------
def _site(tmp_path: Path) -> Any:
    p = tmp_path / "site.yaml"
    p.write_text(f"""site: t
journal: {tmp_path / 'journal.db'}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {{protocol: loopback}}
interlocks: []
""")
    return load_site(p)


async def test_a_frozen_plc_turns_its_station_bad_and_alarms_then_recovers(tmp_path: Path) -> None:
    site = _site(tmp_path)
    clock = VirtualClock()
    plant = Plant([GasStation()], clock)

    class Served:  # what the loopback driver reads: the plant's served image (frozen or not)
        def read_tags(self) -> dict[str, Any]:
            return plant.tags("gas_station")

        def write(self, tag: str, value: Any) -> None:
            plant.write("gas_station", tag, value)

    def factory(ctrl: Controller, name: str) -> Any:
        return LoopbackDriver(site.stations[name].iolist, Served(), clock, ctrl.on_readings_for(name),
                              ctrl.on_link_for(name), period=0.1)

    ctrl = Controller(site, clock, Journal(site.journal_path), driver_factory=factory)
    drv = ctrl.drivers["gas_station"]
    assert isinstance(drv, LoopbackDriver)
    aid = "heartbeat:gas_station"

    async def run_until(cond: Any, limit_s: float) -> float:
        """Poll, scan and step the plant every 0.1 s of virtual time until ``cond``; the time it took."""
        t0 = clock.now()
        while not cond():
            if clock.now() - t0 > limit_s:
                raise AssertionError(f"not within {limit_s} s")
            plant.advance(0.1)  # carries the virtual clock along
            drv.poll(clock.now())
            await ctrl.scan_once(clock.now())
        return clock.now() - t0

    try:
        await run_until(lambda: False if clock.now() < 10.0 else True, 11.0)  # normal running
        assert not ctrl.engine.alarms.is_active(aid)
        assert ctrl.table.snapshot(clock.now())["PT-101"].good

        plant.inject("gas_station", "plc_frozen")
        took = await run_until(lambda: ctrl.engine.alarms.is_active(aid), 10.0)
        # the counter last moved at most 1 s before the freeze: alarm between max_age - 1 s and max_age + a scan
        assert 2.0 <= took <= 3.0 + 0.2, took
        alarm = ctrl.engine.alarms.alarms[aid]
        assert alarm.priority.name == "CRITICAL"
        snap = ctrl.table.snapshot(clock.now())
        assert all(r.quality is Quality.BAD for r in snap.values())
        assert snap["PT-101"].reason is Reason.PLC_FROZEN and snap["KQI-000"].reason is Reason.PLC_FROZEN
        assert ctrl.engine.link_up["gas_station"]  # the link itself stayed up all along

        plant.clear("gas_station", "plc_frozen")
        took = await run_until(lambda: not ctrl.engine.alarms.is_active(aid), 5.0)
        assert took <= 1.0 + 0.2, took  # the next tick of the counter
        snap = ctrl.table.snapshot(clock.now())
        assert snap["PT-101"].good and snap["KQI-000"].good
        assert not any(r.reason is Reason.PLC_FROZEN for r in snap.values())
    finally:
        await ctrl.stop()
        ctrl.journal.close()
