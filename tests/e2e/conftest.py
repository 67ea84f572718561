"""End-to-end rigs: the real controller against the real simulator over real sockets.

The simulator and the controller share one ``ScaledClock`` (plant time runs faster than
the wall clock), so a 3 mm leak that needs ~40 s of plant time to trip takes a few
seconds, while every byte still crosses Modbus TCP or OPC-UA on loopback.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plantctl.clock import ScaledClock
from plantctl.journal import EventKind, Journal
from plantctl.paths import io_dir, sites_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from sim_plc.runner import SimConfig, SimRunner

PASSWORD = "e2e-opcua-secret"


@dataclass
class E2E:
    sim: SimRunner
    ctrl: Controller
    clock: ScaledClock
    site_path: Path

    def events(self, kind: EventKind | None = None) -> list[Any]:
        recs = [r.event for r in Journal(self.ctrl.site.journal_path).records()]
        return [e for e in recs if kind is None or e.kind is kind]

    async def wait_for(self, cond: Callable[[], bool], wall_s: float, what: str) -> None:
        """Wait on a condition with a deadline (plant time runs on the shared clock)."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + wall_s
        while not cond():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {wall_s} s waiting for: {what}")
            await self.clock.sleep_until(self.clock.now() + 0.1)


def make_site(tmp: Path, sim: SimRunner, gas_protocol: str, procedures: list[str]) -> Path:
    ports = sim.endpoints()
    text = (sites_dir() / "demo.yaml").read_text()
    head, _, matrix = text.partition("\ninterlocks:\n")
    pki_client = Path(sim.config.cert_dir) / "client"
    if gas_protocol == "modbus":
        gas = f"{{protocol: modbus, host: 127.0.0.1, port: {ports['gas_station']['modbus_port']}, timeout_s: 0.5, period_ms: 100}}"
    else:
        gas = (f"{{protocol: opcua, url: '{ports['gas_station']['opcua_url']}', user: plantctl, "
               f"password_env: PLANTCTL_E2E_PASSWORD, cert_dir: '{pki_client}', publishing_interval_ms: 100}}")
    pump = (f"{{protocol: opcua, url: '{ports['pump_station']['opcua_url']}', user: plantctl, "
            f"password_env: PLANTCTL_E2E_PASSWORD, cert_dir: '{pki_client}', publishing_interval_ms: 100}}")
    site = f"""site: e2e
title: end-to-end
journal: {tmp / 'journal.db'}
historian: {{backend: sqlite, path: {tmp / 'history.db'}}}
engine: {{scan_period_ms: 100, stale_after_s: 3.0, two_person: true}}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {gas}
  pump_station:
    io_list: {io_dir() / 'pump_station.yaml'}
    plc: {pump}
procedures: {procedures}
interlocks:
{matrix}"""
    p = tmp / "site.yaml"
    p.write_text(site)
    return p


@pytest.fixture()
async def e2e_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[E2E] = []

    async def make(gas_protocol: str = "modbus", speed: float = 4.0, procedures: list[str] | None = None) -> E2E:
        clock = ScaledClock(speed)
        cfg = SimConfig(cert_dir=tmp_path / "pki", opcua_password=PASSWORD, http_port=None)
        sim = SimRunner(cfg, clock=clock)
        await sim.start()
        os.environ["PLANTCTL_E2E_PASSWORD"] = PASSWORD
        site_path = make_site(tmp_path, sim, gas_protocol, procedures or [])
        site = load_site(site_path)
        ctrl = build_controller(site, clock)
        await ctrl.start()
        rig = E2E(sim, ctrl, clock, site_path)
        made.append(rig)
        await rig.wait_for(lambda: all(ctrl.engine.link_up.values()), 60, "both PLC links up")
        return rig

    yield make
    for rig in made:
        await rig.ctrl.stop()
        await rig.sim.stop()
