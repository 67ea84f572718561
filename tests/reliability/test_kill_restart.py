"""The controller killed with SIGKILL at random moments of a running procedure, 20 times.

Separate processes on loopback, as in tests/e2e/test_restart.py and with its harness: the
simulator (pump station over Modbus TCP, HTTP fault API) and the controller (the real Controller
from ``build_controller``, with a scripted operator that answers every task after 5 s). The pump
station loses its power, so PUMP-PL runs (diesel, header checks, MOV-740, notifications, the outlet
MOVs two at a time, the fuel watch); after the 12th kill the power returns, so PUMP-PL hands over to
PUMP-PR (substation confirmation, the pumps restarted one by one) and the last kills land there.

Each kill comes at a random moment (a seeded random delay after the restarted controller is back
on its link: set PLANTCTL_KILL_SEED to replay a run). After each kill, and again after the restart:

1. the journal verifies (hash chain, guards), and an anchor taken before the kill still matches;
2. nothing written before the kill is missing or changed: every record any reader saw while the
   controller ran, and every record on disk right after the kill, is still there, same hash;
3. the procedure is where the plant is: each run that was active is restored into the step its
   last journaled transition entered (not an earlier one, not a later one), and no command the run
   had issued and seen verified before the kill is issued again by the same step after it.

At the end the plant and the journal agree: every command tag's last verified value is what the
PLC holds now, no command ever failed its verification, and PUMP-PR restarted the pumps.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import harness_stack as hs
import pytest

from plantctl.journal import verify
from plantctl.paths import io_dir, sites_dir

SPEED = 10.0
KILLS = 20
POWER_RETURN_AFTER = 12
DELAY_S = (0.2, 2.5)  # wall seconds between the controller being back and the next kill
E2E_HARNESS = hs.REPO / "tests" / "e2e" / "harness.py"
TERMINAL = {"DONE", "ESCALATED", "ABORTED", "HANDED_OVER", "FAILED"}


def _post(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _lives(recs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The journal cut at each CONFIG_LOAD: one list per controller process (command ids restart)."""
    out: list[list[dict[str, Any]]] = []
    for r in recs:
        if r["kind"] == "CONFIG_LOAD" or not out:
            out.append([])
        out[-1].append(r)
    return out


def _active_runs(recs: list[dict[str, Any]]) -> dict[str, str]:
    """run id -> the step its last journaled transition entered, for runs not finished."""
    last: dict[str, str] = {}
    for r in recs:
        p = r["payload"]
        if r["kind"] == "PROCEDURE_TRANSITION" and "run" in p:
            last[p["run"]] = p["to"]
    return {run: step for run, step in last.items() if step not in TERMINAL}


def _step_commands(life: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The commands of procedure steps (source RUN#n/STEP). An interlock's are not restored but
    re-derived from the plant: a cause that still holds after a restart trips (and commands) again."""
    return [r for r in life if r["kind"] == "COMMAND" and "#" in r["source"] and "/" in r["source"]]


def _verified_commands(life: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(source, tag, value) of every procedure-step command of one life that was verified in that life."""
    issued = {r["payload"]["id"]: r for r in _step_commands(life)}
    out: set[tuple[str, str, str]] = set()
    for r in life:
        if r["kind"] == "COMMAND_VERIFIED" and r["payload"]["id"] in issued:
            c = issued[r["payload"]["id"]]
            out.add((c["source"], c["payload"]["tag"], json.dumps(c["payload"]["value"])))
    return out


@pytest.mark.timeout(420)
def test_twenty_sigkills_lose_nothing_and_resume_where_the_plant_is(tmp_path: Path) -> None:
    seed = int(os.environ.get("PLANTCTL_KILL_SEED", "20260611"))
    rng = random.Random(seed)
    print(f"\nkill seed {seed} (PLANTCTL_KILL_SEED={seed} replays it)")
    ports_file = tmp_path / "ports.json"
    sim = subprocess.Popen([sys.executable, str(E2E_HARNESS), "sim", str(SPEED), str(ports_file)],
                           env=hs.child_env(), start_new_session=True)
    procs = [sim]
    try:
        ports = hs.wait_until(lambda: hs.read_json(ports_file), 60, "simulator ports")
        matrix = (sites_dir() / "demo.yaml").read_text().partition("\ninterlocks:\n")[2]
        pump_only = "\n  - id: ".join(b for b in matrix.split("\n  - id: ") if "station: gas_station" not in b)
        db = tmp_path / "journal.db"
        site = tmp_path / "site.yaml"
        site.write_text(f"""site: kill-restart
journal: {db}
historian: {{backend: sqlite, path: {tmp_path / 'history.db'}}}
engine: {{scan_period_ms: 100, stale_after_s: 3.0}}
stations:
  pump_station:
    io_list: {io_dir() / 'pump_station.yaml'}
    plc: {{protocol: modbus, host: 127.0.0.1, port: {ports['pump_station']['modbus']}, timeout_s: 0.5, period_ms: 100}}
procedures: [PUMP-PL, PUMP-PR]
interlocks:
{pump_only}""")
        api = f"http://127.0.0.1:{ports['http']}"

        def start_controller() -> subprocess.Popen[bytes]:
            p = subprocess.Popen([sys.executable, str(E2E_HARNESS), "controller", str(site), str(SPEED)],
                                 env=hs.child_env(), start_new_session=True)
            procs.append(p)
            return p

        def linked_since(n: int) -> bool:
            return any(r["kind"] == "LINK_UP" for r in hs.journal_records(db, since_seq=n))

        ctrl = start_controller()
        hs.wait_until(lambda: linked_since(0), 60, "controller link up")
        _post(f"{api}/faults", {"station": "pump_station", "fault": "power_loss", "params": {}})
        hs.wait_until(lambda: _active_runs(hs.journal_records(db)), 60, "PUMP-PL running")

        seen: dict[int, str] = {}  # seq -> hash of every record a reader saw
        kill_steps: list[dict[str, str]] = []
        delays: list[float] = []
        restart_s: list[float] = []
        for k in range(1, KILLS + 1):
            # a random moment of the running procedure; the reader keeps watching meanwhile
            delay = rng.uniform(*DELAY_S)
            delays.append(round(delay, 3))
            end = time.monotonic() + delay
            while time.monotonic() < end:
                seen.update((r["seq"], r["hash"]) for r in hs.journal_records(db, since_seq=max(seen, default=0)))
                time.sleep(min(0.1, max(0.0, end - time.monotonic())))
            os.kill(ctrl.pid, signal.SIGKILL)
            ctrl.wait(10)

            # -- right after the kill: the file is intact and holds everything a reader ever saw ----
            after_kill = hs.journal_records(db)
            res = verify(db)
            assert res.ok, (k, res.problems)
            by_seq = {r["seq"]: r["hash"] for r in after_kill}
            lost = {s for s, h in seen.items() if by_seq.get(s) != h}
            assert not lost, f"kill {k}: records seen before the kill are missing or changed: {sorted(lost)[:5]}"
            assert [r["seq"] for r in after_kill] == list(range(1, len(after_kill) + 1))
            seen.update(by_seq)
            head = after_kill[-1]
            active = _active_runs(after_kill)
            assert active, f"kill {k} came when no procedure was running"
            kill_steps.append(active)
            verified_before = _verified_commands(_lives(after_kill)[-1])

            if k == POWER_RETURN_AFTER:
                _post(f"{api}/faults", {"station": "pump_station", "fault": "power_return", "params": {}})

            # -- restart: the runs come back in the step they were in ----------------------------------
            t_restart = time.monotonic()
            ctrl = start_controller()

            def restored(n: int = len(after_kill), want: dict[str, str] = active) -> list[dict[str, Any]] | None:
                later = hs.journal_records(db, since_seq=n)
                got = [r for r in later if r["kind"] == "PROCEDURE_TRANSITION" and r["payload"].get("trigger") == "restore"]
                linked = any(r["kind"] == "LINK_UP" for r in later)
                return later if linked and {r["payload"]["run"] for r in got} >= set(want) else None

            later = hs.wait_until(restored, 60, f"restart {k}: runs {active} restored and linked")
            restart_s.append(round(time.monotonic() - t_restart, 2))
            for r in later:
                p = r["payload"]
                if r["kind"] == "PROCEDURE_TRANSITION" and p.get("trigger") == "restore":
                    assert p["to"] == active[p["run"]], (k, p["run"], p["to"], active[p["run"]])
            assert verify(db, anchor=(head["seq"], head["hash"])).ok, f"restart {k}: anchor"
            # no command verified before the kill is issued again by the same step after it
            life = _lives(hs.journal_records(db))[-1]
            again = [(r["source"], r["payload"]["tag"], json.dumps(r["payload"]["value"])) for r in _step_commands(life)]
            assert not set(again) & verified_before, (k, set(again) & verified_before)

        # -- the end: PUMP-PR restarted the pumps; the journal and the plant agree ----------------------
        def pumps_restarted() -> bool:
            return any(r["kind"] == "COMMAND_VERIFIED" and r["payload"]["tag"] in ("HS-701A", "HS-701B", "HS-701C")
                       and r["payload"]["value"] is True for r in hs.journal_records(db))

        hs.wait_until(pumps_restarted, 120, "PUMP-PR restarted a pump")
        recs = hs.journal_records(db)
        assert verify(db).ok
        assert all(s in {r["seq"] for r in recs} for s in seen)
        assert not [r for r in recs if r["kind"] == "COMMAND_FAILED"], "a command failed its verification"
        plant = _get(f"{api}/tags?station=pump_station")["stations"]["pump_station"]
        recs = hs.journal_records(db)
        last_verified: dict[str, Any] = {}
        last_issued: dict[str, Any] = {}
        for r in recs:
            if r["kind"] == "COMMAND_VERIFIED":
                last_verified[r["payload"]["tag"]] = r["payload"]["value"]
            elif r["kind"] == "COMMAND":
                last_issued[r["payload"]["tag"]] = r["payload"]["value"]
        # the PLC holds what the controller last saw verified, or a newer command still moving
        mismatched = {t: (v, last_issued.get(t), plant[t]) for t, v in last_verified.items()
                      if plant[t] not in (v, last_issued.get(t))}
        assert not mismatched, mismatched
        steps = sorted({f"{run.split('#')[0]}:{s}" for a in kill_steps for run, s in a.items()})
        print(f"RELIABILITY kill-restart: {KILLS} kills, {len(recs)} records, delays {delays}, "
              f"restart-to-restored wall s {restart_s}, steps killed in {steps}")
    finally:
        for p in reversed(procs):
            hs.stop_process(p)
