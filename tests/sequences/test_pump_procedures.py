"""PUMP-PL and PUMP-PR on the VirtualRig against the real pump-station model and io/pump_station.yaml.

Each test injects the plant-reference section 5 fault into sim_plc's PumpStation and plays the people
(operator answers, the field crew on the hand-wheels) through rig.answer and the model's hand_wheel.
The procedure logic scans at 1 s (plant-reference 3: "procedure and sequence logic: 1 s"), which keeps
hours of outage fast; the plant itself steps at 0.1 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from plantctl.clock import VirtualClock
from plantctl.engine import Actor, Role
from plantctl.iolist import load_io_list
from plantctl.journal import EventKind
from plantctl.paths import io_dir
from plantctl.procedures import Run, validate
from plantctl.rig import VirtualRig
from sequences import pump_power_loss as pl
from sequences import pump_power_return as pr
from sim_plc.plant import Plant
from sim_plc.pump_station import PumpStation
from sim_plc.valves import ValveCmd

IOL = load_io_list(io_dir() / "pump_station.yaml")
OP = Actor("olga", frozenset({Role.OPERATOR}))
SUP = Actor("sam", frozenset({Role.SUPERVISOR}))
RUN_CMDS = {f"HS-701{s}": f"MOV-703{s}" for s in "ABC"} | {f"HS-711{s}": f"MOV-713{s}" for s in "AB"}
SEED = 1  # with this seed the diesel fires on its first auto crank (p_s = 0.9)
# The written plan's numbers (plant-reference 4.8, 4.9 and the I/O list's constants), kept apart from
# the modules' constants so that a wrong constant in a module fails a test instead of moving it.
RESTART_GAP_S = float(IOL.constants["MOTOR_RESTART_GAP_S"])  # 30 s between motor starts
START_CHECK_S = float(IOL.constants["MOTOR_START_CHECK_S"])  # 15 s to accelerate
FIRST_START_S = 45.0  # P1
AUTO_CYCLE_END_S = 210.0  # P1: 3.5 min
HEADER_LL_MPA = 0.25  # P3
HBS_LL_MPA = 0.22  # P4
NOTIFY_ACK_S = 300.0  # P5
MOV_91_S = 91.0  # P4, P6
HANDWHEEL_S = 900.0  # P4, P6 hand-wheel, 15 min
LOG_S = 900.0  # P8
FUEL_LL_PCT, FUEL_LLL_PCT = 33.0, float(IOL.constants["LT806_LLL_PCT"])  # P7
R2_HOLD_S = 300.0  # R2: 5 min


@dataclass
class Write:
    t: float
    tag: str
    value: Any
    mov_closed: bool | None  # for a pump start: was its outlet MOV closed at that moment


@dataclass
class Bench:
    rig: VirtualRig
    st: PumpStation
    plant: Plant
    writes: list[Write] = field(default_factory=list)
    t_loss: float = 0.0

    # -- looking ----------------------------------------------------------------------------
    def runs(self, proc: str) -> list[Run]:
        return [r for r in self.rig.procs.runs.values() if r.defn.id == proc]

    def run(self, proc: str) -> Run:
        found = self.runs(proc)
        assert found, f"{proc} never started"
        return found[-1]

    def v(self, tag: str) -> Any:
        return self.rig.value(tag)

    def written(self, tag: str, value: Any = None) -> list[Write]:
        return [w for w in self.writes if w.tag == tag and (value is None or w.value == value)]

    def starts(self) -> list[Write]:
        return [w for w in self.writes if w.tag in RUN_CMDS and w.value]

    # -- moving -----------------------------------------------------------------------------
    def until(self, pred: Callable[[], bool], within_s: float, what: str = "") -> float:
        """Run until pred() holds (checked after every scan); return the plant time it did."""
        ok = pred() or self.rig.run_until(self.rig.now + within_s, until=lambda _r: pred())
        assert ok, f"not reached within {within_s} s: {what}"
        return self.rig.now

    def until_state(self, run: Run, state: str, within_s: float) -> float:
        return self.until(lambda: run.state == state, within_s, f"{run.run_id} in {state} (is {run.state})")

    def until_task(self, run: Run, key: str, within_s: float) -> float:
        return self.until(lambda: key in run.tasks, within_s, f"task {key} of {run.run_id} (in {run.state})")

    def answer(self, run: Run, key: str, answer: str, values: dict[str, Any] | None = None,
               actor: Actor = OP, within_s: float = 600.0) -> None:
        self.until_task(run, key, within_s)
        out = self.rig.answer(run.run_id, key, answer, actor, values)
        assert out.accepted, out.message

    def lose_power(self) -> Run:
        self.plant.inject("pump_station", "power_loss")
        self.t_loss = self.rig.now
        self.until(lambda: bool(self.runs("PUMP-PL")) and not self.runs("PUMP-PL")[-1].finished, 5, "PUMP-PL")
        return self.run("PUMP-PL")

    def notify_all(self, run: Run) -> None:
        for sid, field_name in (("P5", "dispatch_ack_by"), ("P5.users", "users_ack_by"),
                                ("P5.substation", "substation_ack_by")):
            self.answer(run, sid, "acknowledged", {field_name: f"ack-{sid}"})

    def log_values(self) -> dict[str, Any]:
        return {tag: round(float(self.v(tag)), 3) for tag in pl.LOG_TAGS}

    def to_p9(self, run: Run) -> None:
        """The operator's part of PUMP-PL up to the wait for power: notifications, first log."""
        self.notify_all(run)
        self.answer(run, "P8.log", "logged", self.log_values(), within_s=600)
        self.until_state(run, "P9", 60)

    def restore(self, within_s: float = 3600.0) -> Run:
        """Power returns for good; the operator confirms with the substation and records R3."""
        self.plant.inject("pump_station", "power_return")
        self.until(lambda: bool(self.runs("PUMP-PR")) and self.runs("PUMP-PR")[-1].state == "R0", 120, "PUMP-PR R0")
        prr = self.run("PUMP-PR")
        self.answer(prr, "R0", "confirmed", {"substation_confirmed_by": "HV desk"})
        self.finish_pr(prr, within_s)
        return prr

    def finish_pr(self, prr: Run, within_s: float = 3600.0) -> None:
        self.answer(prr, "R3", "recorded", {"outage_start": self.t_loss, "restored_at": self.rig.now,
                                            "diesel_hours": 0.3, "fuel_used_l": 20}, within_s=within_s)
        self.until(lambda: prr.finished, 30, "PUMP-PR end")


def make_bench(seed: int = SEED, faults: tuple[tuple[str, dict[str, Any]], ...] = ()) -> Bench:
    clock = VirtualClock()
    st = PumpStation(seed=seed)
    plant = Plant([st], clock)
    rig = VirtualRig({"pump_station": IOL}, plant, clock, procedures=[pl.PROCEDURE, pr.PROCEDURE],
                     scan_period=1.0)
    b = Bench(rig, st, plant)
    model_write = st.write

    def spy(tag: str, value: Any) -> None:  # every write that reaches the "PLC", with the MOV state
        mov = RUN_CMDS.get(tag)
        b.writes.append(Write(plant.time, tag, value, st.valves[mov].zsc if mov else None))
        model_write(tag, value)

    st.write = spy  # type: ignore[method-assign]
    for fault, params in faults:
        plant.inject("pump_station", fault, params)
    rig.tick()
    return b


def visited(run: Run) -> list[str]:
    """Every step the run has been in, from its first."""
    return [run.defn.first] + [dest for _, _, dest, _ in run.history]


def entered(run: Run, sid: str) -> float:
    times = [t for t, _, dest, _ in run.history if dest == sid]
    assert times, f"{run.run_id} never entered {sid}: {visited(run)}"
    return times[0]


def alarm_text(b: Bench, alarm_id: str) -> str:
    a = b.rig.engine.alarms.alarms.get(alarm_id)
    assert a is not None and a.active, f"alarm {alarm_id} not active"
    return a.message


# ------------------------------------------------------------------------------------------------
def test_definitions_validate_against_the_io_list() -> None:
    for defn in (pl.PROCEDURE, pr.PROCEDURE):
        assert validate(defn, {"pump_station": IOL}) == []
    for defn, src_ids in ((pl.PROCEDURE, [f"P{i}" for i in range(1, 9)]), (pr.PROCEDURE, ["R1", "R3"])):
        ids = {s.id: s for s in defn.steps}
        for sid in src_ids:
            assert ids[sid].src and ids[sid].text.strip(), sid
    assert {"P9"} <= {s.id for s in pl.PROCEDURE.steps if not s.src}
    assert {"R0", "R2"} <= {s.id for s in pr.PROCEDURE.steps if not s.src}


def test_power_loss_to_p9_then_power_return_restarts_pumps_one_by_one() -> None:
    b = make_bench()
    run = b.lose_power()
    assert run.reason == pl.PROCEDURE.trigger_text and run.started_at - b.t_loss <= 2.0
    # P1: the auto start, no manual crank, no P1 alarm
    t_p2 = b.until_state(run, "P2", 60)
    assert t_p2 - b.t_loss < FIRST_START_S and not b.written("HS-809") and "failed:P1" not in run.vars
    # P4 opens MOV-740 through its command and sees the HBS header fed
    t_p5 = b.until_state(run, "P5", 150)
    assert [w.value for w in b.written("HS-740")] == [1]  # OPEN, by state index
    assert b.v("ZSO-740") and b.v("PT-730") >= HBS_LL_MPA
    assert 0.27 <= b.v("PT-720") <= 0.33  # diesel feeding both headers (plant-reference 3.10)
    b.to_p9(run)
    # P5: each party's acknowledgement recorded
    assert [run.vars[k] for k in ("dispatch_ack_by", "users_ack_by", "substation_ack_by")] == [
        "ack-P5", "ack-P5.users", "ack-P5.substation"]
    acks = [e for e in b.rig.events_of(EventKind.TASK) if e.payload.get("answer") == "acknowledged"]
    assert [e.payload["task"] for e in acks] == ["P5", "P5.users", "P5.substation"] and all(e.user == "olga" for e in acks)
    # P6: the three de-energised duty pumps' MOVs closed, two at a time; the standby MOVs were closed already
    p6 = [e for e in b.rig.events_of(EventKind.COMMAND) if e.payload.get("step") == "P6"]
    assert [e.payload["tag"] for e in p6] == ["HS-703A", "HS-703B", "HS-713A"]
    first_verified = min(e.t_plant for e in b.rig.events_of(EventKind.COMMAND_VERIFIED)
                         if e.payload["tag"] in ("HS-703A", "HS-703B"))
    assert p6[0].t_plant == p6[1].t_plant and p6[2].t_plant >= first_verified
    assert all(b.v(f"ZSC-{m}") for m in ("703A", "703B", "703C", "713A", "713B"))
    assert not any(k.startswith("RESTART_BLOCKED") and v for k, v in run.vars.items())
    assert run.state == "P9" and t_p5 - b.t_loss < 120
    assert set(run.tasks) == {"P7.watch", "P8.log"}  # the long-outage duties are running
    b.rig.run_for(600)
    assert run.state == "P9" and not b.starts()

    # power returns: nothing starts before RESTORED_STABLE (60 s) and the substation's confirmation
    b.plant.inject("pump_station", "power_return")
    t_return = b.rig.now
    b.until(lambda: run.finished, 120, "PUMP-PL hand-over")
    assert run.state == "HANDED_OVER" and b.rig.now - t_return >= 60.0
    prr = b.run("PUMP-PR")
    assert prr.started_at == b.rig.now and prr.state == "R0"
    b.rig.run_for(120)  # the substation has not confirmed yet
    assert prr.state == "R0" and not b.starts()
    assert b.v("YS-801") == IOL.by_tag["YS-801"].states.index("RUNNING")  # the diesel runs until R2
    b.answer(prr, "R0", "confirmed", {"substation_confirmed_by": "HV desk"})
    b.finish_pr(prr)
    assert prr.state == "DONE"
    # R1: one by one, in order, each against its closed MOV, >= 30 s apart; no standby needed
    starts = b.starts()
    assert [w.tag for w in starts] == ["HS-701A", "HS-701B", "HS-711A"]
    assert all(w.mov_closed for w in starts)
    assert all(t2.t - t1.t >= RESTART_GAP_S for t1, t2 in zip(starts, starts[1:], strict=False))
    for hs in ("703A", "703B", "713A"):
        opened = b.written(f"HS-{hs}", 1)
        assert len(opened) == 1 and opened[0].t > next(w.t for w in starts if w.tag[-1] == hs[-1]
                                                       and w.tag[4] == hs[1])
    assert all(prr.vars.get(f"started:{p}") for p in pr.RESTART_ORDER)
    # R2: MOV-740 closed, the diesel stopped after its cool-down and back in AUTO
    assert b.written("HS-740", 2) and b.written("HS-810", True)
    r2_close = entered(prr, "R2.close740")
    assert r2_close - entered(prr, "R2") >= R2_HOLD_S
    assert entered(prr, "R2.auto") - entered(prr, "R2.standby") >= 295.0  # 5 min cool-down
    assert b.v("ZSC-740") and b.v("YS-801") == 0 and b.v("XS-801") == 1  # STANDBY, AUTO
    assert abs(b.v("PT-720") - 0.59) < 0.03 and abs(b.v("PT-730") - 0.54) < 0.03  # normal (2.3)
    assert prr.vars["diesel_hours"] == 0.3 and prr.vars["substation_confirmed_by"] == "HV desk"
    # not one step of either procedure failed on the way (header rise, MOV times, spacing waits...)
    assert not [a for a in b.rig.engine.alarms.alarms if a.startswith(("PUMP-PL", "PUMP-PR"))]


def test_f_p01_diesel_never_starts_manual_cranks_then_diesel_failed() -> None:
    b = make_bench(faults=(("diesel_fail_cranks", {"n": 6}),))
    run = b.lose_power()
    b.until(lambda: run.finished, 600, "PUMP-PL end")
    assert run.state == "ESCALATED" and run.vars.get(pl.DIESEL_FAILED) is True
    assert "DIESEL_FAILED" in alarm_text(b, f"{run.run_id}:P1.m6.wait:failed")
    assert b.rig.engine.alarms.is_active(f"{run.run_id}:escalated")
    # P1 alarmed at 45 s but did not crank while the auto cycle ran; manual after the overcrank
    assert entered(run, "P1.auto") - b.t_loss == pytest.approx(FIRST_START_S, abs=2.5)
    cranks = b.written("HS-809")
    assert [w.value for w in cranks] == [1, 2, 1, 2, 1, 2]  # CRANK_A / CRANK_B alternating, 3 each
    assert 170.0 <= cranks[0].t - b.t_loss <= AUTO_CYCLE_END_S
    assert all(c2.t - c1.t >= 20.0 for c1, c2 in zip(cranks, cranks[1:], strict=False))  # one crank at a time
    assert b.v("XA-801") and b.v("PT-720") < 0.1


def test_f_p02_diesel_starts_on_third_auto_crank_without_a_manual_start() -> None:
    b = make_bench(faults=(("diesel_fail_cranks", {"n": 2}),))
    run = b.lose_power()
    t_water = b.until(lambda: b.v("PT-720") >= HEADER_LL_MPA and b.v("ST-802") > 0, 200, "water") - b.t_loss
    assert 70.0 <= t_water <= 95.0  # 10 + 2 x 30 + t_fire + 5 ~ 80 s
    b.until_state(run, "P4", 60)
    assert visited(run)[:4] == ["P1", "P1.auto", "P2", "P3"]  # 45 s alarm, then kept waiting
    assert "auto crank cycle continues" in alarm_text(b, f"{run.run_id}:P1:failed")
    assert not b.written("HS-809")


def test_p5_no_acknowledgement_goes_to_the_alternate_channel_and_is_recorded() -> None:
    b = make_bench()
    run = b.lose_power()
    b.answer(run, "P5", "acknowledged", {"dispatch_ack_by": "dispatcher Li"}, within_s=200)
    t_users = b.until_task(run, "P5.users", 5)
    t_alt = b.until_task(run, "P5.users.alt", NOTIFY_ACK_S + 5)  # nobody answers the users' call
    assert t_alt - t_users == pytest.approx(NOTIFY_ACK_S, abs=1.5)
    assert "alternate channel" in alarm_text(b, f"{run.run_id}:P5.users:failed")
    b.answer(run, "P5.users.alt", "acknowledged", {"users_ack_by": "BF desk by radio"})
    b.answer(run, "P5.substation", "no answer")
    b.answer(run, "P5.substation.alt", "no answer")
    b.until_state(run, "P6", 5)
    assert run.vars["dispatch_ack_by"] == "dispatcher Li" and run.vars["users_ack_by"] == "BF desk by radio"
    assert "substation_ack_by" not in run.vars
    assert run.vars["answer:P5.substation"] == run.vars["answer:P5.substation.alt"] == "no answer"
    answers = [(e.payload["task"], e.payload["answer"]) for e in b.rig.events_of(EventKind.TASK) if "answer" in e.payload]
    assert answers == [("P5", "acknowledged"), ("P5.users.alt", "acknowledged"), ("P5.substation", "no answer"),
                       ("P5.substation.alt", "no answer")]


def test_f_p04_diesel_trips_on_duty_and_is_restarted_through_p1() -> None:
    # not one of the required scenarios: the "diesel stopped" interrupt back to P1
    b = make_bench(faults=(("diesel_trip", {"after_s": 300.0, "reason": "overspeed"}),))
    run = b.lose_power()
    b.to_p9(run)
    t_trip = b.until(lambda: b.v("YS-801") == 6, 600, "diesel trip")  # FAILED
    b.until(lambda: bool(b.written("HS-809")), 5, "manual restart")
    assert b.written("HS-809")[0].t - t_trip <= 2.0  # FAILED is not an auto cycle: no 45 s wait
    assert visited(run)[visited(run).index("P9") + 1] == "P1"
    b.until(lambda: b.v("YS-801") == 4 and b.v("ST-802") >= 1400, 200, "diesel running again")
    b.until_state(run, "P9", 60)
    # what is done passes at once: MOV-740 stays open, the parties notified once, the MOVs closed
    assert len(b.written("HS-740")) == 1 and b.v("PT-720") >= HEADER_LL_MPA
    answered = [e.payload["task"] for e in b.rig.events_of(EventKind.TASK) if "answer" in e.payload]
    assert answered.count("P5") == 1 and "P5" not in run.tasks  # no second round to answer
    assert len([w for w in b.writes if w.tag.startswith("HS-7") and w.value == 2]) == 3  # P6 not repeated


def test_f_p06_fuel_runs_low_request_then_urgent_request_at_ll() -> None:
    b = make_bench(faults=(("fuel_level", {"percent": 40.0}), ("reserve_empty", {})))
    run = b.lose_power()
    b.notify_all(run)
    # L alarm already active: the fuel request comes from P7 at once
    b.answer(run, "P7.L", "requested", within_s=600)
    b.until(lambda: run.vars.get(pl.FUEL_REQUESTED) is True, 5, "fuel request recorded")
    assert not b.v("XS-806")
    b.answer(run, "P8.log", "logged", b.log_values())
    b.until_state(run, "P9", 30)
    logs = 0

    def operator() -> bool:  # answers the parameter log each time it is nearly due; stops at LL
        nonlocal logs
        t = run.tasks.get("P8.log")
        if t is not None and b.rig.now >= t.due - 60:
            assert b.rig.answer(run.run_id, "P8.log", "logged", OP, b.log_values()).accepted
            logs += 1
        w = run.tasks.get("P7.watch")
        if w is not None and b.rig.now >= w.due - 60:
            assert b.rig.answer(run.run_id, "P7.watch", "checked", OP, {"LT-806": b.v("LT-806")}).accepted
        return "P7.LL" in run.tasks

    t_ll = b.until(operator, 4 * 3600, "urgent fuel request") - b.t_loss
    assert 2.0 * 3600 <= t_ll <= 2.6 * 3600  # ~2.3 h from 40 % at ~60 L/h (plant-reference F-P06)
    assert b.v("LT-806") <= FUEL_LL_PCT and b.v("YS-801") == 4  # still running
    assert "URGENT" in run.tasks["P7.LL"].title
    assert logs >= 8 and not any(a.id.endswith(":overdue") for a in b.rig.engine.alarms.active())
    assert b.rig.answer(run.run_id, "P7.LL", "requested", OP).accepted
    b.until_state(run, "P9", 10)
    assert run.vars[pl.FUEL_URGENT] is True and "P7.LLL" not in visited(run)
    # the log is not answered: the overdue alarm of P8, cleared by the late answer
    b.rig.run_for(LOG_S + 5)
    assert b.rig.engine.alarms.is_active(f"{run.run_id}:P8.log:overdue")
    assert b.rig.answer(run.run_id, "P8.log", "logged", OP, b.log_values()).accepted
    assert not b.rig.engine.alarms.is_active(f"{run.run_id}:P8.log:overdue")
    assert run.state == "P9"
    # hours later (the level set forward): LLL 10 % -> prepare for the diesel stop, escalate
    b.plant.inject("pump_station", "fuel_level", {"percent": 11.0})
    b.until_task(run, "P7.LLL", 3600)
    assert b.v("LT-806") <= FUEL_LLL_PCT and run.tasks["P7.LLL"].role is Role.SUPERVISOR
    assert not b.rig.answer(run.run_id, "P7.LLL", "prepared", OP).accepted  # the supervisor's call
    assert b.rig.answer(run.run_id, "P7.LLL", "prepared", SUP).accepted
    b.until(lambda: run.finished, 5, "escalation")
    assert run.state == "ESCALATED" and run.vars[pl.FUEL_LLL] is True


def test_f_p08_mov740_stuck_goes_to_the_handwheel_task_and_is_recorded() -> None:
    b = make_bench(faults=(("valve_stuck", {"valve": "MOV-740"}),))
    run = b.lose_power()
    t_fld = b.until_task(run, "P4.fld", 200)
    assert t_fld - entered(run, "P4") == pytest.approx(MOV_91_S, abs=1.5)
    assert [e.payload["tag"] for e in b.rig.events_of(EventKind.COMMAND_FAILED)] == ["HS-740"]
    assert "hand-wheel" in alarm_text(b, f"{run.run_id}:P4:failed")
    task = run.tasks["P4.fld"]
    assert task.role is Role.OPERATOR and pl.PROCEDURE.step("P4.fld").actor == "FLD"
    b.st.hand_wheel("MOV-740", ValveCmd.OPEN)  # the crew tries: the jammed actuator does not move
    b.rig.run_for(300)
    assert not b.v("ZSO-740") and b.v("PT-730") < HBS_LL_MPA
    b.answer(run, "P4.fld", "cannot open")
    b.until_task(run, "P5", 5)
    assert run.vars["answer:P4.fld"] == "cannot open" and run.vars["failed:P4"] is True
    recorded = [e for e in b.rig.events_of(EventKind.TASK) if e.payload.get("task") == "P4.fld" and "answer" in e.payload]
    assert recorded and recorded[0].payload["answer"] == "cannot open"


def test_f_p09_mov703b_stuck_open_blocks_p701b_and_r1_uses_the_standby() -> None:
    b = make_bench(faults=(("valve_stuck", {"valve": "MOV-703B"}),))
    run = b.lose_power()
    b.notify_all(run)
    b.until_task(run, "P6.fld.P-701B", 400)
    assert run.vars[pl.restart_blocked("P-701B")] is True
    assert not any(run.vars.get(pl.restart_blocked(p)) for p in ("P-701A", "P-711A"))
    assert "P6.fld.P-701A" not in visited(run) and b.v("ZSC-703A") and b.v("ZSC-713A")
    b.st.hand_wheel("MOV-703B", ValveCmd.CLOSE)
    b.rig.run_for(600)
    b.answer(run, "P6.fld.P-701B", "cannot close")
    b.answer(run, "P8.log", "logged", b.log_values())
    b.until_state(run, "P9", 60)
    assert run.vars[pl.restart_blocked("P-701B")] is True and b.v("ZSO-703B")
    prr = b.restore()
    assert prr.state == "DONE"
    assert [w.tag for w in b.starts()] == ["HS-701A", "HS-701C", "HS-711A"]
    assert not b.written("HS-701B") and prr.vars[pl.restart_blocked("P-701B")] is True
    assert "RESTART_BLOCKED" in alarm_text(b, f"{prr.run_id}:R1.P-701B.blocked.alarm:failed")
    assert all(w.mov_closed for w in b.starts())
    assert b.v("XS-701C") and not b.v("XS-701B")


def test_f_p10_backflow_p3_fails_so_p6_runs_first_then_p3_rechecked() -> None:
    # not one of the required scenarios, but the only way to reach P3's failure branch
    b = make_bench(faults=(("check_valve_failed", {"pump": "P-701A"}),))
    run = b.lose_power()
    b.until_state(run, "P6", 200)
    low = b.v("PT-720")
    assert low < HEADER_LL_MPA and b.v("PT-805") < 0.28  # back-flow through P-701A
    assert "keep it running" in alarm_text(b, f"{run.run_id}:P2:failed") and b.v("YS-801") == 4
    assert "P6" in alarm_text(b, f"{run.run_id}:P3:failed")
    b.until(lambda: "P4" in visited(run), 300, "P4 after P6 and the re-check")
    assert visited(run)[:9] == ["P1", "P2", "P3", "P6", "P6.end", "P6.next", "P3.again", "P3.recheck", "P4"]
    assert b.v("ZSC-703A") and b.v("PT-720") >= low + 0.05  # closing MOV-703A stopped the back-flow
    b.notify_all(run)
    b.answer(run, "P8.log", "logged", b.log_values())
    b.until_state(run, "P9", 60)
    after_p5 = visited(run)[visited(run).index("P5.end"):]
    assert after_p5[:3] == ["P5.end", "P6.next", "P7"]  # P6 not repeated, no second re-check
    assert "P2.pt805" not in visited(run)  # PT-805 recovered with the MOV closed: no field check needed
    assert len(b.written("HS-703A")) == 1


def test_f_p11_mcc_dead_every_mov_step_goes_to_the_handwheel() -> None:
    b = make_bench(faults=(("mcc_dead", {}),))
    run = b.lose_power()
    b.until_task(run, "P4.fld", 200)
    b.st.hand_wheel("MOV-740", ValveCmd.OPEN)  # the crew winds it from the moment the task opens
    b.answer(run, "P4.fld", "opened")  # reported; the step still waits for the open switch
    b.until(lambda: b.v("ZSO-740"), HANDWHEEL_S, "MOV-740 open by hand")
    b.notify_all(run)
    t_p6 = b.until_state(run, "P6", 5)
    for pump, mov in (("P-701A", "MOV-703A"), ("P-701B", "MOV-703B"), ("P-711A", "MOV-713A")):
        b.until_task(run, f"P6.fld.{pump}", 400)
        assert run.vars[pl.restart_blocked(pump)] is True
        b.st.hand_wheel(mov, ValveCmd.CLOSE)
        b.until(lambda m=mov: b.v("ZSC-" + m[4:]), HANDWHEEL_S, f"{mov} closed by hand")  # type: ignore[misc]
        b.answer(run, f"P6.fld.{pump}", "closed")
        b.until(lambda p=pump: not run.vars[pl.restart_blocked(p)], 5, f"{pump} released")  # type: ignore[misc]
    failed = {e.payload["tag"] for e in b.rig.events_of(EventKind.COMMAND_FAILED)}
    assert failed == {"HS-740", "HS-703A", "HS-703B", "HS-713A"}
    assert entered(run, "P6.chk.P-701A") - t_p6 < 200  # commands failed at their 91 / 68.5 s
    b.answer(run, "P8.log", "logged", b.log_values())
    b.until_state(run, "P9", 60)
    assert b.v("EI-602") == 0.0 and b.rig.now - b.t_loss > 3000  # a long, hand-wheel paced outage


def test_f_p12_power_returns_during_p6_moving_valves_finish_others_stay_blocked() -> None:
    # MOV-703B strokes 1.4 x slower, so MOV-703A finishes first: its free slot must not start MOV-713A
    b = make_bench(faults=(("valve_slow", {"valve": "MOV-703B", "factor": 1.4}),))
    run = b.lose_power()
    b.until_task(run, "P5", 200)
    b.plant.inject("pump_station", "power_return")
    t_return = b.rig.now
    b.rig.run_for(48)
    b.notify_all(run)
    t_p6 = b.until_state(run, "P6", 5)
    b.until(lambda: run.finished, 120, "hand-over")
    t_stable = t_return + 60.0
    assert run.state == "HANDED_OVER" and t_p6 < t_stable
    verified = {e.payload["tag"]: e.t_plant for e in b.rig.events_of(EventKind.COMMAND_VERIFIED)}
    assert t_stable < verified["HS-703A"] < verified["HS-703B"] <= b.rig.now  # both finished first
    assert not b.written("HS-713A")  # not started after the return: P-711A stays blocked
    assert b.v("ZSC-703A") and b.v("ZSC-703B") and b.v("ZSO-713A")
    prr = b.run("PUMP-PR")
    b.answer(prr, "R0", "confirmed", {"substation_confirmed_by": "HV desk"})
    b.finish_pr(prr)
    assert prr.state == "DONE"
    assert [w.tag for w in b.starts()] == ["HS-701A", "HS-701B", "HS-711B"]
    assert all(w.mov_closed for w in b.starts()) and not b.written("HS-711A")
    assert prr.vars[pl.restart_blocked("P-711A")] is True


def test_f_p13_flicker_no_start_before_stable_and_loss_during_r1_trips_and_returns_to_pl() -> None:
    b = make_bench()
    run = b.lose_power()
    b.to_p9(run)
    states = IOL.by_tag["XS-601"].states
    seen: list[tuple[float, str]] = []

    def watch() -> bool:
        s = states[int(b.v("XS-601"))]
        if not seen or seen[-1][1] != s:
            seen.append((b.rig.now, s))
        return bool(b.runs("PUMP-PR"))

    b.plant.inject("pump_station", "power_flicker", {"back_s": 20.0, "lost_s": 5.0})
    b.until(watch, 200, "PUMP-PR after the flicker")
    assert [s for _, s in seen] == ["DEAD", "RESTORED_UNSTABLE", "DEAD", "RESTORED_UNSTABLE", "RESTORED_STABLE"]
    t_back, t_stable = seen[3][0], seen[4][0]
    # observed at 1 s scans: each edge is seen up to one scan after it happens
    assert t_stable - t_back >= 60.0 - 1.0 and run.state == "HANDED_OVER"
    assert b.st.params.stable_s == 60.0
    assert entered(run, "HANDED_OVER") >= t_stable and not b.starts()
    prr = b.run("PUMP-PR")
    b.answer(prr, "R0", "confirmed", {"substation_confirmed_by": "HV desk"})
    b.until(lambda: bool(b.starts()), 30, "first start")
    assert b.starts()[0].t >= t_stable
    # loss again while P-701A accelerates: trip it, back to PUMP-PL, whose P1 passes at once
    b.rig.run_for(3)
    assert prr.state == "R1.P-701A.accel"
    b.plant.inject("pump_station", "power_loss")
    b.until(lambda: prr.finished, 5, "PUMP-PR hand-back")
    assert prr.state == "HANDED_OVER" and "R1.P-701A.lost" in visited(prr)
    assert not b.v("XS-701A") and not b.st.pumps["P-701A"].cmd
    pl2 = b.run("PUMP-PL")
    assert pl2 is not run and pl2.started_at <= b.rig.now
    b.until(lambda: "P5" in visited(pl2), 5, "PUMP-PL P1..P4 passed at once")
    assert entered(pl2, "P5") - pl2.started_at <= 1.0 and not b.written("HS-809")
    assert visited(pl2)[:5] == ["P1", "P2", "P3", "P4", "P5"]  # no P1/P2 alarm branch
    assert len(b.written("HS-740")) == 1  # MOV-740 already open: not commanded again
    assert b.v("YS-801") == 4  # the diesel never stopped
    # and the station recovers on the next stable return
    b.to_p9(pl2)
    prr2 = b.restore()
    assert prr2 is not prr and prr2.state == "DONE"
    assert [w.tag for w in b.starts()] == ["HS-701A", "HS-701A", "HS-701B", "HS-711A"]
    assert all(w.mov_closed for w in b.starts())


def test_f_p14_pump_fails_to_accelerate_is_tripped_and_standby_started() -> None:
    b = make_bench(faults=(("pump_fails_to_accelerate", {"pump": "P-701A"}),))
    run = b.lose_power()
    b.to_p9(run)
    prr = b.restore()
    assert prr.state == "DONE"
    start_a = b.written("HS-701A", True)
    trip_a = b.written("HS-701A", False)
    assert len(start_a) == 1 and len(trip_a) == 1
    assert START_CHECK_S <= trip_a[0].t - start_a[0].t <= START_CHECK_S + 2.0  # before the 20 s motor protection
    assert prr.vars["start_failed:P-701A"] is True
    assert "failed to accelerate" in alarm_text(b, f"{prr.run_id}:R1.P-701A.accel:failed")
    assert [w.tag for w in b.starts()] == ["HS-701A", "HS-701C", "HS-701B", "HS-711A"]
    starts = b.starts()
    assert all(t2.t - t1.t >= RESTART_GAP_S for t1, t2 in zip(starts, starts[1:], strict=False))
    assert b.v("XS-701C") and not b.v("XS-701A") and b.v("ZSO-703C") and b.v("ZSC-703A")


def test_r1_mov_will_not_open_pump_stopped_after_60_s_and_r2_failure_keeps_the_diesel() -> None:
    # branches beyond the listed scenarios: R1 "MOV will not open" and R2's failure
    b = make_bench()
    run = b.lose_power()
    b.to_p9(run)
    b.plant.inject("pump_station", "valve_stuck", {"valve": "MOV-703A"})  # jams closed after P6
    b.plant.inject("pump_station", "valve_stuck", {"valve": "MOV-740"})  # jams open: R2 cannot close it
    b.plant.inject("pump_station", "power_return")
    b.until(lambda: bool(b.runs("PUMP-PR")), 120, "PUMP-PR")
    prr = b.run("PUMP-PR")
    b.answer(prr, "R0", "confirmed", {"substation_confirmed_by": "HV desk"})
    b.until(lambda: "R1.P-701A.stop" in visited(prr), 200, "P-701A stopped")
    opened = b.written("HS-703A", 1)[0].t
    stop = b.written("HS-701A", False)
    assert len(stop) == 1 and stop[0].t - opened == pytest.approx(60.0, abs=1.5)  # no-flow heating limit
    assert "does not open" in alarm_text(b, f"{prr.run_id}:R1.P-701A.open:failed")
    b.finish_pr(prr)
    assert [w.tag for w in b.starts()] == ["HS-701A", "HS-701C", "HS-701B", "HS-711A"]
    assert b.written("HS-740", 2) and b.v("ZSO-740")
    assert not b.written("HS-810") and b.v("YS-801") == 4  # the diesel kept running
    assert "keep the diesel running" in alarm_text(b, f"{prr.run_id}:R2.failed:failed")
    assert prr.state == "ESCALATED"


def test_f_x01_link_drop_holds_steps_and_replays_no_stale_command() -> None:
    b = make_bench()
    run = b.lose_power()
    b.notify_all(run)
    t_p6 = b.until_state(run, "P6", 10)
    b.rig.run_for(5)
    drv = b.rig.drivers["pump_station"]
    drv.set_link(False)
    t_down = b.rig.now
    n_writes = len(b.writes)
    b.rig.run_for(60)
    assert run.held and run.state == "P6" and len(b.writes) == n_writes  # held, nothing written
    assert b.st.valves["MOV-703A"].zsc  # the PLC kept running the closing it had been given
    drv.set_link(True)
    t_up = b.rig.now
    b.until(lambda: "P6.end" in visited(run), 120, "P6 done")
    assert not run.held
    for tag in ("HS-703A", "HS-703B", "HS-713A"):
        assert len(b.written(tag)) == 1, tag  # each valve commanded once: nothing replayed
    assert b.written("HS-713A")[0].t >= t_up and t_p6 < t_down
    verified = {e.payload["tag"]: e.t_plant for e in b.rig.events_of(EventKind.COMMAND_VERIFIED)}
    assert verified["HS-703A"] >= t_up  # confirmed once the readings were back, not failed while BAD
    assert not b.rig.events_of(EventKind.COMMAND_FAILED) and not any(
        k.startswith("RESTART_BLOCKED") and v for k, v in run.vars.items())
    assert len(b.runs("PUMP-PL")) == 1
    assert [e.kind for e in b.rig.events if e.kind in (EventKind.LINK_DOWN, EventKind.LINK_UP)][-2:] == [
        EventKind.LINK_DOWN, EventKind.LINK_UP]
