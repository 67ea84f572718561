"""A ``plantctl.rig.VirtualRig`` presented to the HMI as a controller.

The rig runs the same engine and procedure manager as the real controller but
is stepped by whoever holds it (``tick()``), on a virtual clock. ``RigController``
adds what the HMI reads from a controller: ``subscribers`` (each tick's events,
published after the rig recorded them), ``stats.scans`` (the HMI's "controller
running" indicator) and ``procedures``. ``run_realtime`` steps it from an
asyncio task at the rig's period (optionally faster than real time), so the HMI
can be shown on an in-process plant without any network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plantctl.journal import Event


@dataclass
class RigStats:
    scans: int = 0
    overruns: int = 0

    def percentile(self, p: float) -> float:
        return 0.0


class RigController:
    def __init__(self, rig: Any, site: Any = None) -> None:
        self.rig = rig
        self.site = site
        self.engine = rig.engine
        self.table = rig.table
        self.clock = rig.clock
        self.procedures = rig.procs
        self.journal = rig.journal
        self.subscribers: list[Callable[[list[Event]], None]] = []
        self.stats = RigStats()
        self._seen = len(rig.events)
        self._task: asyncio.Task[None] | None = None

    def key(self, station: str, tag: str) -> str:
        return str(self.rig.key(station, tag))

    def publish(self) -> list[Event]:
        new = self.rig.events[self._seen:]
        self._seen = len(self.rig.events)
        if new:
            for sub in list(self.subscribers):
                sub(list(new))
        return list(new)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.rig.tick()
            self.stats.scans += 1
        self.publish()

    def run_for(self, seconds: float) -> None:
        steps = max(1, round(seconds / self.rig.period))
        self.tick(steps)

    async def run_realtime(self, speed: float = 1.0) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.rig.period / speed)

    def start(self, speed: float = 1.0) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run_realtime(speed), name="rig")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
