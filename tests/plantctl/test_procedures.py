"""The procedure base on a small fake plant (unit tests of the logic; the real
procedures are tested against sim_plc in tests/sequences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from plantctl.clock import VirtualClock
from plantctl.engine import Actor, Role
from plantctl.errors import ConfigError
from plantctl.expr import Rate, T, Var
from plantctl.iolist import load_io_list
from plantctl.journal import EventKind, Journal
from plantctl.procedures import (
    Cmd,
    Interrupt,
    ProcedureDef,
    ProcedureManager,
    Recurring,
    Refusal,
    Refused,
    Step,
    StepKind,
    Task,
    mermaid,
    validate,
)
from plantctl.rig import VirtualRig


def _toy_iolist() -> str:
    signals: list[dict[str, Any]] = [
        {"tag": "PT-1", "description": "pressure", "kind": "analog_in", "units": "MPa", "range": [0, 10],
         "raw": [0, 65535], "modbus": {"table": "input_register", "address": 30001},
         "bad_counts_as": "unsafe", "bad_means": "unknown"},
        {"tag": "YS-1", "description": "mode", "kind": "state_enum", "states": ["IDLE", "RUN"],
         "modbus": {"table": "input_register", "address": 30002}, "bad_counts_as": "not_confirmed", "bad_means": "unknown"},
    ]
    for n in (1, 2, 3):
        for sw, addr in (("ZSC", 10000 + 2 * n - 1), ("ZSO", 10000 + 2 * n)):
            signals.append({"tag": f"{sw}-{n}", "description": f"v{n} {sw}", "kind": "digital_in",
                            "modbus": {"table": "discrete_input", "address": addr},
                            "bad_counts_as": "not_confirmed", "bad_means": "unknown"})
        signals.append({"tag": f"XY-{n}", "description": f"v{n} open command", "kind": "command_out", "type": "bool",
                        "modbus": {"table": "coil", "address": n},
                        "feedback": {"true": {"tag": f"ZSO-{n}", "value": True},
                                     "false": {"tag": f"ZSC-{n}", "value": True}, "within_s": 10}})
    return yaml.safe_dump({"station": "toy", "signals": signals}, sort_keys=False)


IOL = _toy_iolist()


class ToyStation:
    """Three valves that stroke in 4 s, and a pressure."""

    name = "toy"

    def __init__(self) -> None:
        self.x = {1: 1.0, 2: 1.0, 3: 1.0}
        self.cmd = {1: True, 2: True, 3: True}
        self.stuck: set[int] = set()
        self.pressure = 5.0
        self.mode = 0
        self.writes: list[tuple[str, Any]] = []
        self.silent: set[str] = set()  # tags the "PLC" stops reporting: they read BAD

    def step(self, dt: float) -> None:
        for n in self.x:
            if n in self.stuck:
                continue
            target = 1.0 if self.cmd[n] else 0.0
            step = dt / 4.0
            self.x[n] = min(target, self.x[n] + step) if target > self.x[n] else max(target, self.x[n] - step)

    def read_tags(self) -> dict[str, Any]:
        out: dict[str, Any] = {"PT-1": self.pressure, "YS-1": self.mode}
        for n, x in self.x.items():
            out[f"ZSC-{n}"] = x <= 0.02
            out[f"ZSO-{n}"] = x >= 0.98
            out[f"XY-{n}"] = self.cmd[n]
        return {k: v for k, v in out.items() if k not in self.silent}

    def write(self, tag: str, value: Any) -> None:
        self.writes.append((tag, value))
        self.cmd[int(tag.split("-")[1])] = bool(value)


class ToyPlant:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.stations = {"toy": ToyStation()}
        self.t = 0.0

    def advance_to(self, t: float) -> int:
        n = 0
        while self.t < t - 1e-9:
            self.t += 0.1
            self.stations["toy"].step(0.1)
            n += 1
        return n


OP = Actor("olga", frozenset({Role.OPERATOR}))
OP2 = Actor("otto", frozenset({Role.OPERATOR}))


def close_all(max_parallel: int = 0, wait_s: float = 120) -> ProcedureDef:
    return ProcedureDef(
        id="TOY",
        title="toy isolation",
        station="toy",
        source="test",
        steps=(
            Step("S1", "Close the three valves.", StepKind.COMMAND, next="S2", on_fail="S9", timeout_s=60,
                 commands=tuple(Cmd(f"XY-{n}", False, label=f"V{n}", on_fail_set=f"BLOCKED:V{n}") for n in (1, 2, 3)),
                 max_parallel=max_parallel),
            Step("S2", "Watch the pressure fall below 1 MPa.", StepKind.WAIT, next="S3", on_fail="S9", timeout_s=wait_s,
                 confirm=T("PT-1") < 1.0, confirm_for_s=5),
            Step("S3", "Phone the offtake station.", StepKind.TASK, next="DONE", on_fail="S9", timeout_s=300,
                 task=Task("phone offtake", Role.OPERATOR, ("dial", "confirm"), {"done": "", "no answer": "S9"})),
            Step("S9", "Hand over to the supervisor.", StepKind.TASK, next="ESCALATED", on_fail="ESCALATED", timeout_s=600,
                 task=Task("supervisor takes over", Role.SUPERVISOR)),
        ),
        recurring=(Recurring("LOG", "Record the pressure every 15 min.", 900, Task("log pressure", Role.OPERATOR)),),
    )


@pytest.fixture()
def iol(tmp_path: Path) -> Any:
    p = tmp_path / "toy.yaml"
    p.write_text(IOL)
    return load_io_list(p)


def make_rig(iol: Any, defn: ProcedureDef, journal: Path | None = None) -> tuple[VirtualRig, ToyStation]:
    clock = VirtualClock()
    plant = ToyPlant(clock)
    rig = VirtualRig({"toy": iol}, plant, clock, procedures=[defn], journal=journal)
    rig.tick()
    return rig, plant.stations["toy"]


def transitions_of(rig: VirtualRig) -> list[tuple[str, str, str]]:
    return [(e.payload["from"], e.payload["to"], e.payload["trigger"]) for e in rig.events_of(EventKind.PROCEDURE_TRANSITION)]


def test_happy_path_commands_verify_wait_and_task(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all())
    run = rig.start("TOY")
    rig.run_for(10)
    assert run.state == "S2" and all(x == 0.0 for x in toy.x.values())
    verified = rig.events_of(EventKind.COMMAND_VERIFIED)
    assert {e.payload["tag"] for e in verified} == {"XY-1", "XY-2", "XY-3"}
    toy.pressure = 0.5
    rig.run_for(4)
    assert run.state == "S2"  # must hold for 5 s
    rig.run_for(2)
    assert run.state == "S3" and "S3" in run.tasks
    assert not rig.answer(run.run_id, "S3", "done", Actor("vic", frozenset({Role.VIEWER}))).accepted
    assert rig.answer(run.run_id, "S3", "done", OP).accepted
    rig.tick()
    assert run.state == "DONE"
    task_events = [e for e in rig.events_of(EventKind.TASK) if e.payload.get("answer")]
    assert task_events[-1].user == "olga"
    assert [t[1] for t in transitions_of(rig)] == ["S1", "S2", "S3", "DONE"]
    # every transition carries the plan's sentence
    assert all(e.payload["step_text"] for e in rig.events_of(EventKind.PROCEDURE_TRANSITION))


def test_stuck_valve_takes_failure_branch_at_deadline_and_marks_item(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all())
    toy.stuck.add(2)
    run = rig.start("TOY")
    rig.run_for(9.5)
    assert run.state == "S1"
    rig.run_for(1.0)  # the command's own 10 s verification deadline
    assert run.vars.get("BLOCKED:V2") is True
    assert rig.events_of(EventKind.COMMAND_FAILED)[0].payload["tag"] == "XY-2"
    assert run.state == "S9"
    assert rig.engine.alarms.is_active(f"{run.run_id}:S1:failed")


def test_max_parallel_batches_commands(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all(max_parallel=2))
    rig.start("TOY")
    rig.tick()
    assert [w[0] for w in toy.writes] == ["XY-1", "XY-2"]
    rig.run_for(6)
    assert [w[0] for w in toy.writes] == ["XY-1", "XY-2", "XY-3"]


def test_bad_quality_holds_a_wait_and_escalates_instead_of_failing(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all())
    run = rig.start("TOY")
    rig.run_for(10)
    assert run.state == "S2"
    rig.drivers["toy"].set_link(False)
    rig.run_for(200)  # far past S2's 120 s deadline
    assert run.state == "S2" and run.held  # held (link lost), not failed
    rig.drivers["toy"].set_link(True)
    rig.run_for(1)
    assert not run.held


def test_hold_freezes_commands_resume_continues_abort_needs_two(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all())
    run = rig.start("TOY")
    assert rig.proc_request("hold", run.run_id, OP).accepted
    rig.run_for(5)
    assert toy.writes == [] and run.state == "S1"
    rig.proc_request("resume", run.run_id, OP)
    rig.run_for(6)
    assert len(toy.writes) == 3
    assert not rig.proc_request("abort", run.run_id, OP).accepted
    assert not rig.proc_request("abort", run.run_id, OP, confirmed_by=OP).accepted
    assert rig.proc_request("abort", run.run_id, OP, confirmed_by=OP2).accepted
    assert run.state == "ABORTED"


def test_recurring_task_goes_overdue(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all(wait_s=7200))
    run = rig.start("TOY")
    rig.run_for(899)
    assert not rig.engine.alarms.is_active(f"{run.run_id}:LOG:overdue")
    rig.run_for(2)
    assert rig.engine.alarms.is_active(f"{run.run_id}:LOG:overdue")
    assert rig.answer(run.run_id, "LOG", "done", OP).accepted
    assert not rig.engine.alarms.is_active(f"{run.run_id}:LOG:overdue")


def test_definition_time_validation(iol: Any) -> None:
    bad = ProcedureDef(
        id="BAD",
        title="broken",
        station="toy",
        source="test",
        steps=(
            Step("A", "wait forever", StepKind.WAIT, next="B", confirm=T("PT-9") < 1),
            Step("B", "loop", StepKind.DECIDE, next="A", branches=((Var("x"), "A"),)),
            Step("C", "orphan", StepKind.COMMAND, next="DONE", on_fail="DONE", timeout_s=5, commands=(Cmd("ZSC-1", True),)),
        ),
    )
    problems = validate(bad, {"toy": iol})
    text = "\n".join(problems)
    assert "step A: a wait step needs a deadline" in text
    assert "step A: a wait step needs an on-timeout branch" in text
    assert "PT-9 is not in toy's I/O list" in text
    assert "step C is unreachable" in text
    assert "step A is a trap" in text
    assert "ZSC-1 is not a command output" in text
    with pytest.raises(ConfigError):
        ProcedureManager([bad], {"toy": iol})
    assert validate(close_all(), {"toy": iol}) == []
    assert "stateDiagram-v2" in mermaid(close_all())


def test_restore_from_journal_skips_what_the_plant_already_did(iol: Any, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    rig, toy = make_rig(iol, close_all(max_parallel=1), journal=db)
    rig.start("TOY")
    rig.run_for(5)  # V1 closed, V2 moving
    assert toy.x[1] == 0.0 and 0 < toy.x[2] < 1
    rig.journal.close()  # type: ignore[union-attr]
    # "restart": a new manager, same plant, state from the journal only
    events = [r.event for r in Journal(db).records()]
    clock = rig.clock
    rig2 = VirtualRig({"toy": iol}, rig.plant, clock, procedures=[close_all(max_parallel=1)])
    restored = rig2.procs.restore(events, clock.now(), clock.wall())
    assert [r.state for r in restored] == ["S1"]
    toy.writes.clear()
    rig2.run_for(10)
    assert ("XY-1", False) not in toy.writes  # finished item not repeated
    assert restored[0].state == "S2"


def test_interrupt_lets_the_moving_valve_finish(iol: Any) -> None:
    defn = ProcedureDef(
        id="TOY2",
        title="toy with interrupt",
        station="toy",
        source="test",
        steps=close_all(max_parallel=1).steps,
        interrupts=(Interrupt(T("YS-1").state("RUN"), "DONE", "mode changed", wait_moving=True),),
    )
    rig, toy = make_rig(iol, defn)
    run = rig.start("TOY2")
    rig.run_for(1)
    toy.mode = 1
    rig.run_for(1)
    assert run.state == "S1"  # V1 still moving: never reverse a valve halfway
    rig.run_for(4)
    assert run.state == "DONE" and toy.x[1] == 0.0 and toy.x[2] == 1.0


# -- local confirmation (audit finding 5) ---------------------------------------------------------
def loop_wait() -> ProcedureDef:
    """A wait on PT-1 that a task can send the run back to (a loop, as L1.5.permit / L1.5.chase)."""
    return ProcedureDef(
        id="LOOP",
        title="wait, check, wait again",
        station="toy",
        source="test",
        steps=(
            Step("W", "Wait for the pressure to fall below 1 MPa.", StepKind.WAIT, next="C", on_fail="ESCALATED",
                 timeout_s=600, confirm=T("PT-1") < 1.0, confirm_for_s=5),
            Step("C", "Check again?", StepKind.TASK, next="DONE", on_fail="DONE", timeout_s=600,
                 task=Task("check", Role.OPERATOR, (), {"done": "", "again": "W"})),
        ),
    )


def test_local_confirmation_is_refused_while_the_instrument_reads_no(iol: Any) -> None:
    rig, toy = make_rig(iol, loop_wait())
    run = rig.start("LOOP")
    rig.run_for(2)
    assert run.state == "W" and rig.table["PT-1"].good  # PT-1 = 5 MPa: "not below 1" is a known no
    out = rig.procs.confirm_locally(run.run_id, OP, rig.now, rig.clock.wall())
    assert not out.accepted and isinstance(out, Refused) and out.reason is Refusal.CONFLICT
    assert "say no" in out.message and "PT-1 < 1" in out.message
    assert "confirmed:W" not in run.vars
    rig.run_for(30)
    assert run.state == "W"  # one click does not pass a step the plant contradicts


def test_local_confirmation_stands_in_for_an_unreadable_signal_for_one_visit_only(iol: Any) -> None:
    rig, toy = make_rig(iol, loop_wait())
    run = rig.start("LOOP")
    toy.silent.add("PT-1")  # the transmitter stops reporting: BAD, the condition is unknown
    rig.run_for(2)
    assert not rig.table["PT-1"].good and run.state == "W"
    assert rig.procs.confirm_locally(run.run_id, OP, rig.now, rig.clock.wall()).accepted
    rig.run_for(6)
    assert run.state == "C"  # the field check stood in for the unreadable signal
    assert rig.answer(run.run_id, "C", "again", OP).accepted
    rig.run_for(30)
    assert run.state == "W" and "confirmed:W" not in run.vars  # entered again: asks again
    # a field check made while unknown is withdrawn when the transmitter reads again and says no
    assert rig.procs.confirm_locally(run.run_id, OP, rig.now, rig.clock.wall()).accepted
    toy.silent.clear()
    rig.run_for(2)
    assert run.state == "W" and "confirmed:W" not in run.vars
    toy.silent.add("PT-1")
    rig.run_for(10)
    assert run.state == "W"


def test_local_confirmation_is_not_an_answer_to_a_task(iol: Any) -> None:
    rig, toy = make_rig(iol, close_all())
    run = rig.start("TOY")
    rig.run_for(10)
    toy.pressure = 0.5
    rig.run_for(6)
    assert run.state == "S3"
    out = rig.procs.confirm_locally(run.run_id, OP, rig.now, rig.clock.wall())
    assert not out.accepted and "answer its task" in out.message
    rig.run_for(5)
    assert run.state == "S3"


# -- rate conditions (audit finding 6) ------------------------------------------------------------
def steady_wait() -> ProcedureDef:
    steady = ~Rate("PT-1", "<", -0.5, 10.0) & ~Rate("PT-1", ">", 0.5, 10.0)
    return ProcedureDef(
        id="STEADY", title="wait for a steady pressure", station="toy", source="test",
        steps=(Step("W", "PT-1 steady.", StepKind.WAIT, next="DONE", on_fail="ESCALATED", timeout_s=3600,
                    confirm=steady),),
    )


def test_a_rate_without_fresh_history_or_a_good_reading_is_unknown_never_steady(iol: Any) -> None:
    rig, toy = make_rig(iol, steady_wait())
    run = rig.start("STEADY")
    rig.run_for(5)
    assert run.state == "W"  # 5 s of history for a 10 s window: unknown, not "steady"
    toy.silent.add("PT-1")  # the signal fails: the old history must not keep saying "steady"
    rig.run_for(30)
    assert run.state == "W" and rig.engine.alarms.is_active(f"{run.run_id}:W:bad")
    assert rig.procs.rate("toy", "PT-1", 10.0, rig.now) is None
    toy.silent.clear()
    rig.run_for(5)
    assert run.state == "W"  # back, but the gap broke the trend: a fresh window first
    rig.run_for(10)
    assert run.state == "DONE"


def test_a_rate_whose_newest_sample_is_stale_is_unknown(iol: Any) -> None:
    rig, toy = make_rig(iol, steady_wait())
    rig.run_for(15)
    assert rig.procs.rate("toy", "PT-1", 10.0, rig.now) == pytest.approx(0.0)
    assert rig.procs.rate("toy", "PT-1", 10.0, rig.now + rig.procs.stale_after_s + 1.0) is None


# -- task answers (audit findings 9 and 8) --------------------------------------------------------
def answers_proc(two_person: bool = False) -> ProcedureDef:
    return ProcedureDef(
        id="ANS", title="answers", station="toy", source="test",
        steps=(
            Step("A", "Record the reading.", StepKind.TASK, next="B", on_fail="ESCALATED", timeout_s=600,
                 task=Task("reading", Role.OPERATOR, (), {"done": ""}, ("reading",))),
            Step("B", "Authorise.", StepKind.TASK, next="DONE", on_fail="ESCALATED", timeout_s=600,
                 task=Task("authorise", Role.SUPERVISOR, (), {"authorised": "", "not now": "ESCALATED"},
                           **({"two_person": True} if two_person else {}))),
        ),
    )


SUP = Actor("sam", frozenset({Role.SUPERVISOR}))
VIEWER = Actor("vic", frozenset({Role.VIEWER}))


@pytest.mark.parametrize("extra", [{"confirmed:B": True}, {"permissives": True}, {"FUEL_URGENT_REQUESTED": True},
                                   {"answer:B": "authorised"}])
def test_an_answer_may_carry_only_the_values_its_task_asks_for(iol: Any, extra: dict[str, Any]) -> None:
    rig, toy = make_rig(iol, answers_proc())
    run = rig.start("ANS")
    rig.tick()
    before = dict(run.vars)
    out = rig.answer(run.run_id, "A", "done", OP, {"reading": 4.2, **extra})
    assert not out.accepted and isinstance(out, Refused) and out.reason is Refusal.INVALID
    assert next(iter(extra)) in out.message
    assert run.vars == before and "A" in run.tasks  # nothing written, the task still open
    assert rig.answer(run.run_id, "A", "done", OP, {"reading": 4.2}).accepted
    assert run.vars["reading"] == 4.2


def test_a_task_may_not_ask_for_the_managers_own_variables(iol: Any) -> None:
    bad = ProcedureDef(
        id="BADF", title="bad fields", station="toy", source="test",
        steps=(Step("A", "Record.", StepKind.TASK, next="DONE", on_fail="DONE", timeout_s=60,
                    task=Task("t", Role.OPERATOR, (), {"done": ""}, ("permissives", "confirmed:A"))),),
    )
    text = "\n".join(validate(bad, {"toy": iol}))
    assert "task field permissives is reserved" in text and "task field confirmed:A is reserved" in text


def test_a_two_person_task_needs_a_second_different_person(iol: Any) -> None:
    rig, toy = make_rig(iol, answers_proc(two_person=True))
    run = rig.start("ANS")
    rig.tick()
    assert rig.answer(run.run_id, "A", "done", OP, {"reading": 1}).accepted
    rig.tick()
    assert run.state == "B" and run.summary()["tasks"][0]["two_person"] is True
    procs, now, wall = rig.procs, rig.now, rig.clock.wall()
    assert not procs.answer(run.run_id, "B", "authorised", SUP, now, wall).accepted  # alone
    assert not procs.answer(run.run_id, "B", "authorised", SUP, now, wall, confirmed_by=SUP).accepted  # himself
    out = procs.answer(run.run_id, "B", "authorised", SUP, now, wall, confirmed_by=VIEWER)
    assert not out.accepted and isinstance(out, Refused) and out.reason is Refusal.ROLE  # role
    assert "B" in run.tasks and "confirmed:B" not in run.vars
    assert procs.answer(run.run_id, "B", "authorised", SUP, now, wall, confirmed_by=OP).accepted
    rig.tick()
    assert run.state == "DONE"
    [ev] = [e for e in rig.events_of(EventKind.TASK) if e.payload.get("task") == "B" and "answer" in e.payload]
    assert ev.user == "sam" and ev.payload["confirmed_by"] == "olga"


def test_declining_a_two_person_task_needs_one_person(iol: Any) -> None:
    rig, toy = make_rig(iol, answers_proc(two_person=True))
    run = rig.start("ANS")
    rig.tick()
    rig.answer(run.run_id, "A", "done", OP, {"reading": 1})
    rig.tick()
    assert rig.answer(run.run_id, "B", "not now", SUP).accepted
    rig.tick()
    assert run.state == "ESCALATED"


# -- decisions on unknown data (audit finding 10b) ------------------------------------------------
def decide_proc(on_unknown: str = "") -> ProcedureDef:
    ask = (Step(on_unknown, "Ask the field.", StepKind.TASK, next="DONE", on_fail="DONE", timeout_s=60,
                task=Task("ask", Role.OPERATOR)),) if on_unknown else ()
    return ProcedureDef(
        id="DEC", title="decide", station="toy", source="test",
        steps=(
            Step("D", "Pressure low? Then vent, else isolate.", StepKind.DECIDE, next="ISOLATE",
                 branches=((T("PT-1") < 1.0, "VENT"),), **({"on_unknown": on_unknown} if on_unknown else {})),
            Step("VENT", "Vent.", StepKind.TASK, next="DONE", on_fail="DONE", timeout_s=60,
                 task=Task("vent", Role.OPERATOR)),
            Step("ISOLATE", "Isolate.", StepKind.TASK, next="DONE", on_fail="DONE", timeout_s=60,
                 task=Task("isolate", Role.OPERATOR)),
            *ask,
        ),
    )


def test_a_decision_holds_on_unknown_instead_of_taking_its_default(iol: Any) -> None:
    rig, toy = make_rig(iol, decide_proc())
    toy.silent.add("PT-1")
    rig.run_for(1)
    run = rig.start("DEC")
    rig.run_for(29)
    assert run.state == "D"  # not ISOLATE: the default is not "unknown"
    rig.run_for(2)
    assert rig.engine.alarms.is_active(f"{run.run_id}:D:bad")
    toy.silent.clear()
    toy.pressure = 0.5
    rig.run_for(1)
    assert run.state == "VENT"


def test_a_decision_goes_where_it_says_an_unknown_goes(iol: Any) -> None:
    rig, toy = make_rig(iol, decide_proc(on_unknown="ASK"))
    toy.silent.add("PT-1")
    rig.run_for(1)
    run = rig.start("DEC")
    rig.tick()
    assert run.state == "ASK"
    bad = ProcedureDef(
        id="BADU", title="bad", station="toy", source="test",
        steps=(Step("W", "wait", StepKind.WAIT, next="DONE", on_fail="DONE", timeout_s=5, confirm=T("PT-1") < 1,
                    on_unknown="DONE"),),
    )
    assert "on_unknown is for decisions" in "\n".join(validate(bad, {"toy": iol}))
