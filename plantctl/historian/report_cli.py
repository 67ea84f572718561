"""``plantctl report``: the post-incident report from the journal and the historian.

    plantctl report --site sites/demo.yaml --from 2026-01-01T00:00Z --to 2026-01-01T01:00Z
    plantctl report --site sites/demo.yaml --list
    plantctl report --journal journal.db --history history.db --incident 1234 -o reports/

``--incident`` takes the seq of a FIRST_OUT (or TRIP) record, as ``--list`` prints
them; the window then runs from ``--before`` seconds ahead of it to ``--after``
seconds past the reset of its trip group. Times are ISO 8601 (no zone = UTC) or
epoch seconds. Exit 0 when written, 1 when there is nothing to report, 2 on a
bad argument.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import PlantctlError
from .base import Historian
from .report import build_report, find_incidents, incident_window, load_entries, write_report
from .sqlite import SQLiteHistorian


def parse_time(text: str) -> float:
    """Epoch seconds, or ISO 8601 (``Z`` or an offset; none means UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (ISO 8601 or epoch seconds)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _paths(args: argparse.Namespace) -> tuple[Path, Path | None, str, dict[tuple[str, str], str]]:
    units: dict[tuple[str, str], str] = {}
    if args.site:
        from ..site import load_site

        site = load_site(args.site)
        journal = Path(args.journal) if args.journal else site.journal_path
        history = Path(args.history) if args.history else Path(str(site.historian.get("path")))
        for name, st in site.stations.items():
            for sig in st.iolist.signals:
                units[(name, sig.tag)] = sig.units
        return journal, history, site.name, units
    if not args.journal:
        raise PlantctlError("give --site, or --journal (and --history)")
    return Path(args.journal), Path(args.history) if args.history else None, "", units


def _cmd(args: argparse.Namespace) -> int:
    try:
        journal, history, site_name, units = _paths(args)
        if args.list:
            incidents = find_incidents(load_entries(journal))
            for inc in incidents:
                print(f"{inc.seq:>8}  {datetime.fromtimestamp(inc.t_wall, tz=UTC).isoformat(timespec='seconds')}  "
                      f"{inc.trip_group:<12} {inc.interlock:<20} first member {inc.first_member or '-'}")
            if not incidents:
                print("no incidents (FIRST_OUT records) in the journal")
            return 0
        if args.incident is not None:
            entries = load_entries(journal)
            t0, t1 = incident_window(entries, args.incident, args.before, args.after)
        else:
            if args.t_from is None or args.t_to is None:
                print("give --from and --to, or --incident ID (see --list)", file=sys.stderr)
                return 2
            t0, t1 = args.t_from, args.t_to
            if t1 <= t0:
                print("--to must be after --from", file=sys.stderr)
                return 2
            entries = load_entries(journal, t0, t1)
        hist: Historian | None = None
        if history is not None and history.is_file():
            hist = SQLiteHistorian(history, readonly=True)
        elif history is not None:
            print(f"note: no historian file at {history}: the report has no trends", file=sys.stderr)
        try:
            report = build_report(entries, hist, t0, t1, site=site_name, title=args.title or "", units=units)
        finally:
            if hist is not None:
                hist.close()
        if not any(t0 <= e.event.t_wall <= t1 for e in entries):
            print("no journal records in that window", file=sys.stderr)
            return 1
        html_path, md_path = write_report(report, args.output)
    except PlantctlError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{html_path}\n{md_path}")
    if report.first_alarm:
        print(f"first alarm: {report.first_alarm}")
    return 0


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the main CLI's subparsers (sets ``func``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="post-incident report (HTML + Markdown) from the journal and the historian",
        description="Build the post-incident report of a time window or an incident: first-out, the "
        "timeline of trips, alarms, procedure steps, commands and their verification, operator actions, "
        "trends of the signals involved, and the sections for cause and preventive measures.",
    )
    p.add_argument("--site", help="site file (journal and historian paths, units)")
    p.add_argument("--journal", help="journal file (default: the site's)")
    p.add_argument("--history", help="embedded historian file (default: the site's)")
    p.add_argument("--from", dest="t_from", type=parse_time, metavar="T1", help="window start (ISO 8601 or epoch s)")
    p.add_argument("--to", dest="t_to", type=parse_time, metavar="T2", help="window end")
    p.add_argument("--incident", type=int, metavar="ID", help="seq of the incident's FIRST_OUT record (see --list)")
    p.add_argument("--before", type=float, default=600.0, help="seconds before the first-out (--incident)")
    p.add_argument("--after", type=float, default=300.0, help="seconds after the trip reset (--incident)")
    p.add_argument("--list", action="store_true", help="list the incidents in the journal and exit")
    p.add_argument("--title", help="report title")
    p.add_argument("-o", "--output", default="reports", help="output folder (default: reports)")
    p.set_defaults(func=_cmd)
    return p
