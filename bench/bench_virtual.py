"""Virtual time: the eight-hour long-outage scenario, and the whole scenario library.

    .venv/bin/python -m bench.bench_virtual [--runs 3] [--library-runs 1]

Both run as an operator would run them, ``plantctl scenario run FILE|scenarios/`` in a
fresh process (so the figure includes the interpreter's start-up and the imports), on
the virtual rig: plant models, loopback drivers, the real engine, procedures and journal,
with a VirtualClock that jumps from scan to scan. The long-outage scenario is the one
whose name says 8 h (PUMP-PL with the diesel running out of fuel, F-P06/F-P07). Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Figure, figure, missing  # noqa: E402

_LINE = re.compile(r"^(PASS|FAIL)\s+(\S+)\s+\(([\d.]+) min plant time, ([\d.]+) s\)", re.M)


def _run(target: Path) -> tuple[float, list[tuple[str, str, float, float]], float]:
    """Wall seconds, the runner's lines (verdict, name, plant minutes, own seconds), CPU seconds."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "plantctl", "scenario", "run", str(target)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    found = [(m[0], m[1], float(m[2]), float(m[3])) for m in _LINE.findall(proc.stdout)]
    return wall, found, cpu


def long_outage() -> Path | None:
    found = sorted((ROOT / "scenarios").glob("*8h*.yaml"))
    return found[0] if found else None


def run(runs: int = 3, library_runs: int = 1) -> list[Figure]:
    g = "virtual time"
    figs: list[Figure] = []
    scen = long_outage()
    if scen is None:
        figs.append(missing(g, "8-hour long-outage scenario, wall", "s", 10.0, "no scenarios/*8h*.yaml"))
    else:
        walls, own, cpus, verdict, plant_min = [], [], [], "", 0.0
        for _ in range(runs):
            wall, found, cpu = _run(scen)
            walls.append(wall)
            cpus.append(cpu)
            if found:
                verdict, _, plant_min, s = found[0]
                own.append(s)
        figs.append(figure(g, "8-hour long-outage scenario, wall (whole command)", walls, "s", 10.0,
                           note=f"{scen.name}: {plant_min / 60:.1f} h of plant time, {verdict or 'no verdict'}; "
                                f"the runner's own time {sorted(own)[len(own) // 2] if own else float('nan'):.1f} s "
                                f"(the rest is start-up and imports); CPU {sorted(cpus)[len(cpus) // 2]:.1f} s "
                                f"(wall above CPU: other processes had the core); load avg {os.getloadavg()[0]:.1f}"))
    files = sorted((ROOT / "scenarios").glob("*.yaml"))
    walls, counts, cpu = [], "", 0.0
    for _ in range(library_runs):
        wall, found, cpu = _run(ROOT / "scenarios")
        walls.append(wall)
        passed = sum(1 for f in found if f[0] == "PASS")
        plant_h = sum(f[2] for f in found) / 60
        counts = (f"{len(found)} of {len(files)} files ran, {passed} passed, {plant_h:.1f} h of plant time in all; "
                  f"CPU {cpu:.0f} s")
    figs.append(figure(g, "whole scenario library (plantctl scenario run scenarios/), wall", walls, "s", 120.0,
                       note=counts))
    return figs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--library-runs", type=int, default=1)
    args = ap.parse_args()
    from bench.common import notes, table

    figs = run(args.runs, args.library_runs)
    print(table(figs))
    print(notes(figs))


if __name__ == "__main__":
    main()
