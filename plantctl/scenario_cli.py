"""``plantctl scenario run|coverage|generate`` and ``plantctl drill``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from .errors import ConfigError
from .paths import scenarios_dir
from .scenario import ScenarioResult, run_scenario


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths or [str(scenarios_dir())]:
        q = Path(p)
        out.extend(sorted(q.glob("*.yaml")) if q.is_dir() else [q])
    return out


def _limits(res: ScenarioResult) -> dict[str, dict[str, float]]:
    from .site import load_site

    try:
        from .scenario import ScenarioRunner

        site = ScenarioRunner(res.path).site
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
    del load_site
    return out


def _run(args: argparse.Namespace) -> int:
    if args.wire != "loopback":
        print(f"--wire {args.wire}: not available in this build; scenarios run in-process (loopback)", file=sys.stderr)
        return 2
    results: list[ScenarioResult] = []
    status = 0
    for f in _files(args.files):
        try:
            res = run_scenario(f, progress=(lambda m: print(f"  {m}", file=sys.stderr)) if args.verbose else None)
        except ConfigError as exc:
            for m in exc.messages:
                print(m, file=sys.stderr)
            status = 2
            continue
        results.append(res)
        mark = "PASS" if res.passed else "FAIL"
        print(f"{mark}  {res.name}  ({res.duration_s / 60:.1f} min plant time, {res.wall_s:.2f} s)")
        for line in res.failures():
            print(f"      {line}")
        if not res.passed:
            status = max(status, 1)
        if args.report:
            from .scenario_report import write_report

            write_report(res, Path(args.report), _limits(res))
    if args.report:
        from .scenario_report import write_index

        print(f"report: {write_index(results, Path(args.report))}")
    if args.junit:
        _junit(results, Path(args.junit))
    return status


def _junit(results: list[ScenarioResult], path: Path) -> None:
    cases = []
    for r in results:
        fail = "" if r.passed else f"<failure message={_q(r.failures()[0] if r.failures() else 'failed')}>" + escape(
            "\n".join(r.failures())) + "</failure>"
        cases.append(f'<testcase classname="scenarios" name={_q(r.name)} time="{r.wall_s:.3f}">{fail}</testcase>')
    fails = sum(not r.passed for r in results)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="plantctl-scenarios" tests="{len(results)}" '
                    f'failures="{fails}">{"".join(cases)}</testsuite>\n', encoding="utf-8")


def _q(s: str) -> str:
    return '"' + escape(s, {'"': "&quot;"}) + '"'


def _coverage(args: argparse.Namespace) -> int:
    from .procedure_cli import load_definitions
    from .scenario import visited_steps

    defs = load_definitions()
    results = [run_scenario(f) for f in _files(args.files)]
    visited = visited_steps(results)
    missing_src = 0
    for pid, d in sorted(defs.items()):
        print(f"{pid}: {d.title}")
        for s in d.steps:
            who = visited.get((pid, s.id), [])
            mark = "SRC" if s.src else "ADD"
            if not who and s.src:
                missing_src += 1
            print(f"  {s.id:<12} [{mark}] {'NOT COVERED' if not who else ', '.join(sorted(set(who)))[:100]}")
    print(f"\n[SRC] steps not covered by any scenario: {missing_src}")
    return 1 if missing_src and args.strict else 0


def add_cli(sub: Any) -> None:
    p = sub.add_parser("scenario", help="run scenario files against the simulator (virtual time)",
                       description="Prove procedures against the simulator: hours of plant time in seconds.")
    ps = p.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    r = ps.add_parser("run", help="run scenario files (default: every file in scenarios/)")
    r.add_argument("files", nargs="*")
    r.add_argument("--wire", choices=("loopback", "modbus", "opcua"), default="loopback",
                   help="in-process loopback (default) or through the real protocols")
    r.add_argument("--junit", help="write a JUnit XML file")
    r.add_argument("--report", help="write one HTML page per scenario and an index into this folder")
    r.add_argument("-v", "--verbose", action="store_true", help="progress of long runs")
    r.set_defaults(func=_run)
    c = ps.add_parser("coverage", help="which procedure steps the scenarios pass through")
    c.add_argument("files", nargs="*")
    c.add_argument("--strict", action="store_true", help="exit 1 when an [SRC] step is not covered")
    c.set_defaults(func=_coverage)
