"""GAS-L1: large leak on the branch pipeline PL-100, between the offtake station and the regulating station
(plant-reference.md 4.2, procedures.md A2 zone 1).

Theory of operation
-------------------
* L1.1 asks the offtake station (an external party) to close its outlet valve XV-001 and light its flare
  FL-002. The request goes through the request coil HS-001; the station's acknowledgement is YA-001
  (5 min, verified by the engine as the coil's feedback), then ``L1.1.act`` waits up to 15 min for the
  reports ZSC-001 (XV-001 closed) and FL-002 (flare lit). No acknowledgement or no action: the request
  is repeated through the alternate channel (the dispatcher, a task) and the procedure goes on with
  L1.3 at once, "in parallel" with the offtake staff. The base runs one step at a time, so "in
  parallel" is modelled by moving on while the XV-001 confirmation is required later, at
  ``L1.5.permit``: BDV-102 is never opened while XV-001 is not reported closed (F-G03). The wait
  there has a deadline; at it a chase task (re-contact EXT / dispatcher) sends the run back to the
  wait, or escalates. A person may confirm the closure locally (base: ``confirm_locally``) only while
  ZSC-001 cannot be read (BAD: the report link from the offtake station is down) and the offtake
  station reports the closure by telephone; while ZSC-001 reads "not closed" the base refuses it, so
  no click opens BDV-102 against an open upstream valve.
* L1.2 watches PT-101 fall (faster than 0.02 MPa/min over 2 min, or below 4.0 MPa). If it does not,
  the source is not cut or the leak is elsewhere: a task re-contacts EXT and re-checks the location,
  and the unit is stopped anyway (L1.3); the vent stays blocked by ``L1.5.permit``.
* L1.3 fast-unloads the GT to a stop (9 min); a GT trip from any cause satisfies it (rule 4.10-3),
  else a manual trip (XY-400 := 0).
* L1.4 closes XV-201 (15.5 s), retries once, then a two-person field crew closes it by hand (10 min);
  if it still cannot be closed the run valves XV-211A/B and XV-216A/B are closed instead and
  "XV-201 failed" is recorded (``XV201_FAILED``, F-G01). That alternate isolation counts as "L1.4
  done" for the vent's permissive: both cut the regulating station off PL-100.
* G0 (the two-person rule, cordon, no ignition) comes before the first venting or repair step; the
  manual valve closure of L1.4 is an urgent isolation and carries its own two-person check instead
  of waiting for the cordon.
* L1.5 opens BDV-102 (8 s) and waits for PT-101 <= 0.05 MPa within 1.5 x the model's 42 min. A vent
  that will not open (F-G05) leads to the alternate vent / a request to EXT to vent through FL-002;
  a pressure that does not come down in time (F-G04, XV-001 passing) re-contacts EXT.
* L1.6 is the purge before repair, a permit: the crew's readings must meet the acceptance (CH4 <= 1 vol %
  on 3 readings, O2 >= 19.5 %) or the purge is extended (``L1.6.check``, ``L1.6.extend``); L1.7
  notifies, records and issues the repair permit.

Tasks that a loop can bring back (the chase, the re-contact, the purge extension) name their next
step in the answer itself: a task step keeps its earlier confirmation in the base, so a plain "done"
answer would let the second pass through the loop go by without asking anyone again.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import T
from plantctl.procedures import Cmd, ProcedureDef, Step, StepKind, Task

from ._gas_common import (
    GT_STOP_TIMEOUT_S,
    GT_STOPPED,
    MANUAL_TRIP_TIMEOUT_S,
    NOTIFY_TIMEOUT_S,
    RUN_BRANCH_VALVE_S,
    STATION,
    VENT_VALVE_S,
    XV201_CLOSE_S,
    g0_permissive,
    manual_close_task,
    purge_steps,
)

# -- numbers of the table (plant-reference.md 4.2 unless stated) ----------------------------------
OFFTAKE_ACK_S = 300.0  # L1.1: ack 5 min (A) (the HS-001 feedback deadline in the I/O list is the same)
OFFTAKE_ACTION_S = 900.0  # L1.1: action 15 min (A)
ALT_CHANNEL_S = 300.0  # L1.1 on failure: the dispatcher acknowledges within the same 5 min (A)
PT101_FALL_MPA_MIN = 0.02  # L1.2: dPT-101/dt < -0.02 MPa/min ...
PT101_FALL_WINDOW_S = 120.0  # ... for 2 min
PT101_SOURCE_CUT_MPA = 4.0  # L1.2: or PT-101 < 4.0 MPa
WATCH_TIMEOUT_S = 900.0  # L1.2: 15 min (A)
RECHECK_S = 600.0  # L1.2 on failure: re-contact EXT, re-check the location (A)
XV201_MANUAL_S = 600.0  # L1.4 on failure: T_manual 10 min (3.1), two-person
XV001_CONFIRM_S = 900.0  # L1.5 permissive: how long to wait for the XV-001 report before chasing it (A)
BLOWDOWN_END_MPA = 0.05  # L1.5: PT-101 <= 0.05 MPa
BLOWDOWN_S = 63 * 60.0  # L1.5: 1.5 x model time (DN100: 42 min) = 63 min
ALT_VENT_S = 900.0  # L1.5 on failure: alternate vent / EXT flare (A)

RUN_VALVES = ("XY-211A", "XY-211B", "XY-216A", "XY-216B")
RUN_VALVES_CLOSED = T("ZSC-211A").on() & T("ZSC-211B").on() & T("ZSC-216A").on() & T("ZSC-216B").on()
XV201_CLOSED = T("ZSC-201").on() & T("ZSO-201").off()

STEPS: tuple[Step, ...] = (
    Step("L1.1", "Ask the offtake station to close its outlet valve XV-001 and light the vent flare FL-002.",
         StepKind.COMMAND, actor="OP->EXT", next="L1.1.act", on_fail="L1.1.alt", timeout_s=OFFTAKE_ACK_S,
         commands=(Cmd("HS-001", True, label="offtake request"),),
         fail_alarm="GAS-L1 L1.1: offtake station did not acknowledge within 5 min: use the alternate channel"),
    Step("L1.1.act", "Wait for the offtake station's report: XV-001 closed and FL-002 lit.",
         StepKind.WAIT, actor="EXT", next="L1.2", on_fail="L1.1.alt", timeout_s=OFFTAKE_ACTION_S,
         confirm=T("ZSC-001").on() & T("FL-002").on(), src=False,
         fail_alarm="GAS-L1 L1.1: XV-001 / FL-002 not reported within 15 min: use the alternate channel"),
    Step("L1.1.alt", "Repeat the request through the alternate channel (dispatcher); continue with L1.3 in "
         "parallel (BDV-102 stays blocked until XV-001 is reported closed).",
         StepKind.TASK, actor="OP->EXT", next="L1.3", on_fail="L1.3", timeout_s=ALT_CHANNEL_S,
         task=Task("Offtake request through the dispatcher", Role.OPERATOR,
                   ("Phone the dispatcher", "Ask them to have XV-001 closed and FL-002 lit",
                    "Record who acknowledged"),
                   {"dispatcher acknowledged": "", "no answer": "L1.3"}), src=False),
    Step("L1.2", "Watch the RS inlet pressure PT-101 fall (confirms that the upstream source is cut).",
         StepKind.WAIT, actor="OP", next="L1.3", on_fail="L1.2.recheck", timeout_s=WATCH_TIMEOUT_S,
         confirm=T("PT-101").falling_faster_than(PT101_FALL_MPA_MIN, PT101_FALL_WINDOW_S)
         | (T("PT-101") < PT101_SOURCE_CUT_MPA),
         fail_alarm="GAS-L1 L1.2: PT-101 not falling: XV-001 not closed or the leak is elsewhere"),
    Step("L1.2.recheck", "PT-101 is not falling: XV-001 is not closed or the leak is elsewhere. Re-contact the "
         "offtake station and re-check the leak location. Do not open BDV-102.",
         StepKind.TASK, actor="OP->EXT", next="L1.3", on_fail="L1.3", timeout_s=RECHECK_S,
         task=Task("Re-contact the offtake station; re-check the leak location", Role.OPERATOR,
                   ("Re-contact the offtake station about XV-001", "Re-check the leak location"),
                   {"done": ""}), src=False),
    Step("L1.3", "Stop the unit (normal or fast unload, then shut down). A GT trip from any cause satisfies it.",
         StepKind.COMMAND, actor="OP/PLC", next="L1.4", on_fail="L1.3.trip", timeout_s=GT_STOP_TIMEOUT_S,
         commands=(Cmd("HS-400", "FAST_UNLOAD"),), confirm=GT_STOPPED,
         fail_alarm="GAS-L1 L1.3: GT not stopped within 9 min: manual trip"),
    Step("L1.3.trip", "Manual GT trip (ESD push-button, XY-400 := 0).",
         StepKind.COMMAND, actor="OP", next="L1.4", on_fail="L1.4", timeout_s=MANUAL_TRIP_TIMEOUT_S,
         commands=(Cmd("XY-400", False, label="manual trip"),), src=False),
    Step("L1.4", "Close the RS inlet isolation valve XV-201.",
         StepKind.COMMAND, actor="OP/PLC", next="L1.G0", on_fail="L1.4.retry", timeout_s=XV201_CLOSE_S,
         commands=(Cmd("XY-201", False),), confirm=XV201_CLOSED,
         fail_alarm="GAS-L1 L1.4: XV-201 not closed within 15.5 s: retrying"),
    Step("L1.4.retry", "Retry closing XV-201 once.",
         StepKind.COMMAND, actor="OP", next="L1.G0", on_fail="L1.4.manual", timeout_s=XV201_CLOSE_S,
         commands=(Cmd("XY-201", False),), confirm=XV201_CLOSED, src=False,
         fail_alarm="GAS-L1 L1.4: XV-201 still not closed: field crew to close it by hand"),
    manual_close_task("L1.4.manual", "XV-201", "ZSC-201", XV201_MANUAL_S, "L1.G0", "L1.4.runs",
                      "Field crew closes XV-201 by hand (T_manual 10 min, two-person)."),
    Step("L1.4.runs", "XV-201 cannot be closed: close XV-211A/B and XV-216A/B instead; record \"XV-201 failed\".",
         StepKind.COMMAND, actor="OP", next="L1.G0", on_fail="ESCALATED", timeout_s=RUN_BRANCH_VALVE_S,
         commands=tuple(Cmd(v, False) for v in RUN_VALVES), confirm=RUN_VALVES_CLOSED,
         sets={"XV201_FAILED": True}, src=False),
    g0_permissive("L1.G0", "L1.5.permit"),
    Step("L1.5.permit", "Permissives for venting PL-100: XV-001 reported closed (L1.1 done), the regulating "
         "station isolated (L1.4 done), G0.1-G0.3 recorded.",
         StepKind.WAIT, actor="OP", next="L1.5", on_fail="L1.5.chase", timeout_s=XV001_CONFIRM_S,
         confirm=T("ZSC-001").on() & (XV201_CLOSED | RUN_VALVES_CLOSED), src=False,
         fail_alarm="GAS-L1 L1.5 blocked: XV-001 closure not confirmed by the offtake station"),
    Step("L1.5.chase", "XV-001 is still not confirmed closed: re-contact the offtake station (or the dispatcher). "
         "BDV-102 stays shut until it is.",
         StepKind.TASK, actor="OP->EXT", next="L1.5.permit", on_fail="ESCALATED", timeout_s=ALT_CHANNEL_S,
         task=Task("Chase the XV-001 closure", Role.OPERATOR,
                   ("Re-contact the offtake station", "If no answer: the dispatcher"),
                   {"re-contacted": "L1.5.permit", "no answer": "ESCALATED"}), src=False),
    Step("L1.5", "Open the pipeline vent valve BDV-102 (upstream of XV-201) to blow PL-100 down.",
         StepKind.COMMAND, actor="OP/FLD", next="L1.5.bd", on_fail="L1.5.alt", timeout_s=VENT_VALVE_S,
         commands=(Cmd("HS-102", True),), field_work=True,
         fail_alarm="GAS-L1 L1.5: BDV-102 will not open: alternate vent or EXT flare"),
    Step("L1.5.bd", "Blow-down: PT-101 follows the blow-down model to <= 0.05 MPa (63 min).",
         StepKind.WAIT, actor="OP", next="L1.6", on_fail="L1.5.recontact", timeout_s=BLOWDOWN_S,
         confirm=T("PT-101") <= BLOWDOWN_END_MPA, src=False,
         fail_alarm="GAS-L1 L1.5: PL-100 not blown down in 1.5 x model time: suspect XV-001 passing"),
    Step("L1.5.alt", "The vent will not open: use the alternate vent, or ask the offtake station to vent PL-100 "
         "through FL-002.",
         StepKind.TASK, actor="OP->EXT", next="L1.5.bd", on_fail="ESCALATED", timeout_s=ALT_VENT_S,
         field_work=True,
         task=Task("Alternate vent for PL-100", Role.OPERATOR,
                   ("Open the alternate vent, or", "Ask the offtake station to vent PL-100 through FL-002",
                    "Record who acknowledged"),
                   {"venting": "L1.5.bd", "no answer": "ESCALATED"}), src=False),
    Step("L1.5.recontact", "Pressure not falling as modelled: suspect XV-001 passing; re-contact the offtake station.",
         StepKind.TASK, actor="OP->EXT", next="L1.5.bd", on_fail="ESCALATED", timeout_s=ALT_CHANNEL_S,
         task=Task("XV-001 passing? Re-contact the offtake station", Role.OPERATOR,
                   ("Report PT-101 to the offtake station", "Ask them to check XV-001 for passing"),
                   {"re-contacted": "L1.5.bd", "no answer": "ESCALATED"}), src=False),
    *purge_steps("L1.6", "Purge before repair (N2, then air): CH4 <= 1 vol % on 3 readings 5 min apart; O2 >= "
                 "19.5 % before entry.", "L1.7", what="PL-100", src=True),
    Step("L1.7", "Notify and record; issue the repair permit.",
         StepKind.TASK, actor="OP", next="DONE", on_fail="DONE", timeout_s=NOTIFY_TIMEOUT_S,
         task=Task("Notify, record, repair permit", Role.OPERATOR,
                   ("Notify the shift supervisor and the offtake station", "Record the event",
                    "Issue the repair permit"), {"done": ""}), src=False),
)

PROCEDURE = ProcedureDef(
    id="GAS-L1",
    title="Large leak on the branch pipeline PL-100",
    station=STATION,
    source="procedures.md A2 zone 1; plant-reference.md 4.2",
    steps=STEPS,
    permissive_step="L1.G0",
)
