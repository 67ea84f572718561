"""GAS-L: large leak, the entry procedure: cut the source, notify, classify and locate, hand over
(procedures.md A2 opening sentence; plant-reference.md 4.0 G0.4, 4.10-3).

Theory of operation
-------------------
* ``L0``: "first, always: cut the gas source as close to the leak as possible to limit the release, and
  notify the shift supervisor" (procedures.md A2). The location is not known yet, so this is a task
  for the people on the spot (5 min, the general "report within 5 minutes" rule); it does not hold
  up the classification: an unanswered L0 raises its alarm and the run goes on to G0.4.
* G0.4 classifies and locates: a task with the fields ``LEAK_CLASS`` (small / large) and
  ``LEAK_LOC`` (1 pipeline PL-100, 2 regulating station, 3 interconnect PL-250, 4 front module,
  5 GT compartment). Then ``G0.4.route`` hands over: an Interrupt with ``start=`` starts GAS-S or
  GAS-L1..GAS-L5 and ends this run HANDED_OVER (the base starts a procedure only from an Interrupt).
  A small leak goes to GAS-S whatever location was typed (GAS-S asks for the component and location
  itself); a large one needs a valid location.
* No answer in 5 min (or an answer that names no valid location): treat as large, at the most
  upstream plausible location (G0.4 on failure). The plant signals give the evidence, checked from
  upstream to downstream, the first one with evidence wins (rule 4.10-3: two concurrent locations,
  the most upstream first; F-G18):
    1  PT-101 below 4.45 MPa (normal 4.49) or falling faster than 0.02 MPa/min;
    2  the drop across XV-201 (PT-101 - PT-201) more than 0.01 MPa above what the metered station
       flow FT-204 explains (0.04 MPa at 13.7 kg/s, growing with the flow squared);
    3  FT-204 - FT-323 >= 0.5 kg/s: gas lost between the station meter and the GT meter. PL-250 and
       the front module both sit there and the meters cannot tell them apart, so the more upstream,
       L3, is chosen (its isolation, XV-205, also cuts the module off);
    5  any compartment detector at H (10 %LEL);
  and with no evidence at all, L1: every location is then plausible, and L1's isolation is the one
  that cuts them all off. Evidence that cannot be read (a BAD transmitter, a trend without fresh
  history) makes its location plausible too: a location is chosen only when every location upstream
  of it is known to show no evidence, and an unknown sends the run to L1 (``on_unknown``), never to
  a downstream location on a guess. The thresholds are (A); the model carries no pressure noise, a
  real plant would need them checked against transmitter accuracy.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import FALSE, TRUE, Expr, Var, all_of
from plantctl.procedures import Interrupt, ProcedureDef, Step, StepKind, Task

from ._gas_common import LEAK_EVIDENCE, STATION, NumVar

# -- numbers (procedures.md A2, C; plant-reference.md 4.0) -----------------------------------------
CUT_AND_NOTIFY_S = 300.0  # "report fast": within 5 minutes (procedures.md C)
CLASSIFY_S = 300.0  # G0.4: 5 min, else treat as large at the most upstream plausible location
ROUTE_S = 5.0  # G0.4.route: the hand-over interrupt fires on the next scan; a bad answer falls through (A)

LOCATIONS = (1, 2, 3, 4, 5)
LOC_IS = {k: NumVar("LEAK_LOC", "==", k) for k in LOCATIONS}
SMALL = Var("LEAK_CLASS", "==", "small")
LARGE = Var("LEAK_CLASS", "==", "large")


def _upstream_first(evidence: tuple[tuple[int, Expr], ...]) -> tuple[tuple[Expr, str], ...]:
    """Branch k holds when location k shows evidence and every location upstream is known to show none.

    Kleene logic does the rest: an upstream location whose evidence is unknown leaves every branch
    after it unknown, so the decision goes to ``on_unknown`` (L1), never downstream on a guess.
    """
    out: list[tuple[Expr, str]] = []
    earlier: list[Expr] = []
    for k, ev in evidence:
        out.append((all_of([ev, *(~e for e in earlier)]) if earlier else ev, f"G0.4.auto{k}"))
        earlier.append(ev)
    return tuple(out)


def _auto(k: int) -> Step:
    return Step(f"G0.4.auto{k}", f"Not classified in time: treat as large at location {k}, the most upstream "
                "location the plant signals make plausible.",
                StepKind.WAIT, actor="PLC", confirm=TRUE, next="G0.4.route", on_fail="G0.4.route", timeout_s=1.0,
                sets={"LEAK_CLASS": "large", "LEAK_LOC": k, "LOC_FROM_SIGNALS": True}, src=False)


STEPS: tuple[Step, ...] = (
    Step("L0", "First, always: cut the gas source as close to the leak as possible to limit the release, and "
         "notify the shift supervisor.",
         StepKind.TASK, actor="OP/FLD", next="G0.4", on_fail="G0.4", timeout_s=CUT_AND_NOTIFY_S,
         task=Task("Cut the gas source nearest the leak; notify the shift supervisor", Role.OPERATOR,
                   ("Close the nearest valve upstream of the leak", "Notify the shift supervisor"), {"done": ""}),
         fail_alarm="GAS-L L0: source cut / supervisor notice not confirmed within 5 min"),
    Step("G0.4", "Classify the leak: small (can be isolated locally without interrupting supply) or large. Choose "
         "location 1-5 from the patrol report, detectors and pressure/flow imbalance.",
         StepKind.TASK, actor="OP", next="G0.4.route", on_fail="G0.4.auto", timeout_s=CLASSIFY_S,
         task=Task("Classify and locate the leak", Role.OPERATOR,
                   ("LEAK_CLASS: small or large", "LEAK_LOC: 1 pipeline PL-100, 2 regulating station, "
                    "3 interconnect PL-250, 4 front module, 5 GT compartment"),
                   {"classified": ""}, ("LEAK_CLASS", "LEAK_LOC")),
         src=False,
         fail_alarm="GAS-L G0.4: leak not classified within 5 min: treated as large at the most upstream "
                    "plausible location"),
    Step("G0.4.route", "Hand over to the procedure of the leak's class and location.",
         StepKind.WAIT, actor="OP", next="G0.4.auto", on_fail="G0.4.auto", timeout_s=ROUTE_S, confirm=FALSE,
         src=False),
    Step("G0.4.auto", "Treat as large, at the most upstream plausible location (plant signals: pressure and flow "
         "imbalance, detectors).",
         StepKind.DECIDE, actor="PLC", next="G0.4.auto1", on_unknown="G0.4.auto1",
         branches=_upstream_first(LEAK_EVIDENCE), src=False),
    *(_auto(k) for k in sorted({k for k, _ in LEAK_EVIDENCE} | {1})),
)

PROCEDURE = ProcedureDef(
    id="GAS-L",
    title="Large leak: cut the source, classify and locate, hand over",
    station=STATION,
    source="procedures.md A2; plant-reference.md 4.0 (G0.4), 4.10-3",
    steps=STEPS,
    interrupts=(
        Interrupt(SMALL, "HANDED_OVER", "small leak: GAS-S takes over",
                  during=("G0.4.route",), start="GAS-S"),
        *(Interrupt(LARGE & LOC_IS[k], "HANDED_OVER", f"large leak at location {k}: GAS-L{k} takes over",
                    during=("G0.4.route",), start=f"GAS-L{k}") for k in LOCATIONS),
    ),
)
