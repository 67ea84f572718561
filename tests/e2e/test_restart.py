"""A controller killed with SIGKILL in the middle of PUMP-PL step P6 continues from the journal.

Separate processes on loopback: the simulator (Modbus), and the controller, which is killed
with SIGKILL while P6 is closing the de-energised pumps' outlet valves two at a time, then
started again on the same journal. After the restart: no step that had finished is
repeated, no command is lost (every valve P6 had to close ends closed and verified), and
PUMP-PR never starts a pump whose outlet valve was not confirmed closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plantctl.journal import Event, EventKind, Journal, verify
from plantctl.paths import io_dir, sites_dir

SPEED = 10.0
HARNESS = Path(__file__).parent / "harness.py"
MOVS = {"P-701A": "703A", "P-701B": "703B", "P-701C": "703C", "P-711A": "713A", "P-711B": "713B"}


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _events(db: Path) -> list[Event]:
    if not db.exists():
        return []
    try:
        return [r.event for r in Journal(db).records()]
    except Exception:  # noqa: BLE001 - the writer may be mid-commit; read again
        return []


def _post(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _transitions(events: list[Event], proc: str) -> list[dict[str, Any]]:
    return [e.payload | {"t": e.t_wall} for e in events
            if e.kind is EventKind.PROCEDURE_TRANSITION and e.payload.get("procedure") == proc]


@pytest.mark.timeout(300)
def test_sigkill_in_p6_continues_from_the_journal(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    ports_file = tmp_path / "ports.json"
    sim = subprocess.Popen([sys.executable, str(HARNESS), "sim", str(SPEED), str(ports_file)], env=env)
    procs: list[subprocess.Popen[bytes]] = [sim]
    try:
        ports = _wait(lambda: ports_file.exists() and json.loads(ports_file.read_text() or "null"), 60, "simulator ports")
        matrix = (sites_dir() / "demo.yaml").read_text().partition("\ninterlocks:\n")[2]
        pump_only = "\n  - id: ".join(b for b in matrix.split("\n  - id: ") if "station: gas_station" not in b)
        db = tmp_path / "journal.db"
        site = tmp_path / "site.yaml"
        site.write_text(f"""site: restart
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
        ctrl = subprocess.Popen([sys.executable, str(HARNESS), "controller", str(site), str(SPEED)], env=env)
        procs.append(ctrl)
        _wait(lambda: any(e.kind is EventKind.LINK_UP for e in _events(db)), 60, "controller link up")
        api = f"http://127.0.0.1:{ports['http']}"
        _post(f"{api}/faults", {"station": "pump_station", "fault": "power_loss", "params": {}})

        # kill it while P6 has a valve moving: a close command issued, not yet verified
        def in_p6_mid_stroke() -> bool:
            ev = _events(db)
            t = _transitions(ev, "PUMP-PL")
            if not t or t[-1]["to"] != "P6":
                return False
            issued = {e.payload["id"] for e in ev if e.kind is EventKind.COMMAND and "/P6" in e.source}
            done = {e.payload["id"] for e in ev if e.kind is EventKind.COMMAND_VERIFIED}
            return bool(issued - done) and bool(issued & done)

        _wait(in_p6_mid_stroke, 120, "PUMP-PL in P6 with one valve closed and one moving")
        os.kill(ctrl.pid, signal.SIGKILL)
        ctrl.wait(10)
        before = _events(db)
        assert verify(db).ok, verify(db)
        steps_done_before = [t["from"] for t in _transitions(before, "PUMP-PL") if t["from"] != t["to"] and t["from"]]
        p6_commands_before = [e for e in before if e.kind is EventKind.COMMAND and "/P6" in e.source]
        verified_before = {e.payload["id"] for e in before if e.kind is EventKind.COMMAND_VERIFIED}

        ctrl2 = subprocess.Popen([sys.executable, str(HARNESS), "controller", str(site), str(SPEED)], env=env)
        procs.append(ctrl2)
        _wait(lambda: any(t["from"] == "P6" and t["to"] != "P6" for t in _transitions(_events(db), "PUMP-PL")), 120,
              "PUMP-PL past P6 after the restart")
        _post(f"{api}/faults", {"station": "pump_station", "fault": "power_return", "params": {}})
        _wait(lambda: any(t["to"] in ("R2", "R3", "DONE") for t in _transitions(_events(db), "PUMP-PR")), 180,
              "PUMP-PR restarted the pumps")
        after = _events(db)
        assert verify(db).ok
        restart_at = next(i for i, e in enumerate(after) if e.kind is EventKind.PROCEDURE_TRANSITION
                          and e.payload.get("trigger") == "restore")
        later = after[restart_at:]

        # 1. no step that had finished is repeated after the restart
        re_entered = [t["to"] for t in _transitions(later, "PUMP-PL") if t["trigger"] not in ("restore", "hold", "resume")]
        assert not set(re_entered) & set(steps_done_before), (re_entered, steps_done_before)
        # ...and the restored run continued in P6, the step the kill interrupted
        assert next(t for t in _transitions(later, "PUMP-PL"))["to"] == "P6"

        # 2. no command lost: every valve P6 closed (or was closing) ends verified closed,
        #    and a valve verified before the kill is not commanded again
        closed_before = {e.payload["tag"] for e in p6_commands_before if e.payload["id"] in verified_before}
        p6_after = [e for e in later if e.kind is EventKind.COMMAND and "/P6" in e.source]
        assert not {e.payload["tag"] for e in p6_after} & closed_before
        left_p6 = next(i for i, e in enumerate(after) if e.kind is EventKind.PROCEDURE_TRANSITION
                       and e.payload.get("procedure") == "PUMP-PL" and e.payload.get("from") == "P6"
                       and e.payload.get("to") != "P6")
        verified_by_then = {e.payload["tag"] for e in after[:left_p6] if e.kind is EventKind.COMMAND_VERIFIED}
        assert {e.payload["tag"] for e in p6_commands_before + p6_after} <= verified_by_then
        assert not [e for e in after if e.kind is EventKind.COMMAND_FAILED and "/P6" in e.source]

        # 3. no pump started while its valve was open: every start came straight from its check step,
        #    which passes only on the valve's closed limit switch
        pr = _transitions(after, "PUMP-PR")
        starts = [e for e in after if e.kind is EventKind.COMMAND and e.payload.get("tag", "").startswith(("HS-701", "HS-711"))
                  and e.payload.get("value") is True]
        assert starts, "PUMP-PR started no pump"
        for s in starts:
            step = s.source.split("/", 1)[1]
            entry = [t for t in pr if t["to"] == step]
            assert entry and entry[-1]["from"] == step.replace(".start", ".check"), (step, entry)
            assert entry[-1]["trigger"] == f"to_{step}"
        assert not [e for e in after if e.kind is EventKind.COMMAND_FAILED and e.payload.get("tag", "").startswith("HS-7")]
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
