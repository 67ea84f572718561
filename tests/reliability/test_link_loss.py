"""PLC link loss and return, 50 times in a row, over Modbus TCP and OPC-UA at once.

The simulator is its own process (tests/reliability/harness_stack.py sim: Modbus and the secured
OPC-UA servers, HTTP fault API) on a ScaledClock; the controller runs in this process, from the
site file through ``build_controller``, on a ScaledClock of the same speed. Each cycle drops both
stations' links with the simulator's ``link_drop`` fault (F-X01: the servers close their sockets
and refuse connections for DOWN_S plant seconds) and waits for the controller to journal the
outage and the return of each. Over the cycles:

- every outage is detected within its bound (below) and journaled once (a LINK_DOWN, then its
  LINK_UP), and every tag of the station is BAD/COMMS_LOST while it lasts;
- every return is automatic (LINK_UP without anybody doing anything) within its bound;
- nothing is left stuck: the number of asyncio tasks, threads and open file descriptors after each
  return stays at its first value, and everything stops cleanly at the end;
- memory does not grow: the allocated-block count (``sys.getallocatedblocks``, after a full
  collection) and the RSS after cycle 10 (half-way in a soak) and after the last cycle differ by less
  than the bounds below.

Bounds, plant seconds (plant time runs SPEED times the wall clock, the request timeouts are
wall seconds): detection <= poll period + timeout x SPEED + one scan (Modbus; the bound the
end-to-end test uses), <= keepalive + timeout x SPEED + one scan (OPC-UA), each with 100 ms of
wall time for the event loop's latency; return <= the outage + two of the driver's longest
back-offs + one connect (1.5 s of wall time); the return is usually within the first back-off
after the link is back (the figures). The drop is timed from just before the fault request, so the
figures include the HTTP round trip to the simulator. A Modbus request in flight when the server
closes its socket is not failed by pymodbus until its timeout, so Modbus detection is then the
timeout.

One simulator process serves both PLCs at four times real speed, so now and then it answers a
Modbus read later than the 0.5 s timeout while it is busy with the OPC-UA server's handshake: the
driver then rightly declares an outage of its own (journaled, recovered like the others). Those
extra outages are counted; at most 5 % of the cycles may have one, and each must be a timeout.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

import harness_stack as hs
import httpx
import pytest

from plantctl.clock import ScaledClock
from plantctl.journal import Event, EventKind, verify
from plantctl.paths import io_dir, sites_dir
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from plantctl.tags import Quality, Reason

SPEED = 4.0
CYCLES = 50
DOWN_S = 1.2  # plant seconds per outage
SCAN_S = 0.1
MODBUS_PERIOD_S, MODBUS_TIMEOUT_S, MODBUS_BACKOFF_S, MODBUS_BACKOFF_MAX_S = 0.1, 0.5, 0.2, 5.0
OPCUA_KEEPALIVE_S, OPCUA_TIMEOUT_S, OPCUA_BACKOFF_S, OPCUA_BACKOFF_MAX_S = 0.5, 0.5, 0.5, 10.0
CONNECT_WALL_S = 1.5
PASSWORD = "link-loss-opcua-secret"
GAS, PUMP = "gas_station", "pump_station"

LATENCY_WALL_S = 0.1  # the event loop's own latency on a busy two-core machine
DETECT_BOUND = {
    GAS: MODBUS_PERIOD_S + (MODBUS_TIMEOUT_S + LATENCY_WALL_S) * SPEED + SCAN_S,
    PUMP: OPCUA_KEEPALIVE_S + (OPCUA_TIMEOUT_S + LATENCY_WALL_S) * SPEED + SCAN_S,
}
RETURN_BOUND = {  # the driver's own retry schedule: its delays double up to a ceiling
    GAS: DOWN_S + 2 * MODBUS_BACKOFF_MAX_S + CONNECT_WALL_S * SPEED,
    PUMP: DOWN_S + 2 * OPCUA_BACKOFF_MAX_S + CONNECT_WALL_S * SPEED,
}
BLOCKS_GROWTH_MAX = 0.02  # allocated blocks, from the baseline to the last cycle, relative
RSS_GROWTH_MAX_MB = 8.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _site(tmp: Path, state: dict[str, Any]) -> Path:
    ep = state["endpoints"]
    matrix = (sites_dir() / "demo.yaml").read_text().partition("\ninterlocks:\n")[2]
    client_pki = Path(state["cert_dir"]) / "client"  # the simulator's ready-trusted client identity
    site = tmp / "site.yaml"
    site.write_text(f"""site: link-loss
journal: {tmp / 'journal.db'}
historian: {{backend: sqlite, path: {tmp / 'history.db'}}}
engine: {{scan_period_ms: {int(SCAN_S * 1000)}, stale_after_s: 3.0}}
stations:
  {GAS}:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {{protocol: modbus, host: 127.0.0.1, port: {ep[GAS]['modbus_port']}, timeout_s: {MODBUS_TIMEOUT_S},
          period_ms: {int(MODBUS_PERIOD_S * 1000)}}}
  {PUMP}:
    io_list: {io_dir() / 'pump_station.yaml'}
    plc: {{protocol: opcua, url: '{ep[PUMP]['opcua_url']}', user: plantctl, password_env: PLANTCTL_LL_PASSWORD,
          cert_dir: '{client_pki}', publishing_interval_ms: 100, timeout_s: {OPCUA_TIMEOUT_S}}}
procedures: []
# The alarm board keeps its last history_max events by design (KPIs): small here, so that this
# bounded buffer is full before cycle 10 and what grows after it would grow without end.
alarms: {{history_max: 100}}
interlocks:
{matrix}""")
    return site


@pytest.mark.timeout(300)
async def test_fifty_link_losses_detected_recovered_nothing_stuck_no_growth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _soak(tmp_path, monkeypatch, int(os.environ.get("LL_CYCLES", CYCLES)))


@pytest.mark.long
@pytest.mark.timeout(1800)
async def test_soak_six_hundred_link_losses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same, 600 times in a row (about ten minutes): a slow leak shows over the long run."""
    await _soak(tmp_path, monkeypatch, 600)


async def _soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cycles: int) -> None:
    state_file = tmp_path / "sim.json"
    sim = hs.spawn([str(hs.HERE), "sim", "--speed", str(SPEED), "--state", str(state_file), "--opcua"],
                   tmp_path / "sim.log", PLANTCTL_SIM_OPCUA_PASSWORD=PASSWORD)
    monkeypatch.setenv("PLANTCTL_LL_PASSWORD", PASSWORD)
    try:
        state = await asyncio.to_thread(hs.wait_until, lambda: hs.read_json(state_file), 60, "simulator up")
        with hs.bounded_logging():
            await _cycles(tmp_path, state, cycles)
    finally:
        hs.stop_process(sim)


async def _cycles(tmp_path: Path, state: dict[str, Any], cycles: int) -> None:
    clock = ScaledClock(SPEED)
    ctrl = build_controller(load_site(_site(tmp_path, state)), clock)
    assert ctrl.drivers[PUMP].keepalive == OPCUA_KEEPALIVE_S  # type: ignore[attr-defined]
    assert ctrl.drivers[GAS].backoff_initial == MODBUS_BACKOFF_S  # type: ignore[attr-defined]
    assert ctrl.drivers[PUMP].backoff_initial == OPCUA_BACKOFF_S  # type: ignore[attr-defined]
    links: list[Event] = []
    ctrl.subscribers.append(lambda evs: links.extend(e for e in evs if e.kind in (EventKind.LINK_DOWN,
                                                                                  EventKind.LINK_UP)))
    tasks_before = set(asyncio.all_tasks())

    async def until(cond: Any, wall_s: float, what: str) -> Any:
        deadline = asyncio.get_running_loop().time() + wall_s
        while not (got := cond()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {wall_s} s waiting for {what}")
            await asyncio.sleep(0.01)
        return got

    def first(kind: EventKind, station: str, after: float) -> Event | None:
        return next((e for e in links if e.kind is kind and e.station == station and e.t_plant > after), None)

    detect: dict[str, list[float]] = {GAS: [], PUMP: []}
    detected: dict[str, list[Event]] = {GAS: [], PUMP: []}
    back: dict[str, list[float]] = {GAS: [], PUMP: []}
    samples: list[dict[str, float]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{state['http']}", timeout=10) as api:
        async with ctrl:
            await until(lambda: all(ctrl.engine.link_up.get(s) for s in (GAS, PUMP)), 60, "both links up")
            for cycle in range(1, cycles + 1):
                t0 = clock.now()
                for st in (GAS, PUMP):
                    r = await api.post("/faults", json={"station": st, "fault": "link_drop",
                                                        "params": {"duration_s": DOWN_S}})
                    assert r.status_code == 200, r.text
                downs = {st: await until(lambda st=st, t0=t0: first(EventKind.LINK_DOWN, st, t0), 10,
                                         f"cycle {cycle}: {st} LINK_DOWN")
                         for st in (GAS, PUMP)}
                # while the outage lasts, every tag of the station is BAD/COMMS_LOST
                snap = ctrl.table.snapshot(clock.now())
                for st in (GAS, PUMP):
                    if not ctrl.engine.link_up[st]:
                        good = [(k, r) for k, r in snap.items() if k.startswith(f"{st}:")
                                and not (r.quality is Quality.BAD and r.reason is Reason.COMMS_LOST)]
                        assert not good, (cycle, st, len(good), good[:3])
                ups = {st: await until(lambda st=st, t=downs[st].t_plant: first(EventKind.LINK_UP, st, t), 20,
                                       f"cycle {cycle}: {st} LINK_UP")
                       for st in (GAS, PUMP)}
                for st in (GAS, PUMP):
                    detected[st].append(downs[st])
                    detect[st].append(downs[st].t_plant - t0)
                    back[st].append(ups[st].t_plant - t0 - DOWN_S)
                await asyncio.sleep(0.05)  # the return's readings and journal write settle before sampling
                # the scan loop's background commits (one per scan while the disk is busy) are
                # transient by design: counted out, so that a task left stuck stands out
                commits = len(ctrl._commits)
                gc.collect()
                samples.append({"blocks": sys.getallocatedblocks(), "rss": _rss_mb(),
                                "tasks": len(asyncio.all_tasks()) - commits, "threads": threading.active_count(),
                                "fds": len(os.listdir("/proc/self/fd"))})
    # after stop(): nothing of the controller is left running
    for _ in range(20):
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert not left, left

    # the baseline: cycle 10, or half-way through a soak (when the bounded buffers, the scan-time
    # ring of 10,000 scans among them, are full, so what grows after it grows without end)
    base_i = max(9, cycles // 2 - 1)
    figures = {
        "detect_max": {st: round(max(v), 3) for st, v in detect.items()},
        "detect_median": {st: round(statistics.median(v), 3) for st, v in detect.items()},
        "return_max": {st: round(max(v), 3) for st, v in back.items()},
        "return_median": {st: round(statistics.median(v), 3) for st, v in back.items()},
        "outages": {st: sum(e.kind is EventKind.LINK_DOWN and e.station == st for e in links) for st in (GAS, PUMP)},
        "blocks_base_last": (samples[base_i]["blocks"], samples[-1]["blocks"]),
        "rss_base_last_mb": (round(samples[base_i]["rss"], 1), round(samples[-1]["rss"], 1)),
        "tasks": [s["tasks"] for s in samples][::10], "fds": [s["fds"] for s in samples][::10],
    }
    print(f"\nRELIABILITY link-loss {cycles} cycles (plant s): {figures}")
    # -- every outage detected within its bound and journaled once; every return automatic -------
    for st in (GAS, PUMP):
        assert len(detect[st]) == cycles and len(back[st]) == cycles
        assert max(detect[st]) <= DETECT_BOUND[st], (st, max(detect[st]), DETECT_BOUND[st])
        assert max(back[st]) <= RETURN_BOUND[st], (st, max(back[st]), RETURN_BOUND[st])
        mine = [e for e in links if e.station == st]
        downs_ = [e for e in mine if e.kind is EventKind.LINK_DOWN]
        # every outage journaled once and followed by its return (down, up, down, up, ...)
        assert [e.kind for e in mine] == [EventKind.LINK_UP] + [EventKind.LINK_DOWN, EventKind.LINK_UP] * len(downs_), st
        extra = [e for e in downs_ if not any(e is d for d in detected[st])]
        assert len(downs_) == cycles + len(extra) and len(extra) <= 0.05 * cycles, (st, len(extra))
        assert all(str(e.payload.get("detail", "")).startswith("no answer") for e in extra), st
    # -- nothing stuck, nothing growing --------------------------------------------------------------
    base = samples[0]
    for key in ("tasks", "threads", "fds"):
        series = [s[key] for s in samples]
        # transient request tasks come and go; a stuck one would stay and add up cycle after cycle
        assert max(series) <= base[key] + 4 and statistics.median(series[-10:]) <= base[key] + 1, (key, series)
    b0, blast = samples[base_i]["blocks"], samples[-1]["blocks"]
    assert (blast - b0) / b0 <= BLOCKS_GROWTH_MAX, figures
    assert samples[-1]["rss"] - samples[base_i]["rss"] <= RSS_GROWTH_MAX_MB, figures
    assert verify(tmp_path / "journal.db").ok
