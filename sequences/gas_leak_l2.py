"""GAS-L2: large leak inside the pressure-regulating station (plant-reference.md 4.3, procedures.md A2 zone 2).

Theory of operation
-------------------
* L2.1 locates the leak (a task: run A, run B, or the common header / inlet / outlet; 10 min, no
  answer = COMMON).
* L2.2, for a leak on a run, switches branch: first the healthy run is put in service (open its
  XV-211 and XV-216: its regulator takes over, normally they are already open and are not commanded
  again), and only when both are confirmed open are the leaking run's XV-211 and XV-216 closed; the
  switch is confirmed when both are closed and PT-202 has held 3.20 +- 0.15 MPa for 60 s with FT-323
  steady. With FT-323 BAD (or without a minute of fresh history) "steady" is unknown: the step holds
  and asks for a local check, it never declares the run isolated on frozen data. Two command steps (not one with max_parallel) keep "open the healthy run, *then* close the
  leaking one" strict: a batch of four would start closing the leaking run while the healthy one is
  still opening.
* L2.3, when the leak is on the common part or the switch failed: the fast unload is commanded first
  and XV-201 closed in the same step (the plan's note: at base load the downstream inventory lasts
  10-15 s, so the GT will normally trip on PT-322 LL; a trip from any cause satisfies the stop, rule
  4.10-3). XV-201 that will not close: a two-person field crew closes it by hand (10 min), then the
  run valves as a backup (``XV201_FAILED``). A GT that does not stop: manual trip.
* L2.5 is the G0 permissive step; L2.6 depressurises the isolated run before repair. The I/O list has
  no pressure transmitter on a run, so the run pressure is the field crew's gauge reading
  (``run_pressure_mpa``), and the drain is the fallback. When the station was shut instead (L2.3,
  also after an escalation from L2.4) the isolated header is depressurised by its own step
  (``L2.6.hdr``, field ``header_pressure_mpa``) and the run ends with the notice: a task step keeps
  its earlier answer, so an escalated run must not re-enter L2.6 and pass on the run's old reading.
* L2.4: while the station runs on one run with the leak isolated, a patrol at most every hour is a
  Recurring task (``TMR-PATROL``; the base raises the overdue alarm). A patrol reading above
  10 %LEL (the entered ``patrol_lel`` or AI-901) escalates to L2.3. The run ends when the leaking run
  is reported repaired. The patrol timer starts when L2.4 is entered (after the permissives and the
  depressurising, i.e. within minutes of the switch) because a Recurring task is tied to steps. A
  "rising" reading is the patrol's own judgement (one reading per round; no trend is kept).
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import T, Var
from plantctl.procedures import Cmd, ProcedureDef, Recurring, Step, StepKind, Task

from ._gas_common import (
    GT_STOP_TIMEOUT_S,
    GT_STOPPED,
    MANUAL_TRIP_TIMEOUT_S,
    NOTIFY_TIMEOUT_S,
    RUN_BRANCH_VALVE_S,
    STATION,
    XV201_CLOSE_S,
    NumVar,
    g0_permissive,
    manual_close_task,
    steady,
)

# -- numbers of the table (plant-reference.md 4.3 unless stated) ----------------------------------
LOCATE_S = 600.0  # L2.1: 10 min, else treat as COMMON
PT202_SET_MPA = 3.20  # L2.2: PT-202 within 3.20 +- 0.15 MPa ...
PT202_BAND_MPA = 0.15
PT202_HOLD_S = 60.0  # ... for 60 s
SWITCH_CLOSE_S = 2 * 15.0 + 60.0  # L2.2: 2 x 15 s + 60 s
FT323_STEADY_KG_S_MIN = 0.274  # "FT-323 steady": within 2 % of base flow (13.7 kg/s) per minute (A)
FT323_STEADY_WINDOW_S = 60.0
XV201_MANUAL_S = 600.0  # L2.3 on failure: FLD manual close (T_manual 10 min, 3.1)
PATROL_EVERY_S = 3600.0  # L2.4: TMR-PATROL 60 min
PATROL_ESCALATE_LEL = 10.0  # L2.4: > 10 %LEL at the cordon escalates to L2.3
REPAIR_S = 24 * 3600.0  # L2.4: running on one run until the repair is done (A)
DEPRESSURISED_MPA = 0.05  # L2.6: PT on the run <= 0.05 MPa
DEPRESSURISE_S = 300.0  # L2.6: 5 min
DRAIN_S = 1800.0  # L2.6 on failure: use the drain (A)

HEALTHY = {"A": "B", "B": "A"}
PT202_IN_BAND = (T("PT-202") >= PT202_SET_MPA - PT202_BAND_MPA) & (T("PT-202") <= PT202_SET_MPA + PT202_BAND_MPA)
RUN_VALVES = ("XY-211A", "XY-211B", "XY-216A", "XY-216B")
ALL_RUNS_CLOSED = T("ZSC-211A").on() & T("ZSC-211B").on() & T("ZSC-216A").on() & T("ZSC-216B").on()
STATION_SHUT = T("XS-400").state("OFF", "TRIPPED") | T("ZSC-201").on()
PATROL_HIGH = (T("AI-901") > PATROL_ESCALATE_LEL) | NumVar("patrol_lel", ">", PATROL_ESCALATE_LEL)


def _switch(leaking: str) -> tuple[Step, Step]:
    ok = HEALTHY[leaking]
    return (
        Step(f"L2.2.{leaking}", f"Leak on run {leaking}: make sure run {ok} is in service (open XV-211{ok} and "
             f"XV-216{ok}; its regulator takes over).",
             StepKind.COMMAND, actor="OP/FLD", next=f"L2.2.{leaking}.close", on_fail="L2.3",
             timeout_s=RUN_BRANCH_VALVE_S, commands=(Cmd(f"XY-211{ok}", True), Cmd(f"XY-216{ok}", True)),
             confirm=T(f"ZSO-211{ok}").on() & T(f"ZSO-216{ok}").on(), src=False,
             fail_alarm=f"GAS-L2 L2.2: run {ok} cannot be put in service: close XV-201 and stop (L2.3)"),
        Step(f"L2.2.{leaking}.close", f"Close XV-211{leaking} and XV-216{leaking} of the leaking run {leaking}; "
             "PT-202 must hold 3.20 +- 0.15 MPa for 60 s with FT-323 steady.",
             StepKind.COMMAND, actor="OP/FLD", next="L2.5", on_fail="L2.3", timeout_s=SWITCH_CLOSE_S,
             commands=(Cmd(f"XY-211{leaking}", False), Cmd(f"XY-216{leaking}", False)),
             confirm=T(f"ZSC-211{leaking}").on() & T(f"ZSC-216{leaking}").on() & PT202_IN_BAND
             & steady("FT-323", FT323_STEADY_KG_S_MIN, FT323_STEADY_WINDOW_S),
             confirm_for_s=PT202_HOLD_S, sets={"ISOLATED_RUN": leaking}, src=False,
             fail_alarm="GAS-L2 L2.2: branch switch not confirmed: close XV-201 and stop (L2.3)"),
    )


STEPS: tuple[Step, ...] = (
    Step("L2.1", "Locate the leak: run A, run B, or the common header/inlet/outlet.",
         StepKind.TASK, actor="OP/FLD", next="L2.2", on_fail="L2.3", timeout_s=LOCATE_S,
         task=Task("Locate the leak in the regulating station", Role.OPERATOR,
                   ("Patrol report", "Portable detector (AI-901)", "Run A, run B or COMMON"),
                   {"A": "L2.2", "B": "L2.2", "COMMON": "L2.3"}),
         src=False, fail_alarm="GAS-L2 L2.1: leak not located within 10 min: treated as COMMON"),
    Step("L2.2", "If the leak is on a run: switch branch to isolate it. Make sure the healthy run is in service "
         "(open XV-211/216 of the healthy run; its regulator takes over), then close XV-211 and XV-216 of the "
         "leaking run.",
         StepKind.DECIDE, actor="OP/FLD", next="L2.3",
         branches=((Var("answer:L2.1", "==", "A"), "L2.2.A"), (Var("answer:L2.1", "==", "B"), "L2.2.B"))),
    *_switch("A"),
    *_switch("B"),
    Step("L2.3", "Else (leak on the common part, or the switch failed): notify the supervisor, close the RS inlet "
         "isolation valve XV-201 and fast-unload/stop the unit (fast unload first).",
         StepKind.COMMAND, actor="OP/PLC", next="L2.3.stop", on_fail="L2.3.manual", timeout_s=XV201_CLOSE_S,
         commands=(Cmd("HS-400", "FAST_UNLOAD"), Cmd("XY-201", False)),
         confirm=T("ZSC-201").on(), fail_alarm="GAS-L2 L2.3: XV-201 not closed within 15.5 s: field crew"),
    manual_close_task("L2.3.manual", "XV-201", "ZSC-201", XV201_MANUAL_S, "L2.3.stop", "L2.3.runs",
                      "Field crew closes XV-201 by hand (T_manual 10 min, two-person)."),
    Step("L2.3.runs", "XV-201 cannot be closed: close XV-211A/B and XV-216A/B instead; record \"XV-201 failed\".",
         StepKind.COMMAND, actor="OP", next="L2.3.stop", on_fail="ESCALATED", timeout_s=RUN_BRANCH_VALVE_S,
         commands=tuple(Cmd(v, False) for v in RUN_VALVES), confirm=ALL_RUNS_CLOSED,
         sets={"XV201_FAILED": True}, src=False),
    Step("L2.3.stop", "Wait for the GT to stop (JT-400 <= 5 MW or a trip from any cause; SRV-320 closed).",
         StepKind.WAIT, actor="OP/PLC", next="L2.5", on_fail="L2.3.trip", timeout_s=GT_STOP_TIMEOUT_S,
         confirm=GT_STOPPED, src=False, fail_alarm="GAS-L2 L2.3: GT not stopped within 9 min: manual trip"),
    Step("L2.3.trip", "Manual GT trip (ESD push-button, XY-400 := 0).",
         StepKind.COMMAND, actor="OP", next="L2.5", on_fail="ESCALATED", timeout_s=MANUAL_TRIP_TIMEOUT_S,
         commands=(Cmd("XY-400", False, label="manual trip"),), src=False),
    g0_permissive("L2.5", "L2.5.route", text="Observe G0.1-G0.3: a field team of at least 2 people, the area "
                  "cordoned, no spark sources inside the cordon."),
    Step("L2.5.route", "Station still supplying the GT on one run: depressurise the isolated run and patrol; "
         "station shut: depressurise the isolated header.",
         StepKind.DECIDE, actor="OP", next="L2.6", branches=((STATION_SHUT, "L2.6.hdr"),),
         # unknown whether the station is shut: depressurise only the run the procedure isolated
         on_unknown="L2.6", src=False),
    Step("L2.6", "Depressurise the isolated run through its vent before repair (run pressure <= 0.05 MPa).",
         StepKind.TASK, actor="FLD", next="L2.4", on_fail="L2.6.drain", timeout_s=DEPRESSURISE_S,
         field_work=True, confirm=NumVar("run_pressure_mpa", "<=", DEPRESSURISED_MPA),
         task=Task("Depressurise the isolated run", Role.OPERATOR,
                   ("Open the run vent", "Read the run's local gauge: run_pressure_mpa"),
                   {"depressurised": "", "vent failed": ""}, ("run_pressure_mpa",)),
         src=False, fail_alarm="GAS-L2 L2.6: isolated run not depressurised in 5 min: use the drain"),
    Step("L2.6.drain", "The vent did not depressurise the run: use the drain.",
         StepKind.TASK, actor="FLD", next="L2.4", on_fail="ESCALATED", timeout_s=DRAIN_S, field_work=True,
         confirm=NumVar("run_pressure_mpa", "<=", DEPRESSURISED_MPA),
         task=Task("Depressurise the isolated run through the drain", Role.OPERATOR,
                   ("Open the drain", "Read the run's local gauge: run_pressure_mpa"),
                   {"depressurised": "", "cannot": ""}, ("run_pressure_mpa",)), src=False),
    Step("L2.6.hdr", "Station shut: depressurise the isolated station (header and runs) through its vents or drains "
         "before repair (pressure <= 0.05 MPa).",
         StepKind.TASK, actor="FLD", next="L2.end", on_fail="ESCALATED", timeout_s=DRAIN_S, field_work=True,
         confirm=NumVar("header_pressure_mpa", "<=", DEPRESSURISED_MPA),
         task=Task("Depressurise the isolated station", Role.OPERATOR,
                   ("Open the vents, else the drains", "Read the header gauge: header_pressure_mpa"),
                   {"depressurised": "", "cannot": ""}, ("header_pressure_mpa",)), src=False),
    Step("L2.4", "While running on one run with a leak isolated: patrol the RS at <= 1 h intervals. Record AI-901 at "
         "the isolated run and a general survey. A reading rising or > 10 %LEL at the cordon escalates to L2.3.",
         StepKind.TASK, actor="FLD", next="L2.end", on_fail="ESCALATED", timeout_s=REPAIR_S,
         task=Task("Leaking run repaired?", Role.OPERATOR,
                   ("Repair of the isolated run complete", "Leak test passed"), {"repaired": ""}),
         branches=((PATROL_HIGH, "L2.3"),)),
    Step("L2.end", "Notify and record.",
         StepKind.TASK, actor="OP", next="DONE", on_fail="DONE", timeout_s=NOTIFY_TIMEOUT_S,
         task=Task("Notify and record", Role.OPERATOR, ("Notify the shift supervisor", "Record the event"),
                   {"done": ""}), src=False),
)

PROCEDURE = ProcedureDef(
    id="GAS-L2",
    title="Large leak inside the regulating station",
    station=STATION,
    source="procedures.md A2 zone 2; plant-reference.md 4.3",
    steps=STEPS,
    recurring=(
        Recurring("TMR-PATROL", "Patrol the regulating station at <= 1 h intervals (L2.4): AI-901 at the isolated "
                  "run and a general survey.", PATROL_EVERY_S,
                  Task("Patrol the regulating station", Role.OPERATOR,
                       ("AI-901 at the isolated run: patrol_lel", "General survey of the station"),
                       {"recorded": ""}, ("patrol_lel",)),
                  during=("L2.4",)),
    ),
    permissive_step="L2.5",
)
