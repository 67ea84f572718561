"""GAS-L5: leak in the GT gas compartment, detector driven (plant-reference.md 4.6, procedures.md A2 zone 5).

Theory of operation
-------------------
Starts by itself on the rising edge of "any GD-401x >= 10 %LEL" (H alarm). The written plan wants the
unit unloaded and stopped *before* the automatic 2oo3 trip at 25 %LEL, and a 3 mm leak reaches the
trip about 20 s after the first alarm (3.6), so the procedure never waits for a person to start
the unload when the instruments already agree:

* L5.1 verifies the alarm. The operator's task (2 min) runs, but the channel comparison decides
  first: two channels at H (2oo3, or 2oo2 on the healthy two when one is faulted: F-G09) make the
  alarm valid at once; one channel in alarm while the two others read no gas flags a suspected
  detector fault (``SUSPECT_DETECTOR``, F-G10) and asks for a local check; one channel reading no
  gas while the two others are in alarm (stuck low, F-G11) is flagged the same way but does not
  hold anything up. An unanswered verification is treated as valid (table: "Unverified: treat as
  valid"); the operator's "detector fault" answer parks the run in ``L5.1.spurious``, which still
  watches the other channels and moves on if they corroborate.
* L5.2 starts the unload: FAST_UNLOAD when any channel is at HH (20 %) or rising faster than
  1 %LEL/10 s, else normal UNLOAD (upgraded to fast if the gas keeps rising). It is confirmed by
  JT-400 falling within 1 min, else a manual trip (XY-400 := 0). The operator can hold or abort the
  run at any time (base: Hold / Abort); the engine's interlocks are never touched by that.
* L5.3: the 2oo3 trip itself is the site's cause-and-effect interlock (the engine) and the PLC's own
  trip, never this procedure. L5.3 only checks that it happened: XS-400 TRIPPED, SRV-320 closed and
  no fuel flow within 1 s of the vote. A GT trip from any cause satisfies the stop (rule 4.10-3).
  When the GT fails to trip (F-G15) the operator's manual ESD follows, then XV-301 and XV-205 are
  closed in that order (command-and-verify, one at a time): the GT starves within about 10 s.
* L5.4 keeps the ventilation running, isolates with XV-301 and waits until every healthy channel
  reads < 5 %LEL for 10 min; after the G0 permissives a gas test of the compartment ends the run.

Choices where the table is silent (A): "reads no gas" is < 3 %LEL; JT-400 "falling" is faster than
5 MW/min over 10 s; a normal unload gets 20 min to reach a stop (250 MW at 15 MW/min + 1 min of fuel
shut-down), a fast one 9 min; L5.4 gives the compartment 2 h to clear before escalating.
"""

from __future__ import annotations

from plantctl.engine import Role
from plantctl.expr import TRUE, Expr, T, any_of
from plantctl.procedures import Cmd, ProcedureDef, Step, StepKind, Task

from ._gas_common import (
    DETECTORS,
    GD_ALARM_H,
    GD_ALARM_HH,
    GD_CLEAR,
    GD_TRIP,
    GT_TRIPPED,
    MANUAL_TRIP_TIMEOUT_S,
    NO_GT_FLOW,
    STATION,
    NumVar,
    all_channels_below,
    channel_alone_high,
    channel_alone_low,
    g0_permissive,
    two_of_three_at,
)

# -- numbers of the table (plant-reference.md 4.6 unless stated) ----------------------------------
VERIFY_TIMEOUT_S = 120.0  # L5.1: 2 min (A); unverified: treat as valid
FAST_RISE_LEL_PER_MIN = 6.0  # L5.2: "rising > 1 %LEL/10 s"
RISE_WINDOW_S = 10.0
UNLOAD_START_S = 60.0  # L5.2: 1 min to start (JT-400 falling), else manual trip
JT_FALLING_MW_MIN = 5.0  # "JT-400 falling" (A): fast unload is 40, normal 15 MW/min (3.5)
JT_WINDOW_S = 10.0
FAST_STOP_S = 540.0  # fast unload 6.3 min + 1 min fuel shut-down + margin (3.5): 9 min
NORMAL_STOP_S = 1200.0  # normal unload 16.7 min + 1 min fuel shut-down + margin (A)
TRIP_CONFIRM_S = 1.0  # L5.3: XS-400 TRIPPED and ZSC-320 within 1 s after the vote
MANUAL_ESD_S = 30.0  # L5.3 on failure: manual ESD, XV-301 (8 s) then XV-205 (8 s), margin (A)
CLEAR_HOLD_S = 600.0  # L5.4: all channels < 5 % for 10 min
CLEAR_TIMEOUT_S = 7200.0  # L5.4: no table timeout; 2 h (A)
GAS_TEST_S = 3600.0  # L5.4: gas test of the compartment before entry (A)
SPURIOUS_WATCH_S = 8 * 3600.0  # detector declared faulty: repair within a shift (A)

VOTE: Expr = two_of_three_at(GD_TRIP)
CORROBORATED: Expr = two_of_three_at(GD_ALARM_H)
TRIPPED_OR_VOTE: Expr = VOTE | GT_TRIPPED
FAST: Expr = any_of([T(g) >= GD_ALARM_HH for g in DETECTORS]
                    + [T(g).rising(RISE_WINDOW_S, FAST_RISE_LEL_PER_MIN) for g in DETECTORS])
UNLOADING: Expr = T("JT-400").falling_faster_than(JT_FALLING_MW_MIN, JT_WINDOW_S) | T("XS-400").state(
    "STOPPING", "OFF", "TRIPPED")
TO_L53 = ((TRIPPED_OR_VOTE, "L5.3"),)
LETTERS = ("A", "B", "C")


def _flag(sid: str, text: str, sets: dict[str, object], next_: str) -> Step:
    """A pass-through step that records a finding in the run's variables (journaled with the move)."""
    return Step(sid, text, StepKind.WAIT, actor="PLC", confirm=TRUE, next=next_, on_fail=next_, timeout_s=1.0,
                sets=sets, src=False)


STEPS: tuple[Step, ...] = (
    Step("L5.1", "Detector alarm: any GD-401x >= 10 %LEL. Verify it is real: compare with the other two channels, "
         "check fault status and that ventilation is running. Keep the compartment closed to people.",
         StepKind.TASK, actor="PLC/OP", next="L5.1.ok", on_fail="L5.1.ok", timeout_s=VERIFY_TIMEOUT_S,
         task=Task("Verify the compartment gas alarm", Role.OPERATOR,
                   ("Compare GD-401A/B/C", "Check the detector fault status (XA-401A/B/C)",
                    "Check ventilation is running (FS-411, fans)", "Keep the compartment closed to people"),
                   {"valid": "", "detector fault": "L5.1.spurious"}),
         branches=(*TO_L53, (CORROBORATED, "L5.1.ok"),
                   *((channel_alone_high(i), f"L5.1.{x}") for i, x in enumerate(LETTERS))),
         fail_alarm="GAS-L5 L5.1: gas alarm not verified within 2 min: treated as valid"),
    Step("L5.1.ok", "Alarm valid: check whether one channel reads no gas while the other two do (stuck low).",
         StepKind.DECIDE, actor="PLC", next="L5.1.valid",
         # a channel that cannot be compared flags nothing: the alarm is valid either way
         on_unknown="L5.1.valid",
         branches=tuple((channel_alone_low(i), f"L5.1.low{x}") for i, x in enumerate(LETTERS)), src=False),
    _flag("L5.1.valid", "Alarm valid (ALARM_VALID): prepare to stop.", {"ALARM_VALID": True}, "L5.2"),
    *(_flag(f"L5.1.low{x}", f"Alarm valid; GD-401{x} reads no gas while the other two do: suspected detector "
            f"fault on GD-401{x} (stuck low).", {"ALARM_VALID": True, "SUSPECT_DETECTOR": f"GD-401{x}"}, "L5.2")
      for x in LETTERS),
    *(_flag(f"L5.1.{x}", f"GD-401{x} is in alarm while the other two channels read no gas: suspected detector "
            f"fault on GD-401{x}.", {"SUSPECT_DETECTOR": f"GD-401{x}"}, "L5.1.check")
      for x in LETTERS),
    Step("L5.1.check", "One channel disagrees with the other two (SUSPECT_DETECTOR): check it locally (portable "
         "detector at the ventilation outlet, fault status, ventilation). Keep the compartment closed.",
         StepKind.TASK, actor="OP/FLD", next="L5.1.valid", on_fail="L5.1.valid", timeout_s=VERIFY_TIMEOUT_S,
         task=Task("Suspected gas detector fault: check locally", Role.OPERATOR,
                   ("Portable detector at the ventilation outlet", "Detector fault status", "Ventilation running"),
                   {"gas confirmed": "", "detector fault": "L5.1.spurious"}),
         branches=(*TO_L53, (CORROBORATED, "L5.1.valid")), src=False,
         fail_alarm="GAS-L5: suspected detector fault not checked within 2 min: alarm treated as valid"),
    Step("L5.1.spurious", "Not valid: detector fault. Raise a maintenance request for the detector and keep "
         "watching the other channels; close when it is repaired and reads no gas.",
         StepKind.TASK, actor="OP", next="DONE", on_fail="ESCALATED", timeout_s=SPURIOUS_WATCH_S,
         confirm=all_channels_below(GD_ALARM_H),
         task=Task("Gas detector fault: repair", Role.OPERATOR,
                   ("Maintenance request raised", "Detector repaired and reading no gas"), {"repaired": ""}),
         branches=(*TO_L53, (CORROBORATED, "L5.1.valid")), src=False),
    Step("L5.2", "Prepare to stop: start unload (fast unload if any channel >= 20 %LEL or the trend is rising "
         "> 1 %LEL/10 s) and aim to stop before the automatic trip.",
         StepKind.DECIDE, actor="OP", next="L5.2.normal",
         # gas that cannot be read (a BAD channel, no fresh trend) is never "not rising": unload fast
         on_unknown="L5.2.fast",
         branches=(*TO_L53, (T("XS-400").state("OFF"), "L5.4"), (FAST, "L5.2.fast"))),
    Step("L5.2.fast", "Fast unload the GT (40 MW/min); JT-400 must be falling within 1 min.",
         StepKind.COMMAND, actor="OP", next="L5.2.stop", on_fail="L5.2.trip", timeout_s=UNLOAD_START_S,
         commands=(Cmd("HS-400", "FAST_UNLOAD"),), confirm=UNLOADING, sets={"UNLOAD": "fast"},
         branches=TO_L53, src=False, fail_alarm="GAS-L5: GT not unloading within 1 min: manual trip"),
    Step("L5.2.normal", "Unload the GT (15 MW/min); JT-400 must be falling within 1 min.",
         StepKind.COMMAND, actor="OP", next="L5.2.stop.normal", on_fail="L5.2.trip", timeout_s=UNLOAD_START_S,
         commands=(Cmd("HS-400", "UNLOAD"),), confirm=UNLOADING, sets={"UNLOAD": "normal"},
         branches=(*TO_L53, (FAST, "L5.2.fast")), src=False,
         fail_alarm="GAS-L5: GT not unloading within 1 min: manual trip"),
    Step("L5.2.stop", "Unloading: keep going to a stop (breaker open, fuel shut off) before the automatic trip.",
         StepKind.WAIT, actor="OP", next="L5.4", on_fail="L5.2.trip", timeout_s=FAST_STOP_S,
         confirm=T("XS-400").state("OFF") & T("ZSC-320").on(), branches=TO_L53, src=False),
    Step("L5.2.stop.normal", "Unloading: keep going to a stop (breaker open, fuel shut off) before the automatic "
         "trip; go to fast unload if the gas keeps rising.",
         StepKind.WAIT, actor="OP", next="L5.4", on_fail="L5.2.trip", timeout_s=NORMAL_STOP_S,
         confirm=T("XS-400").state("OFF") & T("ZSC-320").on(), branches=(*TO_L53, (FAST, "L5.2.fast")), src=False),
    Step("L5.2.trip", "Manual trip of the GT (ESD push-button, XY-400 := 0).",
         StepKind.COMMAND, actor="OP", next="L5.4", on_fail="L5.3.esd", timeout_s=MANUAL_TRIP_TIMEOUT_S,
         commands=(Cmd("XY-400", False, label="manual trip"),), src=False),
    Step("L5.3", "2oo3 >= 25 %LEL: automatic GT trip (SRV-320 closes): XS-400 TRIPPED, ZSC-320 within 1 s, "
         "FT-323 = 0. A GT trip from any cause satisfies the stop.",
         StepKind.WAIT, actor="PLC", next="L5.4", on_fail="L5.3.esd", timeout_s=TRIP_CONFIRM_S,
         confirm=GT_TRIPPED & T("ZSC-320").on() & NO_GT_FLOW,
         fail_alarm="GAS-L5 L5.3: GT did not trip (XS-400/SRV-320) within 1 s of the vote: manual ESD"),
    Step("L5.3.esd", "Trip command failed: manual ESD; close XV-301, then XV-205.",
         StepKind.COMMAND, actor="OP", next="L5.4", on_fail="ESCALATED", timeout_s=MANUAL_ESD_S,
         commands=(Cmd("XY-400", False, label="manual ESD"), Cmd("XY-301", False), Cmd("XY-205", False)),
         max_parallel=1, confirm=T("ZSC-301").on() & T("ZSC-205").on(), src=False),
    Step("L5.4", "After the stop: keep ventilation running, isolate with XV-301; no entry until all channels "
         "< 5 %LEL for 10 min and the compartment has been gas-tested.",
         StepKind.COMMAND, actor="OP", next="L5.G0", on_fail="ESCALATED", timeout_s=CLEAR_TIMEOUT_S,
         commands=(Cmd("XY-411A", True, label="ventilation"), Cmd("XY-301", False)),
         confirm=all_channels_below(GD_CLEAR) & T("ZSC-301").on() & T("FS-411").on(), confirm_for_s=CLEAR_HOLD_S,
         src=False,
         fail_alarm="GAS-L5 L5.4: compartment not gas-free: keep it isolated; check for an upstream leak (GAS-L4)"),
    g0_permissive("L5.G0", "L5.4.test"),
    Step("L5.4.test", "Gas-test the compartment before anyone enters (portable detector, < 5 %LEL).",
         StepKind.TASK, actor="FLD", next="DONE", on_fail="ESCALATED", timeout_s=GAS_TEST_S, field_work=True,
         confirm=NumVar("gas_test_lel", "<", GD_CLEAR) & all_channels_below(GD_CLEAR),
         task=Task("Gas-test the GT compartment", Role.OPERATOR,
                   ("Portable detector at several points", "Enter the highest reading as gas_test_lel"),
                   {"gas-free": "", "gas found": ""}, ("gas_test_lel",)),
         src=False),
)

PROCEDURE = ProcedureDef(
    id="GAS-L5",
    title="Leak in the GT gas compartment",
    station=STATION,
    source="procedures.md A2 zone 5; plant-reference.md 4.6",
    steps=STEPS,
    trigger=any_of(T(g) >= GD_ALARM_H for g in DETECTORS),
    trigger_text="compartment gas alarm: a GD-401x >= 10 %LEL",
    permissive_step="L5.G0",
)
