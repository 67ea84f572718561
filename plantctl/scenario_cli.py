"""``plantctl scenario run|coverage|generate`` and ``plantctl drill``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from .errors import ConfigError, PlantctlError
from .paths import scenarios_dir
from .scenario import ScenarioResult, WireOptions, run_library, run_scenario, run_wire


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths or [str(scenarios_dir())]:
        q = Path(p)
        out.extend(sorted(q.glob("*.yaml")) if q.is_dir() else [q])
    return out


def limits_for(res: ScenarioResult) -> dict[str, dict[str, float]]:
    """Alarm limits (from the I/O list) and trip levels (from the site's interlocks) of the recorded signals."""
    try:
        from .scenario import prepare

        site = prepare(res.path).site
    except ConfigError:
        return {}
    out: dict[str, dict[str, float]] = {}
    for key in res.samples:
        st, _, tag = key.rpartition(":")
        stations = [st] if st else list(site.stations)
        for name in stations:
            sig = site.stations[name].iolist.by_tag.get(tag)
            if sig is not None:
                out[key] = dict(sig.alarms)
        for il in site.interlocks:
            for c in il.members:
                if c.tag == tag and not isinstance(c.value, bool):
                    out.setdefault(key, {})["TRIP"] = float(c.value)
    return out


def _report(res: ScenarioResult, args: argparse.Namespace) -> None:
    mark = "PASS" if res.passed else "FAIL"
    print(f"{mark}  {res.name}  ({res.duration_s / 60:.1f} min plant time, {res.wall_s:.2f} s)", flush=True)
    for line in res.failures():
        print(f"      {line}")
    if args.report:
        from .scenario_report import write_report

        write_report(res, Path(args.report), limits_for(res))


def _run(args: argparse.Namespace) -> int:
    results: list[ScenarioResult] = []
    status = 0
    files = _files(args.files)
    progress = (lambda m: print(f"  {m}", file=sys.stderr)) if args.verbose else None
    if args.wire != "loopback":
        work = Path(tempfile.mkdtemp(prefix="plantctl-wire-"))
        for f in files:
            try:
                res = run_wire(f, args.wire, work, WireOptions(speed=args.speed), progress=progress)
            except ConfigError as exc:
                for m in exc.messages:
                    print(m, file=sys.stderr)
                status = 2
                continue
            except PlantctlError as exc:
                print(f"{f}: {exc}", file=sys.stderr)
                status = 2
                continue
            results.append(res)
            _report(res, args)
            status = max(status, 0 if res.passed else 1)
    elif args.jobs > 1 and not args.verbose:
        for r in run_library(files, jobs=args.jobs):
            if isinstance(r, ConfigError):
                for m in r.messages:
                    print(m, file=sys.stderr)
                status = 2
                continue
            results.append(r)
            _report(r, args)
            status = max(status, 0 if r.passed else 1)
    else:
        for f in files:
            try:
                res = run_scenario(f, progress=progress) if progress else run_scenario(f)
            except ConfigError as exc:
                for m in exc.messages:
                    print(m, file=sys.stderr)
                status = 2
                continue
            results.append(res)
            _report(res, args)
            status = max(status, 0 if res.passed else 1)
    if args.report:
        from .scenario_report import write_index

        print(f"report: {write_index(results, Path(args.report))}")
    if args.junit:
        write_junit(results, Path(args.junit))
    return status


def write_junit(results: list[ScenarioResult], path: Path) -> None:
    cases = []
    for r in results:
        fail = "" if r.passed else f"<failure message={_q(r.failures()[0] if r.failures() else 'failed')}>" + escape(
            "\n".join(r.failures())) + "</failure>"
        cases.append(f'<testcase classname="scenarios" name={_q(r.name)} file={_q(str(r.path))} '
                     f'time="{r.wall_s:.3f}">{fail}</testcase>')
    fails = sum(not r.passed for r in results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="plantctl-scenarios" tests="{len(results)}" '
                    f'failures="{fails}">{"".join(cases)}</testsuite>\n', encoding="utf-8")


def _q(s: str) -> str:
    return '"' + escape(s, {'"': "&quot;"}) + '"'


def _coverage(args: argparse.Namespace) -> int:
    from .procedure_cli import load_definitions
    from .scenario import coverage

    defs = load_definitions()
    results: list[ScenarioResult] = []
    status = 0
    for r in run_library(_files(args.files), jobs=args.jobs):
        if isinstance(r, ConfigError):
            for m in r.messages:
                print(m, file=sys.stderr)
            status = 2
        else:
            results.append(r)
    lines, missing = coverage(results, defs)
    print("\n".join(lines))
    if missing and args.strict:
        print(f"not covered: {', '.join(missing)}", file=sys.stderr)
        return 1
    return status


def _generate(args: argparse.Namespace) -> int:
    from .scenario_generate import cli

    return cli(args)


def _drill(args: argparse.Namespace) -> int:
    from .drill import cli

    return cli(args)


def add_cli(sub: Any) -> None:
    p = sub.add_parser("scenario", help="run scenario files against the simulator (virtual time)",
                       description="Prove procedures against the simulator: hours of plant time in seconds.")
    ps = p.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    r = ps.add_parser("run", help="run scenario files (default: every file in scenarios/)")
    r.add_argument("files", nargs="*")
    r.add_argument("--wire", choices=("loopback", "modbus", "opcua"), default="loopback",
                   help="in-process loopback on virtual time (default), or through the simulator's Modbus or "
                        "OPC-UA servers with a real controller on scaled real time")
    r.add_argument("--speed", type=float, default=20.0, help="with --wire: plant seconds per real second (default 20)")
    r.add_argument("--jobs", "-j", type=int, default=1, help="run this many scenarios at a time (loopback)")
    r.add_argument("--junit", help="write a JUnit XML file")
    r.add_argument("--report", help="write one HTML page per scenario and an index into this folder")
    r.add_argument("-v", "--verbose", action="store_true", help="progress of long runs")
    r.set_defaults(func=_run)
    c = ps.add_parser("coverage", help="which procedure steps the scenarios pass through")
    c.add_argument("files", nargs="*")
    c.add_argument("--strict", action="store_true", help="exit 1 when an [SRC] step is not covered")
    c.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1),
                   help="scenarios run at a time (default: 2)")
    c.set_defaults(func=_coverage)
    g = ps.add_parser("generate", help="write one scenario per cause-to-effect path of a site's matrix",
                      description="Write a scenario for every interlock of the site (drive its members to the trip "
                                  "condition, expect the TRIP and each effect) and, for every voting group, one per "
                                  "degraded-voting mode with one member faulted.")
    g.add_argument("--from-ce", required=True, metavar="SITE", help="site file whose cause-and-effect matrix to use")
    g.add_argument("-o", "--output", default="scenarios/generated", help="folder to write into")
    g.set_defaults(func=_generate)
    from .drill import add_arguments

    d = sub.add_parser("drill", help="run a scenario as a drill: real time, real controller, people answer",
                       description="Inject the scenario's timed faults into the running simulator (HTTP API) on "
                                   "real time, read the controller's journal, and score the people's responses "
                                   "against the deadlines and the scenario's expectations (Markdown + HTML report).")
    add_arguments(d)
    d.set_defaults(func=_drill)
