"""The controller core end to end (issue: controller core, done-when lines).

- Over real Modbus TCP and over real OPC-UA, a 3 mm compartment leak trips the GT through
  the controller; the journal shows the trip with first-out, the command and its verification.
- A dropped PLC link turns exactly that station's tags BAD within the bound, the voting
  degrades as configured, and the link recovers by itself, with the outage journaled.
- A valve injected as stuck produces a failed-verification alarm and event at its deadline.
"""

from __future__ import annotations

from typing import Any

import pytest

from plantctl.engine import Action, Actor, Request, Role
from plantctl.journal import EventKind, verify
from plantctl.tags import Quality, Reason


@pytest.mark.timeout(180)
@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
async def test_3mm_leak_trips_the_gt_through_the_controller(e2e_factory: Any, protocol: str) -> None:
    rig = await e2e_factory(gas_protocol=protocol, speed=4.0)
    t_leak = rig.clock.now()
    rig.sim.plant.inject("gas_station", "leak", {"zone": "GC", "hole_mm": 3})
    await rig.wait_for(lambda: "GT-GAS-2OO3" in rig.ctrl.engine.tripped(), 60, "GT-GAS-2OO3 trip")
    await rig.wait_for(
        lambda: any(e.payload.get("tag") == "XY-400" for e in rig.events(EventKind.COMMAND_VERIFIED)), 30,
        "XY-400 verified by ZSC-320")
    trip = next(e for e in rig.events(EventKind.TRIP) if e.payload["interlock"] == "GT-GAS-2OO3")
    assert trip.payload["first_out"] is True and trip.payload["first_member"] in {"GD-401A", "GD-401B", "GD-401C"}
    assert 25 <= trip.t_plant - t_leak <= 60  # plant-reference 6: ~32 s plus detector lag
    first_out = [e for e in rig.events(EventKind.FIRST_OUT) if e.payload["trip_group"] == "GT-400"]
    assert first_out and first_out[0].payload["interlock"] == "GT-GAS-2OO3"
    commands = {e.payload["tag"]: e for e in rig.events(EventKind.COMMAND) if e.source == "GT-GAS-2OO3"}
    assert commands["XY-400"].payload["value"] is False and commands["XY-320"].payload["value"] is False
    verified = next(e for e in rig.events(EventKind.COMMAND_VERIFIED) if e.payload["tag"] == "XY-400")
    assert verified.payload["feedback"] == "ZSC-320"
    assert rig.sim.plant.tags("gas_station")["XS-400"] == 5  # TRIPPED, in the PLC
    assert verify(rig.ctrl.site.journal_path).ok


@pytest.mark.timeout(180)
async def test_link_drop_turns_exactly_that_station_bad_and_recovers(e2e_factory: Any) -> None:
    rig = await e2e_factory(gas_protocol="modbus", speed=2.0)
    ctrl = rig.ctrl
    t_drop = rig.clock.now()
    rig.sim.plant.link_drop("gas_station", 10.0)  # plant seconds
    await rig.wait_for(lambda: any(e.station == "gas_station" for e in rig.events(EventKind.LINK_DOWN)), 10,
                       "gas link down, journaled")
    down = next(e for e in rig.events(EventKind.LINK_DOWN) if e.station == "gas_station")
    # bound: one poll period plus the request timeout (wall 0.5 s = 1 s of plant time at 2x), plus a scan
    assert down.t_plant - t_drop <= 0.1 + 0.5 * 2.0 + 0.2
    gas = [r for k, r in ctrl.table.snapshot(rig.clock.now()).items() if k.startswith("gas_station:")]
    pump = [r for k, r in ctrl.table.snapshot(rig.clock.now()).items() if k.startswith("pump_station:")]
    assert all(r.quality is Quality.BAD and r.reason is Reason.COMMS_LOST for r in gas)
    assert sum(r.quality is Quality.GOOD for r in pump) > 0.9 * len(pump)
    # voting degrades as configured (drop: all three lost -> cannot trip by itself, alarmed; no spurious trip)
    await rig.wait_for(lambda: ctrl.engine.alarms.is_active("GT-GAS-2OO3:blind"), 5, "blind alarm")
    assert "GT-GAS-2OO3" not in ctrl.engine.tripped()
    # the link returns by itself when the server does
    def ups() -> list[Any]:
        return [e for e in rig.events(EventKind.LINK_UP) if e.station == "gas_station" and e.t_plant > t_drop]

    await rig.wait_for(lambda: bool(ups()), 30, "gas link back up, journaled")
    up = ups()
    assert up[0].t_plant - t_drop >= 10.0  # the server was really away for its 10 s
    assert len(up) == 1 and len([e for e in rig.events(EventKind.LINK_DOWN) if e.station == "gas_station"]) == 1
    await rig.wait_for(lambda: not ctrl.engine.alarms.is_active("GT-GAS-2OO3:blind"), 10, "voting healthy again")
    snap = ctrl.table.snapshot(rig.clock.now())
    assert snap["gas_station:PT-101"].quality is Quality.GOOD


@pytest.mark.timeout(120)
async def test_stuck_valve_raises_failed_verification_at_its_deadline(e2e_factory: Any) -> None:
    rig = await e2e_factory(gas_protocol="modbus", speed=4.0)
    ctrl = rig.ctrl
    rig.sim.plant.inject("gas_station", "valve_stuck", {"valve": "XV-205"})
    olga = Actor("olga", frozenset({Role.OPERATOR}), "10.0.0.7")
    out = ctrl.engine.request(Request(Action.COMMAND, olga, station="gas_station", tag="XY-205", value=False),
                              rig.clock.now(), rig.clock.wall())
    assert out.accepted and out.command is not None and out.command.verify is not None
    deadline = out.command.verify.deadline
    await rig.wait_for(lambda: bool(rig.events(EventKind.COMMAND_FAILED)), 30, "COMMAND_FAILED")
    failed = rig.events(EventKind.COMMAND_FAILED)[0]
    assert failed.payload["tag"] == "XY-205" and failed.payload["feedback"] == "ZSC-205"
    assert deadline <= failed.t_plant <= deadline + 0.5  # at its deadline, within a scan or two
    assert abs((deadline - out.command.issued_at) - 12.5) < 1e-6  # 1.5 x 8 s close + 0.5 s dead time
    assert ctrl.engine.alarms.is_active("cmd:gas_station:XY-205:failed")
    action = next(e for e in rig.events(EventKind.OPERATOR_ACTION) if e.payload.get("tag") == "XY-205")
    assert action.user == "olga" and action.address == "10.0.0.7"
