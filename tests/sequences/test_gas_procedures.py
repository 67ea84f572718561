"""The gas station's emergency procedures on the VirtualRig, against the real GasStation model and the
real io/gas_station.yaml (plant-reference.md 4.0-4.7, 5).

Every test drives a procedure from its trigger (or the operator's start) to its end state or to the
failure branch the fault of section 5 must reach, with the operator's answers scripted. The site's
GT gas trip (2oo3 GD-401A/B/C >= 25 %LEL, deadband 2, effect XY-400 := 0) is built here as an
Interlock and handed to the rig, as the site file will do: the procedures never trip the GT on the
vote themselves, they check that the trip happened. Long plant times run at a 1 s scan (the procedure
logic period of plant-reference 3); the physics still steps at 0.1 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from plantctl.clock import VirtualClock
from plantctl.engine import Action, Actor, Request, Role
from plantctl.interlocks import Condition, Effect, Interlock, Op
from plantctl.iolist import IOList, load_io_list
from plantctl.journal import Event, EventKind
from plantctl.paths import io_dir
from plantctl.procedures import ProcedureDef, Run, StepKind, Terminal, validate
from plantctl.rig import VirtualRig
from plantctl.voting import DegradedMode
from sequences import (
    gas_fire,
    gas_leak_classify,
    gas_leak_l1,
    gas_leak_l2,
    gas_leak_l3,
    gas_leak_l4,
    gas_leak_l5,
    gas_restore,
    gas_small_leak,
)
from sequences._gas_common import RUN_BRANCH_VALVE_S, SRV320_OPEN_S, VENT_VALVE_S, XV201_CLOSE_S
from sim_plc.gas_station import GasStation, GTState, LoadCmd
from sim_plc.plant import Plant

STATION = "gas_station"
PROCEDURES: list[ProcedureDef] = [m.PROCEDURE for m in (gas_small_leak, gas_leak_classify, gas_leak_l1, gas_leak_l2,
                                                         gas_leak_l3, gas_leak_l4, gas_leak_l5, gas_fire, gas_restore)]
OP = Actor("olga", frozenset({Role.OPERATOR}))
SUP = Actor("sam", frozenset({Role.SUPERVISOR}))
G0_OK: dict[str, Any] = {"team_size": 2, "cordon_set": True, "ignition_control": True}
PURGED: dict[str, Any] = {"ch4_vol_1": 0.6, "ch4_vol_2": 0.4, "ch4_vol_3": 0.3, "o2_vol": 20.9}
FAST_UNLOAD = int(LoadCmd.FAST_UNLOAD)


@pytest.fixture(scope="module")
def iol() -> IOList:
    return load_io_list(io_dir() / f"{STATION}.yaml")


def gt_gas_trip() -> Interlock:
    """The site's GT trip on compartment gas: 2oo3 >= 25 %LEL (FAULT_VOTES_TRIP = false: drop to 2oo2)."""
    return Interlock(
        id="GT-GAS-2OO3", station=STATION, description="GT-400 trip on compartment gas, 2oo3 GD-401 >= 25 %LEL",
        members=tuple(Condition(g, Op.GE, 25.0, deadband=2.0) for g in ("GD-401A", "GD-401B", "GD-401C")),
        m=2, degraded=DegradedMode.DROP, trip_group="GT-400", effects=(Effect(command="XY-400", value=False),),
    )


@dataclass
class Bench:
    """The rig, the gas model behind it, and the few helpers every test needs."""

    rig: VirtualRig
    gas: GasStation

    def inject(self, fault: str, **params: Any) -> None:
        self.rig.plant.inject(STATION, fault, params)  # type: ignore[attr-defined]

    def start(self, proc_id: str) -> Run:
        run = self.rig.start(proc_id)
        assert isinstance(run, Run)
        return run

    def active(self, proc_id: str) -> Run:
        runs = self.rig.procs.active(proc_id)
        assert runs, f"{proc_id} is not running"
        return runs[0]

    def reach(self, run: Run, state: str, within_s: float) -> None:
        ok = self.rig.run_until(self.rig.now + within_s, until=lambda r: run.state == state)
        assert ok, f"{run.run_id} did not reach {state} within {within_s} s (it is in {run.state}, held={run.held})"

    def run_until(self, cond: Callable[[], bool], within_s: float, what: str) -> None:
        assert self.rig.run_until(self.rig.now + within_s, until=lambda r: cond()), f"not within {within_s} s: {what}"

    def answer(self, run: Run, key: str, answer: str, actor: Actor = OP, **values: Any) -> None:
        out = self.rig.answer(run.run_id, key, answer, actor, values)
        assert out.accepted, out.message

    def value(self, tag: str) -> Any:
        return self.rig.value(tag)

    def commands(self, tag: str | None = None, source: str | None = None) -> list[Event]:
        return [e for e in self.rig.events_of(EventKind.COMMAND)
                if (tag is None or e.payload["tag"] == tag) and (source is None or e.source.startswith(source))]

    def verified(self, tag: str) -> list[Event]:
        return [e for e in self.rig.events_of(EventKind.COMMAND_VERIFIED) if e.payload["tag"] == tag]

    def path(self, run: Run) -> list[str]:
        """The states the run has been in, in order (its first step included)."""
        if not run.history:
            return [run.state]
        return [run.history[0][1], *(to for _, _, to, _ in run.history)]

    def entered_at(self, run: Run, state: str) -> float:
        return next(t for t, _, to, _ in run.history if to == state)

    def alarm(self, alarm_id: str) -> bool:
        return self.rig.engine.alarms.is_active(alarm_id)


def bench(iol: IOList, scan: float = 1.0, seed: int = 0) -> Bench:
    clock = VirtualClock()
    gas = GasStation(seed=seed)
    # Typed loosely on purpose: GasStation.FAULTS is not annotated ClassVar (StationModel wants one) and
    # Plant.stations is a dict where PlantLike declares a settable, hence invariant, Mapping (reported).
    station: Any = gas
    plant: Any = Plant([station], clock)
    rig = VirtualRig({STATION: iol}, plant, clock, interlocks=[gt_gas_trip()], procedures=PROCEDURES,
                     scan_period=scan)
    rig.tick()
    return Bench(rig, gas)


def gt_state(b: Bench) -> GTState:
    return GTState(int(b.value("XS-400")))


# =====================================================================================================
# definitions
# =====================================================================================================
SRC_ROWS = {
    "GAS-S": ("S1", "S2"),
    "GAS-L": ("L0",),
    "GAS-L1": ("L1.1", "L1.2", "L1.3", "L1.4", "L1.5", "L1.6"),
    "GAS-L2": ("L2.2", "L2.3", "L2.4", "L2.5"),
    "GAS-L3": ("L3.1", "L3.2", "L3.3"),
    "GAS-L4": ("L4.1", "L4.2"),
    "GAS-L5": ("L5.1", "L5.2", "L5.3"),
    "GAS-F": ("F1", "F2", "F4"),
    "GAS-R": ("R2", "R5", "R6", "R7", "R8", "R9"),
}
ADD_ROWS = {
    "GAS-S": ("G0.4", "S3"), "GAS-L": ("G0.4",), "GAS-L1": ("L1.7",), "GAS-L2": ("L2.1", "L2.6"),
    "GAS-L3": ("L3.4",), "GAS-L4": ("L4.3",), "GAS-L5": ("L5.4",), "GAS-F": ("F3",), "GAS-R": ("R1",),
}


def test_definitions_validate_carry_their_table_rows_and_gate_field_work(iol: IOList) -> None:
    assert {p.id for p in PROCEDURES} == set(SRC_ROWS)
    for p in PROCEDURES:
        assert validate(p, {STATION: iol}) == [], p.id
        for sid in SRC_ROWS[p.id]:
            assert p.step(sid).src and p.step(sid).text.strip(), f"{p.id} {sid}"
        for sid in ADD_ROWS[p.id]:
            assert not p.step(sid).src, f"{p.id} {sid}"
        field_steps = {s.id for s in p.steps if s.field_work}
        if not field_steps:
            continue
        # one PERMISSIVE step, and no field step is reachable without passing through it
        perms = [s for s in p.steps if s.kind is StepKind.PERMISSIVE]
        assert [s.id for s in perms] == [p.permissive_step], p.id
        seen, todo = set(), [p.first]
        while todo:
            sid = todo.pop()
            if sid in seen or sid == p.permissive_step or sid not in {s.id for s in p.steps}:
                continue
            seen.add(sid)
            todo.extend(dest for _, dest in p.targets(p.step(sid)))
        assert not seen & field_steps, f"{p.id}: {seen & field_steps} reachable without the G0 permissives"
    assert gas_fire.PROCEDURE.preempts == ("GAS-L1", "GAS-L2", "GAS-L3", "GAS-L4", "GAS-L5", "GAS-S")
    assert gas_restore.PROCEDURE.step("R1").task.role is Role.SUPERVISOR  # type: ignore[union-attr]


# =====================================================================================================
# GAS-L: classify and locate, hand over
# =====================================================================================================
@pytest.mark.parametrize(("klass", "loc", "target"), [("large", 3, "GAS-L3"), ("small", 2, "GAS-S")])
def test_gas_l_hands_over_to_the_classified_procedure(iol: IOList, klass: str, loc: int, target: str) -> None:
    b = bench(iol)
    run = b.start("GAS-L")
    b.reach(run, "L0", 2)
    assert "L0" in run.tasks
    b.answer(run, "L0", "done")
    b.reach(run, "G0.4", 2)
    b.answer(run, "G0.4", "classified", LEAK_CLASS=klass, LEAK_LOC=loc)
    b.reach(run, Terminal.HANDED_OVER.value, 5)
    other = b.active(target)
    assert other.reason.startswith(f"{klass} leak")
    assert not b.alarm(f"{run.run_id}:G0.4:failed")


@pytest.mark.parametrize(("leaks", "target"), [
    ({"N1": 100.0, "N3": 30.0}, "GAS-L1"),  # F-G18: two segments decaying: the most upstream
    ({"N2": 30.0}, "GAS-L2"),
    ({"N3": 30.0}, "GAS-L3"),
])
def test_gas_l_unclassified_in_time_goes_to_most_upstream_plausible_location(
        iol: IOList, leaks: dict[str, float], target: str) -> None:
    b = bench(iol)
    for zone, mm in leaks.items():
        b.inject("leak", zone=zone, hole_mm=mm)
    run = b.start("GAS-L")
    b.reach(run, "L0", 2)
    b.answer(run, "L0", "done")
    b.reach(run, "G0.4", 2)
    b.rig.run_for(299)
    assert run.state == "G0.4" and not b.rig.procs.active(target)
    b.reach(run, Terminal.HANDED_OVER.value, 5)
    assert b.alarm(f"{run.run_id}:G0.4:failed")  # treated as large: the alarm says so
    assert run.vars["LEAK_CLASS"] == "large" and run.vars["LOC_FROM_SIGNALS"] is True
    assert b.active(target)
    started = {r.defn.id for r in b.rig.procs.runs.values()} - {"GAS-L"}
    assert started == {target}


def test_gas_l_unreadable_upstream_evidence_goes_to_l1_not_downstream(iol: IOList) -> None:
    # N3 shows evidence (FT-204 - FT-323) but PT-101, the evidence for N1, is BAD: N1 stays plausible,
    # so the most upstream plausible location is L1 (a default or a downstream guess would be wrong)
    b = bench(iol)
    b.inject("leak", zone="N3", hole_mm=30.0)
    b.inject("sensor_fault", tag="PT-101")
    run = b.start("GAS-L")
    b.reach(run, "L0", 2)
    b.answer(run, "L0", "done")
    b.reach(run, Terminal.HANDED_OVER.value, 320)
    assert not b.rig.table["PT-101"].good
    assert run.vars["LEAK_LOC"] == 1 and "G0.4.auto1" in b.path(run)
    assert b.active("GAS-L1") and not b.rig.procs.active("GAS-L3")


# =====================================================================================================
# GAS-S: small leak
# =====================================================================================================
def test_gas_s_isolates_locally_without_interrupting_supply(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N2", hole_mm=1.0)
    b.rig.run_for(10)
    assert b.value("AI-901") >= 10.0  # the patrol sees it
    entry = b.start("GAS-L")
    b.reach(entry, "L0", 2)
    b.answer(entry, "L0", "done")
    b.reach(entry, "G0.4", 2)
    b.answer(entry, "G0.4", "classified", LEAK_CLASS="small", LEAK_LOC=2)
    b.reach(entry, Terminal.HANDED_OVER.value, 5)
    run = b.active("GAS-S")
    b.reach(run, "G0.4", 2)
    b.answer(run, "G0.4", "classified", LEAK_CLASS="small", LEAK_LOC=2, component="PT-201 root valve")
    b.reach(run, "S2", 2)
    # the field step waits for the permissives: a team of one is not enough
    b.answer(run, "S2", "confirmed", team_size=1, cordon_set=True, ignition_control=True)
    b.rig.run_for(30)
    assert run.state == "S2"
    assert b.alarm(f"{run.run_id}:S2:failed") is False
    b.rig.run_for(600)
    assert run.state == Terminal.ESCALATED.value and b.alarm(f"{run.run_id}:S2:failed")
    assert "S1" not in b.path(run)

    # again, with a proper team
    run = b.start("GAS-S")
    b.reach(run, "G0.4", 2)
    b.answer(run, "G0.4", "classified", LEAK_CLASS="small", LEAK_LOC=2, component="PT-201 root valve")
    b.reach(run, "S2", 2)
    b.answer(run, "S2", "confirmed", **G0_OK)
    b.reach(run, "S1", 2)
    b.answer(run, "S1", "isolated", remedy="tightened the packing")
    b.rig.run_for(60)
    assert run.state == "S1"  # the answer alone does not pass: the portable reading still shows gas
    b.gas.clear("leak")  # the crew's local isolation
    b.reach(run, "S3", 30)
    b.answer(run, "S3", "logged")
    b.reach(run, Terminal.DONE.value, 2)
    assert gt_state(b) is GTState.RUNNING and b.value("FT-323") == pytest.approx(13.7, rel=0.02)
    assert b.commands(source="GAS-S") == []  # supply not interrupted: nothing commanded


def test_gas_s_cannot_isolate_hands_over_to_the_location_procedure(iol: IOList) -> None:
    b = bench(iol)
    run = b.start("GAS-S")
    b.reach(run, "G0.4", 2)
    b.answer(run, "G0.4", "classified", LEAK_CLASS="small", LEAK_LOC=2, component="run A filter drain")
    b.reach(run, "S2", 2)
    b.answer(run, "S2", "confirmed", **G0_OK)
    b.reach(run, "S1", 2)
    b.answer(run, "S1", "cannot isolate locally")
    b.reach(run, Terminal.HANDED_OVER.value, 5)
    assert b.active("GAS-L2").reason == "large leak at location 2: GAS-L2 takes over"


# =====================================================================================================
# GAS-L1: pipeline PL-100
# =====================================================================================================
def _l1_to_g0(b: Bench, within_s: float = 1800) -> Run:
    run = b.start("GAS-L1")
    b.reach(run, "L1.G0", within_s)
    return run


def test_l1_pipeline_leak_end_to_end(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N1", hole_mm=100.0)
    b.inject("offtake_slow", ack_delay_s=30.0, action_delay_s=60.0)
    run = _l1_to_g0(b)
    assert b.path(run)[:6] == ["L1.1", "L1.1.act", "L1.2", "L1.3", "L1.4", "L1.G0"]
    assert b.value("ZSC-001") and b.value("FL-002")  # reported by the offtake station
    assert [e.payload["value"] for e in b.commands("HS-400")] == [FAST_UNLOAD]
    assert gt_state(b) in (GTState.OFF, GTState.TRIPPED) and b.value("ZSC-320")
    assert b.value("ZSC-201") and b.verified("XY-201")
    assert b.commands("HS-102") == []  # no venting before the permissives
    b.rig.run_for(30)
    assert run.state == "L1.G0"
    b.answer(run, "L1.G0", "confirmed", **G0_OK)
    b.reach(run, "L1.5.bd", 15)
    [vent] = b.commands("HS-102")
    assert vent.payload["value"] is True and b.verified("HS-102")
    assert vent.t_plant > b.verified("XY-201")[0].t_plant
    b.reach(run, "L1.6", gas_leak_l1.BLOWDOWN_S)
    assert b.value("PT-101") <= gas_leak_l1.BLOWDOWN_END_MPA
    # repair waits for the purge acceptance: a reading above 1 vol % CH4 extends the purge
    b.answer(run, "L1.6", "purge complete", **(PURGED | {"ch4_vol_3": 1.5}))
    b.reach(run, "L1.6.extend", 2)
    assert "L1.7" not in b.path(run)
    b.answer(run, "L1.6.extend", "extended")
    b.reach(run, "L1.6", 2)
    assert "L1.6" in run.tasks
    b.answer(run, "L1.6", "purge complete", **PURGED)
    b.reach(run, "L1.7", 2)
    b.answer(run, "L1.7", "done")
    b.reach(run, Terminal.DONE.value, 2)


def test_l1_xv201_stuck_takes_manual_path_then_run_valves_f_g01(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N1", hole_mm=100.0)
    b.inject("offtake_slow", ack_delay_s=30.0, action_delay_s=60.0)
    b.inject("valve_stuck", valve="XV-201", at=1.0)
    run = b.start("GAS-L1")
    b.reach(run, "L1.4", 1800)
    t4 = b.rig.now
    b.reach(run, "L1.4.manual", 40)
    assert b.rig.now - t4 == pytest.approx(2 * XV201_CLOSE_S, abs=2.0)  # 15.5 s, retried once
    assert len(b.commands("XY-201")) == 2
    assert b.alarm(f"{run.run_id}:L1.4:failed") and b.alarm(f"{run.run_id}:L1.4.retry:failed")
    # two-person rule on the hand-wheel: the answer must say how many are there
    assert not b.rig.answer(run.run_id, "L1.4.manual", "closed", OP, {}).accepted
    b.answer(run, "L1.4.manual", "cannot close")
    b.reach(run, "L1.G0", 30)
    assert run.vars["XV201_FAILED"] is True and "L1.4.runs" in b.path(run)
    for v in ("XY-211A", "XY-211B", "XY-216A", "XY-216B"):
        assert b.verified(v), v
    assert not b.value("ZSC-201") and b.value("ZSO-201")  # XV-201 still open: the runs isolate instead
    b.answer(run, "L1.G0", "confirmed", **G0_OK)
    b.reach(run, "L1.5.bd", 15)  # the alternate isolation counts as L1.4 done


def test_l1_offtake_silent_uses_alternate_channel_stops_unit_and_keeps_vent_blocked_f_g03(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N1", hole_mm=100.0)
    b.inject("offtake_silent")
    run = b.start("GAS-L1")
    b.reach(run, "L1.1.alt", gas_leak_l1.OFFTAKE_ACK_S + 5)
    assert b.alarm(f"{run.run_id}:L1.1:failed") and "L1.1.alt" in run.tasks
    assert not b.value("YA-001")
    b.answer(run, "L1.1.alt", "no answer")
    b.reach(run, "L1.3", 2)
    assert [e.payload["value"] for e in b.commands("HS-400")] == [FAST_UNLOAD]  # L1.3 still proceeds
    b.reach(run, "L1.G0", 600)
    assert gt_state(b) in (GTState.OFF, GTState.TRIPPED) and b.value("ZSC-201")
    b.answer(run, "L1.G0", "confirmed", **G0_OK)
    b.reach(run, "L1.5.permit", 2)
    b.rig.run_for(gas_leak_l1.XV001_CONFIRM_S - 5)
    assert run.state == "L1.5.permit"  # blocked: XV-001 unconfirmed
    assert b.commands("HS-102") == [] and b.value("ZSC-102")
    b.reach(run, "L1.5.chase", 10)
    assert b.alarm(f"{run.run_id}:L1.5.permit:failed") and "L1.5.chase" in run.tasks
    b.answer(run, "L1.5.chase", "re-contacted")
    b.reach(run, "L1.5.permit", 2)
    b.rig.run_for(60)
    assert run.state == "L1.5.permit" and b.commands("HS-102") == []
    # ZSC-001 reads GOOD and says "not closed": one click must not open the vent with XV-001 open
    assert b.rig.table["ZSC-001"].good and not b.value("ZSC-001")
    out = b.rig.procs.confirm_locally(run.run_id, OP, b.rig.now, b.rig.clock.wall())
    assert not out.accepted and "ZSC-001" in out.message
    b.rig.run_for(60)
    assert run.state == "L1.5.permit" and b.commands("HS-102") == []


def test_l1_vent_stuck_goes_to_alternate_vent_f_g05(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N1", hole_mm=100.0)
    b.inject("offtake_slow", ack_delay_s=30.0, action_delay_s=60.0)
    b.inject("valve_stuck", valve="BDV-102", at=0.0)
    run = _l1_to_g0(b)
    b.answer(run, "L1.G0", "confirmed", **G0_OK)
    b.reach(run, "L1.5", 5)
    t5 = b.rig.now
    b.reach(run, "L1.5.alt", 15)
    assert b.rig.now - t5 == pytest.approx(VENT_VALVE_S, abs=1.5)
    assert b.alarm(f"{run.run_id}:L1.5:failed") and "L1.5.alt" in run.tasks
    assert b.value("ZSC-102") and not b.value("ZSO-102")
    b.answer(run, "L1.5.alt", "venting")
    b.reach(run, "L1.5.bd", 2)


# =====================================================================================================
# GAS-L2: regulating station
# =====================================================================================================
def _l2_to_patrol(b: Bench) -> Run:
    # The controller has watched the plant for a while before a leak: "FT-323 steady" needs a full
    # window of fresh history (an unknown trend holds L2.2, it never passes it).
    b.rig.run_for(gas_leak_l2.FT323_STEADY_WINDOW_S)
    b.inject("leak", zone="N2", hole_mm=20.0)
    run = b.start("GAS-L2")
    b.reach(run, "L2.1", 2)
    b.answer(run, "L2.1", "A")
    b.reach(run, "L2.2.A.close", 5)
    # The model has no leak per run (N2 is lumped): the leak counts as "on run A" and is removed when
    # run A is shut off.
    b.run_until(lambda: bool(b.value("ZSC-211A") and b.value("ZSC-216A")), 30, "run A closed")
    b.gas.clear("leak")
    b.reach(run, "L2.5", gas_leak_l2.SWITCH_CLOSE_S)
    assert not b.commands("XY-211B") and not b.commands("XY-216B")  # run B already in service
    assert 3.05 <= b.value("PT-202") <= 3.35 and gt_state(b) is GTState.RUNNING
    b.answer(run, "L2.5", "confirmed", **G0_OK)
    b.reach(run, "L2.6", 2)
    b.answer(run, "L2.6", "depressurised", run_pressure_mpa=0.02)
    b.reach(run, "L2.4", 2)
    b.rig.tick()  # the patrol task opens on the scan after L2.4 is entered
    return run


def test_l2_ft323_fault_holds_the_branch_switch_never_steady_from_stale_data(iol: IOList) -> None:
    b = bench(iol)
    b.rig.run_for(gas_leak_l2.FT323_STEADY_WINDOW_S)  # a full window of good history before the fault
    b.inject("leak", zone="N2", hole_mm=20.0)
    run = b.start("GAS-L2")
    b.reach(run, "L2.1", 2)
    b.answer(run, "L2.1", "A")
    b.reach(run, "L2.2.A.close", 5)
    b.inject("sensor_fault", tag="FT-323")
    b.run_until(lambda: bool(b.value("ZSC-211A") and b.value("ZSC-216A")), 30, "run A closed")
    b.gas.clear("leak")
    b.rig.run_for(gas_leak_l2.SWITCH_CLOSE_S + 60)
    # the valves are closed and PT-202 is in band, but "FT-323 steady" cannot be known: held, alarmed
    assert not b.rig.table["FT-323"].good
    assert run.state == "L2.2.A.close" and "ISOLATED_RUN" not in run.vars
    assert b.alarm(f"{run.run_id}:L2.2.A.close:bad")
    b.gas.clear("sensor_fault")
    b.reach(run, "L2.5", gas_leak_l2.FT323_STEADY_WINDOW_S + gas_leak_l2.PT202_HOLD_S + 10)
    assert run.vars["ISOLATED_RUN"] == "A"


def test_l2_switches_run_and_patrol_goes_overdue(iol: IOList) -> None:
    b = bench(iol)
    run = _l2_to_patrol(b)
    assert "TMR-PATROL" in run.tasks
    overdue = f"{run.run_id}:TMR-PATROL:overdue"
    b.rig.run_for(gas_leak_l2.PATROL_EVERY_S - 5)
    assert not b.alarm(overdue)
    b.rig.run_for(10)
    assert b.alarm(overdue)
    b.answer(run, "TMR-PATROL", "recorded", patrol_lel=0.0)
    assert not b.alarm(overdue)
    b.rig.run_for(5)
    assert run.state == "L2.4" and "TMR-PATROL" in run.tasks  # the next round is open, due in 1 h
    b.answer(run, "L2.4", "repaired")
    b.reach(run, "L2.end", 2)
    b.answer(run, "L2.end", "done")
    b.reach(run, Terminal.DONE.value, 2)
    assert gt_state(b) is GTState.RUNNING and b.commands("XY-201") == []


def test_l2_patrol_reading_above_10_lel_escalates_to_l23(iol: IOList) -> None:
    b = bench(iol)
    run = _l2_to_patrol(b)
    b.answer(run, "TMR-PATROL", "recorded", patrol_lel=15.0)
    b.reach(run, "L2.3", 2)
    unload, close = b.commands("HS-400")[0], b.commands("XY-201")[0]
    assert unload.payload["value"] == FAST_UNLOAD and close.payload["value"] is False
    assert b.rig.events.index(unload) < b.rig.events.index(close)  # fast unload first
    # XV-201 closed, GT stopped (a trip on PT-322 LL satisfies it); the permissives recorded at the
    # first pass through L2.5 still stand, and the shut station's header is depressurised next
    b.reach(run, "L2.6.hdr", 60)
    assert b.path(run)[-5:] == ["L2.3", "L2.3.stop", "L2.5", "L2.5.route", "L2.6.hdr"]
    assert gt_state(b) is GTState.TRIPPED and b.value("ZSC-201")
    b.answer(run, "L2.6.hdr", "depressurised", header_pressure_mpa=0.03)
    b.reach(run, "L2.end", 2)


# =====================================================================================================
# GAS-L3, GAS-L4
# =====================================================================================================
def test_l3_interconnect_leak_isolates_trips_and_vents(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N3", hole_mm=30.0)
    run = b.start("GAS-L3")
    b.reach(run, "L3.G0", 60)
    assert b.path(run)[:3] == ["L3.1", "L3.2", "L3.G0"]
    assert b.value("ZSC-205") and b.value("ZSC-320")
    assert gt_state(b) is GTState.TRIPPED  # low fuel pressure: rule 4.10-3 satisfies the fast stop
    assert b.commands("HS-321") == []
    b.rig.run_for(20)
    b.answer(run, "L3.G0", "confirmed", **G0_OK)
    b.reach(run, "L3.3.bd", 15)
    b.reach(run, "L3.4", gas_leak_l3.BLOWDOWN_S)
    assert b.value("PT-301") <= gas_leak_l3.BLOWDOWN_END_MPA and b.verified("HS-321")
    b.answer(run, "L3.4", "purge complete", **PURGED)
    b.reach(run, Terminal.DONE.value, 2)


def test_l4_branch_leak_switches_branch_healthy_first(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N4", hole_mm=10.0)
    run = b.start("GAS-L4")
    b.reach(run, "L4.0", 2)
    b.answer(run, "L4.0", "A")
    b.reach(run, "L4.G0", RUN_BRANCH_VALVE_S + gas_leak_l4.SWITCH_CLOSE_S)
    opened = max(e.t_plant for e in b.verified("XY-311B") + b.verified("XY-313B"))
    closing = min(e.t_plant for e in b.commands("XY-311A") + b.commands("XY-313A"))
    assert opened <= closing  # the healthy branch in service before the leaking one is shut
    assert b.value("ZSC-311A") and b.value("ZSC-313A") and b.value("PT-322") >= 2.90
    assert gt_state(b) is GTState.RUNNING
    b.answer(run, "L4.G0", "confirmed", **G0_OK)
    b.reach(run, "L4.1.drain", 2)
    b.answer(run, "L4.1.drain", "done", branch_pressure_mpa=0.01)
    b.reach(run, Terminal.DONE.value, 2)
    assert b.commands("HS-321") == []  # the live module is never vented


def test_l4_common_leak_unloads_isolates_and_vents_the_module(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N4", hole_mm=20.0)
    run = b.start("GAS-L4")
    b.reach(run, "L4.0", 2)
    b.answer(run, "L4.0", "COMMON")
    b.reach(run, "L4.G0", 60)
    assert b.value("ZSC-301") and gt_state(b) is GTState.TRIPPED
    assert [e.payload["value"] for e in b.commands("HS-400")] == [FAST_UNLOAD]
    b.answer(run, "L4.G0", "confirmed", **G0_OK)
    b.reach(run, "L4.3.check", 15)
    assert b.verified("HS-321")
    b.answer(run, "L4.3.check", "vented", module_pressure_mpa=0.03)
    b.reach(run, "L4.3.purge", 2)
    b.answer(run, "L4.3.purge", "purge complete", **PURGED)
    b.reach(run, Terminal.DONE.value, 2)


# =====================================================================================================
# GAS-L5: GT gas compartment
# =====================================================================================================
def _trip(b: Bench) -> Event:
    trips = b.rig.events_of(EventKind.TRIP)
    assert len(trips) == 1
    return trips[0]


def test_l5_3mm_leak_unloads_before_the_trip_and_clears(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="GC", hole_mm=3.0)
    b.run_until(lambda: bool(b.rig.procs.runs), 60, "GAS-L5 triggered")
    run = b.active("GAS-L5")
    b.reach(run, "L5.4", 120)
    unload = b.commands("HS-400")[0]
    trip = _trip(b)
    assert unload.payload["value"] == FAST_UNLOAD and unload.source == f"{run.run_id}/L5.2.fast"
    assert unload.t_plant < trip.t_plant and b.rig.events.index(unload) < b.rig.events.index(trip)
    assert b.value("JT-400") == 0.0 and gt_state(b) is GTState.TRIPPED
    assert b.path(run)[:6] == ["L5.1", "L5.1.ok", "L5.1.valid", "L5.2", "L5.2.fast", "L5.2.stop"]
    assert b.path(run)[-2:] == ["L5.3", "L5.4"] and run.vars["ALARM_VALID"] is True
    assert "SUSPECT_DETECTOR" not in run.vars
    b.reach(run, "L5.G0", gas_leak_l5.CLEAR_TIMEOUT_S)
    assert b.rig.now - b.entered_at(run, "L5.4") >= gas_leak_l5.CLEAR_HOLD_S
    assert all(b.value(g) < 5.0 for g in ("GD-401A", "GD-401B", "GD-401C")) and b.value("ZSC-301")
    b.answer(run, "L5.G0", "confirmed", **G0_OK)
    b.reach(run, "L5.4.test", 2)
    b.answer(run, "L5.4.test", "gas-free", gas_test_lel=0.0)
    b.reach(run, Terminal.DONE.value, 2)


def test_l5_operator_can_hold_the_unload_but_not_the_trip(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="GC", hole_mm=2.5)  # 25 %LEL at about 56 s (3.6)
    b.run_until(lambda: bool(b.rig.procs.runs), 60, "GAS-L5 triggered")
    run = b.active("GAS-L5")
    b.reach(run, "L5.2.fast", 5)
    assert b.rig.proc_request("hold", run.run_id, OP).accepted
    # holding the sequence freezes it; holding the GT's load is the operator's own command
    assert b.rig.request(Request(Action.COMMAND, OP, station=STATION, tag="HS-400",
                                 value=int(LoadCmd.HOLD))).accepted
    b.run_until(lambda: bool(b.rig.events_of(EventKind.TRIP)), 120, "2oo3 trip while the run is held")
    b.rig.run_for(5)
    assert run.held and run.state == "L5.2.fast" and gt_state(b) is GTState.TRIPPED  # protection acted
    assert b.rig.proc_request("resume", run.run_id, OP).accepted
    b.reach(run, "L5.4", 5)
    assert b.path(run)[-2:] == ["L5.3", "L5.4"]


def test_l5_detector_open_loop_runs_on_the_other_two_f_g09(iol: IOList) -> None:
    b = bench(iol)
    b.inject("detector_open_loop", tag="GD-401B")
    b.rig.run_for(5)
    assert b.value("XA-401B") and b.rig.snapshot()["GD-401B"].bad
    b.inject("leak", zone="GC", hole_mm=3.0)
    b.run_until(lambda: bool(b.rig.procs.runs), 60, "GAS-L5 triggered")
    run = b.active("GAS-L5")
    b.reach(run, "L5.4", 120)
    assert "L5.1.valid" in b.path(run) and "L5.2.fast" in b.path(run)  # A and C corroborate
    trip = _trip(b)
    assert trip.payload["degraded"] == 1 and trip.payload["architecture"] == "2oo2"
    assert b.alarm("GT-GAS-2OO3:degraded")
    assert b.commands("HS-400")[0].t_plant < trip.t_plant
    assert gt_state(b) is GTState.TRIPPED


def test_l5_detector_stuck_high_is_flagged_not_acted_on_f_g10(iol: IOList) -> None:
    b = bench(iol)
    b.inject("detector_stuck", tag="GD-401A", value=30.0)
    b.run_until(lambda: bool(b.rig.procs.runs), 10, "GAS-L5 triggered")
    run = b.active("GAS-L5")
    b.reach(run, "L5.1.check", 5)
    assert run.vars["SUSPECT_DETECTOR"] == "GD-401A" and "L5.1.check" in run.tasks
    b.answer(run, "L5.1.check", "detector fault")
    b.reach(run, "L5.1.spurious", 2)
    b.rig.run_for(600)
    assert run.state == "L5.1.spurious"
    assert b.commands("HS-400") == [] and b.rig.events_of(EventKind.TRIP) == []
    assert gt_state(b) is GTState.RUNNING


def test_l5_detector_stuck_low_trip_from_a_and_b_f_g11(iol: IOList) -> None:
    b = bench(iol)
    b.inject("detector_stuck", tag="GD-401C", value=0.0)
    b.inject("leak", zone="GC", hole_mm=3.0)
    b.run_until(lambda: bool(b.rig.procs.runs), 60, "GAS-L5 triggered")
    run = b.active("GAS-L5")
    b.reach(run, "L5.4", 120)
    trip = _trip(b)
    assert trip.payload["votes"] == 2 and trip.payload["first_member"] in ("GD-401A", "GD-401B")
    assert b.value("GD-401C") == 0.0 and gt_state(b) is GTState.TRIPPED
    assert run.vars["SUSPECT_DETECTOR"] == "GD-401C"
    assert b.commands("HS-400")[0].t_plant < trip.t_plant


def test_l5_gt_fails_to_trip_manual_esd_closes_xv301_then_xv205_f_g15(iol: IOList) -> None:
    b = bench(iol)
    b.inject("gt_fails_to_trip")
    b.inject("leak", zone="GC", hole_mm=3.0)
    b.run_until(lambda: bool(b.rig.procs.runs), 60, "GAS-L5 triggered")
    run = b.active("GAS-L5")
    b.reach(run, "L5.3.esd", 120)
    assert b.alarm(f"{run.run_id}:L5.3:failed")
    assert b.value("ZSO-320")  # the stop valve stayed open: the GT ignored the trip
    b.reach(run, "L5.4", gas_leak_l5.MANUAL_ESD_S)
    esd = [e for e in b.commands(source=f"{run.run_id}/L5.3.esd")]
    assert [e.payload["tag"] for e in esd] == ["XY-400", "XY-301", "XY-205"]
    assert b.verified("XY-301")[0].t_plant <= esd[2].t_plant  # XV-205 only after XV-301 is closed
    assert b.value("ZSC-301") and b.value("ZSC-205")
    b.run_until(lambda: gt_state(b) is GTState.TRIPPED, 60, "GT starves (flame-out)")


# =====================================================================================================
# GAS-F: fire
# =====================================================================================================
def test_fire_with_xv201_stuck_requests_the_offtake_station_f_g17(iol: IOList) -> None:
    b = bench(iol)
    b.inject("fire", zone="N2")
    b.inject("leak", zone="N2", hole_mm=50.0)  # the gas feeding the fire
    b.inject("valve_stuck", valve="XV-201", at=1.0)
    b.inject("offtake_slow", ack_delay_s=30.0, action_delay_s=60.0)
    run = b.start("GAS-F")
    b.reach(run, "F0.loc", 2)
    b.answer(run, "F0.loc", "located", FIRE_LOC="N2")
    b.reach(run, "F1.XV-201", 2)
    t1 = b.rig.now
    b.reach(run, "F2", XV201_CLOSE_S + 2)
    assert b.rig.now - t1 == pytest.approx(XV201_CLOSE_S, abs=1.5)
    assert b.alarm(f"{run.run_id}:F1.XV-201:failed")
    assert b.commands("HS-001", source=run.run_id)
    b.reach(run, "F3", gas_fire.OFFTAKE_ACK_S + gas_fire.OFFTAKE_ACTION_S)
    assert b.value("ZSC-001")
    b.answer(run, "F3", "brigade called")
    b.reach(run, "F4", 2)
    b.answer(run, "F4", "confirmed", **G0_OK)
    b.reach(run, Terminal.DONE.value, 2)


def test_fire_preempts_a_running_l2_which_resumes_after(iol: IOList) -> None:
    b = bench(iol)
    b.inject("leak", zone="N2", hole_mm=20.0)
    l2 = b.start("GAS-L2")
    b.reach(l2, "L2.1", 2)
    b.inject("fire", zone="GC")
    b.run_until(lambda: bool(b.rig.procs.active("GAS-F")), 5, "GAS-F triggered by TS-402")
    fire = b.active("GAS-F")
    b.rig.tick()
    assert l2.held and l2.hold_reason == "pre-empted by GAS-F"
    b.answer(l2, "L2.1", "A")  # answered while held: nothing moves until the fire procedure ends
    b.reach(fire, "F3", 10)
    assert b.path(fire)[:2] == ["F0", "F1"] and "F1.SRV-320" in b.path(fire)
    assert b.value("ZSC-320") and gt_state(b) is GTState.TRIPPED
    b.rig.run_for(30)
    assert l2.held and l2.state == "L2.2" and b.commands(source=l2.run_id) == []
    b.answer(fire, "F3", "fire under control")
    b.reach(fire, "F4", 2)
    b.answer(fire, "F4", "confirmed", **G0_OK)
    b.reach(fire, Terminal.DONE.value, 2)
    b.rig.tick()
    assert not l2.held
    b.reach(l2, "L2.2.A.close", 30)
    assert min(e.t_plant for e in b.commands(source=l2.run_id)) >= b.entered_at(fire, Terminal.DONE.value)


# =====================================================================================================
# GAS-R: restore
# =====================================================================================================
LINE_UP = ("XY-201", "XY-211A", "XY-216A", "XY-211B", "XY-216B", "XY-205", "XY-301", "XY-311A", "XY-313A")


def test_restore_refuses_without_purge_then_lines_up_in_order(iol: IOList) -> None:
    b = bench(iol)
    for tag in LINE_UP:  # the state after an isolation: everything shut, the GT down
        b.gas.write(tag, False)
    b.rig.run_for(60)
    assert gt_state(b) is GTState.TRIPPED and b.value("ZSC-201") and b.value("ZSC-301")
    run = b.start("GAS-R")
    b.reach(run, "R1", 2)
    assert not b.rig.answer(run.run_id, "R1", "authorised", OP).accepted  # a supervisor's decision
    procs = b.rig.procs
    alone = procs.answer(run.run_id, "R1", "authorised", SUP, b.rig.now, b.rig.clock.wall())
    assert not alone.accepted and "second, different person" in alone.message  # and a two-person one
    assert not procs.answer(run.run_id, "R1", "authorised", SUP, b.rig.now, b.rig.clock.wall(),
                            confirmed_by=SUP).accepted
    assert procs.answer(run.run_id, "R1", "authorised", SUP, b.rig.now, b.rig.clock.wall(),
                        confirmed_by=OP).accepted
    b.reach(run, "R2", 2)
    [auth] = [e for e in b.rig.events_of(EventKind.TASK) if e.payload.get("task") == "R1" and "answer" in e.payload]
    assert auth.user == "sam" and auth.payload["confirmed_by"] == "olga"
    b.rig.tick()  # the report task opens on the scan after R2 is entered
    b.answer(run, "R2.report", "reported", purge_confirmed=False, leak_cleared=True)
    b.rig.run_for(600)
    assert run.state == "R2" and b.commands(source=run.run_id) == []  # refused: purge unconfirmed
    b.answer(run, "R2.report", "reported", purge_confirmed=True, leak_cleared=True)
    b.reach(run, "R10", 300)
    order = [e.payload["tag"] for e in b.rig.events_of(EventKind.COMMAND_VERIFIED) if e.payload["tag"] in LINE_UP]
    assert order.index("XY-201") < min(order.index(t) for t in ("XY-211A", "XY-216A", "XY-211B", "XY-216B"))
    assert max(order.index(t) for t in ("XY-211A", "XY-216A", "XY-211B", "XY-216B")) < order.index("XY-205")
    assert order.index("XY-205") < order.index("XY-301") < min(order.index("XY-311A"), order.index("XY-313A"))
    assert sorted(order) == sorted(LINE_UP)
    assert not b.value("ZSO-311B")  # the standby branch stays shut
    assert not b.rig.answer(run.run_id, "R10", "start", OP).accepted  # the GT start: two-person too
    assert procs.answer(run.run_id, "R10", "start", OP, b.rig.now, b.rig.clock.wall(), confirmed_by=SUP).accepted
    b.reach(run, Terminal.DONE.value, SRV320_OPEN_S + 2)
    assert b.value("ZSO-320") and gt_state(b) in (GTState.STARTING, GTState.RUNNING)
