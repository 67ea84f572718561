"""PUMP-PL: power loss at the pump station (procedures.md B 1-7, plant-reference.md 4.8, 4.10-1).

Theory of operation
-------------------
The procedure starts by itself when the 6 kV bus EB-601 is lost (XS-601 = DEAD, or EI-601 below
70 % of 6.3 kV: the UV relay's pick-up). It then walks the table P1..P9:

* P1 waits for the diesel's *automatic* start and never fights the controller's crank cycle:
  P1 itself gives the first attempt 45 s (10 s detection + 15 s crank + 5 s acceleration + margin);
  when that passes without a running engine it raises its alarm and ``P1.auto`` keeps waiting, as
  long as the controller is still in its cycle (START_DELAY / CRANKING / RESTING), up to 3.5 min
  after the loss. XA-801 (overcrank), a controller that is not on its start path (e.g. FAILED after a
  trip, or not in AUTO: then at once, from P1), or 3.5 min without a running engine lead to the
  manual start: six single cranks through HS-809, alternating battery A and B
  (3 attempts of <= 15 s on each). Still not running: ``DIESEL_FAILED`` (variable and alarm) and
  ESCALATED (the BF must reduce blast / damp down: outside this procedure's scope).
* P2 checks the engine and the pump outlet; a failure only alarms (emergency duty keeps it running)
  and the procedure goes on: P3/P4 (water to the HBS header, whose valves are damaged within minutes
  without it) must not wait for a field check. The check of the diesel pump's discharge valve and the
  suction level that the table asks for when PT-805 is low comes after P6 (``P2.pt805``), if PT-805 is
  still low then (closing the idle pumps' MOVs is often the cure, F-P10). The table's
  PT-805 >= 0.28 MPa holds for the diesel on the BF header alone; with MOV-740 already open (a
  re-entry) the diesel feeds both headers at ~0.27 MPa (3.10), so there 0.25 MPa (PT-805's L alarm)
  is the limit.
* P3 checks the BF header; below 0.25 MPa the plan says "suspect back-flow through idle pumps: do P6
  first", so P3's failure branch runs P6 and then re-checks P3 (``P3.recheck``, once per run) before
  P4; a second failure opens a leak-check task and the procedure goes on (P4, P5; P6 is not repeated).
* P4 opens the series valve MOV-740 (HS-740 := OPEN, 91 s, PT-730 >= 0.22 MPa); on failure a field
  crew winds it by hand (15 min) and the outcome is recorded (the task's answer is journaled).
* P5 notifies the three parties, one Task step each (dispatch = ``P5``, ``P5.users``,
  ``P5.substation``), each with an acknowledgement within 5 min and a repeat on the alternate channel
  (``P5.<party>.alt``) when nobody answers; the acknowledging person is a required field, so each
  party's acknowledgement is recorded (``dispatch_ack_by``, ``users_ack_by``, ``substation_ack_by``).
  The steps run one after the other: the base runs one step at a time, and the table puts P5 before
  P6 (the plan has the deputy phone while the main operator watches the diesel).
* P6 closes the outlet MOVs of the de-energised pumps two at a time (only those whose pump is not
  running; a valve already closed is not commanded; once the bus is RESTORED_STABLE no further valve
  is started, so the hand-over waits only for the ones already moving). A valve that does not close
  within its 91 s (68.5 s for the DN350 ones) marks its pump ``RESTART_BLOCKED:<pump>``; a hand-wheel
  task (15 min) then follows for each blocked pump, one after the other, and clears the mark only when
  the valve's ZSC shows it closed. EB-602 dead (F-P11) takes the same path: the commands fail, the
  field crew winds the valves.
* P7 (fuel) and P8 (log) are the long-outage duties. Modelling choice for P7: a ``P7`` decision on
  LT-806 routes to a fuel request task at the L alarm (<= 66.7 %), an urgent request at LL (33 %) and,
  at LLL (10 %), a supervisor task to prepare the diesel stop, ending ESCALATED. While the procedure
  waits (P8, P9) an Interrupt brings it back to ``P7`` when a level is crossed that has not been acted
  on yet. A Recurring fuel-watch task every 30 min and a Recurring parameter log every 15 min (both
  overdue-alarmed by the base) run from P7 to P9. P8 passes when the first log is recorded (15 min).
* P9 waits for the power return. The hand-over is an Interrupt valid in every step (rule 4.10-1):
  XS-601 = RESTORED_STABLE starts PUMP-PR and ends this run HANDED_OVER, but only once the command
  that is moving has finished (``wait_moving``: a valve is never reversed halfway). Pumps whose MOV
  is not confirmed closed stay RESTART_BLOCKED: PUMP-PR checks each MOV's ZSC itself before any
  start (the base gives a started procedure no variables, so the limit switch is the hand-over).
  P4 is skipped if it has not started. P9's own deadline is 24 h (the plans' manual-operation
  threshold): after that, ESCALATED.
* A diesel that stops while on emergency duty (FAILED or STANDBY after P1, e.g. a trip or fuel
  starvation) sends the procedure back to P1 (restart attempt, F-P04).

Re-entry (rule 4.10-2, power lost again during PUMP-PR) starts this procedure afresh; what is
already done passes at once: P1 (the diesel runs), P4 (MOV-740 already open: not commanded again),
P6 items already closed. Within one run (the diesel restarted through P1) the base also passes a task
step already answered (P5's notifications are not repeated).

FLD steps are Task steps owned by the operator role (who relays the field crew's report); they do not
set ``field_work``, because the G0 permissives (cordon, ignition control) belong to the gas station.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import FALSE, TRUE, Expr, T, Var, any_of
from plantctl.procedures import Cmd, Interrupt, ProcedureDef, Recurring, Step, StepKind, Task

STATION = "pump_station"

# -- numbers of the table (plant-reference.md 4.8 unless stated) ----------------------------------
V_NOMINAL_KV = 6.3  # EB-601 (2.3)
UV_PICKUP_FRAC = 0.70  # UV relay 27-601 pick-up (2.3, 3.11): the trigger threshold
DIESEL_RUN_RPM = 1400.0  # P1 confirm: ST-802 >= 1,400 rpm
FIRST_START_S = 45.0  # P1 timeout: 10 s detection + 15 s crank + 5 s acceleration + margin
AUTO_CYCLE_END_S = 210.0  # P1: the auto cycle ends at 3.5 min (XA-801)
MANUAL_ATTEMPTS_PER_BATTERY = 3  # P1 on failure: up to 3 attempts on each battery
MANUAL_CRANK_WAIT_S = 25.0  # one manual crank (<= 15 s) + 5 s acceleration + margin (A)
P2_TIMEOUT_S = 30.0  # P2: 30 s after RUNNING
DIESEL_RPM_MIN, DIESEL_RPM_MAX = 1450.0, 1550.0  # P2 confirm
LUBE_MIN_BAR = 1.5  # P2 confirm: PT-803 >= 1.5 bar
COOLANT_MAX_C = 98.0  # P2 confirm: TT-804 < 98 degC
DIESEL_PUMP_MIN_MPA = 0.28  # P2 confirm: PT-805 >= 0.28 MPa (diesel feeding the BF header alone)
# P2 with MOV-740 already open (re-entry after PUMP-PR): the diesel feeds both headers at 0.27 MPa
# (plant-reference 3.10; the model gives PT-805 = 0.276), below the table's 0.28, which assumes P2
# runs before P4. Then PT-805's own L alarm (I/O list) is the limit.
DIESEL_PUMP_BOTH_MIN_MPA = 0.25
P2_FIELD_CHECK_S = 600.0  # P2 on failure: discharge valve / suction check (A)
HEADER_MIN_MPA = 0.25  # P3 confirm: PT-720 >= 0.25 MPa
P3_TIMEOUT_S = 30.0  # P3
LEAK_CHECK_S = 900.0  # P3 on failure: check for leaks (A)
MOV_TIMEOUT_S = 91.0  # P4, P6: 1.5 x 60 s + 1 s
HBS_MIN_MPA = 0.22  # P4 confirm: PT-730 >= 0.22 MPa
HANDWHEEL_S = 900.0  # P4, P6 on failure: manual hand-wheel, 15 min (each)
NOTIFY_ACK_S = 300.0  # P5: ack within 5 min each
MOV_PARALLEL = 2  # P6: default 2 at a time (EB-602 capacity) (A)
FUEL_L_PCT = 66.7  # P7: refuel request at the L alarm (2/3 of capacity)
FUEL_LL_PCT = 33.0  # P7 on failure: LL, urgent fuel request
FUEL_LLL_PCT = 10.0  # P7 on failure: LLL, prepare for diesel stop and escalate
FUEL_WATCH_S = 1800.0  # P7: check every 30 min (A)
FUEL_REQUEST_S = 1800.0  # P7: a fuel request is made within one watch period (A)
FUEL_URGENT_S = 600.0  # P7 LL: urgent request within 10 min (A)
LOG_EVERY_S = 900.0  # P8: log record every 15 min
P9_MAX_S = 24 * 3600.0  # P9: manual-operation threshold of the plans (procedures.md C), 24 h

# -- equipment --------------------------------------------------------------------------------------
# (pump, its run indication, its outlet MOV command, the MOV's closed switch), in P6 order
DE_ENERGISED_PUMPS: tuple[tuple[str, str, str, str], ...] = (
    ("P-701A", "XS-701A", "HS-703A", "ZSC-703A"),
    ("P-701B", "XS-701B", "HS-703B", "ZSC-703B"),
    ("P-701C", "XS-701C", "HS-703C", "ZSC-703C"),
    ("P-711A", "XS-711A", "HS-713A", "ZSC-713A"),
    ("P-711B", "XS-711B", "HS-713B", "ZSC-713B"),
)
LOG_TAGS = ("ST-802", "PT-803", "TT-804", "PT-805", "LT-806", "EI-807A", "EI-807B", "PT-720", "PT-730",
            "FT-721", "FT-731")


def restart_blocked(pump: str) -> str:
    """The variable that marks a pump whose outlet MOV is not confirmed closed."""
    return f"RESTART_BLOCKED:{pump}"


DIESEL_FAILED = "DIESEL_FAILED"
FUEL_REQUESTED = "FUEL_REQUESTED"
FUEL_URGENT = "FUEL_URGENT_REQUESTED"
FUEL_LLL = "FUEL_LLL"

# -- conditions -------------------------------------------------------------------------------------
BUS_LOST: Expr = T("XS-601").state("DEAD") | (T("EI-601") < UV_PICKUP_FRAC * V_NOMINAL_KV)
BUS_STABLE: Expr = T("XS-601").state("RESTORED_STABLE")
DIESEL_RUNNING: Expr = T("YS-801").state("RUNNING") & (T("ST-802") >= DIESEL_RUN_RPM)
# the controller is (or will be again) on its own start path: crank cycle, running, or a cool-down
# that ends in STANDBY and a fresh auto-start on the demand
AUTO_CYCLE: Expr = T("YS-801").state("START_DELAY", "CRANKING", "RESTING", "RUNNING", "COOLDOWN")
DIESEL_NORMAL: Expr = (
    (T("ST-802") >= DIESEL_RPM_MIN)
    & (T("ST-802") <= DIESEL_RPM_MAX)
    & (T("PT-803") >= LUBE_MIN_BAR)
    & (T("TT-804") < COOLANT_MAX_C)
    & ((T("PT-805") >= DIESEL_PUMP_MIN_MPA)
       | (T("ZSO-740").on() & (T("PT-805") >= DIESEL_PUMP_BOTH_MIN_MPA)))
)
DIESEL_PUMP_LOW: Expr = (T("PT-805") < DIESEL_PUMP_BOTH_MIN_MPA) | (
    T("ZSC-740").on() & (T("PT-805") < DIESEL_PUMP_MIN_MPA))
DIESEL_STOPPED: Expr = T("YS-801").state("FAILED", "STANDBY")
FUEL_L: Expr = (T("LT-806") <= FUEL_L_PCT) & ~Var(FUEL_REQUESTED)
FUEL_LL: Expr = (T("LT-806") <= FUEL_LL_PCT) & ~Var(FUEL_URGENT)
FUEL_LLL_X: Expr = (T("LT-806") <= FUEL_LLL_PCT) & ~Var(FUEL_LLL)


def _mark(sid: str, text: str, sets: dict[str, object], nxt: str) -> Step:
    """A bookkeeping step: passes at once and sets variables (``sets`` apply when a step passes)."""
    return Step(sid, text, StepKind.WAIT, actor="PLC", next=nxt, on_fail=nxt, timeout_s=1.0, confirm=TRUE,
                sets=sets, src=False)


def _alarm(sid: str, text: str, alarm: str, nxt: str) -> Step:
    """A named-alarm step: its confirmation is never true, so at its 1 s deadline it raises ``alarm``
    (and sets ``failed:<sid>``) and goes on."""
    return Step(sid, text, StepKind.WAIT, actor="PLC", next=nxt, on_fail=nxt, timeout_s=1.0, confirm=FALSE,
                fail_alarm=alarm, src=False)


# -- P1 -----------------------------------------------------------------------------------------------
def _p1_steps() -> list[Step]:
    steps = [
        Step("P1", "Check that the diesel emergency pump auto-started; if not, start it manually "
             "(HS-809; alternate battery A/B).", StepKind.WAIT, actor="OP",
             confirm=DIESEL_RUNNING, timeout_s=FIRST_START_S, next="P2", on_fail="P1.auto",
             # overcrank, or a controller that is not on its start path (FAILED after a trip, not in
             # AUTO): nothing to wait for, start by hand now
             branches=((T("XA-801").on() | ~AUTO_CYCLE, "P1.m1.crank"),),
             fail_alarm="PUMP-PL P1: diesel not running 45 s after the power loss; the auto crank cycle "
                        "continues (manual start at 3.5 min or on overcrank)"),
        Step("P1.auto", "Do not fight the automatic crank cycle: keep waiting while the controller is "
             "cranking or resting, up to 3.5 min after the loss.", StepKind.WAIT, actor="OP",
             confirm=DIESEL_RUNNING, timeout_s=AUTO_CYCLE_END_S - FIRST_START_S, next="P2",
             on_fail="P1.m1.crank",
             branches=((T("XA-801").on() | ~AUTO_CYCLE, "P1.m1.crank"),), src=False,
             fail_alarm="PUMP-PL P1: diesel not running 3.5 min after the power loss: manual start"),
    ]
    attempts = 2 * MANUAL_ATTEMPTS_PER_BATTERY
    for k in range(1, attempts + 1):
        battery = "A" if k % 2 else "B"
        last = k == attempts
        steps.append(Step(
            f"P1.m{k}.crank", f"Manual start attempt {k} of {attempts}: one crank of at most 15 s on "
            f"battery {battery} (HS-809).", StepKind.COMMAND, actor="OP",
            commands=(Cmd("HS-809", f"CRANK_{battery}"),), timeout_s=5.0,
            next=f"P1.m{k}.wait", on_fail=f"P1.m{k}.wait", src=False))
        steps.append(Step(
            f"P1.m{k}.wait", f"Confirm the diesel runs after manual attempt {k} (RUNNING, >= 1,400 rpm).",
            StepKind.WAIT, actor="OP", confirm=DIESEL_RUNNING, timeout_s=MANUAL_CRANK_WAIT_S, next="P2",
            on_fail="P1.failed" if last else f"P1.m{k + 1}.crank", src=False,
            fail_alarm=("PUMP-PL DIESEL_FAILED: the diesel did not start (auto cycle and 6 manual cranks); "
                        "notify the BF to reduce blast / damp down" if last else
                        f"PUMP-PL P1: manual start attempt {k} on battery {battery} failed")))
    steps.append(_mark("P1.failed", "DIESEL_FAILED: emergency escalation (BF to reduce blast / damp down, "
                       "outside this procedure's scope).", {DIESEL_FAILED: True}, "ESCALATED"))
    return steps


# -- P2, P3, P4 ---------------------------------------------------------------------------------------
def _p2_p4_steps() -> list[Step]:
    return [
        Step("P2", "Check the diesel is running normally and check the pump outlet pressure.", StepKind.WAIT,
             actor="OP", confirm=DIESEL_NORMAL, timeout_s=P2_TIMEOUT_S, next="P3", on_fail="P3",
             fail_alarm="PUMP-PL P2: diesel not running normally (speed, lube oil, coolant or outlet "
                        "pressure): keep it running on emergency duty"),
        Step("P2.pt805", "PT-805 low: check the diesel pump discharge valve and the suction-well level.",
             StepKind.TASK, actor="FLD", timeout_s=P2_FIELD_CHECK_S, next="P7", on_fail="P7", src=False,
             task=Task("Diesel pump outlet pressure low: check the discharge valve and the suction level",
                       Role.OPERATOR, ("Discharge valve of P-801 fully open", "Suction-well level LT-750"),
                       {"checked": ""})),
        Step("P3", "Check the outlet header pressure.", StepKind.WAIT, actor="OP",
             confirm=T("PT-720") >= HEADER_MIN_MPA, timeout_s=P3_TIMEOUT_S, next="P4", on_fail="P6",
             fail_alarm="PUMP-PL P3: BF header below 0.25 MPa with the diesel running: suspect back-flow "
                        "through idle pumps, closing their MOVs (P6) first"),
        Step("P3.recheck", "Check the outlet header pressure again now that the idle pumps are isolated.",
             StepKind.WAIT, actor="OP", confirm=T("PT-720") >= HEADER_MIN_MPA, timeout_s=P3_TIMEOUT_S,
             next="P4", on_fail="P3.leak", src=False,
             fail_alarm="PUMP-PL P3: BF header still below 0.25 MPa after P6: check for leaks"),
        Step("P3.leak", "Check the BF header and the idle pumps for leaks.", StepKind.TASK, actor="FLD",
             timeout_s=LEAK_CHECK_S, next="P4", on_fail="P4", src=False,
             task=Task("BF header pressure low: check for leaks", Role.OPERATOR,
                       ("Header and users' supply lines", "Idle pumps' check valves and MOVs"), {"checked": ""})),
        Step("P4", "Open the series (cross-connect) valve MOV-740 between the BF normal-pressure and the "
             "HBS supply lines.", StepKind.COMMAND, actor="OP/PLC", commands=(Cmd("HS-740", "OPEN"),),
             confirm=T("ZSO-740").on() & (T("PT-730") >= HBS_MIN_MPA), timeout_s=MOV_TIMEOUT_S,
             next="P5", on_fail="P4.fld",
             fail_alarm="PUMP-PL P4: MOV-740 not open or PT-730 below 0.22 MPa: field crew to the hand-wheel"),
        Step("P4.fld", "Actuator or supply failure: open MOV-740 with the manual hand-wheel (15 min) and record.",
             StepKind.TASK, actor="FLD", timeout_s=HANDWHEEL_S, next="P5", on_fail="P5",
             confirm=T("ZSO-740").on(), src=False,
             task=Task("Open MOV-740 by hand-wheel", Role.OPERATOR,
                       ("Two persons at MOV-740", "Declutch the actuator, wind the hand-wheel to OPEN",
                        "Report when the open limit switch makes"),
                       {"opened": "", "cannot open": ""}),
             fail_alarm="PUMP-PL P4: MOV-740 not opened by hand within 15 min: HBS header without "
                        "emergency water"),
    ]


# -- P5 -------------------------------------------------------------------------------------------------
_PARTIES: tuple[tuple[str, str, str, str], ...] = (
    # (step id, who, what to tell them, field recording who acknowledged)
    ("P5", "dispatch", "Station power lost, diesel emergency pump on duty", "dispatch_ack_by"),
    ("P5.users", "the water users (BF and HBS)", "Emergency water only: reduced pressure and flow",
     "users_ack_by"),
    ("P5.substation", "the HV substation", "EB-601 lost: report the cause and the expected return",
     "substation_ack_by"),
)


def _p5_steps() -> list[Step]:
    steps: list[Step] = []
    for i, (sid, who, what, field) in enumerate(_PARTIES):
        nxt = _PARTIES[i + 1][0] if i + 1 < len(_PARTIES) else "P5.end"
        text = ("Notify dispatch, users (BF, HBS) and the HV substation: dispatch." if sid == "P5"
                else f"Notify {who}.")
        steps.append(Step(
            sid, text, StepKind.TASK, actor="OP/EXT", timeout_s=NOTIFY_ACK_S, next=nxt, on_fail=f"{sid}.alt",
            src=sid == "P5",
            task=Task(f"Notify {who}", Role.OPERATOR, (f"Call {who}", what, "Record who acknowledged"),
                      {"acknowledged": "", "no answer": ""}, (field,)),
            fail_alarm=f"PUMP-PL {sid}: no acknowledgement from {who} within 5 min: alternate channel"))
        steps.append(Step(
            f"{sid}.alt", f"No acknowledgement from {who}: repeat on the alternate channel; record non-response.",
            StepKind.TASK, actor="OP/EXT", timeout_s=NOTIFY_ACK_S, next=nxt, on_fail=nxt, src=False,
            task=Task(f"Notify {who} on the alternate channel", Role.OPERATOR,
                      (f"Radio or mobile to {who}", what, "Record who acknowledged, or the non-response"),
                      {"acknowledged": "", "no answer": ""}, (field,)),
            fail_alarm=f"PUMP-PL {sid}: {who} did not acknowledge on the alternate channel either (recorded)"))
    steps.append(Step("P5.end", "Are the outlet valves of the idle pumps already closed (P6 done)?",
                      StepKind.DECIDE, actor="OP", branches=((Var("P6_done"), "P6.next"),), next="P6", src=False))
    return steps


# -- P6 -------------------------------------------------------------------------------------------------
def _p6_steps() -> list[Step]:
    # Only the pumps that are not running; and none not yet started once the bus is back (rule 4.10-1:
    # the hand-over waits for the valves that are moving, it does not start new ones).
    cmds = tuple(Cmd(hs, "CLOSE", label=pump, on_fail_set=restart_blocked(pump),
                     only_if=T(xs).off() & ~BUS_STABLE)
                 for pump, xs, hs, _ in DE_ENERGISED_PUMPS)
    steps = [Step(
        "P6", "Close the motorised butterfly outlet valves of the de-energised electric pumps "
        "(MOV-703A/B/C, MOV-713A/B) so that restart is fast when power returns.", StepKind.COMMAND,
        actor="OP/FLD", commands=cmds, max_parallel=MOV_PARALLEL,
        # two at a time: ceil(5 / 2) rounds of the 91 s each
        timeout_s=MOV_TIMEOUT_S * ((len(cmds) + MOV_PARALLEL - 1) // MOV_PARALLEL),
        next="P6.end", on_fail=f"P6.chk.{DE_ENERGISED_PUMPS[0][0]}",
        fail_alarm="PUMP-PL P6: outlet MOV(s) not closed (EB-602 dead or actuator fault): pumps "
                   "RESTART_BLOCKED, field crew to the hand-wheels")]
    for i, (pump, _, hs, zsc) in enumerate(DE_ENERGISED_PUMPS):
        nxt = f"P6.chk.{DE_ENERGISED_PUMPS[i + 1][0]}" if i + 1 < len(DE_ENERGISED_PUMPS) else "P6.end"
        mov = "MOV-" + hs[3:]
        steps.append(Step(f"P6.chk.{pump}", f"Is {pump} RESTART_BLOCKED ({mov} not confirmed closed)?",
                          StepKind.DECIDE, actor="OP", branches=((Var(restart_blocked(pump)), f"P6.fld.{pump}"),),
                          next=nxt, src=False))
        steps.append(Step(
            f"P6.fld.{pump}", f"Close {mov} with the manual hand-wheel (15 min); {pump} stays RESTART_BLOCKED "
            "until its closed limit switch makes.", StepKind.TASK, actor="FLD", timeout_s=HANDWHEEL_S,
            next=nxt, on_fail=nxt, confirm=T(zsc).on(), sets={restart_blocked(pump): False}, src=False,
            task=Task(f"Close {mov} by hand-wheel", Role.OPERATOR,
                      (f"Two persons at {mov}", "Declutch the actuator, wind the hand-wheel to CLOSE",
                       "Report when the closed limit switch makes"), {"closed": "", "cannot close": ""}),
            fail_alarm=f"PUMP-PL P6: {mov} not closed by hand within 15 min: {pump} stays RESTART_BLOCKED"))
    steps.append(_mark("P6.end", "The idle pumps' outlet valves are dealt with (P6 done).", {"P6_done": True},
                       "P6.next"))
    steps.append(Step("P6.next", "Was P6 run first because the header pressure was low (P3 failed)? Is the "
                      "diesel pump's outlet pressure still low (P2)?", StepKind.DECIDE, actor="OP",
                      branches=((Var("failed:P3") & ~Var("P3_rechecked"), "P3.again"),
                                (DIESEL_PUMP_LOW, "P2.pt805")),
                      # PT-805 unreadable: a person checks the discharge valve and the suction well
                      on_unknown="P2.pt805", next="P7", src=False))
    steps.append(_mark("P3.again", "P6 done first: back to P3.", {"P3_rechecked": True}, "P3.recheck"))
    return steps


# -- P7, P8, P9 -------------------------------------------------------------------------------------------
def _p7_p9_steps() -> list[Step]:
    return [
        Step("P7", "On a long outage, watch the diesel day-tank level and refill or request fuel.",
             StepKind.DECIDE, actor="OP",
             branches=((FUEL_LLL_X, "P7.LLL"), (FUEL_LL, "P7.LL"), (FUEL_L, "P7.L")), next="P8",
             # LT-806 unreadable counts as low (its bad_means): the urgent fuel request, not a wait
             on_unknown="P7.LL"),
        Step("P7.L", "Day tank at the low-fuel alarm (<= 66.7 %): refill from the reserve or request fuel.",
             StepKind.TASK, actor="OP", timeout_s=FUEL_REQUEST_S, next="P8", on_fail="P8",
             sets={FUEL_REQUESTED: True}, src=False,
             task=Task("Low fuel: refill the day tank or request fuel", Role.OPERATOR,
                       ("Reserve available (XS-806)? Then start the transfer (HS-806)",
                        "No reserve: ask dispatch to send fuel at once"), {"requested": ""}),
             fail_alarm="PUMP-PL P7: fuel request not confirmed within 30 min"),
        Step("P7.LL", "Day tank at LL (33 %): urgent fuel request.", StepKind.TASK, actor="OP",
             timeout_s=FUEL_URGENT_S, next="P8", on_fail="P8", sets={FUEL_URGENT: True}, src=False,
             task=Task("URGENT: day tank at 33 %, request fuel now", Role.OPERATOR,
                       ("Call dispatch: urgent fuel delivery, give the hours left",
                        "Transfer any reserve (HS-806)"), {"requested": ""}),
             fail_alarm="PUMP-PL P7: urgent fuel request (LL 33 %) not confirmed"),
        Step("P7.LLL", "Day tank at LLL (10 %): prepare for the diesel stop and escalate.", StepKind.TASK,
             actor="OP", timeout_s=FUEL_URGENT_S, next="ESCALATED", on_fail="ESCALATED",
             sets={FUEL_LLL: True}, src=False,
             task=Task("Day tank at 10 %: prepare for the diesel stop", Role.SUPERVISOR,
                       ("Tell the BF to prepare for loss of emergency water (reduce blast / damp down)",
                        "Confirm the fuel delivery time"), {"prepared": ""}),
             fail_alarm="PUMP-PL P7: day tank at LLL (10 %): diesel stop ahead"),
        Step("P8", "Log diesel parameters and header pressures (ST-802, PT-803, TT-804, PT-805, LT-806, "
             "EI-807A/B, PT-720, PT-730, FT-721, FT-731).", StepKind.WAIT, actor="OP",
             confirm=Var("answer:P8.log"), timeout_s=LOG_EVERY_S, next="P9", on_fail="P9",
             fail_alarm="PUMP-PL P8: first parameter log overdue"),
        Step("P9", "Wait for power return (event-driven).", StepKind.WAIT, actor="OP",
             # The power-return Interrupt fires first (and starts PUMP-PR); `next` is its backstop.
             confirm=BUS_STABLE, timeout_s=P9_MAX_S, next="HANDED_OVER", on_fail="ESCALATED", src=False,
             fail_alarm="PUMP-PL P9: 24 h without station power: manual operation"),
    ]


STEPS: tuple[Step, ...] = tuple(_p1_steps() + _p2_p4_steps() + _p5_steps() + _p6_steps() + _p7_p9_steps())
_AFTER_P1 = tuple(s.id for s in STEPS if not s.id.startswith("P1") and s.id != "P7.LLL")
LONG_OUTAGE = ("P7", "P7.L", "P7.LL", "P7.LLL", "P8", "P9")

PROCEDURE = ProcedureDef(
    id="PUMP-PL",
    title="Power loss at the pump station",
    station=STATION,
    source="procedures.md B 1-7; plant-reference.md 4.8, 4.10-1",
    steps=STEPS,
    trigger=BUS_LOST,
    trigger_text="6 kV bus EB-601 lost (XS-601 DEAD or EI-601 below 70 %)",
    recurring=(
        Recurring("P7.watch", "On a long outage, watch the diesel day-tank level every 30 min.", FUEL_WATCH_S,
                  Task("Fuel watch: day-tank level", Role.OPERATOR,
                       ("Read LT-806 and FQ-808", "Reserve available (XS-806)?",
                        "Request fuel at <= 66.7 %; urgent at 33 %"), {"checked": ""}, ("LT-806",)),
                  during=LONG_OUTAGE),
        Recurring("P8.log", "Log diesel parameters and header pressures every 15 min.", LOG_EVERY_S,
                  Task("Parameter log: " + ", ".join(LOG_TAGS), Role.OPERATOR, LOG_TAGS, {"logged": ""}, LOG_TAGS),
                  during=LONG_OUTAGE),
    ),
    interrupts=(
        Interrupt(BUS_STABLE, "HANDED_OVER", "power returned (XS-601 RESTORED_STABLE): hand over to PUMP-PR",
                  start="PUMP-PR", wait_moving=True),
        Interrupt(DIESEL_STOPPED, "P1", "the diesel stopped while on emergency duty: restart through P1",
                  during=_AFTER_P1),
        Interrupt(any_of((FUEL_LLL_X, FUEL_LL, FUEL_L)), "P7", "day-tank level crossed a fuel limit",
                  during=("P8", "P9")),
    ),
)
