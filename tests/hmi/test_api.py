"""The HMI's REST API over a VirtualRig with sim_plc's station models (in-process, no sockets).

Each test drives the plant by ticking the rig, calls the API as a logged-in user,
then ticks again so the engine's events reach the journal, and checks the plant,
the engine and the journal: the API is only trusted for what it made happen.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import quote

from plantctl.journal import EventKind

GAS = "gas_station"


def events(ctrl: Any, kind: EventKind) -> list[Any]:
    return [e for e in ctrl.rig.events if e.kind is kind]


def actions(ctrl: Any, name: str) -> list[Any]:
    return [e for e in events(ctrl, EventKind.OPERATOR_ACTION) if e.payload.get("action") == name]


def leak_and_trip(ctrl: Any, hole_mm: float = 5.0, seconds: float = 40.0) -> None:
    ctrl.rig.plant.inject(GAS, "leak", {"zone": "GC", "hole_mm": hole_mm})
    ctrl.run_for(seconds)


async def test_login_sets_a_strict_httponly_cookie_and_returns_the_csrf_token(login: Any, ctrl: Any) -> None:
    anon = await login()
    r = await anon.client.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP in this test; see test_security for HTTPS
    body = r.json()
    assert body["user"] == "op1" and body["roles"] == ["operator"] and len(body["csrf"]) > 30
    ctrl.tick()
    ok = actions(ctrl, "login")
    assert ok and ok[-1].user == "op1" and ok[-1].payload["accepted"] is True


async def test_wrong_password_is_refused_and_journaled(login: Any, ctrl: Any) -> None:
    anon = await login()
    r = await anon.client.post("/api/login", json={"user": "op1", "password": "not-the-password-at-all"})
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    ctrl.tick()
    assert actions(ctrl, "login")[-1].payload["accepted"] is False


async def test_state_carries_values_with_quality_and_time(login: Any, ctrl: Any) -> None:
    s = await login("view")
    st = (await s.get("/api/state")).json()
    v, q, t = st["values"]["gas_station:PT-101"][:3]
    assert 4.0 < v < 5.0 and q == 2 and t == st["now"]
    assert st["links"]["gas_station"]["up"] is True
    assert st["controller"]["running"] is True
    ctrl.rig.drivers[GAS].set_link(False)
    ctrl.tick(2)
    st = (await s.get("/api/state")).json()
    item = st["values"]["gas_station:PT-101"]
    assert item[1] == 0 and item[3] == "comms lost"
    link = st["links"]["gas_station"]
    assert link["up"] is False and link["next_threshold_s"] == 1800.0 and link["thresholds_passed"] == 0


async def test_link_down_time_is_measured_against_the_manual_operation_thresholds(login: Any, ctrl: Any) -> None:
    s = await login("view")
    ctrl.rig.drivers[GAS].set_link(False)
    ctrl.run_for(1900.0)  # past 30 minutes of plant time
    link = (await s.get("/api/state")).json()["links"]["gas_station"]
    assert 1890.0 < link["down_s"] < 1910.0
    assert link["thresholds_passed"] == 1 and link["next_threshold_s"] == 6 * 3600.0


async def test_trip_alarm_first_out_and_acknowledge(login: Any, ctrl: Any) -> None:
    leak_and_trip(ctrl)
    s = await login("op1")
    data = (await s.get("/api/alarms")).json()
    trip = next(a for a in data["active"] if a["id"] == "GT-GAS-2OO3:trip")
    assert trip["priority"] == 1 and trip["state"] == "unacknowledged"
    fo = next(f for f in data["first_out"] if f["group"] == "GT-400")
    assert fo["interlock"] == "GT-GAS-2OO3" and fo["first_member"].startswith("GD-401")
    r = await s.post("/api/alarms/ack", {"id": "GT-GAS-2OO3:trip"})
    assert r.status_code == 200, r.text
    assert ctrl.engine.alarms.alarms["GT-GAS-2OO3:trip"].acked_by == "op1"
    ctrl.tick()
    acks = [e for e in events(ctrl, EventKind.ALARM) if e.payload["id"] == "GT-GAS-2OO3:trip" and e.user == "op1"]
    assert acks and acks[-1].payload["state"] == "acknowledged"
    r = await s.post("/api/alarms/ack", {"id": "GT-GAS-2OO3:trip"})
    assert r.status_code == 409  # nothing left to acknowledge


async def test_shelving_needs_a_reason_expires_and_never_hides_a_trip(login: Any, ctrl: Any, hmi_clock: Any) -> None:
    leak_and_trip(ctrl)
    s = await login("op1")
    r = await s.post("/api/alarms/shelve", {"id": "GT-GAS-2OO3:trip", "duration_s": 600, "reason": "noise"})
    assert r.status_code == 409
    ctrl.rig.plant.inject(GAS, "detector_open_loop", {"tag": "GD-401B"})
    ctrl.run_for(2.0)
    degraded = "GT-GAS-2OO3:degraded"
    assert ctrl.engine.alarms.is_active(degraded)
    r = await s.post("/api/alarms/shelve", {"id": degraded, "duration_s": 600, "reason": ""})
    assert r.status_code == 422
    r = await s.post("/api/alarms/shelve", {"id": degraded, "duration_s": 600, "reason": "detector B on repair"})
    assert r.status_code == 200, r.text
    data = (await s.get("/api/alarms")).json()
    assert degraded not in {a["id"] for a in data["active"]}
    assert [a["shelf"]["user"] for a in data["shelved"] if a["id"] == degraded] == ["op1"]
    hmi_clock.advance(601.0)
    data = (await s.get("/api/alarms")).json()
    assert degraded in {a["id"] for a in data["active"]} and not data["shelved"]
    ctrl.tick()
    how = [e.payload.get("how") for e in actions(ctrl, "unshelve")]
    assert "expired" in how
    assert actions(ctrl, "shelve")[-1].payload["reason"] == "detector B on repair"


async def test_a_command_needs_its_confirm_step_and_reaches_the_plant(login: Any, ctrl: Any) -> None:
    s = await login("op1")
    body = {"station": GAS, "tag": "XY-411B", "value": True}
    r = await s.post("/api/commands", body)
    assert r.status_code == 400 and "confirm" in r.json()["detail"]
    r = await s.post("/api/commands", {**body, "confirm": True})
    assert r.status_code == 200, r.text
    ctrl.run_for(12.0)
    assert ctrl.rig.value("XS-411B", GAS) is True  # the standby fan runs
    cmd = [e for e in events(ctrl, EventKind.COMMAND) if e.payload["tag"] == "XY-411B"][-1]
    assert cmd.user == "op1"
    assert any(e.payload["tag"] == "XY-411B" for e in events(ctrl, EventKind.COMMAND_VERIFIED))


async def test_command_values_are_checked_against_the_io_list(login: Any) -> None:
    s = await login("op1")
    bad = [
        ({"station": GAS, "tag": "PCV-215A", "value": 9.0, "confirm": True}, 400),  # range 0..5 MPa
        ({"station": GAS, "tag": "HS-400", "value": "FLY", "confirm": True}, 400),  # not a state
        ({"station": GAS, "tag": "PT-101", "value": 1.0, "confirm": True}, 400),  # an input
        ({"station": GAS, "tag": "XY-999", "value": True, "confirm": True}, 404),
    ]
    for body, status in bad:
        r = await s.post("/api/commands", body)
        assert r.status_code == status, (body, r.text)


async def test_restoring_gas_needs_a_second_different_user_within_two_minutes(login: Any, ctrl: Any,
                                                                              hmi_clock: Any) -> None:
    op1, op2, view = await login("op1"), await login("op2"), await login("view")
    r = await op1.post("/api/commands", {"station": GAS, "tag": "XY-201", "value": True, "confirm": True})
    assert r.status_code == 202, r.text
    pid = r.json()["pending"]["id"]
    assert not [e for e in events(ctrl, EventKind.COMMAND) if e.payload["tag"] == "XY-201"]
    assert (await op1.post(f"/api/confirmations/{pid}/confirm")).status_code == 403  # same person
    assert (await view.post(f"/api/confirmations/{pid}/confirm")).status_code == 403  # role
    r = await op2.post(f"/api/confirmations/{pid}/confirm")
    assert r.status_code == 200, r.text
    assert (await op2.post(f"/api/confirmations/{pid}/confirm")).status_code == 404  # only once
    ctrl.tick()
    act = [e for e in events(ctrl, EventKind.OPERATOR_ACTION) if e.payload.get("tag") == "XY-201"
           and e.payload.get("action") == "command"][-1]
    assert act.user == "op1" and act.payload["confirmed_by"] == "op2" and act.payload["accepted"] is True
    # a request nobody confirms in time expires
    r = await op1.post("/api/commands", {"station": GAS, "tag": "XY-205", "value": True, "confirm": True})
    pid = r.json()["pending"]["id"]
    hmi_clock.advance(121.0)
    assert (await op2.post(f"/api/confirmations/{pid}/confirm")).status_code == 404
    assert (await op1.get("/api/confirmations")).json() == []


async def test_bypass_with_two_people_then_removal(login: Any, ctrl: Any) -> None:
    sup, eng, op = await login("sup1"), await login("eng1"), await login("op1")
    body = {"interlock": "GT-GAS-2OO3", "tag": "GD-401B", "reason": "calibration", "duration_s": 1800}
    assert (await op.post("/api/interlocks/bypass", body)).status_code == 403
    r = await sup.post("/api/interlocks/bypass", body)
    assert r.status_code == 202
    pid = r.json()["pending"]["id"]
    assert (await op.post(f"/api/confirmations/{pid}/confirm")).status_code == 403  # operators may not bypass
    r = await eng.post(f"/api/confirmations/{pid}/confirm")
    assert r.status_code == 200, r.text
    il = ctrl.engine.interlocks["GT-GAS-2OO3"]
    assert il.bypass is not None and il.bypass.tag == "GD-401B" and il.bypass.user == "sup1"
    ctrl.tick()
    on = events(ctrl, EventKind.BYPASS_ON)[-1]
    assert on.user == "sup1" and on.payload["confirmed_by"] == "eng1"
    assert (await sup.post("/api/interlocks/bypass", body)).status_code == 409  # one member at a time
    r = await eng.post("/api/interlocks/bypass/remove", {"interlock": "GT-GAS-2OO3"})
    assert r.status_code == 202
    r = await sup.post(f"/api/confirmations/{r.json()['pending']['id']}/confirm")
    assert r.status_code == 200 and il.bypass is None


async def test_trip_reset_is_two_person_and_refused_while_the_cause_holds(login: Any, ctrl: Any) -> None:
    leak_and_trip(ctrl)
    op1, op2 = await login("op1"), await login("op2")
    r = await op1.post("/api/interlocks/reset", {"interlock": "GT-GAS-2OO3"})
    assert r.status_code == 202
    r = await op2.post(f"/api/confirmations/{r.json()['pending']['id']}/confirm")
    assert r.status_code == 409 and "cause still present" in r.json()["detail"]
    ctrl.rig.plant.clear(GAS, "leak")
    ctrl.run_for(240.0)
    r = await op1.post("/api/interlocks/reset", {"interlock": "GT-GAS-2OO3"})
    r = await op2.post(f"/api/confirmations/{r.json()['pending']['id']}/confirm")
    assert r.status_code == 200, r.text
    ctrl.tick()
    reset = events(ctrl, EventKind.TRIP_RESET)[-1]
    assert reset.user == "op1" and reset.payload["confirmed_by"] == "op2"


async def test_force_is_for_engineers_and_two_person(login: Any, ctrl: Any) -> None:
    sup, eng1, eng2 = await login("sup1"), await login("eng1"), await login("eng2")
    body = {"interlock": "GC-VENT-LOST", "mode": "force_normal", "reason": "fan test", "duration_s": 600}
    assert (await sup.post("/api/interlocks/override", body)).status_code == 403
    r = await eng1.post("/api/interlocks/override", body)
    assert r.status_code == 202
    pid = r.json()["pending"]["id"]
    assert (await sup.post(f"/api/confirmations/{pid}/confirm")).status_code == 403
    assert (await eng2.post(f"/api/confirmations/{pid}/confirm")).status_code == 200
    assert ctrl.engine.interlocks["GC-VENT-LOST"].override.kind == "force_normal"


async def test_procedure_run_task_answer_hold_resume_and_two_person_abort(login: Any, ctrl: Any) -> None:
    leak_and_trip(ctrl, seconds=5.0)
    ctrl.run_for(30.0)
    op1, op2 = await login("op1"), await login("op2")
    runs = (await op1.get("/api/procedures")).json()["runs"]
    run = next(r for r in runs if r["procedure"] == "TEST-L5")
    assert run["state"] == "L5.1" and run["tasks"][0]["key"] == "L5.1"
    assert run["tasks"][0]["checklist"][0] == "Compare GD-401A/B/C"
    rid = run["run"]
    path = f"/api/procedures/{quote(rid, safe='')}"  # run ids carry '#'
    r = await op1.post(f"{path}/answer", {"key": "L5.1", "answer": "valid"})
    assert r.status_code == 200, r.text
    ctrl.run_for(2.0)
    run = ctrl.procedures.runs[rid]
    assert run.state == "L5.4"  # the trip already closed SRV-320, so L5.3 passed at once
    task_events = [e for e in events(ctrl, EventKind.TASK) if e.payload.get("answer") == "valid"]
    assert task_events and task_events[-1].user == "op1"
    r = await op1.post(f"{path}/answer", {"key": "L5.4", "answer": "done"})
    assert r.status_code == 400 and "reading" in r.json()["detail"]  # a field the answer must carry
    assert (await op1.post(f"{path}/hold")).status_code == 200
    assert ctrl.procedures.runs[rid].held
    assert (await op1.post(f"{path}/resume")).status_code == 200
    assert not ctrl.procedures.runs[rid].held
    r = await op1.post(f"{path}/abort")
    assert r.status_code == 202 and not ctrl.procedures.runs[rid].finished
    r = await op2.post(f"/api/confirmations/{r.json()['pending']['id']}/confirm")
    assert r.status_code == 200, r.text
    assert ctrl.procedures.runs[rid].state == "ABORTED"
    ctrl.tick()
    last = [e for e in events(ctrl, EventKind.PROCEDURE_TRANSITION) if e.payload.get("to") == "ABORTED"][-1]
    assert last.user == "op1" and last.payload["confirmed_by"] == "op2"
    text = (await op1.get("/api/procedures/TEST-L5/mermaid?current=L5.4")).text
    assert text.startswith("---") or "stateDiagram" in text


async def test_trends_come_from_the_ring_buffer_of_pushed_states(login: Any, ctrl: Any, app: Any) -> None:
    hub = app.state.hmi.hub
    for _ in range(30):
        ctrl.run_for(1.0)
        hub.tick()
    s = await login("view")
    data = (await s.get("/api/trends", params={"keys": "gas_station:PT-101,gas_station:GD-401A",
                                               "window_s": 600})).json()
    pts = data["series"]["gas_station:PT-101"]
    assert len(pts) >= 25
    assert all(4.0 < v < 5.0 for _, v in pts)
    assert pts == sorted(pts)


async def test_journal_filters_and_exports(login: Any, ctrl: Any) -> None:
    leak_and_trip(ctrl)
    s = await login("op1")
    await s.post("/api/alarms/ack", {"id": "GT-GAS-2OO3:trip"})
    ctrl.tick()
    data = (await s.get("/api/journal", params={"kinds": "TRIP"})).json()
    assert data["records"] and {r["kind"] for r in data["records"]} == {"TRIP"}
    mine = (await s.get("/api/journal", params={"user": "op1", "kinds": "ALARM"})).json()["records"]
    assert mine and all(r["user"] == "op1" for r in mine)
    seqs = [r["seq"] for r in (await s.get("/api/journal", params={"limit": 50})).json()["records"]]
    assert seqs == sorted(seqs, reverse=True)
    r = await s.get("/api/journal/export", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:2] == ["seq", "t_plant"] and len(rows) - 1 == ctrl.journal.head[0]
    r = await s.get("/api/journal/export", params={"format": "jsonl", "kinds": "TRIP"})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines and all(x["kind"] == "TRIP" and len(x["hash"]) == 64 for x in lines)


async def test_engineer_fault_panel_injects_into_the_plant(login: Any, ctrl: Any) -> None:
    eng, op = await login("eng1"), await login("op1")
    cat = (await eng.get("/api/faults/catalogue")).json()
    assert any(f["fault"] == "leak" and f["station"] == GAS for f in cat)
    body = {"station": GAS, "fault": "leak", "params": {"zone": "GC", "hole_mm": 5}}
    assert (await op.post("/api/faults/inject", body)).status_code == 403
    r = await eng.post("/api/faults/inject", body)
    assert r.status_code == 200, r.text
    assert (await eng.post("/api/faults/inject", {**body, "params": {"zone": "XX"}})).status_code == 400
    active = (await eng.get("/api/faults/active")).json()
    assert any(a["fault"] == "leak" for a in active)
    ctrl.run_for(30.0)
    assert "GT-GAS-2OO3" in ctrl.engine.tripped()
    r = await eng.post("/api/faults/clear", {"station": GAS})
    assert r.status_code == 200 and not (await eng.get("/api/faults/active")).json()


async def test_admin_manages_users_and_a_disabled_user_is_logged_out(login: Any, users: Any) -> None:
    adm, op2 = await login("adm"), await login("op2")
    r = await adm.post("/api/users", {"name": "newop", "roles": ["operator"], "password": "short"})
    assert r.status_code == 400
    r = await adm.post("/api/users", {"name": "newop", "roles": ["operator"], "password": "plenty-long-secret-9"})
    assert r.status_code == 200 and users.get("newop") is not None
    r = await adm.post("/api/users/op2/disabled", {"disabled": True})
    assert r.status_code == 200
    assert (await op2.get("/api/state")).status_code == 401
    listing = (await adm.get("/api/users")).json()["users"]
    assert next(u for u in listing if u["name"] == "op2")["disabled"] is True
    assert all("hash" not in u for u in listing)
