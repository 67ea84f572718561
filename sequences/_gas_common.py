"""Shared pieces of the gas station's emergency procedures (plant-reference.md 4.0-4.7).

Not a procedure itself (the leading underscore keeps ``sequences.all_procedures`` from looking for a
``PROCEDURE`` here): the G0 permissive step every gas procedure with field work carries, the
detector-channel expressions of GAS-L5, the leak-location evidence of G0.4, the "GT stopped"
condition of rule 4.10-3, the two-person manual valve closure, the purge permit (L1.6, reused by
L3.4 and L4.3), the valve stroke deadlines of 3.1, and three small expression classes the base lacks.

Expression workarounds (clearly marked; candidates for plantctl/expr.py)
------------------------------------------------------------------------
* ``Lin``: a linear (or squared) combination of tags compared with a constant. The base compares one
  tag with a constant only, but a flow or pressure *imbalance* (G0.4: "pressure/flow imbalance") is a
  difference of two tags. BAD quality on any term makes it None, like ``Compare``.
* ``NumVar``: a procedure variable compared numerically. ``Var(name, ">=", 2)`` calls ``float()`` on
  whatever an operator typed, so a non-numeric answer would raise inside the scan; ``NumVar`` fails
  closed instead (False: the permissive or the branch is simply not satisfied).
* ``IsTrue``: a variable that is exactly True. ``Var(name)`` is truthy, so a typed "false" would pass
  a permissive such as cordon_set.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from plantctl.engine import Role
from plantctl.expr import Expr, T, Tri, View, all_of, any_of
from plantctl.procedures import Step, StepKind, Task

STATION = "gas_station"

# -- G0 common permissives (plant-reference.md 4.0) ------------------------------------------------
G0_TIMEOUT_S = 600.0  # G0.2 / G0.3: 10 min (A)
G0_MIN_TEAM = 2  # G0.1: field team of at least 2 people
G0_FIELDS = ("team_size", "cordon_set", "ignition_control")

# -- GT and gas-path numbers used by several procedures (plant-reference.md 1.4, 3.1, 3.5) ---------
NO_FLOW_KG_S = 0.1  # "FT = 0": below this the meter reads no flow (A)
GT_STOP_TIMEOUT_S = 540.0  # L1.3 / L2.3 / L4.2: 9 min (fast unload 6.3 min + margin)
MANUAL_TRIP_TIMEOUT_S = 5.0  # XY-400 := 0 is verified by ZSC-320 within 1 s (I/O list); margin (A)
PURGE_TIMEOUT_S = 4 * 3600.0  # L1.6: 4 h (A)
PURGE_CH4_MAX_VOL = 1.0  # L1.6 / 3.9: CH4 <= 1 vol % on 3 readings 5 min apart (A)
PURGE_O2_MIN_VOL = 19.5  # L1.6 / 3.9: O2 >= 19.5 vol % before entry (A)
PURGE_FIELDS = ("ch4_vol_1", "ch4_vol_2", "ch4_vol_3", "o2_vol")
NOTIFY_TIMEOUT_S = 1800.0  # notify-and-record rows ([ADD], no table timeout): 30 min (A)

# -- valve stroke deadlines, 1.5 x T_stroke + t_d (plant-reference.md 3.1) --------------------------
XV201_CLOSE_S = 15.5  # 1.5 x 10 s + 0.5 s
XV201_OPEN_S = 45.5  # 1.5 x 30 s + 0.5 s
XV205_301_CLOSE_S = 12.5  # 1.5 x 8 s + 0.5 s
XV205_301_OPEN_S = 38.0  # 1.5 x 25 s + 0.5 s
RUN_BRANCH_VALVE_S = 23.0  # XV-211/216, XV-311/313: 1.5 x 15 s + 0.5 s
SRV320_CLOSE_S = 0.85  # 1.5 x 0.5 s + 0.1 s
SRV320_OPEN_S = 15.1  # 1.5 x 10 s + 0.1 s
VENT_VALVE_S = 8.0  # BDV-102, BV-321: 1.5 x 5 s + 0.5 s


# =====================================================================================================
# expression workarounds
# =====================================================================================================
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True, eq=False)
class Lin(Expr):
    """``sum(coef * tag**power) <op> value`` (workaround: the base compares one tag with a constant)."""

    terms: tuple[tuple[str, float, int], ...]  # (tag, coefficient, power)
    op: str
    value: float

    def eval(self, v: View) -> Tri:
        total = 0.0
        for tag, coef, power in self.terms:
            r = v.reading(tag)
            if r is None or r.bad:
                return None
            total += coef * float(r.value) ** power
        return _OPS[self.op](total, self.value)

    def tags(self) -> set[str]:
        return {t for t, _, _ in self.terms}

    def describe(self) -> str:
        parts = [f"{coef:+g}*{tag}{'^2' if power == 2 else ''}" for tag, coef, power in self.terms]
        return f"{' '.join(parts)} {self.op} {self.value:g}"


def diff(a: str, b: str, op: str, value: float) -> Expr:
    """``a - b <op> value``."""
    return Lin(((a, 1.0, 1), (b, -1.0, 1)), op, value)


@dataclass(frozen=True, eq=False)
class NumVar(Expr):
    """A variable compared as a number; anything that is not a number is False (fails closed)."""

    name: str
    op: str
    value: float

    def eval(self, v: View) -> Tri:
        x = v.var(self.name)
        if isinstance(x, bool) or x is None:
            return False
        try:
            num = float(x)
        except (TypeError, ValueError):
            return False
        return _OPS[self.op](num, self.value)

    def describe(self) -> str:
        return f"{self.name} {self.op} {self.value:g}"


@dataclass(frozen=True, eq=False)
class IsTrue(Expr):
    """A variable that is exactly True (an answer "true" typed as text does not count)."""

    name: str

    def eval(self, v: View) -> Tri:
        return v.var(self.name) is True

    def describe(self) -> str:
        return f"{self.name} = true"


def at_least(k: int, parts: Iterable[Expr]) -> Expr:
    """k of n: any combination of k parts all true (a BAD part makes its combinations unknown)."""
    return any_of(all_of(combo) for combo in itertools.combinations(tuple(parts), k))


# =====================================================================================================
# the GT (rule 4.10-3: a GT trip from any cause satisfies a "stop the unit" step)
# =====================================================================================================
GT_STOPPED: Expr = T("XS-400").state("OFF", "TRIPPED") & T("ZSC-320").on()
GT_TRIPPED: Expr = T("XS-400").state("TRIPPED")
NO_GT_FLOW: Expr = T("FT-323") <= NO_FLOW_KG_S


# =====================================================================================================
# gas detectors GD-401A/B/C (plant-reference.md 1.4, 3.7; io/gas_station.yaml)
# =====================================================================================================
DETECTORS = ("GD-401A", "GD-401B", "GD-401C")
DETECTOR_FAULTS = ("XA-401A", "XA-401B", "XA-401C")
GD_ALARM_H = 10.0  # H >= 10 %LEL (any 1)
GD_ALARM_HH = 20.0  # HH >= 20 %LEL (any 1)
GD_TRIP = 25.0  # trip at >= 25 %LEL on 2 of 3
GD_CLEAR = 5.0  # L5.4: no entry until all channels < 5 %
GD_QUIET = 3.0  # a channel "reads no gas" below this (A): the normal reading is 0-2 %LEL


def any_channel_at(level: float) -> Expr:
    """Any channel at or above ``level`` (a BAD channel neither adds nor blocks)."""
    return any_of(T(g) >= level for g in DETECTORS)


def two_of_three_at(level: float) -> Expr:
    """2oo3 at ``level``; with one channel BAD this is 2oo2 on the other two (FAULT_VOTES_TRIP = false)."""
    return at_least(2, (T(g) >= level for g in DETECTORS))


def channel_alone_high(i: int) -> Expr:
    """Channel i reads gas (>= H) while the two others are healthy and read none (F-G10)."""
    others = [j for j in range(3) if j != i]
    return all_of([T(DETECTORS[i]) >= GD_ALARM_H]
                  + [T(DETECTORS[j]) < GD_QUIET for j in others]
                  + [T(DETECTOR_FAULTS[j]).off() for j in others])


def channel_alone_low(i: int) -> Expr:
    """Channel i reads no gas (and shows no fault) while the two others read gas (F-G11: stuck low)."""
    others = [j for j in range(3) if j != i]
    return all_of([T(DETECTORS[i]) < GD_QUIET, T(DETECTOR_FAULTS[i]).off()]
                  + [T(DETECTORS[j]) >= GD_ALARM_H for j in others])


def all_channels_below(level: float) -> Expr:
    """Every healthy channel below ``level``; a faulted channel (XA-401x) is left out."""
    return all_of((T(g) < level) | T(xa).on() for g, xa in zip(DETECTORS, DETECTOR_FAULTS, strict=True))


# =====================================================================================================
# G0.4: where is the leak? (evidence from the plant signals, used when nobody classifies in time)
# =====================================================================================================
PT101_LEAK_EVIDENCE_MPA = 4.45  # PL-100 end pressure below this (normal 4.49 at base load): L1 (A)
PT101_FALL_MPA_MIN = 0.02  # ... or falling faster than this (the L1.2 rate)
EVIDENCE_RATE_WINDOW_S = 60.0
# XV-201's drop at base load: 4.49 - 4.45 = 0.04 MPa at 13.7 kg/s; it grows with the flow squared.
XV201_DROP_COEF = 0.04 / 13.7**2  # MPa per (kg/s)^2 (C from the normal operating point)
XV201_EXCESS_MPA = 0.01  # drop beyond what the metered station flow explains: L2 (A)
STATION_IMBALANCE_KG_S = 0.5  # FT-204 - FT-323 (3.6 % of base flow): gas lost between the meters: L3/L4 (A)

LEAK_EVIDENCE: tuple[tuple[int, Expr], ...] = (
    # upstream first: the first location with evidence is the most upstream plausible one
    (1, (T("PT-101") < PT101_LEAK_EVIDENCE_MPA)
        | T("PT-101").falling_faster_than(PT101_FALL_MPA_MIN, EVIDENCE_RATE_WINDOW_S)),
    (2, Lin((("PT-101", 1.0, 1), ("PT-201", -1.0, 1), ("FT-204", -XV201_DROP_COEF, 2)), ">=", XV201_EXCESS_MPA)),
    # N3 (PL-250) and N4 (front module) both sit between FT-204 and FT-323: the meters cannot tell
    # them apart, so the most upstream of the two is chosen
    (3, diff("FT-204", "FT-323", ">=", STATION_IMBALANCE_KG_S)),
    (5, any_channel_at(GD_ALARM_H)),
)


# =====================================================================================================
# steps every procedure builds the same way
# =====================================================================================================
G0_TEXT = ("G0.1-G0.3: before any field work: a field team of at least 2 people (two-person rule), the area "
           "cordoned with non-essential people kept out, and no spark sources inside the cordon (no hot work, "
           "vehicles, non-Ex tools or phones).")


def g0_permissive(sid: str, next_: str, *, text: str = G0_TEXT, on_fail: str = "ESCALATED",
                  src: bool = True) -> Step:
    """The PERMISSIVE step that records G0.1-G0.3 (plant-reference.md 4.0).

    The answer must carry team_size (>= 2), cordon_set and ignition_control (both exactly True);
    anything less holds the step until its deadline and then escalates to the shift supervisor
    (G0.1: "block the field step and escalate"), so no field step of the procedure ever runs.
    """
    return Step(
        sid, text, StepKind.PERMISSIVE, actor="OP/FLD", next=next_, on_fail=on_fail, timeout_s=G0_TIMEOUT_S,
        confirm=NumVar("team_size", ">=", G0_MIN_TEAM) & IsTrue("cordon_set") & IsTrue("ignition_control"),
        task=Task("Field permissives G0.1-G0.3", Role.OPERATOR,
                  ("G0.1 field team of at least 2 people: enter team_size",
                   "G0.2 cordon set, non-essential people out: cordon_set",
                   "G0.3 no spark sources inside the cordon: ignition_control"),
                  {"confirmed": "", "not possible": ""}, G0_FIELDS),
        src=src,
        fail_alarm="G0 field permissives not confirmed: field steps blocked; shift supervisor in charge",
    )


def manual_close_task(sid: str, valve: str, zsc: str, t_manual_s: float, next_: str, on_fail: str,
                      text: str) -> Step:
    """FLD closes a valve by hand (two-person: the answer must name team_size >= 2; ZSC must show it)."""
    return Step(
        sid, text, StepKind.TASK, actor="FLD", next=next_, on_fail=on_fail, timeout_s=t_manual_s,
        confirm=T(zsc).on() & NumVar("team_size", ">=", G0_MIN_TEAM),
        task=Task(f"Close {valve} by hand", Role.OPERATOR,
                  (f"Two people at {valve} (two-person rule): enter team_size",
                   f"Wind {valve} closed on the hand-wheel", f"Report when {zsc} shows closed"),
                  {"closed": "", "cannot close": ""}, ("team_size",)),
        src=False, fail_alarm=f"{valve} could not be closed by hand",
    )


def purge_confirm() -> Expr:
    """L1.6 / 3.9 acceptance: CH4 <= 1 vol % on three readings 5 min apart, O2 >= 19.5 % before entry."""
    return all_of([NumVar(f, "<=", PURGE_CH4_MAX_VOL) for f in PURGE_FIELDS[:3]]
                  + [NumVar("o2_vol", ">=", PURGE_O2_MIN_VOL)])


def purge_steps(sid: str, text: str, next_: str, *, what: str, src: bool) -> tuple[Step, Step, Step]:
    """The purge before repair as a permit (L1.6, reused by L3.4 and L4.3): the readings decide.

    ``sid`` is the crew's task (4 h); its answer goes to ``<sid>.check``, which lets the run on only
    when the readings meet the acceptance and otherwise sends it to ``<sid>.extend`` at once ("extend
    the purge, check for passing valves"), whose answer brings the purge task back. Answers name their
    targets, so every pass through the loop asks the crew again (a task step keeps an earlier plain
    confirmation in the base).
    """
    return (
        Step(sid, text, StepKind.TASK, actor="FLD", next=f"{sid}.check", on_fail=f"{sid}.extend",
             timeout_s=PURGE_TIMEOUT_S, field_work=True, src=src,
             task=Task(f"Purge {what} before repair", Role.OPERATOR,
                       ("Purge with N2, vent outdoors, no ignition sources near the vent",
                        "Measure CH4 with a %vol (thermal-conductivity) instrument: 3 readings 5 min apart",
                        "Air purge until O2 >= 19.5 vol % before entry",
                        "Check for passing valves (unsealed plug valves pass gas when closed)"),
                       {"purge complete": f"{sid}.check", "cannot complete": f"{sid}.extend"}, PURGE_FIELDS),
             fail_alarm=f"{sid}: purge not complete within 4 h: extend the purge, check for passing valves"),
        Step(f"{sid}.check", "Purge acceptance: CH4 <= 1 vol % on the 3 readings and O2 >= 19.5 vol %; repair stays "
             "blocked until it is met.", StepKind.DECIDE, actor="OP", next=f"{sid}.extend",
             branches=((purge_confirm(), next_),), src=False),
        Step(f"{sid}.extend", "Purge acceptance not reached: extend the purge; check for passing valves (plug valves "
             "not sealed).", StepKind.TASK, actor="FLD", next=sid, on_fail="ESCALATED", timeout_s=PURGE_TIMEOUT_S,
             field_work=True, src=False,
             task=Task("Extend the purge", Role.OPERATOR, ("Extend the N2 purge", "Check for passing valves"),
                       {"extended": sid, "give up": "ESCALATED"})),
    )


def steady(tag: str, band_per_min: float, window_s: float) -> Expr:
    """``tag`` neither falling nor rising faster than ``band_per_min`` over the window.

    Unknown (None, the step holds) while ``tag`` is not GOOD now or has less than a window of fresh,
    gap-free history: a rate is never False for want of data, so ``~rate & ~rate`` cannot turn "no
    data" into "steady".
    """
    return ~T(tag).falling_faster_than(band_per_min, window_s) & ~T(tag).rising(window_s, band_per_min)
