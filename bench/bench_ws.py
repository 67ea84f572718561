"""WebSocket push latency of the HMI, from a tag change to its receipt by N clients, and
whether the scan period holds while they are connected.

    .venv/bin/python bench/bench_ws.py [--rounds 40] [--clients 20,100]

Not a test: it prints figures. This process plays the controller: the real I/O lists,
tag table and engine of both stations, a scan every 100 ms (snapshot + ``Engine.scan``,
its start time noted against its schedule), and the HMI app served by uvicorn on a free
loopback port. The N WebSocket clients run in a second process (as browsers would run
elsewhere), so their JSON parsing does not count against the server. Every round the
bench writes a new value into one tag of the tag table and notes the time
(``time.monotonic``, system-wide on Linux); each client notes when the diff carrying
that value arrives. The hub pushes every 100-250 ms, which bounds the latency from below
by the push period. The scan's lateness (start minus schedule) is measured for 10 s
without clients and then during the rounds with them.

    .venv/bin/python bench/bench_ws.py --rounds 10 --clients 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEY = "gas_station:PT-101"
SCAN_S = 0.1


class BenchController:
    def __init__(self) -> None:
        from plantctl.clock import RealClock
        from plantctl.engine import Engine, EngineConfig
        from plantctl.iolist import load_io_list
        from plantctl.paths import io_dir
        from plantctl.tags import Quality, Reading, TagTable

        self.clock = RealClock()
        iolists = {n: load_io_list(io_dir() / f"{n}.yaml") for n in ("gas_station", "pump_station")}
        self.engine = Engine(EngineConfig(iolists, []))
        self.engine.link_up = {n: True for n in iolists}
        self.table = TagTable([f"{st}:{s.tag}" for st, iol in iolists.items() for s in iol.signals],
                              stale_after=3600.0, t0=self.clock.now())
        now = self.clock.now()
        for k in self.table.tags():
            self.table.update(k, Reading(0.0, Quality.GOOD, now))
        self.subscribers: list[Any] = []
        self.journal = None
        self.procedures = None

    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}"

    def notify(self, events: list[Any]) -> None:
        for s in self.subscribers:
            s(events)


class ScanLoop:
    """A scan every 100 ms on the server's event loop, as the controller runs it."""

    def __init__(self, ctrl: BenchController) -> None:
        self.ctrl = ctrl
        self.late_ms: list[float] = []
        self.scan_ms: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            late = (loop.time() - nxt) * 1000.0
            t0 = time.perf_counter()
            now = self.ctrl.clock.now()
            res = self.ctrl.engine.scan(self.ctrl.table.snapshot(now), now, self.ctrl.clock.wall())
            if res.events:
                self.ctrl.notify(res.events)
            self.late_ms.append(late)
            self.scan_ms.append((time.perf_counter() - t0) * 1000.0)
            nxt += SCAN_S
            await asyncio.sleep(max(0.0, nxt - loop.time()))


async def clients_main(url: str, cookie: str, n: int, rounds: int) -> None:
    """The client process: n WebSocket clients; prints CONNECTED, then one JSON line of receipts."""
    from websockets.asyncio.client import connect

    receipts: list[tuple[float, float]] = []  # (value, monotonic at receipt)
    connected = 0
    all_in = asyncio.Event()
    port = url.rsplit(":", 1)[1]

    async def client() -> None:
        nonlocal connected
        async with connect(f"ws://127.0.0.1:{port}/ws", additional_headers={"Cookie": cookie}, origin=url,
                           max_size=None) as ws:
            await ws.recv()  # hello
            await ws.recv()  # snapshot
            connected += 1
            if connected == n:
                all_in.set()
            seen = 0
            while seen < rounds:
                msg = json.loads(await ws.recv())
                item = msg.get("values", {}).get(KEY)
                if item is not None and item[0] >= 2.0:
                    receipts.append((item[0], time.monotonic()))
                    seen += 1

    tasks = [asyncio.create_task(client()) for _ in range(n)]
    await asyncio.wait_for(all_in.wait(), 120)
    print("CONNECTED", flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks), 60 + rounds)
    print(json.dumps(receipts), flush=True)


def pct(data: list[float], p: float) -> float:
    from bench.common import percentile

    return percentile(data, p)


async def measure(n_clients: int, rounds: int, baseline_s: float = 10.0) -> dict[str, Any]:
    import httpx
    from argon2 import PasswordHasher

    from hmi.app import HmiSettings, create_app
    from hmi.server import HmiServer
    from plantctl.auth import UserStore, parse_roles
    from plantctl.tags import Quality, Reading

    ctrl = BenchController()
    tmp = Path(tempfile.mkdtemp())
    users = UserStore(tmp / "users.yaml", hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    users.add("bench", parse_roles("viewer"), "tortoise-lemon-881")
    app = create_app(ctrl, users, settings=HmiSettings(title="bench"))
    scans = ScanLoop(ctrl)
    async with HmiServer(app, "127.0.0.1", 0) as srv:
        scan_task = asyncio.create_task(scans.run())
        try:
            async with httpx.AsyncClient(base_url=srv.url) as c:
                await c.post("/api/login", json={"user": "bench", "password": "tortoise-lemon-881"})
                cookie = f"plantctl_session={c.cookies.get('plantctl_session')}"
            await asyncio.sleep(baseline_s)
            base_late, base_scan = list(scans.late_ms), list(scans.scan_ms)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).resolve()), "--as-clients", srv.url, cookie, str(n_clients),
                str(rounds), stdout=asyncio.subprocess.PIPE, limit=1 << 26)  # one long JSON line of receipts
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 180)
            if line.strip() != b"CONNECTED":
                raise RuntimeError(f"clients did not connect: {line!r}")
            scans.late_ms.clear()
            scans.scan_ms.clear()
            changed: dict[float, float] = {}
            for i in range(1, rounds + 1):
                value = 1.0 + i
                changed[value] = time.monotonic()
                ctrl.table.update(KEY, Reading(value, Quality.GOOD, ctrl.clock.now()))
                await asyncio.sleep(0.3 + 0.05 * (i % 5))  # not in step with the push period
            out = await asyncio.wait_for(proc.stdout.readline(), 120)
            await proc.wait()
            with_late, with_scan = list(scans.late_ms), list(scans.scan_ms)
        finally:
            scan_task.cancel()
            await asyncio.gather(scan_task, return_exceptions=True)
    receipts = json.loads(out)
    lat = [(t - changed[v]) * 1000.0 for v, t in receipts if v in changed]
    return {"latency_ms": lat, "base_late": base_late, "base_scan": base_scan, "with_late": with_late,
            "with_scan": with_scan, "clients": n_clients, "rounds": rounds}


def run(n_clients: int = 100, rounds: int = 40, runs: int = 3) -> list[Any]:
    """The figures of ``make bench``: ``runs`` passes of ``rounds`` changes with ``n_clients``."""
    from bench.common import figure, percentile

    passes = [asyncio.run(measure(n_clients, rounds, baseline_s=10.0 if i == 0 else 3.0)) for i in range(runs)]
    g = "HMI"
    base = passes[0]
    return [
        figure(g, f"tag change -> {n_clients} WebSocket clients, p99", [percentile(p["latency_ms"], 99) for p in passes],
               "ms", 500.0,
               note=f"{runs} runs x {rounds} changes x {n_clients} clients (in their own process); p50 "
                    f"{percentile([x for p in passes for x in p['latency_ms']], 50):.0f} ms; the hub pushes every "
                    "100-250 ms"),
        figure(g, f"scan start lateness p99 with {n_clients} clients connected",
               [percentile(p["with_late"], 99) for p in passes], "ms", 10.0,
               note=f"without clients: p99 {percentile(base['base_late'], 99):.1f} ms; scan (snapshot + engine, both "
                    f"stations) p99 {percentile(base['base_scan'], 99):.2f} ms without clients, "
                    f"{percentile([x for p in passes for x in p['with_scan']], 99):.2f} ms with them; "
                    "the scan shares the event loop with the HMI"),
    ]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--as-clients":
        url, cookie, n, rounds = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        asyncio.run(clients_main(url, cookie, n, rounds))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--clients", default="20,100")
    args = ap.parse_args()
    for n in (int(x) for x in args.clients.split(",")):
        m = asyncio.run(measure(n, args.rounds))
        lat = m["latency_ms"]
        print(f"{n:>3} clients, {args.rounds} changes: tag change -> receipt p50 {pct(lat, 50):6.1f} ms, "
              f"p99 {pct(lat, 99):6.1f} ms, max {max(lat):6.1f} ms ({len(lat)} receipts); scan start lateness p99 "
              f"{pct(m['base_late'], 99):.1f} ms without clients, {pct(m['with_late'], 99):.1f} ms with them")


if __name__ == "__main__":
    main()
