"""WebSocket push latency of the HMI: from a tag change to its receipt by N clients.

Not a test: it prints figures. An HMI app is served by uvicorn on a free loopback
port over a minimal controller (the real I/O lists, tag table and engine; no
PLC). Every round the bench writes a new value into one tag of the tag table,
notes the time, and each of the N WebSocket clients records when the diff
carrying that value arrives. The 99th percentile over all clients and rounds is
printed for 20 and for 100 concurrent clients. The clients run in the same
process as the server (2-core machine), so the figures include their own
parsing; the hub pushes every 100-250 ms, which bounds the latency from below
by the push period.

    .venv/bin/python bench/bench_ws.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hmi.app import HmiSettings, create_app  # noqa: E402
from hmi.server import HmiServer  # noqa: E402
from plantctl.auth import UserStore, parse_roles  # noqa: E402
from plantctl.clock import RealClock  # noqa: E402
from plantctl.engine import Engine, EngineConfig  # noqa: E402
from plantctl.iolist import load_io_list  # noqa: E402
from plantctl.journal import Event  # noqa: E402
from plantctl.paths import io_dir  # noqa: E402
from plantctl.tags import Quality, Reading, TagTable  # noqa: E402

KEY = "gas_station:PT-101"


class BenchController:
    def __init__(self) -> None:
        self.clock = RealClock()
        iolists = {n: load_io_list(io_dir() / f"{n}.yaml") for n in ("gas_station", "pump_station")}
        self.engine = Engine(EngineConfig(iolists, []))
        self.engine.link_up = {n: True for n in iolists}
        self.table = TagTable([f"{st}:{s.tag}" for st, iol in iolists.items() for s in iol.signals],
                              stale_after=3600.0, t0=self.clock.now())
        now = self.clock.now()
        for k in self.table.tags():
            self.table.update(k, Reading(0.0, Quality.GOOD, now))
        self.subscribers: list = []
        self.journal = None
        self.procedures = None

    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}"

    def notify(self, events: list[Event]) -> None:
        for s in self.subscribers:
            s(events)


async def run(n_clients: int, rounds: int) -> list[float]:
    ctrl = BenchController()
    tmp = Path(tempfile.mkdtemp())
    users = UserStore(tmp / "users.yaml", hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    users.add("bench", parse_roles("viewer"), "tortoise-lemon-881")
    app = create_app(ctrl, users, settings=HmiSettings(title="bench"))
    latencies: list[float] = []
    async with HmiServer(app, "127.0.0.1", 0) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as c:
            await c.post("/api/login", json={"user": "bench", "password": "tortoise-lemon-881"})
            cookie = f"plantctl_session={c.cookies.get('plantctl_session')}"
        changed: dict[float, float] = {}  # value -> time written
        ready = asyncio.Event()
        connected = 0

        async def client() -> None:
            nonlocal connected
            async with connect(f"ws://127.0.0.1:{srv.port}/ws", additional_headers={"Cookie": cookie},
                               origin=srv.url, max_size=None) as ws:
                await ws.recv()  # hello
                await ws.recv()  # snapshot
                connected += 1
                if connected == n_clients:
                    ready.set()
                seen = 0
                while seen < rounds:
                    msg = json.loads(await ws.recv())
                    item = msg.get("values", {}).get(KEY)
                    if item is not None and item[0] in changed:
                        latencies.append(time.monotonic() - changed[item[0]])
                        seen += 1

        tasks = [asyncio.create_task(client()) for _ in range(n_clients)]
        await asyncio.wait_for(ready.wait(), 60)
        for i in range(1, rounds + 1):
            value = 1.0 + i
            changed[value] = time.monotonic()
            ctrl.table.update(KEY, Reading(value, Quality.GOOD, ctrl.clock.now()))
            await asyncio.sleep(0.3 + 0.05 * (i % 5))  # not in step with the push period
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return latencies


def pct(data: list[float], p: float) -> float:
    s = sorted(data)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    for n in (20, 100):
        lat = asyncio.run(run(n, args.rounds))
        print(f"{n:>3} clients, {args.rounds} changes: tag change -> receipt p50 {pct(lat, 50) * 1000:6.1f} ms, "
              f"p99 {pct(lat, 99) * 1000:6.1f} ms, max {max(lat) * 1000:6.1f} ms ({len(lat)} receipts)")


if __name__ == "__main__":
    main()
