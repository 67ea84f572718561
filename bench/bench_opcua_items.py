"""OPC-UA: 5,000 monitored items at a 250 ms publishing interval; does the notification lag grow?

    .venv/bin/python -m bench.bench_opcua_items [--quick | --full]

sim_plc's real OPC-UA server (Basic256Sha256 SignAndEncrypt, user login) serves a
synthetic station of 5,000 analog inputs; every 250 ms a fifth of them take a new value
(4,000 changes a second). The controller, in its own process and built as ``plantctl
run`` builds it, subscribes to all of them (publishing interval 250 ms) and scans every
100 ms. For every notification the controller process notes its lag: the receipt wall
time minus the SourceTimestamp the server stamped on the value. Over the window (60 s
with --quick, the default; 10 minutes with --full) the lag must not grow: the figure is
the median lag of the last 10 s stretch minus that of the first. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, cpu_seconds, figure, missing, percentile, quiet_logs  # noqa: E402
from bench.harness import ControllerProcess  # noqa: E402
from bench.synth import BenchPlant, iolist_text, model_for, write_site  # noqa: E402

STATION = "ua_items"
ITEMS = 5_000
PUBLISH_MS = 250


async def _measure(duration_s: float, warmup_s: float = 10.0) -> dict[str, Any]:
    from plantctl.clock import RealClock
    from plantctl.iolist import load_io_list
    from sim_plc.opcua_server import OpcuaSecurity, StationOpcuaServer, ensure_pki
    from sim_plc.plant import PlantParams

    folder = Path(tempfile.mkdtemp(prefix="plantctl-bench-opcua-items-"))
    (folder / f"{STATION}.yaml").write_text(iolist_text(STATION, ITEMS, n_coils=0))
    iol = load_io_list(folder / f"{STATION}.yaml")
    model = model_for(iol, change_fraction=0.2)
    plant = BenchPlant([model], RealClock(), PlantParams(dt=PUBLISH_MS / 1000.0))
    password = "bench-" + str(random.randrange(10**9))
    pki = await ensure_pki(folder / "pki", [STATION])
    server = StationOpcuaServer(plant, iol, OpcuaSecurity(pki.root, "plantctl", password), port=0)
    await server.start()
    pushed = [0]
    counting = [False]
    real_refresh = server.refresh

    async def refresh() -> int:
        n = await real_refresh()
        if counting[0]:
            pushed[0] += n
        return n

    server.refresh = refresh  # type: ignore[method-assign]
    plc = {"protocol": "opcua", "url": server.endpoint_url, "user": "plantctl",
           "password_env": "PLANTCTL_OPCUA_PASSWORD", "cert_dir": str(pki.root / "client"),
           "publishing_interval_ms": PUBLISH_MS, "timeout_s": 5.0}
    site = write_site(folder, {STATION: {"io_list": str(folder / f"{STATION}.yaml"), "plc": plc}}, [])
    stepper = asyncio.get_running_loop().create_task(plant.run_realtime())
    child = ControllerProcess(site, "items", folder / "result.json", env={"PLANTCTL_OPCUA_PASSWORD": password})
    try:
        await child.start()
        await child.ready()
        await asyncio.sleep(warmup_s)
        await child.mark("window")
        counting[0] = True
        cpu0 = cpu_seconds()
        await asyncio.sleep(duration_s)
        counting[0] = False
        server_cpu = 100.0 * (cpu_seconds() - cpu0) / duration_s
        result = await child.stop()
    finally:
        await child.kill()
        stepper.cancel()
        await asyncio.gather(stepper, return_exceptions=True)
        await server.stop()
    seg: dict[str, Any] = result["segments"]["window"]
    seg["pushed"] = pushed[0]
    seg["server_cpu_pct"] = server_cpu
    return seg


def run(quick: bool = True) -> list[Figure]:
    group = "opcua 5,000 items"
    duration = 60.0 if quick else 600.0
    mode = "quick, 60 s" if quick else "full, 10 min"
    try:
        with quiet_logs():
            seg = asyncio.run(_measure(duration))
    except Exception as exc:
        return [missing(group, "notification lag growth", "ms", PUBLISH_MS, f"did not run: {exc!r}")]
    lag = seg["lag"]
    stretch = 10.0
    n = max(2, int(seg["window_s"] // stretch))
    meds = []
    for k in range(n):
        part = [ms for t, ms in lag if k * stretch <= t < (k + 1) * stretch]
        if part:
            meds.append(statistics.median(part))
    growth = meds[-1] - meds[0] if len(meds) >= 2 else float("nan")
    all_ms = [ms for _, ms in lag]
    load = os.getloadavg()[0]
    note = (f"{mode}; {ITEMS:,} items, {PUBLISH_MS} ms publishing, Basic256Sha256 SignAndEncrypt; "
            f"{seg['pushed']:,} value changes pushed by the server, {seg['notifications']:,} notifications received "
            f"({seg['notifications'] / seg['window_s']:,.0f}/s); median lag per 10 s: "
            f"{', '.join(f'{m:.0f}' for m in meds)} ms; load avg {load:.1f}")
    return [
        figure(group, f"notification lag growth, last 10 s minus first ({mode})", [growth], "ms", PUBLISH_MS,
               note=note),
        figure(group, "notification lag median (change stamped -> controller)", meds, "ms"),
        figure(group, "notification lag p99", [percentile(all_ms, 99)], "ms"),
        figure(group, "notifications delivered / values pushed", [100.0 * seg["notifications"] / max(1, seg["pushed"])],
               "%", 99.0, ">="),
        figure(group, "controller CPU", [seg["cpu_pct"]], "% core",
               note=f"RSS {seg['peak_rss_mb']:.0f} MB, {seg['scans']} scans, {seg['overruns']} overruns; "
                    f"the simulated PLC used {seg['server_cpu_pct']:.0f} % of a core"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", default=True)
    g.add_argument("--full", action="store_true")
    args = ap.parse_args()
    from bench.common import notes, table

    figs = run(not args.full)
    print(table(figs))
    print(notes(figs))


if __name__ == "__main__":
    main()
