"""GAS-L4: large leak in the fuel-gas front module (plant-reference.md 4.5, procedures.md A2 zone 4).

Theory of operation
-------------------
* ``L4.0`` (added: the table names no locate step, but L4.1 needs one) asks where the leak is: branch
  A, branch B, or the common part (10 min; no answer = common, the isolating path).
* L4.1, for a leak on a branch, switches branch: the healthy branch is opened (XV-311/313) and only
  when both are confirmed open are the leaking branch's valves closed; confirmed by both closed and
  PT-322 >= 2.90 MPa for 60 s. Failure goes to L4.2.
* L4.2 fast-unloads and closes the module inlet valve XV-301 in the same step (fast unload commanded
  first). Closing XV-301 at load starves the GT within about 10 s (3.3), so the stop is normally a
  PT-322 LL trip, which satisfies it (rule 4.10-3). XV-301 that will not close: XV-205 (the upstream
  backup). A GT that has not stopped in 9 min: manual trip.
* L4.3 (after the G0 permissives) vents the isolated module through BV-321 and purges it before the
  repair. The I/O list has no pressure transmitter on the module itself (PT-301 is upstream of XV-301,
  PT-322 downstream of SRV-320), so the module pressure is the field crew's gauge reading. After a
  branch switch the module is in service: BV-321 would vent the live module, so the isolated branch
  is depressurised through its own drain instead (``L4.1.drain``).
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import T, Var
from plantctl.procedures import Cmd, ProcedureDef, Step, StepKind, Task

from ._gas_common import (
    GT_STOP_TIMEOUT_S,
    GT_STOPPED,
    MANUAL_TRIP_TIMEOUT_S,
    RUN_BRANCH_VALVE_S,
    STATION,
    VENT_VALVE_S,
    XV205_301_CLOSE_S,
    NumVar,
    g0_permissive,
    purge_steps,
)

# -- numbers of the table (plant-reference.md 4.5 unless stated) ----------------------------------
LOCATE_S = 600.0  # L4.0 [ADD]: as L2.1, 10 min (A)
PT322_MIN_MPA = 2.90  # L4.1: PT-322 >= 2.90 for 60 s
PT322_HOLD_S = 60.0
SWITCH_CLOSE_S = 2 * 15.0 + 60.0  # L4.1: 2 x 15 s + 60 s
VENTED_MPA = 0.05  # L4.3: <= 0.05 MPa
VENT_CHECK_S = 300.0  # L4.3: 5 min
PERMIT_S = 60.0  # L4.3 permissives must hold within 1 min (A)
DRAIN_S = 1800.0  # isolated branch through its drain (A)

HEALTHY = {"A": "B", "B": "A"}


def _switch(leaking: str) -> tuple[Step, Step]:
    ok = HEALTHY[leaking]
    return (
        Step(f"L4.1.{leaking}", f"Leak on branch {leaking}: open XV-311{ok} and XV-313{ok} of the healthy branch.",
             StepKind.COMMAND, actor="OP/FLD", next=f"L4.1.{leaking}.close", on_fail="L4.2",
             timeout_s=RUN_BRANCH_VALVE_S, commands=(Cmd(f"XY-311{ok}", True), Cmd(f"XY-313{ok}", True)),
             confirm=T(f"ZSO-311{ok}").on() & T(f"ZSO-313{ok}").on(), src=False,
             fail_alarm=f"GAS-L4 L4.1: branch {ok} cannot be opened: unload, stop and isolate (L4.2)"),
        Step(f"L4.1.{leaking}.close", f"Close XV-311{leaking} and XV-313{leaking} of the leaking branch; PT-322 must "
             "hold >= 2.90 MPa for 60 s.",
             StepKind.COMMAND, actor="OP/FLD", next="L4.G0", on_fail="L4.2", timeout_s=SWITCH_CLOSE_S,
             commands=(Cmd(f"XY-311{leaking}", False), Cmd(f"XY-313{leaking}", False)),
             confirm=T(f"ZSC-311{leaking}").on() & T(f"ZSC-313{leaking}").on() & (T("PT-322") >= PT322_MIN_MPA),
             confirm_for_s=PT322_HOLD_S, sets={"ISOLATED_BRANCH": leaking}, src=False,
             fail_alarm="GAS-L4 L4.1: branch switch not confirmed: unload, stop and isolate (L4.2)"),
    )


STEPS: tuple[Step, ...] = (
    Step("L4.0", "Locate the leak in the front module: branch A, branch B, or the common part.",
         StepKind.TASK, actor="OP/FLD", next="L4.1", on_fail="L4.2", timeout_s=LOCATE_S,
         task=Task("Locate the leak in the front module", Role.OPERATOR, ("Branch A, branch B or COMMON",),
                   {"A": "L4.1", "B": "L4.1", "COMMON": "L4.2"}),
         src=False, fail_alarm="GAS-L4: leak not located within 10 min: unload, stop and isolate"),
    Step("L4.1", "If the leak is on branch A or B: switch branch. Open XV-311/313 of the healthy branch, then close "
         "XV-311/313 of the leaking one.",
         StepKind.DECIDE, actor="OP/FLD", next="L4.2",
         branches=((Var("answer:L4.0", "==", "A"), "L4.1.A"), (Var("answer:L4.0", "==", "B"), "L4.1.B"))),
    *_switch("A"),
    *_switch("B"),
    Step("L4.2", "Else: fast unload/stop the unit and close the front-module inlet valve XV-301.",
         StepKind.COMMAND, actor="OP/PLC", next="L4.2.stop", on_fail="L4.2.backup", timeout_s=XV205_301_CLOSE_S,
         commands=(Cmd("HS-400", "FAST_UNLOAD"), Cmd("XY-301", False)), confirm=T("ZSC-301").on(),
         fail_alarm="GAS-L4 L4.2: XV-301 not closed within 12.5 s: closing XV-205"),
    Step("L4.2.backup", "XV-301 will not close: close XV-205 (upstream backup).",
         StepKind.COMMAND, actor="OP", next="L4.2.stop", on_fail="ESCALATED", timeout_s=XV205_301_CLOSE_S,
         commands=(Cmd("XY-205", False),), confirm=T("ZSC-205").on(), src=False),
    Step("L4.2.stop", "Wait for the GT to stop (a trip from any cause satisfies it).",
         StepKind.WAIT, actor="OP/PLC", next="L4.G0", on_fail="L4.2.trip", timeout_s=GT_STOP_TIMEOUT_S,
         confirm=GT_STOPPED, src=False, fail_alarm="GAS-L4 L4.2: GT not stopped within 9 min: manual trip"),
    Step("L4.2.trip", "Manual GT trip (ESD push-button, XY-400 := 0).",
         StepKind.COMMAND, actor="OP", next="L4.G0", on_fail="ESCALATED", timeout_s=MANUAL_TRIP_TIMEOUT_S,
         commands=(Cmd("XY-400", False, label="manual trip"),), src=False),
    g0_permissive("L4.G0", "L4.G0.route"),
    Step("L4.G0.route", "Module isolated (vent it through BV-321), or one branch isolated (drain that branch).",
         StepKind.DECIDE, actor="OP", next="L4.3.permit", branches=((Var("ISOLATED_BRANCH"), "L4.1.drain"),),
         src=False),
    Step("L4.1.drain", "Depressurise the isolated branch through its drain and purge it before repair.",
         StepKind.TASK, actor="FLD", next="DONE", on_fail="ESCALATED", timeout_s=DRAIN_S, field_work=True,
         confirm=NumVar("branch_pressure_mpa", "<=", VENTED_MPA),
         task=Task("Depressurise and purge the isolated branch", Role.OPERATOR,
                   ("Open the branch drain", "Read the branch gauge: branch_pressure_mpa", "Purge before repair"),
                   {"done": "", "cannot": ""}, ("branch_pressure_mpa",)), src=False),
    Step("L4.3.permit", "Permissives for BV-321: SRV-320 closed and the module cut off upstream (XV-301 or XV-205).",
         StepKind.WAIT, actor="OP", next="L4.3", on_fail="ESCALATED", timeout_s=PERMIT_S,
         confirm=T("ZSC-320").on() & (T("ZSC-301").on() | T("ZSC-205").on()), src=False,
         fail_alarm="GAS-L4 L4.3: venting through BV-321 not permitted"),
    Step("L4.3", "Vent the module through BV-321, purge before repair.",
         StepKind.COMMAND, actor="OP/FLD", next="L4.3.check", on_fail="ESCALATED", timeout_s=VENT_VALVE_S,
         commands=(Cmd("HS-321", True),), field_work=True, src=False),
    Step("L4.3.check", "Module vented: the field gauge reads <= 0.05 MPa (5 min).",
         StepKind.TASK, actor="FLD", next="L4.3.purge", on_fail="ESCALATED", timeout_s=VENT_CHECK_S,
         field_work=True, confirm=NumVar("module_pressure_mpa", "<=", VENTED_MPA),
         task=Task("Module pressure after venting", Role.OPERATOR, ("Read the module gauge: module_pressure_mpa",),
                   {"vented": "", "not vented": ""}, ("module_pressure_mpa",)), src=False),
    *purge_steps("L4.3.purge", "Purge the module before repair (as L1.6).", "DONE", what="the front module",
                 src=False),
)

PROCEDURE = ProcedureDef(
    id="GAS-L4",
    title="Large leak in the front module",
    station=STATION,
    source="procedures.md A2 zone 4; plant-reference.md 4.5",
    steps=STEPS,
    permissive_step="L4.G0",
)
