"""GAS-R: restore the gas supply after the event (procedures.md A4.1).

Theory of operation
-------------------
Restoring supply is a critical action, so the first step (``R1``) is a task only a supervisor may
answer (the base refuses an operator's answer to a supervisor task), and, as every manual command
that gives gas back to an isolated part of the plant (the HMI's critical commands), it needs a second,
different person to confirm (``Task.two_person``: the answer carries ``confirmed_by``, an operator or
supervisor other than the one answering; the HMI routes it through its two-person confirmation).
The procedure then issues exactly those commands (XY-201, XY-211/216, XY-205, XY-301, XY-311/313,
XY-320, XY-400 := 1), so one person alone must not be able to set them going. Then:

* ``R2`` holds the line-up until its permissives are met: purge confirmed and leak cleared (the field
  crew's report: a Recurring task ``R2.report`` with the fields ``purge_confirmed`` and
  ``leak_cleared``, exactly True; a report may be repeated as often as needed, each one journaled),
  and no gas at the patrol detector (AI-901) or in the compartment. While they are not met no valve
  is touched: the line-up is refused, and after 4 h the run escalates. A Recurring report is used
  rather than a task step because a task step, once answered, cannot be answered again.
* ``R3`` shuts the vents BDV-102 and BV-321 (nothing is pressurised against an open vent) and
  withdraws the request to the offtake station (HS-001 := 0).
* ``R4``: if XV-001 is still reported closed, the offtake station is asked to reopen it and PT-101
  must recover (an EXT task with an alternate channel).
* ``R5``..``R9`` line the valves up in order from upstream to downstream, each command-and-verify
  with its 1.5 x stroke deadline (plant-reference.md 3.1): XV-201, the run valves XV-211A/B and
  XV-216A/B (both runs in service: run B stands by on its lower setpoint), XV-205, XV-301, the duty
  branch XV-311A/XV-313A (branch B stays closed as standby). Any valve that does not verify escalates.
* SRV-320, the last valve, opens only with a GT start in the plant (the PLC opens it while the GT is
  fired). ``R10`` asks the operator whether to start now ("start" is two-person as well: it
  authorises XY-400 := 1 and XY-320 := 1); ``R11`` restores the GT permissive
  (XY-400 := 1: refused by the engine while a latched trip owns it, which then escalates: reset the
  trip first), arms SRV-320 and starts the GT (HS-400 := LOAD), verified by ZSO-320 within 15.1 s.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import T
from plantctl.procedures import Cmd, ProcedureDef, Recurring, Step, StepKind, Task

from ._gas_common import (
    GD_ALARM_H,
    RUN_BRANCH_VALVE_S,
    SRV320_OPEN_S,
    STATION,
    VENT_VALVE_S,
    XV201_OPEN_S,
    XV205_301_OPEN_S,
    IsTrue,
    all_channels_below,
)

# -- numbers (procedures.md A4; plant-reference.md 3.1) --------------------------------------------
AUTHORISE_S = 1800.0  # R1: a supervisor authorises within 30 min (A)
PERMISSIVES_S = 4 * 3600.0  # R2: purge and leak-clear reports within 4 h (A, the purge's own limit)
REPORT_EVERY_S = 900.0  # R2.report: the crew reports at least every 15 min while the line-up waits (A)
NO_GAS_LEL = 10.0  # R2: no gas at the patrol detector AI-901 (below its H alarm)
PT101_RESTORED_MPA = 4.0  # R4: PT-101 back above its L alarm
OFFTAKE_S = 1800.0  # R4: the offtake station reopens XV-001 within 30 min (A)
START_DECISION_S = 1800.0  # R10 (A)
# Who may be the second person on R1 and R10's "start" (the HMI's critical commands: operators, supervisors)
RESTORE_CONFIRMERS = frozenset({Role.OPERATOR, Role.SUPERVISOR})

STEPS: tuple[Step, ...] = (
    Step("R1", "Restoring gas supply is a critical action: the shift supervisor authorises it.",
         StepKind.TASK, actor="OP", next="R2", on_fail="ESCALATED", timeout_s=AUTHORISE_S,
         task=Task("Authorise restoring the gas supply", Role.SUPERVISOR,
                   ("Event under control", "Scene preserved for the investigation", "Repair complete"),
                   {"authorised": ""}, two_person=True, confirm_roles=RESTORE_CONFIRMERS), src=False),
    Step("R2", "Permissives: purge confirmed, leak cleared; no gas at the patrol detector or in the compartment.",
         StepKind.WAIT, actor="OP/FLD", next="R3", on_fail="ESCALATED", timeout_s=PERMISSIVES_S,
         confirm=IsTrue("purge_confirmed") & IsTrue("leak_cleared") & (T("AI-901") < NO_GAS_LEL)
         & all_channels_below(GD_ALARM_H),
         fail_alarm="GAS-R R2: restore permissives (purge, leak cleared) not met: supply not restored"),
    Step("R3", "Close the vents BDV-102 and BV-321 and withdraw the closure request to the offtake station.",
         StepKind.COMMAND, actor="OP", next="R4", on_fail="ESCALATED", timeout_s=VENT_VALVE_S,
         commands=(Cmd("HS-102", False), Cmd("HS-321", False), Cmd("HS-001", False, label="withdraw request")),
         confirm=T("ZSC-102").on() & T("ZSC-321").on(), src=False),
    Step("R4", "Is the offtake station's outlet valve XV-001 still closed?",
         StepKind.DECIDE, actor="OP", next="R5", branches=((T("ZSC-001").on(), "R4.ext"),),
         on_unknown="R4.ext", src=False),  # XV-001's report unreadable: ask the offtake station
    Step("R4.ext", "Ask the offtake station to reopen XV-001 and put the flare out; PT-101 must recover.",
         StepKind.TASK, actor="OP->EXT", next="R5", on_fail="ESCALATED", timeout_s=OFFTAKE_S,
         confirm=T("ZSC-001").off() & (T("PT-101") >= PT101_RESTORED_MPA),
         task=Task("Offtake station: reopen XV-001", Role.OPERATOR,
                   ("Phone the offtake station", "XV-001 open, FL-002 out", "PT-101 recovering"),
                   {"reopened": "", "no answer": "R4.alt"}), src=False),
    Step("R4.alt", "No answer: ask through the alternate channel (dispatcher).",
         StepKind.TASK, actor="OP->EXT", next="R5", on_fail="ESCALATED", timeout_s=OFFTAKE_S,
         confirm=T("ZSC-001").off() & (T("PT-101") >= PT101_RESTORED_MPA),
         task=Task("Offtake station through the dispatcher: reopen XV-001", Role.OPERATOR, ("Phone the dispatcher",),
                   {"reopened": "", "no answer": "ESCALATED"}), src=False),
    Step("R5", "Line up (1/5): open the RS inlet isolation valve XV-201.",
         StepKind.COMMAND, actor="OP", next="R6", on_fail="ESCALATED", timeout_s=XV201_OPEN_S,
         commands=(Cmd("XY-201", True),), confirm=T("ZSO-201").on()),
    Step("R6", "Line up (2/5): open the run valves XV-211A/B and XV-216A/B.",
         StepKind.COMMAND, actor="OP", next="R7", on_fail="ESCALATED", timeout_s=RUN_BRANCH_VALVE_S,
         commands=tuple(Cmd(v, True) for v in ("XY-211A", "XY-216A", "XY-211B", "XY-216B")),
         confirm=T("ZSO-211A").on() & T("ZSO-216A").on() & T("ZSO-211B").on() & T("ZSO-216B").on()),
    Step("R7", "Line up (3/5): open the RS outlet isolation valve XV-205.",
         StepKind.COMMAND, actor="OP", next="R8", on_fail="ESCALATED", timeout_s=XV205_301_OPEN_S,
         commands=(Cmd("XY-205", True),), confirm=T("ZSO-205").on()),
    Step("R8", "Line up (4/5): open the front-module inlet valve XV-301.",
         StepKind.COMMAND, actor="OP", next="R9", on_fail="ESCALATED", timeout_s=XV205_301_OPEN_S,
         commands=(Cmd("XY-301", True),), confirm=T("ZSO-301").on()),
    Step("R9", "Line up (5/5): open the duty branch XV-311A and XV-313A (branch B stays closed as standby).",
         StepKind.COMMAND, actor="OP", next="R10", on_fail="ESCALATED", timeout_s=RUN_BRANCH_VALVE_S,
         commands=(Cmd("XY-311A", True), Cmd("XY-313A", True)), confirm=T("ZSO-311A").on() & T("ZSO-313A").on()),
    Step("R10", "Gas is lined up to the stop valve SRV-320, which opens with the GT start: start GT-400 now?",
         StepKind.TASK, actor="OP", next="R11", on_fail="DONE", timeout_s=START_DECISION_S,
         task=Task("Start GT-400 (opens SRV-320)?", Role.OPERATOR, ("GT trips reset", "Start permissives met"),
                   {"start": "", "not now": "DONE"}, two_person=True, confirm_roles=RESTORE_CONFIRMERS),
         src=False),
    Step("R11", "Restore the GT permissive, arm SRV-320 and start the GT: SRV-320 open.",
         StepKind.COMMAND, actor="OP", next="DONE", on_fail="ESCALATED", timeout_s=SRV320_OPEN_S,
         commands=(Cmd("XY-400", True, label="GT permissive"), Cmd("XY-320", True), Cmd("HS-400", "LOAD")),
         confirm=T("ZSO-320").on() & T("XS-400").state("STARTING", "RUNNING"),
         src=False,
         fail_alarm="GAS-R R11: SRV-320 not open / GT not starting (is a trip still latched? reset it first)"),
)

PROCEDURE = ProcedureDef(
    id="GAS-R",
    title="Restore the gas supply after the event",
    station=STATION,
    source="procedures.md A4.1",
    steps=STEPS,
    recurring=(
        Recurring("R2.report", "Report the restore permissives: purge confirmed, leak cleared.", REPORT_EVERY_S,
                  Task("Restore permissives: purge and leak", Role.OPERATOR,
                       ("purge_confirmed: CH4 <= 1 vol % on 3 readings, O2 >= 19.5 %",
                        "leak_cleared: repaired and leak-tested"),
                       {"reported": ""}, ("purge_confirmed", "leak_cleared")),
                  during=("R2",)),
    ),
)
