"""Secrets never reach the logs or the journal.

The demo's own stack (``hmi.demo.run_demo``: simulator with the secured OPC-UA server, the
controller with its OPC-UA password from the environment, the HMI with users created at random) runs
in this process with every logger at DEBUG, asyncua's and uvicorn's included. Meanwhile people log in
(every user), mistype a password, change their own, an admin adds a user and resets a password, and
the pump station's OPC-UA session is dropped and re-opened (so the password is sent again). Then the
log records (messages, arguments, tracebacks), stderr, the journal (every record), the historian and
the users file are searched for the OPC-UA password and every password used, and none is found.

stdout is the one place a password appears, by design: ``plantctl demo`` prints the passwords of
the users it has just created, once (as ``plantctl user add --generate`` does). The test checks that
those lines are the only ones, and that no password set later is ever printed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import harness_stack as hs
import httpx
import pytest

from hmi.demo import run_demo
from plantctl.paths import io_dir, sites_dir

OPCUA_PASSWORD = "opcua-Secret-7f3a9c21d4"
NEW_OWN = "moss-anchor-Granite-4471"
NEW_USER = "reed-lantern-Quartz-8823"
RESET = "cobalt-fjord-Ember-1937"


def _site(tmp: Path) -> Path:
    text = (sites_dir() / "demo.yaml").read_text()
    head, _, matrix = text.partition("\ninterlocks:\n")
    head = head.replace("../io/", f"{io_dir()}/").replace("../var/demo/", f"{tmp}/var/")
    head = head.replace("port: 15020", f"port: {hs.free_port()}").replace("127.0.0.1:14841", f"127.0.0.1:{hs.free_port()}")
    site = tmp / "site.yaml"
    site.write_text(head + "\ninterlocks:\n" + matrix)
    return site


@pytest.mark.timeout(120)
async def test_no_password_in_logs_journal_or_stderr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLANTCTL_SIM_OPCUA_PASSWORD", OPCUA_PASSWORD)
    monkeypatch.setenv("PLANTCTL_OPCUA_PASSWORD", OPCUA_PASSWORD)
    caplog.set_level(logging.DEBUG)
    for name in ("asyncua", "pymodbus", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "plantctl", "hmi",
                 "sim_plc"):
        caplog.set_level(logging.DEBUG, logger=name)  # put back as it was when the test ends
    site = _site(tmp_path)
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[str, list[tuple[str, str, str]]]] = asyncio.get_running_loop().create_future()
    demo = asyncio.get_running_loop().create_task(
        run_demo("127.0.0.1", 0, site_path=site, stop=stop, ready=lambda url, made: ready.set_result((url, made))))
    secrets = {OPCUA_PASSWORD, NEW_OWN, NEW_USER, RESET}
    try:
        url, created = await asyncio.wait_for(ready, 60)
        assert created, "the demo created its users"
        pw = {name: password for name, _, password in created}
        secrets |= set(pw.values())
        typo = pw["operator1"][:-1] + "X"
        secrets.add(typo)
        async with httpx.AsyncClient(base_url=url, timeout=20) as anon:
            r = await anon.post("/api/login", json={"user": "operator1", "password": typo})
            assert r.status_code == 401
        clients = {}
        for name, password in pw.items():
            c = httpx.AsyncClient(base_url=url, timeout=20)
            r = await c.post("/api/login", json={"user": name, "password": password})
            assert r.status_code == 200, r.text
            clients[name] = (c, r.json()["csrf"])
        try:
            op, op_csrf = clients["operator2"]
            r = await op.post("/api/me/password", json={"old": pw["operator2"], "new": NEW_OWN},
                              headers={"X-CSRF-Token": op_csrf})
            assert r.status_code == 200, r.text
            adm, adm_csrf = clients["admin"]
            r = await adm.post("/api/users", json={"name": "newcomer", "roles": ["operator"], "password": NEW_USER},
                               headers={"X-CSRF-Token": adm_csrf})
            assert r.status_code == 200, r.text
            r = await adm.post("/api/users/viewer/password", json={"password": RESET}, headers={"X-CSRF-Token": adm_csrf})
            assert r.status_code == 200, r.text
            # the pump station's OPC-UA session drops and comes back: the password crosses again
            eng, eng_csrf = clients["engineer"]
            r = await eng.post("/api/faults/inject", json={"station": "pump_station", "fault": "link_drop",
                                                          "params": {"duration_s": 1.0}},
                               headers={"X-CSRF-Token": eng_csrf})
            assert r.status_code == 200, r.text

            async def pump_up() -> bool:
                state = (await adm.get("/api/state")).json()
                return bool(state["links"]["pump_station"]["up"])

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            seen_down = False
            while not (seen_down and await pump_up()):
                assert loop.time() < deadline, "the pump station's OPC-UA session did not drop and return"
                seen_down |= not await pump_up()
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # a few more scans journaled
        finally:
            for c, _ in clients.values():
                await c.aclose()
    finally:
        stop.set()
        await asyncio.wait_for(demo, 30)

    # -- the search ----------------------------------------------------------------------------------
    var = tmp_path / "var"
    haystacks: dict[str, str] = {}
    logs = []
    for rec in caplog.records:
        logs.append(rec.getMessage())
        logs.append(repr(rec.args))
        if rec.exc_info:
            logs.append(logging.Formatter().formatException(rec.exc_info))
    haystacks["log records"] = "\n".join(logs)
    out, err = capfd.readouterr()
    haystacks["stderr"] = err
    journal = var / "journal.db"
    haystacks["journal"] = "\n".join(str(r) for r in hs.journal_records(journal))
    haystacks["users file"] = (var / "users.yaml").read_text()
    haystacks["historian"] = (var / "history.db").read_bytes().decode("latin-1")
    assert len(caplog.records) > 100 and len(haystacks["journal"]) > 1000, "the stack really ran and logged"
    for where, text in haystacks.items():
        leaked = [s for s in secrets if s in text]
        if leaked and where == "log records":
            for rec in caplog.records:
                if any(x in rec.getMessage() or x in repr(rec.args) for x in leaked):
                    print("LEAK", rec.name, rec.levelname, rec.pathname, rec.lineno, rec.getMessage()[:300])
        assert not leaked, f"{where} holds a password: {[s[:4] + '...' for s in leaked]}"
    # stdout: only the demo's one-time list of the users it created
    printed = [line for line in out.splitlines() if any(s in line for s in secrets)]
    assert all(line.split()[0] in pw and line.split()[-1] == pw[line.split()[0]] for line in printed), printed
    assert len(printed) == len(created)
    assert not any(s in out for s in (OPCUA_PASSWORD, NEW_OWN, NEW_USER, RESET, typo))
    print(f"RELIABILITY secrets: {len(secrets)} secrets, {len(caplog.records)} log records, "
          f"{len(haystacks['journal'])} journal chars searched")
