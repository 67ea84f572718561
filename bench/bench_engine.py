"""Engine core alone (no I/O): one scan of 10,000 tags with alarms, voting and every procedure.

    .venv/bin/python -m bench.bench_engine [--tags 10000] [--runs 5] [--scans 100]

The site: both real stations (their I/O lists, the demo site's cause-and-effect matrix and
all eleven procedures loaded, an ``alarms:`` section with areas, suppression by design,
deviation, rate and first-out groups) plus synthetic stations up to ``--tags`` signals,
with 2oo3 groups over them (one per 50 tags). Every scan all signals change: the real
stations step their models and report reading by reading (as the loopback and OPC-UA
drivers do); the synthetic ones arrive as decoded blocks of 125 registers (as the Modbus
driver hands them over). Timed: what ``Controller.scan_once`` does before any I/O, that
is the table snapshot, ``Engine.scan`` and ``ProcedureManager.step``. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Figure, figure, percentile  # noqa: E402
from bench.synth import interlocks_for, iolist_text  # noqa: E402

TARGET_MS = 5.0

ALARMS = {
    "areas": {"GT": ["gas_station:GD-401*", "gas_station:TS-402"], "gas supply": ["gas_station"],
              "pumps": ["pump_station"]},
    "tags": {"gas_station:GD-401A": {"on_delay_s": 1, "deadband": 1.0, "priority": {"HH": "critical"}}},
    "latching": ["gas_station:TS-402:ALM"],
    "deviation": [{"tag": "gas_station:PT-301", "reference": 3.10, "limit": 0.5}],
    "rate": [{"tag": "gas_station:PT-101", "limit_per_s": 0.01, "window_s": 10}],
    "suppress": [{"name": "GT not running", "when": {"tag": "gas_station:XS-400", "op": "in", "value": ["OFF", "TRIPPED"]},
                  "alarms": ["gas_station:PT-322:L", "gas_station:PT-322:LL"], "release_delay_s": 60}],
    "first_out_groups": {"GT-400": ["gas_station:GD-401*", "gas_station:TS-402:*", "GT-*:trip"]},
}


def build(tags: int, folder: Path) -> dict[str, Any]:
    from plantctl.iolist import load_io_list
    from plantctl.procedure_cli import load_definitions
    from plantctl.procedures import ProcedureManager
    from plantctl.site import load_site

    demo = yaml.safe_load((ROOT / "sites" / "demo.yaml").read_text())
    real = {n: load_io_list(ROOT / "io" / f"{n}.yaml") for n in ("gas_station", "pump_station")}
    left = tags - sum(len(i.signals) for i in real.values())
    n_st = 10
    stations: dict[str, Any] = {n: {"io_list": str(ROOT / "io" / f"{n}.yaml"), "plc": {"protocol": "loopback"}}
                                for n in real}
    interlocks = list(demo["interlocks"])
    for i in range(n_st):
        st = f"bench_{i:02d}"
        n = left // n_st + (left % n_st if i == n_st - 1 else 0)
        n_analog = n - 20  # and 20 coils
        (folder / f"{st}.yaml").write_text(iolist_text(st, n_analog, n_coils=20))
        stations[st] = {"io_list": str(folder / f"{st}.yaml"), "plc": {"protocol": "loopback"}}
        interlocks += interlocks_for(st, n_analog, n // 50)
    doc = {"site": "bench-engine", "journal": str(folder / "j.db"), "stations": stations,
           "procedures": demo["procedures"], "interlocks": interlocks, "alarms": ALARMS}
    (folder / "site.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    defs = load_definitions("sequences")
    site = load_site(folder / "site.yaml", known_procedures=set(defs))
    procs = ProcedureManager([defs[p] for p in site.procedures], site.iolists)
    return {"site": site, "procs": procs}


def run(tags: int = 10_000, runs: int = 5, scans: int = 100, warmup: int = 50) -> list[Figure]:
    from plantctl.engine import Engine, EngineConfig
    from plantctl.fieldbus.base import reading_from_value
    from plantctl.fieldbus.modbus import BlockDecoder, plan_reads
    from plantctl.tags import TagTable
    from sim_plc.gas_station import GasStation
    from sim_plc.pump_station import PumpStation

    folder = Path(tempfile.mkdtemp(prefix="plantctl-bench-engine-"))
    b = build(tags, folder)
    site, procs = b["site"], b["procs"]
    engine = Engine(EngineConfig(site.iolists, site.interlocks, two_person=True, alarm_settings=site.alarms))
    keys = [f"{st}:{s.tag}" for st, iol in site.iolists.items() for s in iol.signals]
    table = TagTable(keys, stale_after=3.0)
    models = {"gas_station": GasStation(seed=1), "pump_station": PumpStation(seed=1)}
    rng = np.random.default_rng(0)
    # synthetic stations: per read block, the decoder and the table rows, as the Modbus driver feeds them
    blocks = []
    for st, iol in site.iolists.items():
        if st in models:
            continue
        for blk in plan_reads(iol.signals):
            dec = BlockDecoder(blk.signals)
            rows = table.index([f"{st}:{t}" for t in dec.tags])
            lo = np.array([4000 if not s.is_bit else 0 for s in blk.signals])
            span = np.array([16000 if not s.is_bit else 1 for s in blk.signals])
            blocks.append((dec, rows, lo, span, blk.is_bits))
    level = {id(d): rng.uniform(0.4, 0.6, len(d.tags)) for d, *_ in blocks}

    def feed(now: float) -> None:
        for name, model in models.items():
            model.step(0.1)
            iol = site.iolists[name]
            for tag, v in model.read_tags().items():
                sig = iol.by_tag.get(tag)
                if sig is not None:
                    table.update(f"{name}:{tag}", reading_from_value(sig, v, now))
        for dec, rows, lo, span, bits in blocks:
            lv = level[id(dec)]
            lv += rng.normal(0, 0.003, lv.size)
            raws = np.ones(lv.size, dtype=np.int64) if bits else (lo + lv * span).astype(np.int64)
            value, quality, reason = dec.decode(raws.tolist())
            table.update_columns(rows, value, dec.vtype, quality, reason, now)

    now = 0.0
    scan_ms: list[list[float]] = []
    engine_ms: list[list[float]] = []
    for r in range(runs + 1):
        total, eng = [], []
        for _ in range(warmup if r == 0 else scans):
            now += 0.1
            feed(now)
            wall = 1.767e9 + now
            t0 = time.perf_counter()
            snap = table.snapshot(now)
            t1 = time.perf_counter()
            res = engine.scan(snap, now, wall)
            t2 = time.perf_counter()
            procs.step(snap, now, wall, engine)
            engine.take_commands()
            engine.take_events()
            t3 = time.perf_counter()
            del res
            total.append((t3 - t0) * 1000)
            eng.append((t2 - t1) * 1000)
        if r:  # run 0 warms up
            scan_ms.append(total)
            engine_ms.append(eng)
    n_tags = len(keys)
    n_points = len(engine.alarms._points)
    note = (f"{n_tags} tags ({len(site.stations)} stations), {len(site.interlocks)} interlocks, "
            f"{len(procs.defs)} procedures loaded, {n_points} configured alarm points; "
            f"{runs} runs x {scans} scans, every signal changing each scan; "
            f"p99 of all scans {percentile([x for run in scan_ms for x in run], 99):.2f} ms")
    return [
        figure("engine core", f"one scan, {n_tags:,} tags (snapshot+engine+procedures), median",
               [percentile(x, 50) for x in scan_ms], "ms", TARGET_MS, note=note),
        figure("engine core", "  of which Engine.scan (interlocks, verification, limits, alarms)",
               [percentile(x, 50) for x in engine_ms], "ms"),
        figure("engine core", "one scan, p99 within a run", [percentile(x, 99) for x in scan_ms], "ms"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scans", type=int, default=100)
    args = ap.parse_args()
    from bench.common import table

    print(table(run(args.tags, args.runs, args.scans)))


if __name__ == "__main__":
    main()
