"""``plantctl run --site FILE``: the controller against the configured PLCs; and ``plantctl demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from .clock import RealClock, ScaledClock
from .historian.base import open_historian
from .journal import Journal, JournalCorrupt
from .procedure_cli import load_definitions
from .procedures import ProcedureManager
from .runtime import Controller
from .site import Site, load_site

log = logging.getLogger("plantctl")


def open_journal(path: Path, wall: float) -> tuple[Journal, list[str]]:
    """Open the site's journal. A damaged one is never repaired or overwritten: it is kept
    for the investigation, the controller journals on in a new file, and the problems are
    returned for the start-up alarm."""
    try:
        return Journal(path), []
    except JournalCorrupt as exc:
        fresh = path.with_name(f"{path.stem}.after-broken-{int(wall)}.db")
        log.critical("journal %s is damaged (%s); continuing in %s", path, exc, fresh)
        return Journal(fresh), [f"{path}: {p}" for p in exc.problems] + [f"continuing in {fresh}"]


def build_controller(site: Site, clock: Any, package: str = "sequences") -> Controller:
    defs = load_definitions(package)
    wanted = [defs[p] for p in site.procedures]
    procs = ProcedureManager(wanted, site.iolists)
    site.journal_path.parent.mkdir(parents=True, exist_ok=True)
    journal, problems = open_journal(site.journal_path, clock.wall())
    Path(site.historian["path"]).parent.mkdir(parents=True, exist_ok=True)
    historian = open_historian(site.historian)
    ctrl = Controller(site, clock, journal, procedures=procs, historian=historian)
    ctrl.startup_problems = problems
    return ctrl


async def _run(args: argparse.Namespace) -> int:
    known = set(load_definitions(args.package))
    site = load_site(args.site, known_procedures=known)
    clock = ScaledClock(args.speed) if args.speed != 1.0 else RealClock()
    ctrl = build_controller(site, clock, args.package)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ctrl:
        print(f"plantctl: site {site.name}: {len(site.stations)} station(s), {len(site.interlocks)} interlock(s), "
              f"{len(site.procedures)} procedure(s); scan {ctrl.period * 1000:.0f} ms; journal {site.journal_path}")
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.status_every)
            except TimeoutError:
                links = ", ".join(f"{k}={'up' if v else 'DOWN'}" for k, v in ctrl.engine.link_up.items())
                print(f"scans {ctrl.stats.scans} overruns {ctrl.stats.overruns} errors {ctrl.stats.scan_errors} p99 {ctrl.stats.percentile(99):.1f} ms | "
                      f"links: {links} | trips: {', '.join(ctrl.engine.tripped()) or 'none'} | "
                      f"alarms: {len(ctrl.engine.alarms.active())}", flush=True)
    return 0


def _run_cmd(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return asyncio.run(_run(args))


def add_cli(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the controller for a site",
        description="Run the controller: read the PLCs of every station in the site file, scan the "
        "cause-and-effect matrix and the procedures, journal everything. Stops on Ctrl-C.",
    )
    p.add_argument("--site", required=True, help="site file (see docs/site-files.md)")
    p.add_argument("--package", default="sequences", help="package holding the procedures")
    p.add_argument("--speed", type=float, default=1.0, help="run plant time faster than real time (simulator only)")
    p.add_argument("--status-every", type=float, default=10.0, help="seconds between status lines")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_run_cmd)
