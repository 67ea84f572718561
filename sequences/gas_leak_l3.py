"""GAS-L3: large leak between the regulating station and the front module, on PL-250
(plant-reference.md 4.4, procedures.md A2 zone 3).

Theory of operation
-------------------
* L3.1 closes the RS outlet isolation valve XV-205 as fast as possible (12.5 s). On failure a
  two-person field crew closes it by hand (8 min), and as a backup the run outlet valves XV-216A/B,
  then XV-201, are closed.
* L3.2 fast-stops the GT. With the supply cut the unit trips on PT-322 LL within about 10 s anyway
  (3.3); SRV-320 closed and no fuel flow confirm the stop whatever caused it (rule 4.10-3). A GT
  that does not stop within 30 s gets the manual ESD.
* After the G0 permissives, L3.3 opens the stop valve's bypass vent BV-321 to depressurise PL-250
  and the module inlet. Its own permissives are checked first (``L3.3.permit``): SRV-320 closed, the
  interconnect cut off upstream (XV-205 closed, or the backup isolation closed) and XV-301 open (the
  vent path from PL-250 to BV-321). A vent that will not open leads to the alternate drain or vent
  (a field task); a pressure that does not reach 0.05 MPa within 1.5 x 4.5 min means XV-205 is
  passing: XV-201 is closed and the blow-down watched once more.
* L3.4 notifies, records and purges as in L1.6 before the repair.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import T
from plantctl.procedures import Cmd, ProcedureDef, Step, StepKind, Task

from ._gas_common import (
    MANUAL_TRIP_TIMEOUT_S,
    NO_GT_FLOW,
    RUN_BRANCH_VALVE_S,
    STATION,
    VENT_VALVE_S,
    XV201_CLOSE_S,
    XV205_301_CLOSE_S,
    g0_permissive,
    manual_close_task,
    purge_steps,
)

# -- numbers of the table (plant-reference.md 4.4 unless stated) ----------------------------------
XV205_MANUAL_S = 480.0  # L3.1 on failure: FLD manual close, T_manual 8 min (3.1)
FAST_STOP_S = 30.0  # L3.2: 30 s
PERMIT_S = 60.0  # L3.3 permissives must hold within 1 min of asking (A)
BLOWDOWN_END_MPA = 0.05  # L3.3: PT-301 <= 0.05 MPa
BLOWDOWN_S = 7 * 60.0  # L3.3: 1.5 x 4.5 min = 6.75 min, rounded to 7 min
ALT_VENT_S = 900.0  # L3.3 on failure: alternate drain or vent (A)

INTERCONNECT_CUT = T("ZSC-205").on() | (T("ZSC-216A").on() & T("ZSC-216B").on()) | T("ZSC-201").on()

STEPS: tuple[Step, ...] = (
    Step("L3.1", "Close the RS outlet isolation valve XV-205 as fast as possible; prepare a fast stop.",
         StepKind.COMMAND, actor="OP/PLC", next="L3.2", on_fail="L3.1.manual", timeout_s=XV205_301_CLOSE_S,
         commands=(Cmd("XY-205", False),), confirm=T("ZSC-205").on(),
         fail_alarm="GAS-L3 L3.1: XV-205 not closed within 12.5 s: field crew"),
    manual_close_task("L3.1.manual", "XV-205", "ZSC-205", XV205_MANUAL_S, "L3.2", "L3.1.backup",
                      "Field crew closes XV-205 by hand (T_manual 8 min, two-person)."),
    Step("L3.1.backup", "XV-205 cannot be closed: close the run outlet valves XV-216A and XV-216B instead.",
         StepKind.COMMAND, actor="OP", next="L3.2", on_fail="L3.1.backup2", timeout_s=RUN_BRANCH_VALVE_S,
         commands=(Cmd("XY-216A", False), Cmd("XY-216B", False)),
         confirm=T("ZSC-216A").on() & T("ZSC-216B").on(), src=False),
    Step("L3.1.backup2", "Backup: close the RS inlet isolation valve XV-201.",
         StepKind.COMMAND, actor="OP", next="L3.2", on_fail="ESCALATED", timeout_s=XV201_CLOSE_S,
         commands=(Cmd("XY-201", False),), confirm=T("ZSC-201").on(), src=False),
    Step("L3.2", "Fast stop the GT (with the supply cut the unit will trip on low pressure within about 10 s "
         "anyway): SRV-320 closed, FT-323 = 0.",
         StepKind.COMMAND, actor="OP/PLC", next="L3.G0", on_fail="L3.2.trip", timeout_s=FAST_STOP_S,
         commands=(Cmd("HS-400", "FAST_UNLOAD"),), confirm=T("ZSC-320").on() & NO_GT_FLOW,
         fail_alarm="GAS-L3 L3.2: GT not stopped within 30 s: manual ESD"),
    Step("L3.2.trip", "Manual ESD trip of the GT (XY-400 := 0).",
         StepKind.COMMAND, actor="OP", next="L3.G0", on_fail="L3.G0", timeout_s=MANUAL_TRIP_TIMEOUT_S,
         commands=(Cmd("XY-400", False, label="manual ESD"),), src=False),
    g0_permissive("L3.G0", "L3.3.permit"),
    Step("L3.3.permit", "Permissives for BV-321: SRV-320 closed, XV-205 closed (or the backup isolation), XV-301 "
         "open (vent path), G0.1-G0.3.",
         StepKind.WAIT, actor="OP", next="L3.3", on_fail="ESCALATED", timeout_s=PERMIT_S,
         confirm=T("ZSC-320").on() & INTERCONNECT_CUT & T("ZSO-301").on(), src=False,
         fail_alarm="GAS-L3 L3.3: venting through BV-321 not permitted (SRV-320, XV-205 or XV-301)"),
    Step("L3.3", "Then open the bypass vent valve BV-321 of the front stop valve to depressurise PL-250 and the "
         "module inlet.",
         StepKind.COMMAND, actor="OP/FLD", next="L3.3.bd", on_fail="L3.3.alt", timeout_s=VENT_VALVE_S,
         commands=(Cmd("HS-321", True),), field_work=True,
         fail_alarm="GAS-L3 L3.3: BV-321 will not open: alternate drain or vent"),
    Step("L3.3.bd", "Blow-down of PL-250: PT-301 <= 0.05 MPa within 7 min.",
         StepKind.WAIT, actor="OP", next="L3.4", on_fail="L3.3.passing", timeout_s=BLOWDOWN_S,
         confirm=T("PT-301") <= BLOWDOWN_END_MPA, src=False,
         fail_alarm="GAS-L3 L3.3: PT-301 not falling as modelled: XV-205 passing, closing XV-201"),
    Step("L3.3.alt", "The vent fails: use the alternate drain or vent on PL-250.",
         StepKind.TASK, actor="FLD", next="L3.3.bd", on_fail="ESCALATED", timeout_s=ALT_VENT_S, field_work=True,
         task=Task("Alternate drain or vent on PL-250", Role.OPERATOR, ("Open the alternate drain or vent",),
                   {"venting": "L3.3.bd", "not possible": "ESCALATED"}), src=False),
    Step("L3.3.passing", "Pressure not falling: XV-205 is passing, so close XV-201.",
         StepKind.COMMAND, actor="OP", next="L3.3.bd2", on_fail="ESCALATED", timeout_s=XV201_CLOSE_S,
         commands=(Cmd("XY-201", False),), confirm=T("ZSC-201").on(), src=False),
    Step("L3.3.bd2", "Blow-down of PL-250 with XV-201 closed: PT-301 <= 0.05 MPa within 7 min.",
         StepKind.WAIT, actor="OP", next="L3.4", on_fail="ESCALATED", timeout_s=BLOWDOWN_S,
         confirm=T("PT-301") <= BLOWDOWN_END_MPA, src=False),
    *purge_steps("L3.4", "Notify, record; purge as in L1.6 before repair.", "DONE", what="PL-250", src=False),
)

PROCEDURE = ProcedureDef(
    id="GAS-L3",
    title="Large leak on the interconnect PL-250",
    station=STATION,
    source="procedures.md A2 zone 3; plant-reference.md 4.4",
    steps=STEPS,
    permissive_step="L3.G0",
)
