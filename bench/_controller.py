"""The controller under measurement, in its own process (so its CPU time is its own).

    python -m bench._controller --site SITE --mode detect|capacity|items --out RESULT.json

Built exactly as ``plantctl run`` builds it (``build_controller``: site file, drivers from
the site, journal, SQLite historian), then instrumented from outside:

- ``detect``: the first read showing two detectors at or above the trip level is noted
  (controller clock), and so is the moment the ESD write is handed to the driver: the
  difference is plantctl's own read-to-write time. After each trip, once the detectors
  are back down, a supervisor resets the interlock and an operator re-energises the ESD
  coil (the bench's signal that the next trip may start);
- ``capacity``: scan times, overruns, poll requests and tag freshness;
- ``items``: the lag of every OPC-UA notification (receipt wall time minus the server's
  SourceTimestamp).

The bench talks to it over stdin/stdout: ``READY`` once every link is up; then ``MARK
NAME`` starts a measured window (each MARK ends the one before) and ``STOP`` ends the
last; the figures of every window go to ``--out``.

Diagnosis (environment): ``BENCH_PROFILE=FILE`` cProfiles the whole process into FILE;
``BENCH_LOOP_MONITOR=1`` records event-loop stalls and garbage-collector pauses (and runs
asyncio in debug mode, naming slow callbacks in ``OUT.log``); ``BENCH_SWITCH_INTERVAL=S``
sets the GIL switch interval. Each costs time of its own: not for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, peak_rss_mb, percentile, rss_mb  # noqa: E402
from bench.synth import DETECTORS, ESD_COIL, TRIP_LEL  # noqa: E402
from plantctl.clock import RealClock  # noqa: E402
from plantctl.engine import Action, Actor, Request, Role  # noqa: E402
from plantctl.runtime_cli import build_controller  # noqa: E402
from plantctl.site import load_site  # noqa: E402
from plantctl.tags import Quality, columns_of  # noqa: E402

SUPERVISOR = Actor("bench-supervisor", frozenset({Role.SUPERVISOR}), "bench")
OPERATOR = Actor("bench-operator", frozenset({Role.OPERATOR}), "bench")
INTERLOCK = "ESD-GAS-2OO3"


class Probe:
    """Read-to-write timing of the trip path (detect mode)."""

    def __init__(self, ctrl: Any, station: str) -> None:
        self.ctrl = ctrl
        self.station = station
        self.clock = ctrl.clock
        self.pending: float | None = None  # controller time of the read that showed the crossing
        self.read_to_write_ms: list[float] = []
        self.read_to_ack_ms: list[float] = []
        drv = ctrl.drivers[station]
        if getattr(drv, "_on_columns", None) is not None:
            inner_cols = drv._on_columns
            pos: dict[int, list[int]] = {}

            above = [0]

            def on_columns(tags: tuple[str, ...], value: Any, *rest: Any) -> None:
                idx = pos.get(id(tags))
                if idx is None:
                    idx = pos[id(tags)] = [i for i, t in enumerate(tags) if t in DETECTORS]
                if idx:
                    now_above = sum(value[i] >= TRIP_LEL for i in idx)
                    # the read that brings the second detector over (not the polls after it)
                    if above[0] < 2 <= now_above and self.pending is None:
                        self.pending = self.clock.now()
                    above[0] = now_above
                inner_cols(tags, value, *rest)

            drv._on_columns = on_columns
        else:
            inner = drv._on_readings
            last: dict[str, float] = {}

            def on_readings(items: list[tuple[str, Any]]) -> None:
                before = sum(v >= TRIP_LEL for v in last.values())
                for tag, r in items:
                    if tag in DETECTORS:
                        last[tag] = float(r.value) if r.quality is Quality.GOOD else 0.0
                # the notification that brings the second detector over (not a keepalive restamp)
                if before < 2 <= sum(v >= TRIP_LEL for v in last.values()) and self.pending is None:
                    self.pending = self.clock.now()
                inner(items)

            drv._on_readings = on_readings
        real_write = drv.write

        async def write(tag: str, value: Any) -> None:
            t_call = self.clock.now()
            pend = self.pending if tag == ESD_COIL and value is False else None
            if pend is not None:
                self.read_to_write_ms.append((t_call - pend) * 1000.0)
                self.pending = None
            await real_write(tag, value)
            if pend is not None:
                self.read_to_ack_ms.append((self.clock.now() - pend) * 1000.0)

        drv.write = write

    async def resetter(self) -> None:
        """Reset the trip once its cause is gone and re-energise the ESD (the next trip may come)."""
        eng = self.ctrl.engine
        st = eng.interlocks[INTERLOCK]
        while True:
            await asyncio.sleep(0.01)
            if INTERLOCK in eng.tripped() and not st.cause_active:
                now, wall = self.clock.now(), self.clock.wall()
                out = eng.request(Request(Action.RESET, SUPERVISOR, interlock=INTERLOCK, reason="bench"), now, wall)
                if out.accepted:
                    eng.request(Request(Action.COMMAND, OPERATOR, station=self.station, tag=ESD_COIL, value=True),
                                now, wall)
                    self.ctrl._wake.set()  # put the command on the wire now, not at the next scan


class Lag:
    """Notification lag of an OPC-UA driver (items mode)."""

    def __init__(self, ctrl: Any, station: str) -> None:
        self.samples: list[tuple[float, float]] = []  # (monotonic, lag ms)
        self.count = 0
        self.recording = False
        drv = ctrl.drivers[station]
        inner = drv._on_data

        def on_data(generation: int, node: Any, val: Any, data: Any) -> None:
            inner(generation, node, val, data)
            dv = data.monitored_item.Value
            if self.recording and dv is not None and dv.SourceTimestamp is not None:
                lag = (time.time() - dv.SourceTimestamp.timestamp()) * 1000.0
                self.samples.append((time.monotonic(), lag))
                self.count += 1

        drv._on_data = on_data


async def _monitor(stalls: list[tuple[float, float]]) -> None:
    """Event-loop stalls: a 1 ms sleep that overshoots by more than 3 ms."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        late = (time.perf_counter() - t - 0.001) * 1000.0
        if late > 3.0:
            stalls.append((time.monotonic(), late))


def _bad_count(ctrl: Any) -> int:
    snap = ctrl.table.snapshot(ctrl.clock.now())
    return int((columns_of(snap, snap.keys_tuple).quality == int(Quality.BAD)).sum())


async def _segment(ctrl: Any, reader: asyncio.StreamReader, probe: Probe | None,
                   lag: Lag | None) -> tuple[dict[str, Any], list[str]]:
    """Measure from now to the next command line (MARK or STOP); returns the figures and that line."""
    stats = ctrl.stats
    stats.recent_ms = deque(maxlen=1_000_000)
    stats.recent_trip_ms = deque(maxlen=1_000_000)
    stats.recent_commit_ms = deque(maxlen=1_000_000)
    scans0, over0, trips0 = stats.scans, stats.overruns, stats.trip_scans
    req0 = {n: d.stats.requests for n, d in ctrl.drivers.items()}
    fail0 = {n: d.stats.failures for n, d in ctrl.drivers.items()}
    if probe is not None:
        probe.read_to_write_ms = []
        probe.read_to_ack_ms = []
    if lag is not None:
        lag.samples = []
        lag.count = 0
        lag.recording = True
    cpu0, t0 = cpu_seconds(), time.monotonic()
    bad_max = 0
    nxt = asyncio.ensure_future(reader.readline())
    while not nxt.done():
        # tag freshness, sampled: polls that fall behind show as stale (BAD) tags
        bad_max = max(bad_max, _bad_count(ctrl))
        await asyncio.wait([nxt], timeout=1.0)
    cpu1, t1 = cpu_seconds(), time.monotonic()
    window = t1 - t0
    scan_ms = list(stats.recent_ms)
    seg: dict[str, Any] = {
        "window_s": window,
        "cpu_s": cpu1 - cpu0,
        "cpu_pct": 100.0 * (cpu1 - cpu0) / window,
        "rss_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "scans": stats.scans - scans0,
        "overruns": stats.overruns - over0,
        "trip_scans": stats.trip_scans - trips0,
        "scan_ms": scan_ms,
        "scan_p50_ms": percentile(scan_ms, 50),
        "scan_p99_ms": percentile(scan_ms, 99),
        "scan_max_ms": max(scan_ms) if scan_ms else float("nan"),
        "trip_scan_ms": list(stats.recent_trip_ms),
        "commit_ms": list(stats.recent_commit_ms),
        "commit_p99_ms": percentile(list(stats.recent_commit_ms), 99),
        "requests": {n: d.stats.requests - req0[n] for n, d in ctrl.drivers.items()},
        "failures": {n: d.stats.failures - fail0[n] for n, d in ctrl.drivers.items()},
        "plan_requests_per_cycle": {n: getattr(d, "requests_per_cycle", None) for n, d in ctrl.drivers.items()},
        "classes": {n: {c.name: [c.period, len(c.blocks)] for c in getattr(d, "classes", {}).values()}
                    for n, d in ctrl.drivers.items()},
        "tags": len(ctrl.table.tags()),
        "bad_max": bad_max,
        "bad_end": _bad_count(ctrl),
    }
    if probe is not None:
        seg["read_to_write_ms"] = probe.read_to_write_ms
        seg["read_to_ack_ms"] = probe.read_to_ack_ms
    if lag is not None:
        lag.recording = False
        seg["lag"] = [(t - t0, ms) for t, ms in lag.samples]
        seg["notifications"] = lag.count
    return seg, nxt.result().decode().split()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    site = load_site(args.site)
    ctrl = build_controller(site, RealClock())
    station = next(iter(site.stations))
    probe = Probe(ctrl, station) if args.mode == "detect" else None
    lag = Lag(ctrl, station) if args.mode == "items" else None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with ctrl:
        t_up = time.monotonic()
        while not (all(ctrl.engine.link_up.get(n) for n in site.stations) and ctrl.stats.scans >= 3
                   and _bad_count(ctrl) == 0):
            if time.monotonic() - t_up > args.connect_timeout:
                print(f"FAILED links={ctrl.engine.link_up} bad_tags={_bad_count(ctrl)}", flush=True)
                return {"error": "links not up"}
            await asyncio.sleep(0.1)
        connect_s = time.monotonic() - t_up
        tasks = [asyncio.create_task(probe.resetter())] if probe is not None else []
        stalls: list[tuple[float, float]] = []
        gc_pauses: list[tuple[int, float]] = []
        if os.environ.get("BENCH_LOOP_MONITOR"):  # diagnosis only: it costs CPU of its own
            tasks.append(asyncio.create_task(_monitor(stalls)))
            import gc

            gc_t: list[float] = [0.0]

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    gc_t[0] = time.perf_counter()
                else:
                    gc_pauses.append((info["generation"], (time.perf_counter() - gc_t[0]) * 1000.0))

            gc.callbacks.append(on_gc)
        print("READY", flush=True)
        segments: dict[str, Any] = {}
        line = (await reader.readline()).decode().split()
        while line and line[0] == "MARK":
            name = line[1] if len(line) > 1 else "window"
            seg, line = await _segment(ctrl, reader, probe, lag)
            seg["connect_s"] = connect_s
            segments[name] = seg
        for t in tasks:
            t.cancel()
        result = {"segments": segments, "stalls": stalls,
                  "gc": sorted(gc_pauses, key=lambda g: -g[1])[:20], "gc_count": len(gc_pauses)}
    ctrl.journal.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", required=True)
    ap.add_argument("--mode", choices=("detect", "capacity", "items"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--connect-timeout", type=float, default=120.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if os.environ.get("BENCH_LOOP_MONITOR"):  # diagnosis: name the callbacks that hold the loop
        logging.basicConfig(filename=args.out + ".log", level=logging.WARNING, force=True)
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    for name in ("pymodbus", "asyncua", "plantctl"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    debug = bool(os.environ.get("BENCH_LOOP_MONITOR"))

    async def run() -> dict[str, Any]:
        if debug:
            asyncio.get_running_loop().slow_callback_duration = 0.008
        return await main_async(args)

    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # experiment: the GIL's switch interval, seconds
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    prof_path = os.environ.get("BENCH_PROFILE")  # diagnosis: cProfile the controller, stats to this file
    if prof_path:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    result = asyncio.run(run(), debug=debug)
    if prof_path:
        prof.disable()
        prof.dump_stats(prof_path)
    Path(args.out).write_text(json.dumps(result))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
