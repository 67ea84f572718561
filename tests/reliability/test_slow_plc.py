"""A slow or hung PLC: the other station keeps its scan rate, and so does the controller.

The simulator runs in this process on real time (both stations on Modbus TCP; the gas station on
OPC-UA too), the controller from ``build_controller`` beside it. The gas station's PLC is reached
through a relay this test controls (``StallingProxy``):

- ``delay``: every answer of the PLC is held past the driver's timeout (a PLC whose CPU is
  overloaded), while the connection stays up;
- ``freeze``: nothing goes through any more and nothing is closed: half-open TCP, a cable cut far
  away where no FIN or RST ever arrives.

Meanwhile a monitor samples, every 10 ms, how old the pump station's newest reading is and how the
controller's scans go. Proved, for a hung Modbus PLC and for a hung OPC-UA PLC:

- the hung station is declared down within its bound (poll period + timeout + one scan for Modbus,
  keepalive + timeout + one scan for OPC-UA) and its tags are BAD/COMMS_LOST;
- the pump station's readings never get older than three of its poll periods;
- the controller does not overrun one scan, and scans at its period all along (no scan lost);
- when the relay passes again the hung station comes back by itself.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from plantctl.clock import RealClock
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from plantctl.tags import Quality, Reason
from sim_plc.runner import SimConfig, SimRunner

SCAN_S = 0.1
PERIOD_S = 0.1  # both stations' poll period
TIMEOUT_S = 0.5
KEEPALIVE_S = 0.5  # the OPC-UA driver's default
PHASE_S = 2.5  # wall seconds of each hang
PASSWORD = "slow-plc-opcua-secret"
GAS, PUMP = "gas_station", "pump_station"


class StallingProxy:
    """A TCP relay in front of one PLC: pass, delay the PLC's answers, or freeze (see the module doc)."""

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.mode = "pass"
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.late: list[asyncio.TimerHandle] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for h in self.late:
            h.cancel()
        for w in self.writers:
            w.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]
        for src, dst, from_plc in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.get_running_loop().create_task(self._pump(src, dst, from_plc))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _late_write(self, dst: asyncio.StreamWriter, data: bytes) -> None:
        if not dst.is_closing():
            dst.write(data)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_plc: bool) -> None:
        try:
            while data := await src.read(65536):
                if self.mode == "freeze":
                    continue  # swallowed; nothing is closed
                if self.mode == "delay" and from_plc:
                    self.late.append(asyncio.get_running_loop().call_later(self.delay_s, self._late_write, dst, data))
                    continue
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        if self.mode != "freeze":
            dst.close()


def _site(tmp: Path, sim: SimRunner, proxy: int, protocol: str) -> Path:
    ep = sim.endpoints()
    if protocol == "modbus":
        gas = (f"{{protocol: modbus, host: 127.0.0.1, port: {proxy}, timeout_s: {TIMEOUT_S}, "
               f"period_ms: {int(PERIOD_S * 1000)}}}")
    else:
        url = ep[GAS]["opcua_url"].replace(f":{ep[GAS]['opcua_port']}/", f":{proxy}/")
        pki = sim.config.cert_dir
        # server_cert given: no endpoint discovery, so every byte goes through the relay
        gas = (f"{{protocol: opcua, url: '{url}', user: plantctl, password_env: PLANTCTL_SLOW_PASSWORD, "
               f"cert_dir: '{pki / 'client'}', server_cert: '{pki / 'server' / 'gas_station-cert.der'}', "
               f"publishing_interval_ms: 100, timeout_s: {TIMEOUT_S}}}")
    site = tmp / "site.yaml"
    site.write_text(f"""site: slow-plc
journal: {tmp / 'journal.db'}
historian: {{backend: sqlite, path: {tmp / 'history.db'}}}
engine: {{scan_period_ms: {int(SCAN_S * 1000)}, stale_after_s: 3.0}}
stations:
  {GAS}: {{io_list: {io_dir() / 'gas_station.yaml'}, plc: {gas}}}
  {PUMP}:
    io_list: {io_dir() / 'pump_station.yaml'}
    plc: {{protocol: modbus, host: 127.0.0.1, port: {ep[PUMP]['modbus_port']}, timeout_s: {TIMEOUT_S},
          period_ms: {int(PERIOD_S * 1000)}}}
procedures: []
""")
    return site


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
async def test_a_hung_plc_does_not_slow_the_other_station_or_the_scan(
    tmp_path: Path, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTCTL_SLOW_PASSWORD", PASSWORD)
    clock = RealClock()
    sim = SimRunner(SimConfig(opcua=protocol == "opcua", http_port=None, cert_dir=tmp_path / "pki",
                              opcua_password=PASSWORD), clock=clock)
    await sim.start()
    target = sim.endpoints()[GAS]["modbus_port" if protocol == "modbus" else "opcua_port"]
    proxy = StallingProxy(target, delay_s=TIMEOUT_S * 3)
    await proxy.start()
    ctrl: Controller | None = None
    try:
        ctrl = build_controller(load_site(_site(tmp_path, sim, proxy.port, protocol)), clock)
        await ctrl.start()
        loop = asyncio.get_running_loop()

        async def until(cond: Any, wall_s: float, what: str) -> None:
            deadline = loop.time() + wall_s
            while not cond():
                assert loop.time() < deadline, f"timed out after {wall_s} s waiting for {what}"
                await asyncio.sleep(0.01)

        await until(lambda: all(ctrl.engine.link_up.get(s) for s in (GAS, PUMP)), 30, "both links up")
        await asyncio.sleep(0.5)

        ages: list[float] = []
        sampling = True

        async def monitor() -> None:
            while sampling:
                now = clock.now()
                ages.append(now - ctrl.table.snapshot(now)[f"{PUMP}:PT-720"].t)
                await asyncio.sleep(0.01)

        mon = loop.create_task(monitor())
        scans0, overruns0, t0 = ctrl.stats.scans, ctrl.stats.overruns, clock.now()
        detect: dict[str, float] = {}
        for mode in ("delay", "freeze"):
            if mode == "freeze":  # start from a healthy link again
                proxy.mode = "pass"
                await until(lambda: ctrl.engine.link_up.get(GAS), 30, "gas link back before the freeze")
            t_hang = clock.now()
            proxy.mode = mode
            await until(lambda: not ctrl.engine.link_up.get(GAS), 10, f"gas link down ({mode})")
            detect[mode] = clock.now() - t_hang
            snap = ctrl.table.snapshot(clock.now())
            gas = [r for k, r in snap.items() if k.startswith(f"{GAS}:")]
            assert all(r.quality is Quality.BAD and r.reason is Reason.COMMS_LOST for r in gas), mode
            await asyncio.sleep(PHASE_S)
        sampling = False
        await mon
        span = clock.now() - t0
        scans, overruns = ctrl.stats.scans - scans0, ctrl.stats.overruns - overruns0
        proxy.mode = "pass"
        await until(lambda: ctrl.engine.link_up.get(GAS), 30, "gas link back after the hang")
        assert ctrl.engine.link_up.get(PUMP)

        bound = (PERIOD_S + TIMEOUT_S if protocol == "modbus" else KEEPALIVE_S + TIMEOUT_S) + SCAN_S + 0.05
        figures = {"detect_s": {m: round(v, 3) for m, v in detect.items()}, "bound_s": bound,
                   "pump_age_max_s": round(max(ages), 3), "pump_age_median_s": round(statistics.median(ages), 3),
                   "scans": scans, "expected_scans": round(span / SCAN_S, 1), "overruns": overruns,
                   "scan_max_ms": round(ctrl.stats.max_ms, 1), "cpus": os.cpu_count()}
        print(f"\nRELIABILITY slow-plc {protocol}: {figures}")
        assert max(detect.values()) <= bound, figures
        assert max(ages) <= 3 * PERIOD_S, figures
        assert overruns == 0, figures
        assert scans >= span / SCAN_S - 2, figures
    finally:
        if ctrl is not None:
            await ctrl.stop()
        await proxy.stop()
        await sim.stop()
