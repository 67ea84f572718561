"""The historian server down for 10 minutes, the controller restarted during the outage: no point
lost, none duplicated.

The real controller (``build_controller`` from a site whose historian is ``influxdb``: the embedded
store plus the server behind the disk spool and its forwarder thread) against a real
InfluxDB-compatible server, Debian's victoria-metrics, started and stopped as a process. The plant
is sim_plc's two stations in-process behind loopback drivers on a VirtualClock, so the 30 minutes
of plant time take seconds; the controller's own scan loop runs on that clock (one scan and one
historian sample of every signal per plant second), the forwarder on real time.

    minute  0-10  server up: points flow
    minute 10     server stopped
    minute 15     controller stopped and started again (a new Controller on the same site files)
    minute 20     server started again: the spool back-fills
    minute 30     end; the forwarder drains the spool

Then the server holds exactly the points the embedded store holds (the reference): same count,
same (station, tag, time, quality) checksum, values equal, every series strictly increasing in
time (nothing twice), and the forwarder delivered every point, oldest first. The historian test of
the spool alone (tests/plantctl/historian/test_historian_influx.py) proves the same for the
historian object; this one proves it through the runtime and a controller restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantctl import runtime
from plantctl.clock import VirtualClock
from plantctl.fieldbus.loopback import LoopbackDriver
from plantctl.historian.influx import InfluxSender
from plantctl.historian.sqlite import SQLiteHistorian
from plantctl.journal import verify
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from sim_plc.gas_station import GasStation
from sim_plc.plant import Plant
from sim_plc.pump_station import PumpStation

MINUTE = 60.0
_VM_CONFTEST = Path(__file__).resolve().parents[1] / "plantctl" / "historian" / "conftest.py"


def _victoria_metrics_class() -> Any:
    """The historian tests' victoria-metrics process handle (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("_historian_vm_conftest", _VM_CONFTEST)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.VictoriaMetrics


@pytest.fixture()
def vm(tmp_path: Path) -> Iterator[Any]:
    server = _victoria_metrics_class()(tmp_path / "vm-data", tmp_path / "vm.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait_refused(port: int, wall_s: float = 20.0) -> None:
    deadline = time.monotonic() + wall_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return
        assert time.monotonic() < deadline, f"the historian server still listens on {port}"
        time.sleep(0.05)


def _checksum(rows: list[tuple[str, str, int, int]]) -> str:
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(("|".join(map(str, row)) + "\n").encode())
    return h.hexdigest()


@pytest.mark.timeout(240)
async def test_ten_minute_outage_and_a_restart_lose_and_duplicate_nothing(
    vm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_path = tmp_path / "site.yaml"
    site_path.write_text(f"""site: historian-outage
journal: {tmp_path / 'journal.db'}
historian: {{backend: influxdb, path: {tmp_path / 'history.db'}, url: '{vm.url}', org: plant, bucket: history,
            spool: {tmp_path / 'history.spool'}, period_s: 1.0}}
engine: {{scan_period_ms: 1000}}
stations:
  gas_station: {{io_list: {io_dir() / 'gas_station.yaml'}, plc: {{protocol: loopback}}}}
  pump_station: {{io_list: {io_dir() / 'pump_station.yaml'}, plc: {{protocol: loopback}}}}
""")
    site = load_site(site_path)
    clock = VirtualClock()
    plant = Plant([GasStation(seed=3), PumpStation(seed=3)], clock)
    plant.inject("gas_station", "leak_growing", {"zone": "GC", "from_mm": 0.3, "to_mm": 1.5, "over_s": 1500.0})

    def loopback(ctrl: Controller, name: str) -> LoopbackDriver:
        return LoopbackDriver(site.stations[name].iolist, plant.stations[name], clock, ctrl.on_readings_for(name),
                              ctrl.on_link_for(name), period=1.0)

    monkeypatch.setattr(runtime, "default_driver_factory", loopback)
    delivered: list[tuple[str, str, int]] = []  # every line the forwarder got a 2xx for, in order
    failures = [0]
    real_send = InfluxSender.send

    def logging_send(self: InfluxSender, lines: str) -> None:
        try:
            real_send(self, lines)
        except Exception:
            failures[0] += 1
            raise
        for line in lines.split("\n"):
            head, _, ts = line.rpartition(" ")
            tags = dict(kv.split("=", 1) for kv in head.split(" ", 1)[0].split(",")[1:])
            delivered.append((tags["station"], tags["signal"], int(ts)))

    monkeypatch.setattr(InfluxSender, "send", logging_send)

    async def run_until(ctrl: Controller, t_end: float) -> None:
        """Move the plant (and with it the clock) one scan period at a time; each time wait until
        the controller's own loop has scanned."""
        while clock.now() < t_end - 1e-9:
            n = ctrl.stats.scans
            plant.advance_to(clock.now() + 1.0)
            deadline = time.monotonic() + 10
            while ctrl.stats.scans == n:
                assert time.monotonic() < deadline, "the scan loop stopped"
                await asyncio.sleep(0.0002)

    async def forwarder(ctrl: Controller, cond: Any, what: str) -> Any:
        """Wait on the forwarder thread, which runs on real time (flush every second, back-off to 30 s),
        once every sample taken so far is recorded (the scans hand them to a thread)."""
        assert ctrl.historian is not None
        for name in ("_hist_exec", "_journal_exec"):  # the threads the scans hand samples to
            ex = getattr(ctrl, name, None)
            if ex is not None:
                await asyncio.get_running_loop().run_in_executor(ex, lambda: None)
        deadline = time.monotonic() + 90
        while not cond(status := ctrl.historian.status()):
            assert time.monotonic() < deadline, f"waiting for the forwarder to {what}: {status}"
            await asyncio.sleep(0.05)
        return status

    ctrl = build_controller(site, clock)
    await ctrl.start()
    await run_until(ctrl, 10 * MINUTE)
    await forwarder(ctrl, lambda s: s.connected and s.spool_points == 0, "deliver the first ten minutes")
    vm.stop()
    _wait_refused(vm.port)  # `timeout`, the server's parent, can exit before the server has
    await run_until(ctrl, 15 * MINUTE)
    await forwarder(ctrl, lambda s: s.connected is False, "notice the outage")
    await ctrl.stop()  # the controller restarts in the middle of the outage
    ctrl = build_controller(site, clock)
    await ctrl.start()
    await run_until(ctrl, 20 * MINUTE)
    peak = (await forwarder(ctrl, lambda s: s.connected is False, "try the dead server")).spool_points
    vm.start()
    await run_until(ctrl, 30 * MINUTE)
    await forwarder(ctrl, lambda s: s.connected and s.spool_points == 0, "back-fill the spool")
    assert ctrl.historian is not None
    final = ctrl.historian.status()
    await ctrl.stop()
    assert final.dropped_points == 0 and final.rejected_points == 0
    assert verify(site.journal_path).ok

    # -- the reference: every point the controller recorded, from the embedded store ------------------
    local = SQLiteHistorian(tmp_path / "history.db")
    ref: list[tuple[str, str, int, int]] = []
    ref_values: dict[tuple[str, str], list[float]] = {}
    for st, tag in local.series():
        pts = local.query(st, tag, 0, 2e10)
        ref += [(st, tag, round(p.t_wall * 1000), p.quality) for p in pts]
        ref_values[(st, tag)] = [p.value for p in pts]
    local.close()
    n_signals = sum(len(s.iolist.signals) for s in site.stations.values())
    assert len(ref) >= 1790 * n_signals  # ~one sample of every signal per plant second for 30 min
    assert peak >= 10 * MINUTE * n_signals * 0.95  # ten minutes of every signal waited in the spool

    # -- the server holds each of them once ----------------------------------------------------------
    quality = vm.wait_for('{__name__="plantctl_quality"}', len(ref), timeout_s=120)
    values = vm.wait_for('{__name__="plantctl_value"}', 1, timeout_s=30)
    got = [(s["metric"]["station"], s["metric"]["signal"], ts, int(q)) for s in quality
           for ts, q in zip(s["timestamps"], s["values"], strict=True)]
    assert len(got) == len(ref), (len(got), len(ref))
    assert _checksum(got) == _checksum(ref)
    for s in values:
        key = (s["metric"]["station"], s["metric"]["signal"])
        assert s["timestamps"] == sorted(set(s["timestamps"])), f"{key}: duplicated or out of order"
        finite = [v for v in ref_values[key] if v == v]
        assert s["values"] == pytest.approx(finite, rel=1e-11, abs=1e-12), key
    # -- delivered once each, oldest first --------------------------------------------------------------
    assert failures[0] > 0  # the outage was seen by the forwarder
    assert len(set(delivered)) == len(ref)
    times = [ts for _, _, ts in delivered]
    assert all(a <= b for a, b in zip(times, times[1:], strict=False)), "a newer point was sent before an older one"
    print(f"\nRELIABILITY historian-outage: {len(ref)} points, {n_signals} signals, spool peak {peak}, "
          f"{failures[0]} failed sends, {len(delivered) - len(set(delivered))} re-sent")
