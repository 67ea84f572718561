"""GAS-S: small leak, isolated locally without interrupting supply (plant-reference.md 4.0-4.1, procedures.md A1).

Theory of operation
-------------------
* G0.4 confirms the classification (a small leak can be isolated locally without interrupting supply)
  and names the leaking component and its location 1-5 (task fields ``LEAK_CLASS``, ``LEAK_LOC``,
  ``component``). GAS-S may be started directly by the operator or by GAS-L's hand-over; either way
  the person at the HMI confirms it here, because S1 needs the component named. Not small, or no
  answer in 5 min: it is treated as LARGE (``S1.large``).
* S2 is the G0.1-G0.3 permissive step ("observe throughout"): no field step runs without it, and a
  negative or incomplete answer stops the work (ESCALATED: the shift supervisor is in charge).
* S1 is the field crew's local isolation (flange bolts, valve packing, or isolate and re-seal a
  fitting; the remedy applied is a required field). It is confirmed by the plant, not only by the
  answer: the portable reading AI-901 below 10 %LEL and the GT fuel flow FT-323 unchanged (+-2 %:
  modelled as FT-323 moving less than 2 % of base flow per minute over a minute, since the base keeps
  no baseline value to compare with). 30 min, or "cannot isolate": reclassify as LARGE.
* ``S1.large`` hands over to the location table: GAS-L1..GAS-L5 by ``LEAK_LOC`` (an Interrupt with
  ``start=``, ending this run HANDED_OVER), or GAS-L (classify and locate) when the location is
  unknown.
* S3 logs the event and raises the maintenance request.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import FALSE, T, Var, any_of
from plantctl.procedures import Interrupt, ProcedureDef, Step, StepKind, Task

from ._gas_common import STATION, NumVar, g0_permissive, steady

# -- numbers of the table (plant-reference.md 4.0-4.1 unless stated) ------------------------------
CLASSIFY_S = 300.0  # G0.4: 5 min, else treat as large
ISOLATE_S = 1800.0  # S1: 30 min (A)
LEAK_POINT_MAX_LEL = 10.0  # S1: portable AI-901 < 10 %LEL at the leak point
FT323_STEADY_KG_S_MIN = 0.274  # S1: FT-323 unchanged (+-2 % of 13.7 kg/s), per minute (A)
FT323_STEADY_WINDOW_S = 60.0
LOG_S = 600.0  # S3: 10 min
HANDOVER_S = 60.0  # S1.large: the hand-over interrupt fires on the next scan; deadline as a guard (A)

LOCATIONS = (1, 2, 3, 4, 5)
LOC_IS = {k: NumVar("LEAK_LOC", "==", k) for k in LOCATIONS}

STEPS: tuple[Step, ...] = (
    Step("G0.4", "Classify the leak: small (can be isolated locally without interrupting supply) or large. Name the "
         "leaking component and its location 1-5 from the patrol report, detectors and pressure/flow imbalance.",
         StepKind.TASK, actor="OP", next="G0.4.check", on_fail="S1.large", timeout_s=CLASSIFY_S,
         task=Task("Classify the leak and name the component", Role.OPERATOR,
                   ("LEAK_CLASS: small or large", "LEAK_LOC: 1 pipeline, 2 regulating station, 3 interconnect, "
                    "4 front module, 5 GT compartment", "component: the leaking item"),
                   {"classified": ""}, ("LEAK_CLASS", "LEAK_LOC", "component")),
         src=False, fail_alarm="GAS-S G0.4: leak not classified within 5 min: treated as large"),
    Step("G0.4.check", "Small leak: isolate it locally; otherwise go to the location table.",
         StepKind.DECIDE, actor="OP", next="S1.large", branches=((Var("LEAK_CLASS", "==", "small"), "S2"),),
         src=False),
    g0_permissive("S2", "S1", text="Observe G0.1-G0.3 throughout: a field team of at least 2 people, the area "
                  "cordoned, no spark sources inside the cordon. Otherwise stop the work."),
    Step("S1", "Isolate the leaking item locally, without interrupting supply: close the local block valves either "
         "side of the leaking component (instrument root valve, drain or branch valve), or switch to the parallel "
         "branch.",
         StepKind.TASK, actor="FLD", next="S3", on_fail="S1.large", timeout_s=ISOLATE_S, field_work=True,
         confirm=(T("AI-901") < LEAK_POINT_MAX_LEL) & steady("FT-323", FT323_STEADY_KG_S_MIN, FT323_STEADY_WINDOW_S),
         task=Task("Isolate the small leak locally", Role.OPERATOR,
                   ("Flange leak: tighten the flange bolts", "Valve leak: tighten the packing (seal) bolts at once",
                    "Fitting leak: tighten; else isolate, remove, re-seal (PTFE tape) and refit",
                    "Do not interrupt supply", "Enter the remedy applied"),
                   {"isolated": "", "cannot isolate locally": "S1.large"}, ("remedy",)),
         fail_alarm="GAS-S S1: small leak not isolated locally: reclassified as LARGE"),
    Step("S1.large", "Reclassified as LARGE: go to the location table (the procedure of the leak's location takes "
         "over).", StepKind.WAIT, actor="OP", next="ESCALATED", on_fail="ESCALATED", timeout_s=HANDOVER_S,
         confirm=FALSE, src=False),
    Step("S3", "Log the event and raise a maintenance request.",
         StepKind.TASK, actor="OP", next="DONE", on_fail="DONE", timeout_s=LOG_S,
         task=Task("Log and raise a maintenance request", Role.OPERATOR,
                   ("Log the leak, the component and the remedy", "Raise the maintenance request"), {"logged": ""}),
         src=False),
)

PROCEDURE = ProcedureDef(
    id="GAS-S",
    title="Small leak: local isolation without interrupting supply",
    station=STATION,
    source="procedures.md A1; plant-reference.md 4.0-4.1",
    steps=STEPS,
    interrupts=(
        *(Interrupt(LOC_IS[k], "HANDED_OVER", f"large leak at location {k}: GAS-L{k} takes over",
                    during=("S1.large",), start=f"GAS-L{k}") for k in LOCATIONS),
        Interrupt(~any_of(LOC_IS.values()), "HANDED_OVER", "large leak, location unknown: GAS-L locates it",
                  during=("S1.large",), start="GAS-L"),
    ),
    permissive_step="S2",
)
