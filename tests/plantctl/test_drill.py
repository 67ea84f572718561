"""``plantctl drill``: a scenario run against a running simulator and controller, people answering.

The simulator (sim_plc.runner.SimRunner, with its HTTP API and Modbus server) and the controller
(plantctl.runtime_cli.build_controller over Modbus) run in this process on one ScaledClock, 10 times
real time. The drill injects the scenario's fault through the HTTP API and reads the controller's
journal; the "operator" is this test, answering through the controller's procedure manager while the
drill runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plantctl.cli import main
from plantctl.clock import ScaledClock
from plantctl.drill import SimApi, markdown, run_drill, write_reports
from plantctl.engine import Actor, Role
from plantctl.paths import io_dir
from plantctl.procedure_cli import load_definitions
from plantctl.procedures import ProcedureManager
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from sim_plc.runner import SimConfig, SimRunner

SPEED = 10.0
OLGA = Actor("olga", frozenset({Role.OPERATOR}))

SITE = """\
site: drill-test
journal: journal.db
historian: {{backend: sqlite, path: history.db}}
stations:
  gas_station:
    io_list: {io}
    plc: {{protocol: modbus, host: 127.0.0.1, port: {port}, timeout_s: 1.0, period_ms: 300}}
procedures: [GAS-L5]
interlocks:
  - id: GT-GAS-2OO3
    station: gas_station
    description: GT compartment gas at trip level, 2 of 3 detectors >= 25 %LEL
    trip_group: GT-400
    vote: 2oo3
    degraded: drop
    degraded_reason: plant-reference 3.7 default (FAULT_VOTES_TRIP = false)
    on_delay_s: 0.5
    members:
      - {{tag: GD-401A, op: ">=", value: 25, deadband: 2}}
      - {{tag: GD-401B, op: ">=", value: 25, deadband: 2}}
      - {{tag: GD-401C, op: ">=", value: 25, deadband: 2}}
    effects:
      - {{command: XY-400, value: false}}
      - {{command: XY-320, value: false}}
      - {{procedure: GAS-L5}}
"""

SCENARIO = """\
name: drill-detector-stuck-high
proves: The shift recognises a detector stuck at 30 %LEL as a detector fault and does not stop the GT.
site: site.yaml
stations: [gas_station]
procedures: [GAS-L5]
duration: 100 s
events:
  - at: 5 s
    inject: {station: gas_station, fault: detector_stuck, params: {tag: GD-401A, value: 30}}
answers:
  - {procedure: GAS-L5, task: L5.1.check, answer: detector fault, after: 30 s}
expect:
  - {procedure: GAS-L5, reaches: L5.1.check, within: 40 s}
  - {procedure: GAS-L5, reaches: L5.1.spurious, within: 90 s, says: the shift calls it a detector fault}
  - {tag: XS-400, value: RUNNING, at: 80 s, says: the GT keeps running}
  - {never: TRIP}
"""


@pytest.mark.timeout(120)
async def test_drill_injects_reads_the_journal_and_scores_the_answers(tmp_path: Path) -> None:
    clock = ScaledClock(SPEED)
    cfg = SimConfig(stations=("gas_station",), opcua=False, http_port=0, cert_dir=tmp_path / "pki", seed=1)
    async with SimRunner(cfg, clock=clock) as sim:
        assert sim.http_url is not None
        (tmp_path / "site.yaml").write_text(
            SITE.format(io=io_dir() / "gas_station.yaml", port=sim.modbus["gas_station"].port), encoding="utf-8")
        scenario = tmp_path / "drill.yaml"
        scenario.write_text(SCENARIO, encoding="utf-8")
        site = load_site(tmp_path / "site.yaml", known_procedures=set(load_definitions()))
        ctrl = build_controller(site, clock)
        procs = ctrl.procedures
        assert isinstance(procs, ProcedureManager)
        async with ctrl:
            for _ in range(200):  # wall time for the Modbus link to come up, not plant logic
                if ctrl.engine.link_up.get("gas_station"):
                    break
                await asyncio.sleep(0.05)
            assert ctrl.engine.link_up["gas_station"]

            async def operator() -> float:
                """Answers the local-check task 20 plant-seconds after it opens."""
                while True:
                    for run in procs.runs.values():
                        task = run.tasks.get("L5.1.check")
                        if task is not None:
                            await clock.sleep_until(task.opened_at + 20.0)
                            out = procs.answer(run.run_id, "L5.1.check", "detector fault", OLGA, clock.now(),
                                               clock.wall())
                            assert out.accepted, out.message
                            return clock.now() - task.opened_at
                    await clock.sleep_until(clock.now() + 1.0)

            said: list[str] = []
            drill = asyncio.create_task(run_drill(scenario, sim.http_url, ctrl.journal, clock, poll_s=2.0,
                                                  say=said.append))
            waited = await asyncio.wait_for(operator(), 30)
            res = await asyncio.wait_for(drill, 60)
            assert sim.plant is not None
            active = sim.plant.active_faults()
        ctrl.journal.close()
    # the fault went in through the HTTP API at its time
    assert {"station": "gas_station", "fault": "detector_stuck", "tag": "GD-401A", "value": 30.0} in active
    assert any("fault injected: gas_station detector_stuck" in m for m in said)
    # every expectation judged from the journal and the simulator's tags
    assert [bool(x.passed) for x in res.expectations] == [True, True, True, True], [
        (x.text, x.seen) for x in res.expectations]
    # the response to the task, against its deadline, and the task left open
    by_task = {t.task: t for t in res.tasks}
    check = by_task["L5.1.check"]
    assert check.answer == "detector fault" and check.by == "olga" and check.verdict == "on time"
    assert check.response_s is not None and abs(check.response_s - waited) < 3.0
    assert check.deadline_s == pytest.approx(120.0) and check.target_s == pytest.approx(30.0)
    assert by_task["L5.1"].verdict.startswith("withdrawn")  # the channel comparison moved on at once
    assert by_task["L5.1.spurious"].verdict == "open at the end"  # 8 h to repair the detector
    assert res.score == 100
    md, page = write_reports(res, tmp_path / "report")
    text = md.read_text(encoding="utf-8")
    assert "## Score: 100 / 100" in text
    assert "| L5.1.check Suspected gas detector fault: check locally | GAS-L5#1 |" in text
    assert "on time" in text and "120 s" in text and "open at the end" in text
    assert "<h2>Score: 100 / 100</h2>" in page.read_text(encoding="utf-8")


async def test_a_late_answer_and_a_missed_step_lower_the_score(tmp_path: Path) -> None:
    """The scoring alone, on a journal written by hand: one answer late, one expectation missed."""
    from plantctl.drill import DrillResult, score_tasks
    from plantctl.journal import Event, EventKind
    from plantctl.scenario import Checker, prepare

    (tmp_path / "site.yaml").write_text(SITE.format(io=io_dir() / "gas_station.yaml", port=1502), encoding="utf-8")
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    prep = prepare(scenario)
    evs = [
        Event(EventKind.TASK, 10.0, 0.0, "gas_station", "GAS-L5#1", "", "",
              {"task": "L5.1.check", "opened": True, "title": "check", "due_in_s": 120.0}),
        Event(EventKind.TASK, 150.0, 0.0, "gas_station", "GAS-L5#1", "olga", "",
              {"task": "L5.1.check", "answer": "gas confirmed"}),
    ]
    checker = Checker(prep)
    checker.update(evs, 160.0, lambda st, tag: None)
    checker.finish(160.0)
    tasks = score_tasks(evs, prep, 160.0)
    res = DrillResult("x", scenario, "p", 0.0, 160.0, tasks, checker.expectations)
    assert tasks[0].verdict == "LATE" and tasks[0].response_s == pytest.approx(140.0)
    assert [x.text for x in res.missed_steps] == ["GAS-L5 reaches L5.1.check within 40 s",
                                                  "the shift calls it a detector fault"]
    # 5 scored items (1 task + 4 expectations): only "never TRIP" is good
    assert res.score == 20
    assert "LATE" in markdown(res) and "## Missed steps" in markdown(res)


def test_drill_command_is_registered_and_needs_a_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "site.yaml").write_text(SITE.format(io=io_dir() / "gas_station.yaml", port=1502), encoding="utf-8")
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    assert main(["drill", str(scenario), "--sim", "http://127.0.0.1:9", "--report", str(tmp_path)]) == 2
    assert "no journal at" in capsys.readouterr().err
    assert SimApi("http://127.0.0.1:9/").base == "http://127.0.0.1:9"
