"""Processes for the restart tests: the simulator and the controller, each its own process.

    python tests/e2e/harness.py sim SPEED PORTS.json
    python tests/e2e/harness.py controller SITE.yaml SPEED

``sim`` runs sim_plc (Modbus servers and the HTTP fault API, OPC-UA off) on a ScaledClock
and writes its bound ports. ``controller`` runs the real plantctl Controller for the site on
a ScaledClock of the same speed, with a scripted operator that answers every open task
with its first answer (the tests kill and restart this process).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any


async def run_sim(speed: float, ports_file: str) -> None:
    from plantctl.clock import ScaledClock
    from sim_plc.runner import SimConfig, SimRunner

    cfg = SimConfig(opcua=False, http_port=0, seed=1)
    async with SimRunner(cfg, clock=ScaledClock(speed)) as sim:
        Path(ports_file).write_text(json.dumps(sim.ports()))
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()


async def run_controller(site_path: str, speed: float) -> None:
    from plantctl.clock import ScaledClock
    from plantctl.engine import Actor, Role
    from plantctl.runtime_cli import build_controller
    from plantctl.site import load_site

    clock = ScaledClock(speed)
    ctrl = build_controller(load_site(site_path), clock)
    operator = Actor("harness-op", frozenset({Role.OPERATOR, Role.SUPERVISOR}), "127.0.0.1")
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with ctrl:
        procs: Any = ctrl.procedures
        while not stop.is_set():
            for run in list(procs.runs.values()):
                for key, task in list(run.tasks.items()):
                    if clock.now() - task.opened_at < 5.0:
                        continue  # a person takes a few seconds
                    values = {f: (2 if f == "team_size" else True if f.endswith(("_set", "_control")) else "harness")
                              for f in task.fields}
                    procs.answer(run.run_id, key, task.answers[0], operator, clock.now(), clock.wall(), values)
            await clock.sleep_until(clock.now() + 1.0)


def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    what = sys.argv[1]
    if what == "sim":
        asyncio.run(run_sim(float(sys.argv[2]), sys.argv[3]))
    elif what == "controller":
        asyncio.run(run_controller(sys.argv[2], float(sys.argv[3])))
    else:
        raise SystemExit(f"unknown {what}")


if __name__ == "__main__":
    main()
