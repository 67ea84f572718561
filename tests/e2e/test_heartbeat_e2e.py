"""PLC I/O heartbeat end to end (plant-reference 4.10-4): the real controller against the real
simulator, over Modbus TCP (gas station) and OPC-UA (pump station).

``plc_frozen`` leaves the servers answering with a frozen image, so the link stays up and every
value stays GOOD and freshly stamped as far as the drivers can tell; only the heartbeat shows it.
Within max_age_s + a scan of the freeze every tag of that station is BAD/PLC_FROZEN and the
top-priority ``heartbeat:<station>`` alarm is active, the other station untouched; clearing the
fault brings the values and their real quality back and clears the alarm.
"""

from __future__ import annotations

from typing import Any

import pytest

from plantctl.alarms import Priority
from plantctl.tags import Quality, Reason


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("station", "other", "gas_protocol"), [
    ("gas_station", "pump_station", "modbus"),
    ("pump_station", "gas_station", "modbus"),  # the pump station is always on OPC-UA in these rigs
])
async def test_plc_frozen_turns_the_station_bad_and_alarms_then_recovers(
    e2e_factory: Any, station: str, other: str, gas_protocol: str
) -> None:
    rig = await e2e_factory(gas_protocol=gas_protocol, speed=2.0)
    ctrl = rig.ctrl
    aid = f"heartbeat:{station}"
    watch = ctrl.heartbeats[station]
    # the counter has been seen moving: supervision is live, nothing alarmed
    await rig.wait_for(lambda: watch.age(rig.clock.now()) < 1.5 and ctrl.engine.link_up[station], 20, "heartbeat seen")
    assert not ctrl.engine.alarms.is_active(aid)

    t_freeze = rig.clock.now()
    rig.sim.plant.inject(station, "plc_frozen")
    await rig.wait_for(lambda: ctrl.engine.alarms.is_active(aid), 15, f"{aid} raised")
    took = rig.clock.now() - t_freeze
    # the counter last changed at most 1 s before the freeze (plus the poll that saw it): never
    # before max_age - 1 s, and within max_age + a poll + a scan + the wait loop's own 0.1 s step
    assert watch.max_age_s - 1.2 <= took <= watch.max_age_s + 0.1 + 0.1 + 0.3, took
    assert ctrl.engine.alarms.alarms[aid].priority is Priority.CRITICAL
    assert ctrl.engine.link_up[station]  # the servers kept answering: this was not a link loss
    snap = ctrl.table.snapshot(rig.clock.now())
    mine = [r for k, r in snap.items() if k.startswith(f"{station}:")]
    theirs = [r for k, r in snap.items() if k.startswith(f"{other}:")]
    assert all(r.quality is Quality.BAD for r in mine)
    assert sum(r.reason is Reason.PLC_FROZEN for r in mine) > 0.9 * len(mine)
    assert not any(r.reason is Reason.PLC_FROZEN for r in theirs)
    assert not ctrl.engine.alarms.is_active(f"heartbeat:{other}")

    rig.sim.plant.clear(station, "plc_frozen")
    await rig.wait_for(lambda: not ctrl.engine.alarms.is_active(aid), 10, f"{aid} cleared")
    assert rig.clock.now() - t_freeze - took <= 1.0 + 0.1 + 0.1 + 0.5  # the counter's next tick, seen
    snap = ctrl.table.snapshot(rig.clock.now())
    mine = [r for k, r in snap.items() if k.startswith(f"{station}:")]
    assert not any(r.reason is Reason.PLC_FROZEN for r in mine)
    assert snap[f"{station}:KQI-000"].quality is Quality.GOOD
    assert sum(r.quality is Quality.GOOD for r in mine) > 0.9 * len(mine)
