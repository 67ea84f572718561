"""The scenario runner, its reports, coverage, generation and the wire runner.

The library scenarios themselves are pytest items of scenarios/ (scenarios/conftest.py); the tests here
check the machinery around them. Library results are kept for the whole process by run_scenario, so a
session that also collects scenarios/ runs each file once.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from plantctl.cli import main
from plantctl.errors import ConfigError
from plantctl.procedure_cli import load_definitions
from plantctl.procedures import ProcedureDef
from plantctl.scenario import (
    ScenarioResult,
    ScenarioRunner,
    WireOptions,
    WireRunner,
    coverage,
    prepare,
    run_library,
    run_scenario,
)
from plantctl.scenario_cli import limits_for
from plantctl.scenario_generate import implied
from plantctl.scenario_report import write_report
from plantctl.voting import DegradedMode

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"
SITE = ROOT / "sites" / "demo.yaml"
GT_LEAK = LIBRARY / "gt-compartment-3mm-leak-unloads-before-trip.yaml"
POWER_LOSS = LIBRARY / "pump-power-loss-diesel-takes-over-and-pumps-restart-one-by-one.yaml"


def scenario_file(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\nproves: a test of the runner\nsite: {SITE}\n{body}", encoding="utf-8")
    return p


def line_with(path: Path, text: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in {path}")


# =====================================================================================================
# the file: unknown names stop the run with file:line: field: message
# =====================================================================================================
GOOD_BODY = """\
stations: [gas_station]
procedures: [GAS-L5]
duration: 1 min
events:
  - at: 10 s
    inject: {station: gas_station, fault: leak, params: {zone: GC, hole_mm: 3}}
expect:
  - {tag: XS-400, value: RUNNING, at: 5 s}
"""


@pytest.mark.parametrize(("wrong", "replace", "field", "message"), [
    ("fault", ("fault: leak,", "fault: leek,"), "events[0].inject.fault", "unknown fault leek"),
    ("tag", ("tag: XS-400,", "tag: XS-499,"), "expect[0].tag", "unknown tag XS-499"),
    ("station", ("stations: [gas_station]", "stations: [gas_statoin]"), "stations[0]", "unknown station gas_statoin"),
    ("procedure", ("procedures: [GAS-L5]", "procedures: [GAS-L9]"), "procedures[0]", "unknown procedure GAS-L9"),
])
def test_unknown_names_give_file_line_field_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], wrong: str,
                                                    replace: tuple[str, str], field: str, message: str) -> None:
    path = scenario_file(tmp_path, f"unknown-{wrong}", GOOD_BODY.replace(*replace))
    line = line_with(path, replace[1])
    with pytest.raises(ConfigError) as err:
        prepare(path)
    expected = f"{path}:{line}: {field}: {message}"
    assert any(m.startswith(expected) for m in err.value.messages), err.value.messages
    # the command line stops before running anything and prints the same line
    assert main(["scenario", "run", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_the_good_file_runs(tmp_path: Path) -> None:
    res = run_scenario(scenario_file(tmp_path, "good", GOOD_BODY))
    assert res.passed, res.failures()


def test_bad_fault_parameters_and_unknown_tasks_are_refused_before_the_run(tmp_path: Path) -> None:
    body = GOOD_BODY.replace("hole_mm: 3", "hole: 3") + "answers:\n  - {procedure: GAS-L5, task: L5.9, answer: valid}\n"
    path = scenario_file(tmp_path, "bad-params", body)
    with pytest.raises(ConfigError) as err:
        prepare(path)
    msgs = "\n".join(err.value.messages)
    assert f"{path}:{line_with(path, 'hole: 3')}: events[0].inject.params: fault leak: unknown parameter(s) hole" in msgs
    assert f"{path}:{line_with(path, 'L5.9')}: answers[0].task: GAS-L5 has no task L5.9" in msgs


# =====================================================================================================
# outputs: JUnit, the HTML report
# =====================================================================================================
def test_junit_lists_each_scenario_and_the_failure_in_the_files_words(tmp_path: Path) -> None:
    failing = scenario_file(tmp_path, "gt-never-trips", GOOD_BODY + "  - {never: TRIP, says: the GT is never tripped}\n")
    out = tmp_path / "junit.xml"
    assert main(["scenario", "run", str(GT_LEAK), str(failing), "--junit", str(out)]) == 1
    suite = ET.parse(out).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"gt-compartment-3mm-leak-unloads-before-trip", "gt-never-trips"}
    assert cases["gt-compartment-3mm-leak-unloads-before-trip"].find("failure") is None
    failure = cases["gt-never-trips"].find("failure")
    assert failure is not None
    line = line_with(failing, "never: TRIP")
    assert f"{failing}:{line}: the GT is never tripped: it happened at t = " in (failure.get("message") or "")


def test_report_of_the_gt_leak_has_one_picture_with_gas_limits_unload_and_trip(tmp_path: Path) -> None:
    res = run_scenario(GT_LEAK)
    page = write_report(res, tmp_path, limits_for(res)).read_text(encoding="utf-8")
    assert page.count("<svg") == 1
    svg = page[page.index("<svg"):page.index("</svg>")]
    for text in ("GD-401A", "GD-401B", "GD-401C",  # the concentrations
                 "H 10", "HH 20",  # the detector alarm lines (I/O list)
                 "TRIP 25",  # the 2oo3 trip line (site interlock)
                 "HS-400=FAST_UNLOAD",  # the unload
                 "TRIP GT-GAS-2OO3"):  # the trip
        assert text in svg, text
    assert "PASS" in page and res.proves.strip()[:40] in page


# =====================================================================================================
# expectations that fail say so in the engineer's terms
# =====================================================================================================
def test_spacing_expectation_catches_two_motors_started_together(tmp_path: Path) -> None:
    """F-P15: the check that would catch a simultaneous start, seen failing."""
    body = """\
stations: [pump_station]
duration: 3 min
scan_period: 1.0
seed: 1
events:
  - {at: 1 min, command: {station: pump_station, tag: HS-701C, value: true}}
  - {at: 1 min, command: {station: pump_station, tag: HS-711B, value: true}}
expect:
  - {event: COMMAND, where: {tag: "HS-7[01]1[ABC]", value: true}, apart: 30 s, says: motor starts 30 s apart}
  - {event: LIMIT_CROSSING, where: {tag: EI-601, to: L}, after: 1 min, within: 70 s}
"""
    path = scenario_file(tmp_path, "two-motors-together", body)
    res = run_scenario(path)
    assert not res.passed
    [failure] = res.failures()
    assert failure.startswith(f"{path}:{line_with(path, 'apart: 30 s')}: motor starts 30 s apart: ")
    assert "HS-701C" in failure and "HS-711B" in failure and "only 0.0 s apart" in failure
    assert res.expectations[1].passed  # and the bus dipped into its alarm


def test_degraded_override_reaches_the_engine(tmp_path: Path) -> None:
    body = GOOD_BODY.replace("duration: 1 min", "duration: 1 min\ndegraded_override: {GT-GAS-2OO3: reduce}")
    runner = ScenarioRunner(scenario_file(tmp_path, "override", body))
    assert runner.rig.engine.interlocks["GT-GAS-2OO3"].spec.degraded is DegradedMode.REDUCE
    site_mode = next(i.degraded for i in runner.site.interlocks if i.id == "GT-GAS-2OO3")
    assert site_mode is DegradedMode.DROP  # the site itself is unchanged
    bad = scenario_file(tmp_path, "override-bad", body.replace("GT-GAS-2OO3: reduce", "GT-GAS-3OO3: reduce"))
    with pytest.raises(ConfigError, match=r"degraded_override.GT-GAS-3OO3: unknown interlock GT-GAS-3OO3"):
        prepare(bad)


# =====================================================================================================
# a deliberately broken procedure fails a library scenario, in words
# =====================================================================================================
def drop_p4(defs: dict[str, Any]) -> dict[str, Any]:
    """PUMP-PL without its series-valve step P4 (and the hand-wheel fallback only P4 leads to)."""
    pl: ProcedureDef = defs["PUMP-PL"]
    steps = []
    for s in pl.steps:
        if s.id in ("P4", "P4.fld"):
            continue
        steps.append(dataclasses.replace(s, next="P5" if s.next == "P4" else s.next,
                                         on_fail="P5" if s.on_fail == "P4" else s.on_fail))
    return {**defs, "PUMP-PL": dataclasses.replace(pl, steps=tuple(steps))}


def test_broken_procedure_is_caught() -> None:
    assert run_scenario(POWER_LOSS).passed  # the library scenario passes with the real procedure
    res = run_scenario(POWER_LOSS, mutate=drop_p4)
    assert not res.passed
    text = "\n".join(res.failures())
    for name in ("MOV-740", "P4", "PT-730"):
        assert name in text, text
    # e.g. ".../pump-power-loss...yaml:38: PUMP-PL opens the series valve MOV-740 (P4): PUMP-PL has no step P4;
    #       it went P1 -> P2 -> P3 -> P5 -> ..."
    assert "PUMP-PL opens the series valve MOV-740 (P4): PUMP-PL has no step P4; it went P1 -> P2 -> P3 -> P5" in text
    assert "still PT-730 was" in text and "at the deadline" in text


# =====================================================================================================
# coverage of the library
# =====================================================================================================
def library_results() -> list[ScenarioResult]:
    out = []
    for r in run_library(sorted(LIBRARY.glob("*.yaml")), jobs=2):
        assert isinstance(r, ScenarioResult), r
        out.append(r)
    return out


@pytest.mark.timeout(600)
def test_library_covers_every_src_step_of_every_procedure(capsys: pytest.CaptureFixture[str]) -> None:
    results = library_results()
    assert len(results) >= 30
    assert all(r.passed for r in results), [f for r in results for f in r.failures()]
    defs = load_definitions()
    lines, missing = coverage(results, defs)
    assert missing == [], missing
    src = sum(1 for d in defs.values() for s in d.steps if s.src)
    assert lines[-1] == f"[SRC] steps covered: {src} of {src}; [SRC] steps not covered by any scenario: 0"
    # every procedure of the catalogue is exercised by at least one scenario
    assert {pid for r in results for pid, _ in r.steps_visited} >= set(defs)
    # the command line agrees (results are reused), and --strict fails on an incomplete library
    assert main(["scenario", "coverage", "--strict", str(LIBRARY)]) == 0
    assert "[SRC] steps not covered by any scenario: 0" in capsys.readouterr().out
    assert main(["scenario", "coverage", "--strict", str(GT_LEAK)]) == 1
    assert "not covered: GAS-F F1" in capsys.readouterr().err


def test_every_library_file_is_named_after_what_it_proves() -> None:
    for path in LIBRARY.glob("*.yaml"):
        prep = prepare(path)
        assert prep.sc.name == path.stem, path
        assert path.stem == path.stem.lower() and " " not in path.stem
        assert prep.sc.record, f"{path.name}: record signals for the timeline"


# =====================================================================================================
# generated from the cause-and-effect matrix
# =====================================================================================================
def test_implied_degraded_modes() -> None:
    assert implied(DegradedMode.VOTE_TRIP, 2, 3, 1, 1) == (True, "2oo3")
    assert implied(DegradedMode.DROP, 2, 3, 1, 1) == (False, "2oo2")
    assert implied(DegradedMode.REDUCE, 2, 3, 1, 1) == (True, "1oo2")
    assert implied(DegradedMode.DROP, 2, 3, 2, 1) == (False, "2oo1")


def test_generated_cause_and_effect_scenarios_all_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "generate", "--from-ce", str(SITE), "-o", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    assert sorted(Path(line).name for line in capsys.readouterr().out.split()) == [f.name for f in files]
    gen = {f.stem for f in files}
    site = prepare(GT_LEAK).site
    for il in site.interlocks:  # one path per interlock, and the degraded modes of every voting group
        slug = il.id.lower()
        assert f"ce-{slug}-trips-and-acts" in gen, il.id
        if len(il.members) > 1:
            for mode in ("vote-trip", "drop", "reduce"):
                assert f"ce-{slug}-{mode}-one-member-faulted" in gen
    results = [run_scenario(f) for f in files]
    failed = [line for r in results for line in r.failures()]
    assert not failed, failed
    by_name = {r.name: r for r in results}
    # the expectations are the ones each path and mode imply
    drop = by_name["ce-gt-gas-2oo3-drop-one-member-faulted"]
    assert any(x.spec.never and x.passed for x in drop.expectations)
    reduce = by_name["ce-gt-gas-2oo3-reduce-one-member-faulted"]
    trip = next(e for e in reduce.events if e.kind.value == "TRIP")
    assert trip.payload["architecture"] == "1oo2"
    fire = by_name["ce-gt-fire-trips-and-acts"]
    assert {x.spec.where.get("tag") or x.spec.where.get("procedure") for x in fire.expectations} >= {
        "XY-400", "XY-320", "GAS-F"}


# =====================================================================================================
# over the wire
# =====================================================================================================
@pytest.mark.timeout(180)
@pytest.mark.parametrize("wire", ["modbus", "opcua"])
async def test_gt_leak_scenario_passes_over_the_wire(tmp_path: Path, wire: str) -> None:
    res = await WireRunner(GT_LEAK, wire, WireOptions(speed=15.0)).run(tmp_path)
    assert res.passed, res.failures()
    kinds = {e.kind.value for e in res.events}
    assert {"LINK_UP", "TRIP", "COMMAND_VERIFIED", "PROCEDURE_TRANSITION"} <= kinds
    # the same expectations as on the rig, judged from the controller's journal
    assert [x.text for x in res.expectations] == [x.text for x in run_scenario(GT_LEAK).expectations]
    assert (tmp_path / f"{res.name}-{wire}.db").is_file()
