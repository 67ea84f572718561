"""``make bench``: every bench, one table (figure, spread over repeated runs, target, mark),
and ``bench/results.json``.

    .venv/bin/python -m bench [--full] [--only engine,journal,...] [--skip hmi]

By default the long runs are quick (scan capacity and the OPC-UA subscription for 60 s
instead of 10 minutes); ``--full`` runs them for 10 minutes. The machine, its load before
and after, and each bench's own duration go into the JSON with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, loadavg, machine, missing, notes, table, write_json  # noqa: E402

HERE = Path(__file__).resolve().parent


def benches(full: bool) -> list[tuple[str, Callable[[], list[Figure]]]]:
    from bench import (
        bench_capacity,
        bench_detect,
        bench_engine,
        bench_historian,
        bench_journal,
        bench_opcua_items,
        bench_virtual,
        bench_ws,
    )

    return [
        ("engine", lambda: bench_engine.run()),
        ("journal", lambda: bench_journal.run()),
        ("historian", lambda: bench_historian.run()),
        ("virtual", lambda: bench_virtual.run(library_runs=3 if full else 1)),
        ("detect-modbus", lambda: bench_detect.run("modbus")),
        ("detect-opcua", lambda: bench_detect.run("opcua")),
        ("capacity", lambda: bench_capacity.run(quick=not full)),
        ("opcua-items", lambda: bench_opcua_items.run(quick=not full)),
        ("hmi", lambda: bench_ws.run()),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="10-minute capacity and OPC-UA runs (default: 60 s)")
    ap.add_argument("--only", default="", help="comma-separated bench names")
    ap.add_argument("--skip", default="", help="comma-separated bench names")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    only = {x for x in args.only.split(",") if x}
    skip = {x for x in args.skip.split(",") if x}
    meta = {"mode": "full (10 min runs)" if args.full else "quick (60 s runs; --full for 10 min)",
            "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "durations_s": {}}
    t_all = time.monotonic()
    figs: list[Figure] = []
    todo = [(n, f) for n, f in benches(args.full) if (not only or n in only) and n not in skip]
    print(f"plantctl benches ({meta['mode']}): {', '.join(n for n, _ in todo)}; "
          f"load average {loadavg()} on {os.cpu_count()} CPUs", flush=True)
    for name, fn in todo:
        t = time.monotonic()
        print(f"  {name} ...", end=" ", flush=True)
        try:
            got = fn()
        except Exception as exc:  # one bench that breaks must not hide the others
            traceback.print_exc()
            got = [missing(name, "bench failed", "-", None, repr(exc))]
        took = time.monotonic() - t
        meta["durations_s"][name] = round(took, 1)
        print(f"{took:.0f} s, load average {loadavg()[0]}", flush=True)
        figs.extend(got)
    meta["total_s"] = round(time.monotonic() - t_all, 1)
    meta["loadavg_at_end"] = loadavg()
    print()
    print(table(figs))
    print()
    print("Notes:")
    print(notes(figs))
    passed = sum(1 for f in figs if f.passed is True)
    missed = [f for f in figs if f.passed is False]
    print(f"\n{passed} figures meet their target, {len(missed)} miss"
          + (f" ({'; '.join(f.group + ': ' + f.name for f in missed)})" if missed else "")
          + f"; {meta['total_s']:.0f} s in all; results in {args.out}")
    write_json(Path(args.out), figs, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
