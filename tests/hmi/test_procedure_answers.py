"""Procedure answers and local confirmations through the HMI (fail-safe audit findings 5, 8, 9).

A refusal by the procedure manager reaches the operator as a refusal with the manager's reason
(400 for a malformed answer, 409 for one the plant or the procedure contradicts), never as a 500;
a task the procedure marks two-person goes through the same second-person confirmation as the
critical commands. The controller is the conftest's rig with one more procedure, a two-person task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hmi.rig import RigController
from plantctl.clock import VirtualClock
from plantctl.engine import Role
from plantctl.journal import EventKind, Journal
from plantctl.paths import sites_dir
from plantctl.procedures import ProcedureDef, Step, StepKind, Task
from plantctl.rig import VirtualRig
from plantctl.site import load_site


def two_person_procedure() -> ProcedureDef:
    """A stand-in for GAS-R's R1: the supervisor authorises, a second person confirms."""
    return ProcedureDef(
        id="TEST-R", title="Restore (HMI test procedure)", station="gas_station", source="test stand-in",
        steps=(Step("R1", "Restoring gas supply is a critical action: the shift supervisor authorises it.",
                    StepKind.TASK, next="DONE", on_fail="ESCALATED", timeout_s=1800,
                    task=Task("Authorise restoring the gas supply", Role.SUPERVISOR, ("Event under control",),
                              {"authorised": "", "not now": "ESCALATED"}, two_person=True)),),
    )


@pytest.fixture()
def ctrl(tmp_path: Path, procedure_def: ProcedureDef) -> RigController:
    from sim_plc.gas_station import GasStation
    from sim_plc.plant import Plant
    from sim_plc.pump_station import PumpStation

    clock = VirtualClock()
    plant: Any = Plant([GasStation(seed=0), PumpStation(seed=0)], clock)
    rig = VirtualRig({name: st.iolist for name, st in load_site(sites_dir() / "demo.yaml").stations.items()},
                     plant, clock, procedures=[procedure_def, two_person_procedure()],
                     journal=Journal(tmp_path / "journal.db"))
    c = RigController(rig)
    c.tick(20)  # 2 s: links up, every value read
    return c


async def _start(session: Any, ctrl: RigController, proc_id: str) -> str:
    r = await session.post("/api/procedures/start", {"procedure": proc_id})
    assert r.status_code == 200 and r.json()["accepted"], r.text
    ctrl.tick(2)
    return str(r.json()["run"])


def _path(run_id: str) -> str:
    return f"/api/procedures/{quote(run_id, safe='')}"  # run ids carry '#'


async def test_local_confirmation_against_a_good_reading_is_a_409_with_the_reason(login: Any,
                                                                                   ctrl: RigController) -> None:
    op1 = await login("op1")
    rid = await _start(op1, ctrl, "TEST-L5")
    r = await op1.post(f"{_path(rid)}/confirm-local")
    assert r.status_code == 409 and "answer its task" in r.json()["detail"]  # L5.1 is a task
    assert (await op1.post(f"{_path(rid)}/answer", {"key": "L5.1", "answer": "valid"})).status_code == 200
    ctrl.tick(2)
    run = ctrl.procedures.runs[rid]
    assert run.state == "L5.3" and not ctrl.rig.value("ZSC-320", "gas_station")  # the GT runs: SRV-320 open
    r = await op1.post(f"{_path(rid)}/confirm-local")
    assert r.status_code == 409, r.text
    assert "ZSC-320" in r.json()["detail"] and "say no" in r.json()["detail"]
    ctrl.tick(10)
    assert run.state == "L5.3" and "confirmed:L5.3" not in run.vars
    refused = [e for e in ctrl.rig.events if e.kind is EventKind.OPERATOR_ACTION
               and e.payload.get("action") == "confirm" and e.payload.get("accepted") is False]
    assert len(refused) == 2 and refused[-1].user == "op1"  # the refusals are journaled


@pytest.mark.parametrize("extra", [{"confirmed:L5.3": True}, {"permissives": True}, {"FUEL_URGENT_REQUESTED": 1}])
async def test_an_answer_with_values_the_task_does_not_ask_for_is_a_400(login: Any, ctrl: RigController,
                                                                        extra: dict[str, Any]) -> None:
    op1 = await login("op1")
    rid = await _start(op1, ctrl, "TEST-L5")
    r = await op1.post(f"{_path(rid)}/answer", {"key": "L5.1", "answer": "valid", "values": extra})
    assert r.status_code == 400, r.text
    assert next(iter(extra)) in r.json()["detail"]
    run = ctrl.procedures.runs[rid]
    assert not set(extra) & set(run.vars) and "L5.1" in run.tasks


async def test_a_two_person_answer_waits_for_a_second_person(login: Any, ctrl: RigController) -> None:
    sup, op1, view = await login("sup1"), await login("op1"), await login("view")
    rid = await _start(sup, ctrl, "TEST-R")
    r = await sup.post(f"{_path(rid)}/answer", {"key": "R1", "answer": "authorised"})
    assert r.status_code == 202, r.text
    pid = r.json()["pending"]["id"]
    ctrl.tick(2)
    run = ctrl.procedures.runs[rid]
    assert run.state == "R1" and "R1" in run.tasks  # nothing happens before the second person
    assert (await sup.post(f"/api/confirmations/{pid}/confirm")).status_code == 403  # the same person
    assert (await view.post(f"/api/confirmations/{pid}/confirm")).status_code == 403  # role
    r = await op1.post(f"/api/confirmations/{pid}/confirm")
    assert r.status_code == 200, r.text
    ctrl.tick(2)
    assert run.state == "DONE"
    [ev] = [e for e in ctrl.rig.events if e.kind is EventKind.TASK and e.payload.get("answer") == "authorised"]
    assert ev.user == "sup1" and ev.payload["confirmed_by"] == "op1"
