"""GAS-F: fire at the gas station (plant-reference.md 4.7, procedures.md A3; rule 4.10-3).

Theory of operation
-------------------
Fire has priority over leaks: starting GAS-F puts any running GAS-L1..GAS-L5 and GAS-S on hold
("pre-empted by GAS-F", ``preempts``); they resume by themselves when GAS-F ends (base). It starts
by itself on the compartment fire detection TS-402, or by the operator for a fire elsewhere.

* F1 cuts the gas source: the nearest isolation valve upstream of the fire is chosen by location,
  and the GT is tripped in the same step (XY-400 := 0: "stop or trip the GT"). The location is the
  fire zone when the plant knows it (TS-402: the GT compartment), else the operator's answer
  (``F0.loc``, field ``FIRE_LOC``: N1 pipeline PL-100, N2 regulating station, N3 interconnect PL-250,
  N4 front module, N5 GT manifold, GC compartment):
      N2 -> XV-201, N3 -> XV-205, N4 -> XV-301, N5 / GC -> SRV-320,
      N1 (upstream of XV-201: the nearest valve is the offtake's XV-001) -> F2 directly,
      unknown (no answer in 2 min, or a location not in the list) -> XV-201, the most upstream valve
      of the plant's own.
  Confirmed by the valve's closed switch and no flow downstream (FT-204 for the station valves, FT-323
  for the module and the stop valve) within 1.5 x the valve's stroke.
* F2, when the valves cannot be reached or operated (F-G17: fire plus XV-201 stuck): the offtake
  station is asked to close XV-001 (HS-001, ack 5 min), then XV-001 reported closed with PT-101
  falling within 15 min; otherwise escalate (dispatcher or fire brigade) and repeat.
* F3 calls the fire brigade (119) when the fire is not under control, with an alternate channel, and
  reminds the crew not to extinguish a gas-fed flame before the source is isolated.
* F4 records the G0.1-G0.3 permissives for the crew that stays at the scene.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import Expr, T, Var
from plantctl.procedures import Cmd, ProcedureDef, Step, StepKind, Task

from ._gas_common import (
    NO_FLOW_KG_S,
    NO_GT_FLOW,
    SRV320_CLOSE_S,
    STATION,
    XV201_CLOSE_S,
    XV205_301_CLOSE_S,
    g0_permissive,
)

# -- numbers of the table (plant-reference.md 4.7 unless stated) ----------------------------------
LOCATE_S = 120.0  # F0.loc [ADD]: the location must be known fast; else the most upstream valve (A)
OFFTAKE_ACK_S = 300.0  # F2: ack 5 min
OFFTAKE_ACTION_S = 900.0  # F2: action 15 min
PT101_FALL_MPA_MIN = 0.02  # F2: "PT-101 falling" (the L1.2 rate)
PT101_FALL_WINDOW_S = 120.0
PT101_SOURCE_CUT_MPA = 4.0
ESCALATE_S = 600.0  # F2 on failure: escalate and repeat (A)
BRIGADE_S = 300.0  # F3: call acknowledged within 5 min (A)

STATION_NO_FLOW = T("FT-204") <= NO_FLOW_KG_S
GT_TRIP = Cmd("XY-400", False, label="GT trip")
FIRE_AT = {z: Var("FIRE_LOC", "==", z) for z in ("N1", "N2", "N3", "N4", "N5", "GC")}


def _cut(sid: str, valve: str, cmd: str, zsc: str, no_flow: Expr, timeout_s: float) -> Step:
    return Step(sid, f"Close {valve}, the nearest isolation valve upstream of the fire, and trip the GT.",
                StepKind.COMMAND, actor="OP/PLC", next="F3", on_fail="F2", timeout_s=timeout_s,
                commands=(Cmd(cmd, False), GT_TRIP), confirm=T(zsc).on() & no_flow, src=False,
                fail_alarm=f"GAS-F F1: {valve} not closed (or gas still flowing): request the offtake station (F2)")


STEPS: tuple[Step, ...] = (
    Step("F0", "Where is the fire? The compartment fire detection gives the zone; otherwise ask.",
         StepKind.DECIDE, actor="PLC", next="F0.loc", branches=((T("TS-402").on(), "F1"),),
         on_unknown="F0.loc", src=False),  # fire detection unreadable: ask where the fire is
    Step("F0.loc", "Report the fire location (N1 pipeline, N2 regulating station, N3 interconnect, N4 front "
         "module, N5 GT manifold, GC compartment).",
         StepKind.TASK, actor="OP", next="F1", on_fail="F1.XV-201", timeout_s=LOCATE_S,
         task=Task("Fire location", Role.OPERATOR, ("FIRE_LOC: N1, N2, N3, N4, N5 or GC",), {"located": ""},
                   ("FIRE_LOC",)), src=False,
         fail_alarm="GAS-F: fire location not reported within 2 min: closing XV-201"),
    Step("F1", "Cut the gas source: close the nearest isolation valve upstream of the fire (choose by location: "
         "XV-201, XV-205, XV-301, SRV-320) and stop or trip the GT.",
         StepKind.DECIDE, actor="OP/PLC", next="F1.XV-201",
         on_unknown="F1.XV-201",  # the compartment detection unreadable and no location: the station inlet
         branches=((T("TS-402").on() | FIRE_AT["GC"] | FIRE_AT["N5"], "F1.SRV-320"),
                   (FIRE_AT["N1"], "F2"), (FIRE_AT["N2"], "F1.XV-201"), (FIRE_AT["N3"], "F1.XV-205"),
                   (FIRE_AT["N4"], "F1.XV-301"))),
    _cut("F1.XV-201", "XV-201", "XY-201", "ZSC-201", STATION_NO_FLOW, XV201_CLOSE_S),
    _cut("F1.XV-205", "XV-205", "XY-205", "ZSC-205", STATION_NO_FLOW, XV205_301_CLOSE_S),
    _cut("F1.XV-301", "XV-301", "XY-301", "ZSC-301", NO_GT_FLOW, XV205_301_CLOSE_S),
    _cut("F1.SRV-320", "SRV-320", "XY-320", "ZSC-320", NO_GT_FLOW, SRV320_CLOSE_S),
    Step("F2", "If the valves cannot be reached or operated: ask the upstream offtake station to close its outlet "
         "valve XV-001.",
         StepKind.COMMAND, actor="OP->EXT", next="F2.act", on_fail="F2.esc", timeout_s=OFFTAKE_ACK_S,
         commands=(Cmd("HS-001", True, label="offtake request"),),
         fail_alarm="GAS-F F2: offtake station did not acknowledge within 5 min"),
    Step("F2.act", "Wait for XV-001 reported closed and PT-101 falling.",
         StepKind.WAIT, actor="EXT", next="F3", on_fail="F2.esc", timeout_s=OFFTAKE_ACTION_S,
         confirm=T("ZSC-001").on() & (T("PT-101").falling_faster_than(PT101_FALL_MPA_MIN, PT101_FALL_WINDOW_S)
                                      | (T("PT-101") < PT101_SOURCE_CUT_MPA)), src=False,
         fail_alarm="GAS-F F2: XV-001 not closed / PT-101 not falling within 15 min"),
    Step("F2.esc", "Escalate (dispatcher or fire brigade) and repeat the request to close XV-001.",
         StepKind.TASK, actor="OP->EXT", next="F3", on_fail="F3", timeout_s=ESCALATE_S,
         task=Task("Escalate the XV-001 request", Role.OPERATOR,
                   ("Phone the dispatcher", "Tell the fire brigade the source is not isolated",
                    "Repeat the request to the offtake station"), {"escalated": "F3"}), src=False),
    Step("F3", "Call the fire brigade (119) if the fire is not under control; cool adjacent equipment. Do not "
         "extinguish a gas-fed flame before the source is isolated.",
         StepKind.TASK, actor="OP->EXT", next="F4", on_fail="F3.alt", timeout_s=BRIGADE_S,
         task=Task("Fire brigade and cooling", Role.OPERATOR,
                   ("Call 119 if the fire is not under control", "Cool adjacent equipment",
                    "Do not extinguish a gas-fed flame before the source is isolated",
                    "Protective clothing, right extinguishers, no ignition sources"),
                   {"brigade called": "F4", "fire under control": "F4", "no answer": "F3.alt"}), src=False),
    Step("F3.alt", "No answer: call the fire brigade through the alternate channel (dispatcher, site fire team).",
         StepKind.TASK, actor="OP->EXT", next="F4", on_fail="ESCALATED", timeout_s=BRIGADE_S,
         task=Task("Fire brigade through the alternate channel", Role.OPERATOR,
                   ("Dispatcher", "Site fire team"), {"called": "F4", "no answer": "ESCALATED"}), src=False),
    g0_permissive("F4", "DONE", text="Observe G0.1-G0.3: a team of at least 2 people, the area cordoned, no spark "
                  "sources inside the cordon."),
)

PROCEDURE = ProcedureDef(
    id="GAS-F",
    title="Fire at the gas station",
    station=STATION,
    source="procedures.md A3; plant-reference.md 4.7, 4.10-3",
    steps=STEPS,
    initial="F0",
    trigger=T("TS-402").on(),
    trigger_text="compartment fire detection TS-402",
    preempts=("GAS-L1", "GAS-L2", "GAS-L3", "GAS-L4", "GAS-L5", "GAS-S"),
    permissive_step="F4",
)
