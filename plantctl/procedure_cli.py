"""``plantctl procedures list|show|diagram``: the procedures as engineers read them."""

from __future__ import annotations

import argparse
import importlib
import json
import textwrap
from typing import Any

from .procedures import ProcedureDef, describe, mermaid


def load_definitions(package: str = "sequences") -> dict[str, ProcedureDef]:
    """The procedures of a package (by name: plantctl never imports sequences at import time)."""
    mod = importlib.import_module(package)
    defs: dict[str, ProcedureDef] = mod.by_id()
    return defs


def _list(args: argparse.Namespace) -> int:
    defs = load_definitions(args.package)
    width = max((len(i) for i in defs), default=4)
    for pid, d in sorted(defs.items()):
        src = sum(1 for s in d.steps if s.src)
        print(f"{pid:<{width}}  {d.station:<13} {len(d.steps):>3} steps ({src} from the plan)  {d.title}")
    return 0


def _show(args: argparse.Namespace) -> int:
    defs = load_definitions(args.package)
    d = defs.get(args.id)
    if d is None:
        print(f"unknown procedure {args.id}; known: {', '.join(sorted(defs))}")
        return 2
    rows = describe(d)
    if args.json:
        print(json.dumps({"id": d.id, "title": d.title, "station": d.station, "source": d.source, "steps": rows}, indent=2))
        return 0
    print(f"{d.id}: {d.title}\nstation: {d.station}   written plan: {d.source}")
    if d.trigger is not None:
        print(f"starts by itself when: {d.trigger.describe()}")
    print()
    for r in rows:
        _print_step(r)
    if d.recurring:
        print("recurring tasks:")
        for rec in d.recurring:
            print(f"  {rec.id:<10} every {rec.every_s / 60:g} min: {rec.text}")
    if d.interrupts:
        print("interrupts:")
        for it in d.interrupts:
            print(f"  when {it.when.describe()}: {it.text} -> {it.goto}" + (f" (starts {it.start})" if it.start else ""))
    return 0


def _print_step(r: dict[str, Any]) -> None:
    head = f"{r['id']:<10} [{r['tag']}] {r['actor']:<6} {r['kind']}"
    print(head)
    for line in textwrap.wrap(r["text"], 90):
        print(f"    {line}")
    details = []
    if r["commands"]:
        details.append("commands: " + ", ".join(r["commands"]))
    if r["confirm"]:
        details.append(f"confirm: {r['confirm']}")
    if r["timeout_s"]:
        details.append(f"within {r['timeout_s']:g} s")
    moves = []
    if r["next"]:
        moves.append(f"ok -> {r['next']}")
    if r["on_fail"]:
        moves.append(f"fail -> {r['on_fail']}")
    if moves:
        details.append("; ".join(moves))
    for d in details:
        print(f"      {d}")


def _diagram(args: argparse.Namespace) -> int:
    defs = load_definitions(args.package)
    d = defs.get(args.id)
    if d is None:
        print(f"unknown procedure {args.id}")
        return 2
    print(mermaid(d, args.current))
    return 0


def add_cli(sub: Any) -> None:
    p = sub.add_parser(
        "procedures",
        help="list, show and draw the emergency procedures",
        description="The emergency procedures as state machines: each step with its id and the sentence of the "
        "written plan it implements.",
    )
    p.add_argument("--package", default="sequences", help="Python package holding the procedures (default: sequences)")
    ps = p.add_subparsers(dest="procedures_command", metavar="ACTION", required=True)
    ls = ps.add_parser("list", help="every procedure, one line each")
    ls.set_defaults(func=_list)
    sh = ps.add_parser("show", help="one procedure's steps with their plan text")
    sh.add_argument("id", help="procedure id, e.g. PUMP-PL")
    sh.add_argument("--json", action="store_true", help="machine-readable output")
    sh.set_defaults(func=_show)
    dg = ps.add_parser("diagram", help="Mermaid stateDiagram-v2 text of a procedure")
    dg.add_argument("id")
    dg.add_argument("--current", help="mark this step as the current one")
    dg.set_defaults(func=_diagram)
