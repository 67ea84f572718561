"""Running the controller under measurement in its own process, and serving it a plant.

``ControllerProcess`` starts ``python -m bench._controller`` (see there) and speaks its
line protocol; the bench process meanwhile runs the simulated PLCs: sim_plc's real
Modbus and OPC-UA servers over a ``BenchPlant`` of synthetic models, on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT, cpu_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ControllerProcess:
    def __init__(self, site: Path, mode: str, out: Path, env: dict[str, str] | None = None,
                 connect_timeout: float = 180.0) -> None:
        self.site, self.mode, self.out = site, mode, out
        self.env = {**os.environ, **(env or {})}
        self.connect_timeout = connect_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench._controller", "--site", str(self.site), "--mode", self.mode,
            "--out", str(self.out), "--connect-timeout", str(self.connect_timeout),
            cwd=str(ROOT), env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)

    async def _line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError("controller process ended: " + " | ".join(self.log[-20:]))
        line = raw.decode().rstrip()
        self.log.append(line)
        return line

    async def ready(self) -> None:
        while True:
            line = await self._line(self.connect_timeout + 30)
            if line == "READY":
                return
            if line.startswith("FAILED"):
                raise RuntimeError(f"controller did not come up: {line}")

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())

    async def mark(self, name: str) -> None:
        self.send(f"MARK {name}")
        assert self.proc is not None and self.proc.stdin is not None
        await self.proc.stdin.drain()

    async def stop(self) -> dict[str, Any]:
        self.send("STOP")
        while await self._line(120) != "DONE":
            pass
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), 60)
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 10)
